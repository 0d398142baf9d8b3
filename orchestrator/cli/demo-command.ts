import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { renderRunSummary, renderRunsTable } from '../../reports/run-summary.js';
import { DockerRuntime } from '../../restore-sandboxes/docker/docker-runtime.js';
import { PostgresRestorer } from '../../restore-sandboxes/postgres/postgres-restorer.js';
import { loadConfig } from '../config/load.js';
import { policyOfKind, type PolicyConfig } from '../core/config-types.js';
import { VerificationError } from '../core/errors.js';
import { formatBytes } from '../core/format.js';
import type { Logger } from '../core/logger.js';
import { runPolicy } from '../runner/run-policy.js';
import { makeLogger, openStore, type GlobalOptions } from './context.js';
import { runDeps } from './plugins.js';
import { ensureImage } from './images-command.js';
import { ProgressLine } from './progress.js';
import { recoverAndReap } from './run-command.js';
import { timeoutSignal } from '../core/timeout-signal.js';

const DEMO_CONFIG = `# backproof demo: one client, one policy, nightly pg_dump files in ./backups
# Run it again with: backproof --config backproof.yaml --data-dir .backproof run
clients:
  - name: demo-client
    displayName: Demo Client Ltd
    policies:
      - name: shop-db
        kind: postgres
        source:
          driver: local
          path: ./backups
          select:
            glob: "shop-*.dump"
            timestamp: { from: name, pattern: "shop-(?<ts>.+)\\\\.dump" }
            settle: 1m
        targets: { rpo: 26h, rto: 30m }
        probes:
          - tablesExist: [customers, orders]
          - rowCount: { table: orders, atLeast: 1000 }
          - sql: SELECT count(DISTINCT customer_id) FROM orders
            atLeast: 100
            name: orders reference many customers
          - freshness: { table: orders, column: created_at, within: 48h }
`;

const SEED_SQL = `
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers(id),
                     total_cents integer NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO customers SELECT g, 'Customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 2000) g;
INSERT INTO orders SELECT g, 1 + (g::bigint * 7919) % 2000, 100 + (g::bigint * 104729) % 50000,
       now() - interval '1 hour' - (g % 720) * interval '1 hour' FROM generate_series(1, 25000) g;
`;

export function registerDemo(program: Command, setExit: (code: number) => void): void {
  program
    .command('demo')
    .description('first run: set up a demo folder with a real pg_dump, verify it in a sandbox, show the evidence')
    .option('--dir <dir>', 'demo folder', 'backproof-demo')
    .option('-y, --yes', 'install and start what is missing (Docker engine, mmdebstrap) without asking')
    .action(async (opts: { dir: string; yes?: boolean }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const dir = path.resolve(opts.dir);
      const dataDir = path.resolve(global.dataDir ?? path.join(dir, '.backproof'));
      const logger = makeLogger();
      await mkdir(path.join(dir, 'backups'), { recursive: true });
      await ensureImage('postgres', { ifMissing: true, yes: Boolean(opts.yes), dataDir });
      const configFile = path.join(dir, 'backproof.yaml');
      await writeFile(configFile, DEMO_CONFIG);
      const config = await loadConfig(configFile);
      const policy = config.policies[0]!;
      const runtime = new DockerRuntime({ host: config.docker.host });
      const dump = await makeDemoDump(runtime, policy, path.join(dir, 'backups'), logger);
      logger.info(`made ${path.relative(process.cwd(), dump)} with pg_dump inside a sandbox`);
      const store = await openStore(config, { ...global, dataDir });
      try {
        await recoverAndReap(store, runtime, logger);
        const progress = new ProgressLine();
        const run = await runPolicy(policy, { ...runDeps(store, runtime, logger), onProgress: progress.update });
        progress.clear();
        process.stdout.write('\n' + renderRunSummary(run) + '\n\n');
        process.stdout.write('Evidence store (' + dataDir + '):\n' + renderRunsTable(await store.list({ limit: 5 })) + '\n\n');
        process.stdout.write(
          `Next: edit ${path.relative(process.cwd(), configFile) || configFile} for your own backups, then\n` +
            `  backproof --config ${path.relative(process.cwd(), configFile)} --data-dir ${path.relative(process.cwd(), dataDir)} run\n`,
        );
        setExit(run.verdict === 'pass' ? 0 : run.verdict === 'fail' ? 1 : 2);
      } finally {
        await store.close();
      }
    });
}

/** A real custom-format dump of a small shop database, made by pg_dump inside a sandbox. */
async function makeDemoDump(runtime: DockerRuntime, config: PolicyConfig, folder: string, logger: Logger): Promise<string> {
  const policy = policyOfKind(config, 'postgres');
  const restorer = new PostgresRestorer();
  const runId = `demo-${randomUUID()}`;
  const sandbox = await runtime.create(restorer.sandboxSpec(policy, runId));
  try {
    const signal = timeoutSignal(300_000);
    const ctx = { runId, policy, sandbox, logger, signal, backupTime: new Date(), backupSize: 0 };
    await restorer.prepare(ctx);
    const bin = restorer.binDir;
    const psql = (db: string, sql: string) =>
      sandbox.exec([`${bin}/psql`, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '/tmp', '-U', 'postgres', '-d', db, '-c', sql], { user: 'postgres', signal });
    // The image's cluster may carry the database already (prepare named it); others need it made.
    const created = restorer.databaseReady ? undefined : await psql('postgres', `CREATE DATABASE ${policy.postgres.database}`);
    const seed = !created || created.exitCode === 0 ? await psql(policy.postgres.database, SEED_SQL) : created;
    if (seed.exitCode !== 0) throw new VerificationError('sandbox_failed', `seeding the demo database failed: ${seed.stderr}`);
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    const file = path.join(folder, `shop-${stamp}.dump`);
    const out = createWriteStream(file);
    const dump = await sandbox.exec([`${bin}/pg_dump`, '-Fc', '-h', '/tmp', '-U', 'postgres', policy.postgres.database], { user: 'postgres', signal, stdout: out });
    if (dump.exitCode !== 0) throw new VerificationError('sandbox_failed', `pg_dump failed: ${dump.stderr}`);
    const bytes = await readFile(file);
    await writeFile(`${file}.sha256`, `${createHash('sha256').update(bytes).digest('hex')}  ${path.basename(file)}\n`);
    // Written and closed: date it two minutes back so it is past the settle time.
    const past = new Date(Date.now() - 120_000);
    await utimes(file, past, past);
    logger.info(`demo dump: ${formatBytes(bytes.length)}, 2,000 customers and 25,000 orders`);
    return file;
  } finally {
    await sandbox.remove();
  }
}
