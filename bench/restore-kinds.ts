/**
 * Benchmark: restore time per kind for a ~100 MB backup, through the real runner, against a
 * baseline run in the same script: the same bytes streamed into a sandbox of the same image and
 * limits with nothing restored (`dd of=/dev/null`), which every restore pays. The ratio says what
 * the restore itself adds. Prints per kind: stored size, backproof's fetch+restore, readiness,
 * probes, the whole run, the baseline and the ratio; medians of `--repeat` rounds.
 *
 *   node --import tsx bench/restore-kinds.ts [--kinds postgres,mysql,sqlite,files,custom] [--repeat 1]
 *
 * Backups are made in the script with the real tools (pg_dump on a throwaway cluster,
 * mariadb-dump and sqlite3 in sandboxes, tar) and cached in os.tmpdir().
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { driverFor, restorerFor } from '../orchestrator/cli/plugins.js';
import type { PolicyConfig } from '../orchestrator/core/config-types.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { runPolicy } from '../orchestrator/runner/run-policy.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { makeShareTree } from '../test/helpers/archive-fixtures.js';
import { createShopDatabase, dumpDatabase } from '../test/helpers/fixtures.js';
import { policyFromYaml, quietLogger } from '../test/helpers/harness.js';
import { createMysqlShop, startMysqlFixtureServer } from '../test/helpers/mysql-fixtures.js';
import { startPgCluster } from '../test/helpers/pg-cluster.js';
import { shopSql, SqliteFixtures } from '../test/helpers/sqlite-fixtures.js';

const run = promisify(execFile);
const progress = (msg: string): boolean => process.stderr.write(`[bench] ${msg}\n`);
const { values } = parseArgs({ options: { kinds: { type: 'string', default: 'postgres,mysql,sqlite,files,custom' }, repeat: { type: 'string', default: '1' } } });
const kinds = values.kinds.split(',');
const repeat = Number(values.repeat);
const cache = path.join(os.tmpdir(), 'backproof-bench-kinds');
await fs.mkdir(cache, { recursive: true });

const exists = (f: string): Promise<boolean> => fs.stat(f).then(() => true, () => false);

/** Each kind: where its ~100 MB backup is (made once), and the policy that verifies it. */
const KINDS: Record<string, { file: string; make: (file: string) => Promise<void>; policy: (folder: string) => PolicyConfig }> = {
  postgres: {
    file: 'shop.dump',
    make: async (file) => {
      const cluster = await startPgCluster();
      try {
        const db = await createShopDatabase(cluster, { customers: 50_000, orders: 1_300_000 });
        await dumpDatabase(cluster, db, file, 'plain');
      } finally {
        await cluster.stop();
      }
    },
    policy: (folder) => policyFromYaml({ folder, glob: 'shop.dump', sandbox: 'memory: 2g, timeout: 30m', probes: '          - rowCount: { table: orders, atLeast: 1000000 }' }),
  },
  mysql: {
    file: 'shop.sql',
    make: async (file) => {
      const server = await startMysqlFixtureServer();
      try {
        await createMysqlShop(server, 'shop', { customers: 50_000, orders: 1_000_000 });
        await server.dump(file, ['shop']);
      } finally {
        await server.stop();
      }
    },
    policy: (folder) => policyFromYaml({ folder, kind: 'mysql', glob: 'shop.sql', sandbox: 'memory: 2g, timeout: 30m', probes: '          - rowCount: { table: orders, atLeast: 1000000 }' }),
  },
  sqlite: {
    file: 'shop.db',
    make: async (file) => {
      const fx = await SqliteFixtures.start();
      try {
        await fx.database(file, shopSql({ customers: 500_000, orders: 800_000 }).replace(`'line ' || i || ' with | a bar'`, 'hex(randomblob(32))'));
      } finally {
        await fx.stop();
      }
    },
    policy: (folder) => policyFromYaml({ folder, kind: 'sqlite', glob: 'shop.db', sandbox: 'memory: 2g, timeout: 30m', probes: '          - rowCount: { table: orders, atLeast: 800000 }' }),
  },
  files: {
    file: 'share.tar.gz',
    make: makeShare,
    policy: (folder) => policyFromYaml({ folder, kind: 'files', glob: 'share.tar.gz', sandbox: 'memory: 1g, timeout: 30m', probes: '          - manifest: SHA256SUMS\n          - encryptedLooking: true' }),
  },
  custom: {
    file: 'share.tar.gz',
    make: makeShare,
    policy: (folder) =>
      policyFromYaml({
        folder,
        kind: 'custom',
        glob: 'share.tar.gz',
        sandbox: 'memory: 1g, timeout: 30m',
        probes: '          - command: [test, -s, /restore/SHA256SUMS]',
        extra: `        custom:
          image: backproof/files
          user: "1000:1000"
          restore: [tar, -x, -f, "-", -C, /restore]`,
      }),
  },
};

/** ~100 MB stored: documents (text, CSV, office, PDF) and photos, with a SHA256SUMS, as tar.gz. */
async function makeShare(file: string): Promise<void> {
  const tree = path.join(path.dirname(file), 'tree');
  await fs.rm(tree, { recursive: true, force: true });
  for (let i = 0; i < 40; i++) {
    const part = path.join(tree, `dept-${i}`);
    await makeShareTree(part, { documents: 40 });
    await fs.writeFile(path.join(part, 'photo.jpg'), Buffer.concat([Buffer.from('ffd8ffe0', 'hex'), randomBytes(2.5 * 1024 * 1024)])); // incompressible, as photos are
  }
  const { stdout } = await run('find', ['.', '-type', 'f', '-printf', '%P\\n'], { cwd: tree, maxBuffer: 64 * 1024 * 1024 });
  const all = stdout.split('\n').filter(Boolean);
  const { stdout: sums } = await run('sha256sum', all, { cwd: tree, maxBuffer: 64 * 1024 * 1024 });
  await fs.writeFile(path.join(tree, 'SHA256SUMS'), sums);
  await run('tar', ['-c', '-z', '-f', file, '-C', tree, '.']);
  await fs.rm(tree, { recursive: true, force: true });
}

const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const runtime = new DockerRuntime();
const store = await RunStore.open({ dataDir: path.join(cache, 'store'), schema: 'backproof' });
const rows: string[] = [];

for (const kind of kinds) {
  const spec = KINDS[kind];
  if (!spec) throw new Error(`unknown kind ${kind}; known: ${Object.keys(KINDS).join(', ')}`);
  const folder = path.join(cache, kind);
  await fs.mkdir(folder, { recursive: true });
  const file = path.join(folder, spec.file);
  if (!(await exists(file))) {
    progress(`${kind}: making the backup (once)`);
    await spec.make(file);
  }
  const old = new Date(Date.now() - 3_600_000);
  await fs.utimes(file, old, old);
  const size = (await fs.stat(file)).size;
  const policy = { ...spec.policy(folder), name: `bench-${kind}`, sizeAnomaly: false as const };
  const times: Record<'restore' | 'readiness' | 'probes' | 'run' | 'baseline', number[]> = { restore: [], readiness: [], probes: [], run: [], baseline: [] };
  for (let i = 0; i < repeat; i++) {
    const r = await runPolicy(policy, { store, runtime, driverFor, restorerFor, logger: quietLogger() });
    if (r.verdict !== 'pass') throw new Error(`${kind}: the run did not pass: ${JSON.stringify(r.reasons)}`);
    const phase = (n: string): number => r.phases.find((p) => p.name === n)?.durationMs ?? 0;
    times.restore.push(phase('fetch_restore'));
    times.readiness.push(phase('readiness'));
    times.probes.push(phase('probes'));
    times.run.push(r.durationMs ?? 0);
    // Baseline: the same bytes into a sandbox of the same image and limits, nothing restored.
    const restorer = restorerFor(policy);
    const sandbox = await runtime.create({ ...restorer.sandboxSpec(policy, `bench-baseline-${process.pid}-${i}`), services: [] });
    try {
      const t0 = performance.now();
      const copy = await sandbox.exec(['dd', 'of=/dev/null', 'bs=1M', 'status=none'], { stdin: createReadStream(file, { highWaterMark: 1024 * 1024 }) });
      if (copy.exitCode !== 0) throw new Error(`baseline dd failed: ${copy.stderr}`);
      times.baseline.push(performance.now() - t0);
    } finally {
      await sandbox.remove();
    }
    progress(`${kind} round ${i + 1}: fetch+restore ${s(times.restore.at(-1)!)}, baseline ${s(times.baseline.at(-1)!)}`);
  }
  const m = (k: keyof typeof times): number => median(times[k]);
  rows.push(
    `${kind.padEnd(9)} ${(size / 1024 ** 2).toFixed(1).padStart(6)} MB  fetch+restore ${s(m('restore')).padStart(7)}  readiness ${s(m('readiness')).padStart(6)}  probes ${s(m('probes')).padStart(6)}  run ${s(m('run')).padStart(7)}  | bytes into the sandbox ${s(m('baseline')).padStart(6)}  ratio ${(m('restore') / m('baseline')).toFixed(1)}x`,
  );
}
await store.close();
console.log(`restore time per kind, median of ${repeat} (ratio: fetch+restore / streaming the same bytes into the same sandbox)`);
for (const row of rows) console.log(row);
