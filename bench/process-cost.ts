/**
 * Benchmark: what one backproof process costs (issue 15): wall time and peak RSS of each command
 * as a user runs it (`node bin/backproof.js ...`, a new process each time), on a new data dir and
 * on an existing one holding `--runs` runs, against the floor of any Node.js process (`node -e 0`)
 * measured in the same script; and `backproof run` of a small real pg_dump against the bare
 * docker-CLI script that does the same restore. The read commands and `run` are measured again
 * beside a process holding the store (as the daemon does), through its socket.
 *
 *   npm run build && node --import tsx bench/process-cost.ts [--runs 100000] [--clients 200]
 *       [--repeat 5] [--validate-policies 10000] [--daemon-policies 1000] [--skip-run]
 *
 * The seeded store (bench/seeded-store.ts: runs recorded and sealed through RunStore, as the
 * runner does) is cached in $TMPDIR/backproof-bench-store-<runs>-<clients>; delete it to rebuild. Progress to stderr, the table to
 * stdout. Peak RSS is getrusage's ru_maxrss of the child (bench/exit-rss.cjs), the daemon's
 * VmHWM from /proc.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SERVER_OPTIONS } from '../restore-sandboxes/postgres/postgres-restorer.js';
import { PG_BIN_DIR, startPgCluster } from '../test/helpers/pg-cluster.js';
import { startStoreHolder } from '../test/helpers/store-holder.js';
import { POLICIES_PER_CLIENT, seededDataDir } from './seeded-store.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(ROOT, 'bin', 'backproof.js');
const RSS_PRELOAD = path.join(ROOT, 'bench', 'exit-rss.cjs');
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '100000' },
    clients: { type: 'string', default: '200' },
    repeat: { type: 'string', default: '5' },
    'validate-policies': { type: 'string', default: '10000' },
    'daemon-policies': { type: 'string', default: '1000' },
    'skip-run': { type: 'boolean', default: false },
  },
});
const nRuns = Number(values.runs);
const nClients = Number(values.clients);
const repeat = Number(values.repeat);
const progress = (msg: string): boolean => process.stderr.write(`[bench] ${msg}\n`);

interface Sample {
  ms: number;
  rssMb: number;
}

/** One child process: wall time from spawn to exit, and its peak RSS. */
async function measure(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; node?: boolean } = {}): Promise<Sample> {
  const rssFile = path.join(os.tmpdir(), `backproof-bench-rss-${process.pid}-${randomUUID()}`);
  const argv = opts.node ? ['--require', RSS_PRELOAD, ...args] : ['--require', RSS_PRELOAD, BIN, ...args];
  const t0 = performance.now();
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, argv, { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env, BENCH_RSS_FILE: rssFile }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    child.on('error', reject);
    child.on('close', (c) => resolve({ code: c, stderr: err }));
  });
  const ms = performance.now() - t0;
  if (code !== 0) throw new Error(`backproof ${args.join(' ')} exited ${code}: ${stderr.trim()}`);
  const rssKb = Number(readFileSync(rssFile, 'utf8'));
  await fs.rm(rssFile, { force: true });
  return { ms, rssMb: rssKb / 1024 };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Row {
  name: string;
  samples: Sample[];
  limitMs?: number;
  limitMb?: number;
}
const rows: Row[] = [];

/** Runs each case `repeat` times, interleaved with the floor so both see the same machine. */
async function measureRows(cases: { name: string; run: () => Promise<Sample>; limitMs?: number; limitMb?: number }[], floor: Row): Promise<void> {
  for (let i = 0; i < repeat; i++) {
    floor.samples.push(await measure(['-e', '0'], { node: true }));
    for (const c of cases) {
      let row = rows.find((r) => r.name === c.name);
      if (!row) rows.push((row = { name: c.name, samples: [], ...(c.limitMs ? { limitMs: c.limitMs } : {}), ...(c.limitMb ? { limitMb: c.limitMb } : {}) }));
      row.samples.push(await c.run());
    }
    progress(`  round ${i + 1}/${repeat}`);
  }
}

// ---- fixtures ------------------------------------------------------------------------------

function configYaml(folder: string, clients: number, perClient: number, extra = ''): string {
  const out = [`version: 1\n${extra}clients:\n`];
  for (let c = 0; c < clients; c++) {
    out.push(`  - name: c${String(c).padStart(4, '0')}\n    policies:\n`);
    for (let p = 0; p < perClient; p++) {
      out.push(`      - name: c${String(c).padStart(4, '0')}-db${p}
        kind: postgres
        source: { driver: local, path: ${JSON.stringify(folder)}, select: { glob: "shop-*.dump" } }
        targets: { rpo: 26h, rto: 30m }
        schedule: "daily at 03:${String((c + p) % 60).padStart(2, '0')}"
        probes:
          - rowCount: { table: orders, atLeast: 1000 }
`);
    }
  }
  return out.join('');
}

// ---- run: backproof against the bare docker script ------------------------------------------

/** A small real pg_dump -Fc: three tables, 16,600 rows (the case), made once. */
async function smallDump(folder: string): Promise<string> {
  const file = path.join(folder, 'shop-20261201T0300.dump');
  const cached = path.join(os.tmpdir(), 'backproof-bench-small-shop.dump');
  if (!existsSync(cached)) {
    progress('making a small pg_dump with the host PostgreSQL 15');
    const cluster = await startPgCluster();
    try {
      await cluster.createDatabase('shop');
      await cluster.psql(
        `CREATE TABLE customers (id int PRIMARY KEY, name text, country text);
         CREATE TABLE products (id int PRIMARY KEY, title text, price numeric(10,2));
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, product_id int REFERENCES products, qty int, at timestamptz);
         INSERT INTO customers SELECT g, 'Customer ' || g, (ARRAY['DE','GB','US'])[1 + g % 3] FROM generate_series(1, 1500) g;
         INSERT INTO products SELECT g, 'Product ' || g, (g % 500) + 0.99 FROM generate_series(1, 100) g;
         INSERT INTO orders SELECT g, 1 + g % 1500, 1 + g % 100, 1 + g % 5, timestamptz '2026-01-01' + g * interval '7 minutes' FROM generate_series(1, 15000) g;`,
        'shop',
      );
      await new Promise<void>((resolve, reject) => {
        const child = spawn(path.join(PG_BIN_DIR, 'pg_dump'), ['-Fc', '-f', cached, '-d', cluster.urlFor('shop')], { stdio: 'inherit' });
        child.on('close', (c) => (c === 0 ? resolve() : reject(new Error(`pg_dump exited ${c}`))));
      });
    } finally {
      await cluster.stop();
    }
  }
  await fs.copyFile(cached, file);
  const old = new Date(Date.now() - 3_600_000);
  await fs.utimes(file, old, old);
  return file;
}

/** The restore as a hand-written script does it, with the docker CLI (the baseline). */
/**
 * $3 is where the cluster lives: /tmp/pg, in the container's tmpfs (the baseline); or, in the
 * second variant, /var/lib/postgresql/pg, on a volume of its own ($4 mounts it) as backproof
 * keeps a run's cluster (a restore may be larger than the sandbox's memory). The two show what
 * the disk costs.
 */
const BARE_SCRIPT = `set -eu
c=$(docker run -d --network none --user postgres --tmpfs /tmp $4 backproof/postgres:15 sleep infinity)
trap 'docker rm -f -v "$c" >/dev/null' EXIT
B=/usr/lib/postgresql/15/bin
docker exec "$c" $B/initdb -D "$3" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
docker exec "$c" $B/pg_ctl start -D "$3" -l /tmp/pg.log -w -o "$2" >/dev/null
docker exec "$c" $B/createdb -h /tmp -U postgres restore
sha256sum "$1" >/dev/null
docker exec -i "$c" $B/pg_restore -h /tmp -U postgres -d restore --no-owner < "$1"
docker exec "$c" $B/psql -h /tmp -U postgres -d restore -Atc "SELECT count(*) FROM orders" >/dev/null
`;

async function bareScript(dump: string, onVolume = false): Promise<Sample> {
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    // The server started with the restorer's own options (fsync off, minimal WAL, ...), as someone
    // who knows PostgreSQL would write it.
    const child = spawn('bash', ['-c', BARE_SCRIPT, 'bare', dump, SERVER_OPTIONS, onVolume ? '/var/lib/postgresql/pg' : '/tmp/pg', onVolume ? '--mount type=volume,dst=/var/lib/postgresql' : ''], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (c) => (c === 0 ? resolve() : reject(new Error(`the bare script exited ${c}: ${err}`))));
  });
  return { ms: performance.now() - t0, rssMb: NaN };
}

// ---- the daemon -----------------------------------------------------------------------------

/** `backproof daemon` with `n` policies: time until its status file appears, then VmHWM after 10 s. */
/**
 * The daemon on a new data dir: when it has scheduled every policy ("daemon started" logged),
 * when its first check is done (daemon-status.json written), and its peak RSS 10 s later.
 */
async function daemonCost(config: string, dataDir: string): Promise<{ scheduled: Sample; ready: Sample }> {
  const status = path.join(dataDir, 'daemon-status.json');
  await fs.rm(status, { force: true });
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, '--config', config, '--data-dir', dataDir, 'daemon'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let scheduledMs: number | undefined;
  const watch = (d: Buffer): void => {
    err = (err + d.toString()).slice(-4000);
    if (scheduledMs === undefined && err.includes('daemon started')) scheduledMs = performance.now() - t0;
  };
  child.stdout.on('data', watch);
  child.stderr.on('data', watch);
  try {
    while (!existsSync(status)) {
      if (child.exitCode !== null) throw new Error(`the daemon exited ${child.exitCode}: ${err}`);
      if (performance.now() - t0 > 300_000) throw new Error('the daemon wrote no status in 300 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    const ms = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 10_000));
    const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    const rssMb = Number(hwm?.[1] ?? NaN) / 1024;
    return { scheduled: { ms: scheduledMs ?? NaN, rssMb }, ready: { ms, rssMb } };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('close', r));
  }
}

// ---- main -----------------------------------------------------------------------------------

function table(floor: Row): string {
  const f = { ms: median(floor.samples.map((s) => s.ms)), mb: median(floor.samples.map((s) => s.rssMb)) };
  const lines = [
    `| case | wall (median) | x floor | peak RSS (median) | x floor | target |`,
    `|---|---:|---:|---:|---:|---|`,
    `| floor: node -e 0 | ${f.ms.toFixed(0)} ms | 1.00 | ${f.mb.toFixed(0)} MB | 1.00 | |`,
  ];
  for (const r of rows) {
    const ms = median(r.samples.map((s) => s.ms));
    const mb = median(r.samples.map((s) => s.rssMb));
    const target = [
      r.limitMs ? `${ms <= r.limitMs ? 'ok' : 'OVER'} < ${r.limitMs} ms` : '',
      r.limitMb ? `${mb <= r.limitMb ? 'ok' : 'OVER'} < ${r.limitMb} MB` : '',
    ].filter(Boolean).join(', ');
    const mbText = Number.isNaN(mb) ? '-' : `${mb.toFixed(0)} MB`;
    const mbRatio = Number.isNaN(mb) ? '-' : (mb / f.mb).toFixed(2);
    lines.push(`| ${r.name} | ${ms.toFixed(0)} ms | ${(ms / f.ms).toFixed(2)} | ${mbText} | ${mbRatio} | ${target} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  if (!existsSync(path.join(ROOT, 'dist', 'cli', 'backproof.js'))) throw new Error('run npm run build first: the bench runs bin/backproof.js as a user does');
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-bench-process-'));
  const floor: Row = { name: 'floor', samples: [] };
  try {
    const backups = path.join(work, 'backups');
    await fs.mkdir(backups);
    // One recent backup every policy's glob matches: the daemon's checks find it (none missing, none stale).
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString().replace(/[-:]/g, '').slice(0, 13);
    await fs.writeFile(path.join(backups, `shop-${hourAgo}.dump`), 'x'.repeat(1000));
    const { dataDir, someRunId } = await seededDataDir(nRuns, nClients);
    const config = path.join(work, 'backproof.yaml');
    await fs.writeFile(config, configYaml(backups, nClients, POLICIES_PER_CLIENT));
    const big = path.join(work, 'big.yaml');
    const nValidate = Number(values['validate-policies']);
    await fs.writeFile(big, configYaml(backups, Math.ceil(nValidate / 10), 10));
    const g = (dir: string): string[] => ['--config', config, '--data-dir', dir];
    let fresh = 0;
    const newDir = (): string => path.join(work, `new-${fresh++}`);

    progress(`read commands, ${repeat} rounds, each beside the floor`);
    await measureRows(
      [
        { name: '--version', run: () => measure(['--version']), limitMs: 500, limitMb: 150 },
        { name: `validate (${nClients * POLICIES_PER_CLIENT} policies)`, run: () => measure(['--config', config, 'validate']), limitMs: 500, limitMb: 150 },
        { name: `validate (${nValidate.toLocaleString('en')} policies)`, run: () => measure(['--config', big, 'validate']), limitMs: 2000, limitMb: 300 },
        { name: 'runs list, new data dir', run: () => measure([...g(newDir()), 'runs', 'list']), limitMb: 150 },
        { name: 'status, new data dir', run: () => measure([...g(newDir()), 'status']), limitMb: 150 },
        { name: `runs list, ${nRuns.toLocaleString('en')} runs`, run: () => measure([...g(dataDir), 'runs', 'list']), limitMs: 500, limitMb: 150 },
        { name: `runs show, ${nRuns.toLocaleString('en')} runs`, run: () => measure([...g(dataDir), 'runs', 'show', someRunId]), limitMs: 500, limitMb: 150 },
        { name: `status, ${nRuns.toLocaleString('en')} runs`, run: () => measure([...g(dataDir), 'status']), limitMs: 500, limitMb: 150 },
      ],
      floor,
    );

    // The same read commands while another process (as the daemon does) holds the embedded store:
    // they send their statements through its socket and never load PGlite themselves.
    progress(`read commands beside a process holding the store, ${repeat} rounds`);
    const holder = await startStoreHolder(dataDir);
    try {
      await measureRows(
        [
          { name: `runs list, ${nRuns.toLocaleString('en')} runs, beside its holder`, run: () => measure([...g(dataDir), 'runs', 'list']), limitMs: 500, limitMb: 150 },
          { name: `runs show, ${nRuns.toLocaleString('en')} runs, beside its holder`, run: () => measure([...g(dataDir), 'runs', 'show', someRunId]), limitMs: 500, limitMb: 150 },
          { name: `status, ${nRuns.toLocaleString('en')} runs, beside its holder`, run: () => measure([...g(dataDir), 'status']), limitMs: 500, limitMb: 150 },
        ],
        floor,
      );
    } finally {
      await holder.stop();
    }

    for (const nDaemon of [Number(values['daemon-policies']), nValidate]) {
      if (!(nDaemon > 0)) continue;
      progress(`the daemon with ${nDaemon.toLocaleString('en')} policies (scheduled, first check done, then peak RSS after 10 s)`);
      const dconfig = path.join(work, `daemon-${nDaemon}.yaml`);
      await fs.writeFile(dconfig, configYaml(backups, Math.ceil(nDaemon / 10), 10));
      const scheduled: Row = { name: `daemon, ${nDaemon.toLocaleString('en')} policies: scheduled`, samples: [], limitMs: 2000, limitMb: nDaemon > 1000 ? 300 : 150 };
      const ready: Row = { name: `daemon, ${nDaemon.toLocaleString('en')} policies: first check done`, samples: [] };
      rows.push(scheduled, ready);
      for (let i = 0; i < Math.min(repeat, 3); i++) {
        const sample = await daemonCost(dconfig, newDir());
        scheduled.samples.push(sample.scheduled);
        ready.samples.push(sample.ready);
      }
    }

    if (!values['skip-run']) {
      progress('backproof run of a small pg_dump against the bare docker script');
      const runFolder = path.join(work, 'run-backups');
      await fs.mkdir(runFolder);
      const dump = await smallDump(runFolder);
      const runConfig = path.join(work, 'run.yaml');
      await fs.writeFile(
        runConfig,
        `version: 1\nclients:\n  - name: shop\n    policies:\n      - name: shop-db\n        kind: postgres\n        source: { driver: local, path: ${JSON.stringify(runFolder)}, select: { glob: "shop-*.dump" } }\n        probes:\n          - rowCount: { table: orders, atLeast: 15000 }\n`,
      );
      const existing = newDir();
      await measure(['--config', runConfig, '--data-dir', existing, 'run']); // warm: image in the page cache, store made
      // A store with years of evidence: a copy of the seeded one (each run adds to it).
      const seasoned = newDir();
      await fs.cp(dataDir, seasoned, { recursive: true });
      await measureRows(
        [
          { name: 'bare docker script (baseline of run)', run: () => bareScript(dump) },
          { name: 'bare docker script, its cluster on a volume', run: () => bareScript(dump, true) },
          { name: 'run, new data dir', run: () => measure(['--config', runConfig, '--data-dir', newDir(), 'run']), limitMb: 150 },
          { name: 'run, existing data dir', run: () => measure(['--config', runConfig, '--data-dir', existing, 'run']), limitMb: 150 },
          { name: `run, existing data dir holding ${nRuns.toLocaleString('en')} runs`, run: () => measure(['--config', runConfig, '--data-dir', seasoned, 'run']), limitMb: 150 },
        ],
        floor,
      );
      const runHolder = await startStoreHolder(existing);
      try {
        await measureRows([{ name: 'run, existing data dir, beside its holder', run: () => measure(['--config', runConfig, '--data-dir', existing, 'run']), limitMb: 150 }], floor);
      } finally {
        await runHolder.stop();
      }
    }
    process.stdout.write(`\n${table(floor)}\n\n${os.cpus().length} CPUs, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB, Node ${process.version}, ${repeat} rounds\n`);
    const bare = rows.find((r) => r.name.startsWith('bare docker script (baseline'));
    const onVolume = rows.find((r) => r.name.startsWith('bare docker script, its cluster on a volume'));
    if (bare && onVolume) {
      const b = median(bare.samples.map((s) => s.ms));
      const v = median(onVolume.samples.map((s) => s.ms));
      for (const r of rows.filter((x) => x.name.startsWith('run,'))) {
        const ms = median(r.samples.map((s) => s.ms));
        process.stdout.write(`${r.name}: ${(ms / b).toFixed(2)}x the bare docker script (${(ms / v).toFixed(2)}x with its cluster on a volume)\n`);
      }
    }
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

await main();
