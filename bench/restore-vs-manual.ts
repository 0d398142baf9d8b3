/**
 * Benchmark: backproof's runner against the same restore done by hand with the docker CLI, on
 * the same real pg_dump custom-format dump, alternating the two `--repeat` times; prints medians
 * and the ratio backproof/manual per phase.
 *
 *   node --import tsx bench/restore-vs-manual.ts [--size-mb 100] [--repeat 3]
 *
 * The dump is made once per size with the host's pg_dump (-Fc -Z 0: uncompressed, so the file
 * size is the bytes streamed) and cached in os.tmpdir(). Progress goes to stderr, results to stdout.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { driverFor, restorerFor } from '../orchestrator/cli/plugins.js';
import { parseConfigText } from '../orchestrator/config/load.js';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { Logger } from '../orchestrator/core/logger.js';
import { runPolicy } from '../orchestrator/runner/run-policy.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { DATA_DIR, INITDB_ARGS } from '../restore-sandboxes/postgres/cluster.js';
import { SERVER_OPTIONS } from '../restore-sandboxes/postgres/postgres-restorer.js';
import { LABEL_RUN } from '../restore-sandboxes/sandbox-runtime.js';
import { PG_BIN_DIR, startPgCluster } from '../test/helpers/pg-cluster.js';

const IMAGE = 'backproof/postgres:15';
const BIN = '/usr/lib/postgresql/15/bin';
const BENCH_LABEL = 'backproof.bench';
// The same initdb and server options as PostgresRestorer.prepare(). A hand-written script runs
// initdb in every container; backproof unpacks the cluster its image carries (made by the same
// initdb when the image was built) and runs initdb only on images without one.

const PSQL = [`${BIN}/psql`, '-X', '-A', '-t', '-q', '-h', '/tmp', '-U', 'postgres'];

const progress = (msg: string): boolean => process.stderr.write(`[bench] ${msg}\n`);
const mb = (bytes: number): string => `${(bytes / 1024 ** 2).toFixed(1)} MB`;

/** Runs a program (argv, no shell); rejects with its stderr on a non-zero exit. */
function exec(cmd: string, args: string[], stdinFd?: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [stdinFd ?? 'ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.slice(0, 3).join(' ')} exited ${code}: ${err.trim()}`))));
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

// ---- 1. the dump ---------------------------------------------------------------------------

async function buildDump(sizeMb: number): Promise<string> {
  const dir = path.join(os.tmpdir(), `backproof-bench-${sizeMb}mb`);
  const file = path.join(dir, 'orders.dump');
  if (await fs.stat(file).then(() => true, () => false)) {
    progress(`using cached dump ${file}`);
    return file;
  }
  await fs.mkdir(dir, { recursive: true });
  const t0 = performance.now();
  progress('starting a throwaway PostgreSQL 15 on the host');
  const cluster = await startPgCluster();
  try {
    await cluster.createDatabase('shop');
    const customers = 50_000;
    await cluster.psql(
      `CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL, country text NOT NULL, created_at timestamptz NOT NULL);
       CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers(id), status text NOT NULL,
         currency text NOT NULL, total numeric(12,2) NOT NULL, tax numeric(12,2) NOT NULL, created_at timestamptz NOT NULL,
         shipped_at timestamptz, shipping_address text NOT NULL, note text);
       INSERT INTO customers SELECT g, 'Customer ' || g, 'c' || g || '@example.com', (ARRAY['DE','GB','US','FR','PT'])[1 + g % 5],
         timestamptz '2020-01-01' + g * interval '31 minutes' FROM generate_series(1, ${customers}) g;`,
      'shop',
    );
    const insert = (lo: number, hi: number): Promise<string> =>
      cluster.psql(
        `INSERT INTO orders SELECT g, 1 + (g * 7919) % ${customers}, (ARRAY['new','paid','shipped','delivered','cancelled','refunded'])[1 + g % 6],
           (ARRAY['EUR','USD','GBP'])[1 + g % 3], ((g * 104729) % 10000000) / 100.0, ((g * 104729) % 10000000) * 0.0019,
           now() - (g % 17520) * interval '30 minutes' - (g % 1800) * interval '1 second',
           CASE WHEN g % 6 IN (2, 3) THEN now() - (g % 17520) * interval '30 minutes' + interval '2 days' END,
           (g * 31) % 9999 || ' ' || (ARRAY['Main St','High St','Oak Ave','Elm Rd','Station Rd'])[1 + g % 5] || ', ' ||
             (ARRAY['Berlin','Leeds','Austin','Lyon','Porto','Utrecht'])[1 + g % 6] || ' ' || lpad(((g * 7) % 99999)::text, 5, '0'),
           CASE WHEN g % 3 = 0 THEN 'ref ' || md5(g::text) || ' ' || left(md5((g * 3)::text), (12 + g % 20)::int) END
         FROM generate_series(${lo}::bigint, ${hi}) g;`,
        'shop',
      );
    // Calibrate: the text size of a sample of rows is close to what COPY (and -Z 0) writes per row.
    await insert(1, 10_000);
    const [perRow, customerBytes] = (await cluster.psql(`SELECT avg(octet_length(o::text)), (SELECT sum(octet_length(c::text)) FROM customers c) FROM orders o`, 'shop'))
      .trim().split('|').map(Number) as [number, number];
    const rows = Math.max(10_000, Math.round((sizeMb * 1024 ** 2 - customerBytes) / perRow));
    progress(`~${perRow.toFixed(0)} bytes a row: inserting ${rows.toLocaleString('en')} orders`);
    const batch = Math.ceil(rows / 10);
    for (let lo = 10_001; lo <= rows; lo += batch) {
      await insert(lo, Math.min(rows, lo + batch - 1));
      progress(`  ${Math.min(rows, lo + batch - 1).toLocaleString('en')} / ${rows.toLocaleString('en')} orders (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    }
    await cluster.psql('CREATE INDEX orders_customer_idx ON orders (customer_id); CREATE INDEX orders_created_idx ON orders (created_at); ANALYZE;', 'shop');
    progress('pg_dump -Fc -Z 0');
    const partial = `${file}.partial`;
    const ticker = setInterval(() => void fs.stat(partial).then((s) => progress(`  pg_dump wrote ${mb(s.size)}`), () => undefined), 2000);
    try {
      await exec(path.join(PG_BIN_DIR, 'pg_dump'), ['-Fc', '-Z', '0', '-f', partial, '-d', cluster.urlFor('shop')]);
    } finally {
      clearInterval(ticker);
    }
    await fs.rename(partial, file);
  } finally {
    await cluster.stop();
  }
  progress(`dump built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return file;
}

// ---- 2. by hand ----------------------------------------------------------------------------

interface ManualTimes { run: number; initdb: number; start: number; restore: number; select1: number; remove: number; total: number }

async function byHand(dump: string, name: string): Promise<ManualTimes> {
  const t0 = performance.now();
  const docker = (...args: string[]): Promise<string> => exec('docker', args);
  try {
    const run = await timed(() => docker('run', '-d', '--name', name, '--label', `${BENCH_LABEL}=manual`, '--network', 'none', '--user', 'postgres', '--tmpfs', '/tmp', IMAGE, 'sleep', 'infinity'));
    const initdb = await timed(() => docker('exec', name, `${BIN}/initdb`, ...INITDB_ARGS));
    const start = await timed(() =>
      docker('exec', name, `${BIN}/pg_ctl`, 'start', '-D', DATA_DIR, '-l', '/tmp/postgres.log', '-w', '-t', '60', '-o', SERVER_OPTIONS),
    );
    // backproof creates the target database in its restore step too (after reading the format).
    const restore = await timed(async () => {
      await docker('exec', name, ...PSQL, '-d', 'postgres', '-c', 'CREATE DATABASE restore');
      const fd = openSync(dump, 'r'); // `docker exec -i ... < dump`
      await exec('docker', ['exec', '-i', name, `${BIN}/pg_restore`, '--no-owner', '--no-privileges', '--exit-on-error', '-h', '/tmp', '-U', 'postgres', '-d', 'restore'], fd).finally(() => closeSync(fd));
    });
    const select1 = await timed(async () => {
      const out = await docker('exec', name, ...PSQL, '-d', 'restore', '-c', 'SELECT 1');
      if (out.trim() !== '1') throw new Error(`SELECT 1 answered ${JSON.stringify(out)}`);
    });
    const remove = await timed(() => docker('rm', '-f', '-v', name));
    return { run, initdb, start, restore, select1, remove, total: performance.now() - t0 };
  } finally {
    await docker('rm', '-f', '-v', name).catch(() => undefined); // already gone on success
  }
}

// ---- 3. backproof --------------------------------------------------------------------------

interface BackproofTimes { phases: Record<string, number>; rto: number; wall: number; bytesPerSec: number; rssPeak: number; sandboxDetail: string }

async function withBackproof(dump: string, store: RunStore, runtime: DockerRuntime, logger: Logger): Promise<BackproofTimes> {
  const folder = path.dirname(dump);
  const yaml = `
clients:
  - name: bench
    policies:
      - name: bench-orders
        kind: postgres
        source: { driver: local, path: ${JSON.stringify(folder)}, select: { glob: "*.dump", settle: 0s } }
        sandbox: { image: ${IMAGE} }
        probes:
          - rowCount: { table: orders, atLeast: 1 }
`;
  const policy = parseConfigText(yaml, path.join(folder, 'backproof.yaml'), {}).policies[0]!;
  let rssPeak = process.memoryUsage.rss();
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage.rss())), 50);
  const t0 = performance.now();
  const run: RunRecord = await runPolicy(policy, { store, runtime, driverFor, restorerFor, logger }).finally(() => clearInterval(sampler));
  const wall = performance.now() - t0;
  const left = await runtime.leftovers(run.id);
  const leaked = left.containers.length + left.volumes.length > 0 ? `; left behind ${JSON.stringify(left)}` : '';
  if (run.verdict !== 'pass' || leaked) {
    const phases = run.phases.map((p) => `${p.name}=${p.outcome}`).join(' ');
    throw new Error(`backproof run ${run.id}: ${run.verdict} [${phases}] ${run.reasons.map((r) => `${r.code}: ${r.message}`).join('; ')}${leaked}`);
  }
  return {
    phases: Object.fromEntries(run.phases.map((p) => [p.name, p.durationMs])),
    rto: run.metrics.rtoMeasuredMs ?? NaN,
    wall,
    bytesPerSec: run.metrics.fetchBytesPerSec ?? NaN,
    rssPeak,
    sandboxDetail: run.phases.find((p) => p.name === 'sandbox')?.detail ?? '',
  };
}

// ---- 4. report -----------------------------------------------------------------------------

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function table(manual: ManualTimes[], bp: BackproofTimes[]): string {
  const m = (k: keyof ManualTimes): number => median(manual.map((t) => t[k]));
  const b = (phase: string): number => median(bp.map((t) => t.phases[phase] ?? NaN));
  const rows: Array<[string, number, number | undefined, string]> = [
    ['select', b('select'), undefined, '(none: the operator knows the file)'],
    ['sandbox', b('sandbox'), m('run') + m('initdb') + m('start'), 'docker run + initdb + pg_ctl start'],
    ['fetch_restore', b('fetch_restore'), m('restore'), 'CREATE DATABASE + docker exec -i pg_restore < dump'],
    ['readiness', b('readiness'), m('select1'), 'psql SELECT 1'],
    ['probes', b('probes'), undefined, '(none: ANALYZE + size query + rowCount probe)'],
    ['teardown', b('teardown'), m('remove'), 'docker rm -f -v'],
    ['rto (fetch..ready)', median(bp.map((t) => t.rto)), median(manual.map((t) => t.restore + t.select1)), 'pg_restore + SELECT 1'],
    ['total wall', median(bp.map((t) => t.wall)), m('total'), 'all steps above'],
  ];
  const lines = [`${'phase'.padEnd(20)}${'backproof ms'.padStart(13)}${'manual ms'.padStart(11)}${'ratio'.padStart(8)}   manual step(s)`];
  for (const [name, bpMs, manMs, what] of rows) {
    const ratio = manMs === undefined ? '-' : `${(bpMs / manMs).toFixed(2)}x`;
    lines.push(`${name.padEnd(20)}${bpMs.toFixed(0).padStart(13)}${(manMs === undefined ? '-' : manMs.toFixed(0)).padStart(11)}${ratio.padStart(8)}   ${what}`);
  }
  const steps = (['run', 'initdb', 'start', 'restore', 'select1', 'remove'] as const).map((k) => `${k} ${m(k).toFixed(0)}`).join(', ');
  lines.push('', `manual steps (median ms): ${steps}`);
  return lines.join('\n');
}

async function leftovers(): Promise<string[]> {
  const out = await Promise.all([
    exec('docker', ['ps', '-a', '-q', '--filter', `label=${LABEL_RUN}`]),
    exec('docker', ['ps', '-a', '-q', '--filter', `label=${BENCH_LABEL}`]),
    exec('docker', ['volume', 'ls', '-q', '--filter', `label=${LABEL_RUN}`]),
  ]);
  return out.join('\n').split('\n').filter(Boolean);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { 'size-mb': { type: 'string', default: '100' }, repeat: { type: 'string', default: '3' } } });
  const sizeMb = Number(values['size-mb']);
  const repeat = Number(values.repeat);
  if (!Number.isInteger(sizeMb) || sizeMb < 1) throw new Error('--size-mb takes a whole number of MB, at least 1');
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error('--repeat takes a whole number, at least 1');

  const dump = await buildDump(sizeMb);
  const dumpBytes = (await fs.stat(dump)).size;
  progress(`dump: ${dump} (${mb(dumpBytes)}, ${dumpBytes} bytes)`);
  const sha256sumMs = await timed(() => exec('sha256sum', [dump])); // also warms the page cache for both paths
  const storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-bench-store-'));
  const store = await RunStore.open({ dataDir: storeDir, schema: 'backproof' });
  const rssBeforeRuns = process.resourceUsage().maxRSS;
  const runtime = new DockerRuntime();
  const logger = new Logger({ level: 'warn' });
  const manual: ManualTimes[] = [];
  const bp: BackproofTimes[] = [];
  try {
    for (let i = 1; i <= repeat; i++) {
      const man = await byHand(dump, `backproof-bench-manual-${process.pid}-${i}`);
      manual.push(man);
      progress(`${i}/${repeat} by hand:   ${(man.total / 1000).toFixed(1)} s (pg_restore ${(man.restore / 1000).toFixed(1)} s)`);
      const run = await withBackproof(dump, store, runtime, logger);
      bp.push(run);
      progress(`${i}/${repeat} backproof: ${(run.wall / 1000).toFixed(1)} s (fetch_restore ${((run.phases.fetch_restore ?? NaN) / 1000).toFixed(1)} s)`);
    }
  } finally {
    await store.close();
    await fs.rm(storeDir, { recursive: true, force: true });
    const left = await leftovers();
    if (left.length > 0) process.exitCode = 1;
    progress(left.length > 0 ? `LEFT BEHIND: ${left.join(' ')}` : 'cleanup: no container or volume left');
  }

  const restoreMs = median(manual.map((t) => t.restore));
  const out = [
    '',
    `restore of ${path.basename(dump)}: ${mb(dumpBytes)} pg_dump -Fc -Z 0, medians of ${repeat} alternating runs`,
    '',
    table(manual, bp),
    '',
    `sha256sum on the host:  ${sha256sumMs.toFixed(0)} ms (${((sha256sumMs / restoreMs) * 100).toFixed(1)}% of the manual pg_restore)`,
    `backproof fetch rate:   ${mb(median(bp.map((t) => t.bytesPerSec)))}/s`,
    `peak RSS (bench proc):  ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB (maxRSS; ${(rssBeforeRuns / 1024).toFixed(0)} MB already once the embedded PGlite store was open)`,
    `RSS during backproof:   ${mb(Math.max(...bp.map((t) => t.rssPeak)))} at most (sampled every 50 ms; ${mb(rssBeforeRuns * 1024)} peak before the runs)`,
    `backproof's cluster:    ${[...new Set(bp.map((t) => t.sandboxDetail))].join('; ')}`,
    'note: the runner sha256-hashes every byte as it streams it into the sandbox; the manual path does not.',
    'note: the manual container has no limits and keeps data in its writable layer; backproof adds CapDrop ALL,',
    '      read-only root, 2g memory, 2 cpus, 512 pids and a data volume (see PostgresRestorer.sandboxSpec).',
  ];
  process.stdout.write(out.join('\n') + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
