/**
 * Benchmark: cluster mode's throughput and what the queue adds to each run.
 *
 * `--runs` (60) small files-kind restores (one good .tar.gz each, over `--policies` (20)
 * policies), enqueued at once as scheduled slots, run by 1, 2 and 3 `backproof worker`
 * processes (concurrency 1 each) on one PostgreSQL, against a baseline in this script: the same
 * runs through runPolicy one after another (what a single daemon with concurrency 1 does). Per
 * run, from the records and pg-boss: claim to sandbox create (job started -> sandbox phase
 * start) and run end to job completed.
 *
 *   node --import tsx bench/cluster-throughput.ts [--runs 60] [--policies 20] [--workers 1,2,3]
 *
 * Needs dockerd, the backproof/files image, PostgreSQL 15 binaries (a throwaway server is
 * started on loopback), and `npm run build` (workers run bin/backproof.js). Progress to stderr,
 * the table to stdout.
 */
import { execFile, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { driverFor, restorerFor } from '../orchestrator/cli/plugins.js';
import { enqueueAttempt } from '../orchestrator/cluster/dispatcher.js';
import { JobQueue } from '../orchestrator/cluster/job-queue.js';
import { WorkerRegistry } from '../orchestrator/cluster/worker-registry.js';
import { loadConfig } from '../orchestrator/config/load.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { Logger } from '../orchestrator/core/logger.js';
import { runPolicy } from '../orchestrator/runner/run-policy.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { startPgCluster } from '../test/helpers/pg-cluster.js';

const run = promisify(execFile);
const progress = (msg: string): boolean => process.stderr.write(`[bench] ${msg}\n`);
const { values } = parseArgs({ options: { runs: { type: 'string', default: '60' }, policies: { type: 'string', default: '20' }, workers: { type: 'string', default: '1,2,3' } } });
const nRuns = Number(values.runs);
const nPolicies = Number(values.policies);
const workerCounts = values.workers.split(',').map(Number);
const BIN = path.resolve('bin/backproof.js');
const quiet = new Logger({ level: 'error', json: true });

const pg = await startPgCluster();
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-bench-cluster-'));
const key = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
await fs.writeFile(path.join(dir, 'evidence-key.pem'), key, { mode: 0o600 });
const blocks: string[] = [];
for (let i = 0; i < nPolicies; i++) {
  const folder = path.join(dir, 'backups', `p${i}`);
  const tree = path.join(dir, 'tree', `p${i}`, 'docs');
  await fs.mkdir(folder, { recursive: true });
  await fs.mkdir(tree, { recursive: true });
  await fs.writeFile(path.join(tree, 'a.txt'), randomBytes(4096).toString('hex'));
  await run('tar', ['-c', '-z', '-f', path.join(folder, 'share.tar.gz'), '-C', path.dirname(tree), '.']);
  blocks.push(`      - name: p${i}
        kind: files
        source: { driver: local, path: ${JSON.stringify(folder)}, select: { glob: "*.tar.gz", settle: 0s } }
        sizeAnomaly: false
        sandbox: { memory: 256m, timeout: 2m }
        schedule: "daily at 03:00"
        probes:
          - files: { exist: ["docs/*.txt"] }
`);
}

async function configFor(schema: string): Promise<string> {
  const file = path.join(dir, `${schema}.yaml`);
  await fs.writeFile(
    file,
    `database: { url: ${JSON.stringify(pg.url)}, schema: ${schema} }
evidence: { signingKey: "\${file:evidence-key.pem}" }
clients:
  - name: bench
    policies:
${blocks.join('')}`,
  );
  return file;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};

/** Baseline: the runs one after another in this process, as one daemon with concurrency 1. */
async function baseline(): Promise<{ wallMs: number; runMs: number }> {
  const file = await configFor('b_base');
  const config = await loadConfig(file);
  const store = await RunStore.open({ url: pg.url, dataDir: dir, schema: 'b_base', signingKey: key });
  const runtime = new DockerRuntime();
  const t0 = Date.now();
  const durations: number[] = [];
  for (let i = 0; i < nRuns; i++) {
    const r = await runPolicy(config.policies[i % nPolicies]!, { store, runtime, driverFor, restorerFor, logger: quiet });
    if (r.verdict !== 'pass') throw new Error(`baseline run ${i}: ${JSON.stringify(r.reasons)}`);
    durations.push(r.durationMs ?? NaN);
    if ((i + 1) % 10 === 0) progress(`baseline: ${i + 1}/${nRuns}`);
  }
  const wallMs = Date.now() - t0;
  await store.close();
  return { wallMs, runMs: median(durations) };
}

async function cluster(workers: number): Promise<{ wallMs: number; runMs: number; claimToSandboxMs: number; endToCompleteMs: number }> {
  const schema = `b_w${workers}`;
  const file = await configFor(schema);
  const config = await loadConfig(file);
  const store = await RunStore.open({ url: pg.url, dataDir: dir, schema, signingKey: key });
  const queue = await JobQueue.open({ url: pg.url, schema });
  const registry = new WorkerRegistry(store.executor, schema);
  const ids: string[] = [];
  const base = Date.UTC(2026, 0, 1);
  for (let i = 0; i < nRuns; i++) ids.push(await enqueueAttempt({ queue, registry, logger: quiet }, config.policies[i % nPolicies]!, new Date(base + i * 86_400_000), 1));
  const t0 = Date.now();
  const children = Array.from({ length: workers }, () =>
    spawn(process.execPath, [BIN, 'worker', '--concurrency', '1', '--config', file, '--data-dir', dir], { stdio: 'ignore', env: { ...process.env, BACKPROOF_LOG_LEVEL: 'error' } }),
  );
  let done = 0;
  while (done < nRuns) {
    await new Promise((r) => setTimeout(r, 250));
    const { rows } = await store.executor.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.runs WHERE status <> 'running'`);
    if (rows[0]!.n !== done) {
      done = rows[0]!.n;
      progress(`${workers} worker(s): ${done}/${nRuns}`);
    }
  }
  const wallMs = Date.now() - t0;
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => new Promise((r) => c.on('exit', r))));
  const claim: number[] = [];
  const end: number[] = [];
  const durations: number[] = [];
  for (const id of ids) {
    const record = await store.get(id);
    if (record?.verdict !== 'pass') throw new Error(`run ${id}: ${JSON.stringify(record?.reasons)}`);
    durations.push(record.durationMs ?? NaN);
    const { rows } = await store.executor.query<{ started_on: Date; completed_on: Date | null }>(
      `SELECT started_on, completed_on FROM ${schema}_queue.job WHERE id = $1::uuid UNION ALL SELECT started_on, completed_on FROM ${schema}_queue.archive WHERE id = $1::uuid`,
      [id],
    );
    const job = rows[0];
    const sandbox = record.phases.find((p) => p.name === 'sandbox');
    if (job && sandbox) claim.push(Date.parse(sandbox.startedAt) - new Date(job.started_on).getTime());
    if (job?.completed_on && record.finishedAt) end.push(new Date(job.completed_on).getTime() - Date.parse(record.finishedAt));
  }
  await queue.stop();
  await store.close();
  return { wallMs, runMs: median(durations), claimToSandboxMs: median(claim), endToCompleteMs: median(end) };
}

try {
  progress(`${nRuns} runs over ${nPolicies} policies; baseline first`);
  const b = await baseline();
  const rows: string[] = [];
  rows.push(`| baseline: runPolicy one after another | ${(b.wallMs / 1000).toFixed(1)} s | ${((nRuns * 60_000) / b.wallMs).toFixed(1)} | 1.00 | ${b.runMs} ms | - | - |`);
  for (const n of workerCounts) {
    const r = await cluster(n);
    rows.push(`| ${n} worker process(es), concurrency 1 | ${(r.wallMs / 1000).toFixed(1)} s | ${((nRuns * 60_000) / r.wallMs).toFixed(1)} | ${(b.wallMs / r.wallMs).toFixed(2)} | ${r.runMs} ms | ${r.claimToSandboxMs} ms | ${r.endToCompleteMs} ms |`);
  }
  process.stdout.write(
    `\n${nRuns} small files restores, ${os.cpus().length} cores\n\n| how | wall | runs/min | speed-up vs baseline | one run (median) | claim -> sandbox (median) | run end -> job completed (median) |\n|---|---|---|---|---|---|---|\n${rows.join('\n')}\n`,
  );
} finally {
  await pg.stop();
  await fs.rm(dir, { recursive: true, force: true });
}
