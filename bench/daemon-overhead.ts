/**
 * Benchmark: what the daemon adds on top of the work it schedules.
 *
 * A. Checks between runs at MSP scale: `--policies` (500) policies over local folders, the
 *    embedded PGlite store. The alert engine's check (overdue, listing each policy's storage,
 *    stale/missing incidents, reminders, delivery retries) against the bare listing and
 *    selection of the same folders (what any check must do). Two checks: the first opens an
 *    incident for each stale policy, the second finds them open (the steady state).
 * B. Run throughput: `--runs-policies` (8) files-kind policies due every second, 2 at once,
 *    through the daemon (node-schedule, queue, alert evaluation after each run) for
 *    `--seconds` (20) s, against a hand-written pool of 2 workers calling runPolicy back to back
 *    over the same policies for the same time.
 *
 *   node --import tsx bench/daemon-overhead.ts [--policies 500] [--runs-policies 8] [--seconds 20]
 *
 * Progress to stderr, results to stdout. Needs dockerd and the backproof/files image (B).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { AlertEngine } from '../orchestrator/alerts/alert-engine.js';
import { driverFor, restorerFor } from '../orchestrator/cli/plugins.js';
import { loadConfig } from '../orchestrator/config/load.js';
import type { PolicyConfig } from '../orchestrator/core/config-types.js';
import { Daemon } from '../orchestrator/daemon/daemon.js';
import { checkStorage } from '../orchestrator/daemon/storage-check.js';
import { AlertStore } from '../orchestrator/evidence/alert-store.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { Logger } from '../orchestrator/core/logger.js';
import { runPolicy } from '../orchestrator/runner/run-policy.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';

const run = promisify(execFile);
const progress = (msg: string): boolean => process.stderr.write(`[bench] ${msg}\n`);
const { values } = parseArgs({
  options: { policies: { type: 'string', default: '500' }, 'runs-policies': { type: 'string', default: '8' }, seconds: { type: 'string', default: '20' } },
});
const nPolicies = Number(values.policies);
const nRunPolicies = Number(values['runs-policies']);
const seconds = Number(values.seconds);
const quiet = new Logger({ level: 'error', json: true });
let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);

async function tgz(folder: string, name: string): Promise<string> {
  const tree = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-bench-tree-'));
  await fs.mkdir(path.join(tree, 'docs'));
  await fs.writeFile(path.join(tree, 'docs', 'a.txt'), randomBytes(4096).toString('hex'));
  const file = path.join(folder, name);
  await run('tar', ['-c', '-z', '-f', file, '-C', tree, '.']);
  await fs.rm(tree, { recursive: true, force: true });
  return file;
}

function policyYaml(name: string, folder: string, schedule?: string): string {
  return `      - name: ${name}
        kind: files
        source: { driver: local, path: ${JSON.stringify(folder)}, select: { glob: "*.tar.gz", settle: 0s } }
        targets: { rpo: 1h }
        sizeAnomaly: false
        sandbox: { memory: 256m }
${schedule ? `        schedule: ${JSON.stringify(schedule)}\n` : ''}        probes:
          - files: { exist: ["docs/*.txt"] }
`;
}

async function partA(root: string): Promise<void> {
  progress(`A: ${nPolicies} policies over local folders`);
  const lines: string[] = [];
  const template = await tgz(root, 'template.tar.gz');
  for (let i = 0; i < nPolicies; i++) {
    const folder = path.join(root, `p${i}`);
    await fs.mkdir(folder);
    const file = path.join(folder, 'share-1.tar.gz');
    await fs.copyFile(template, file);
    if (i % 2 === 0) {
      const old = new Date(Date.now() - 3 * 3_600_000); // half of them stale
      await fs.utimes(file, old, old);
    }
    lines.push(policyYaml(`p${i}`, folder, 'daily at 02:30'));
  }
  const configFile = path.join(root, 'a.yaml');
  await fs.writeFile(configFile, `clients:\n  - name: bench\n    policies:\n${lines.join('')}`);
  const config = await loadConfig(configFile);
  const store = await RunStore.open({ dataDir: path.join(root, 'data-a'), schema: 'backproof' });
  const alerts = new AlertStore(store.executor, store.schema);
  const engine = new AlertEngine({ alerts, runs: store, logger: quiet, checkStorage: (p, now, s) => checkStorage(p, driverFor, now, s) });
  engine.configure(config, new Map());

  const t0 = performance.now();
  for (const p of config.policies) await checkStorage(p, driverFor, new Date());
  const listing = performance.now() - t0;
  const t1 = performance.now();
  await engine.check();
  const first = performance.now() - t1;
  const t2 = performance.now();
  await engine.check();
  const steady = performance.now() - t2;
  const open = (await alerts.openIncidents()).length;
  await store.close();
  process.stdout.write(`\nA. checks between runs, ${nPolicies} policies (${open} stale incidents open), embedded store\n`);
  process.stdout.write(`   listing+selection only (baseline)   ${(listing / 1000).toFixed(2)} s   ${(listing / nPolicies).toFixed(1)} ms/policy\n`);
  process.stdout.write(`   check, incidents opened             ${(first / 1000).toFixed(2)} s   ratio ${(first / listing).toFixed(2)}x\n`);
  process.stdout.write(`   check, steady state                 ${(steady / 1000).toFixed(2)} s   ratio ${(steady / listing).toFixed(2)}x\n`);
}

async function partB(root: string): Promise<void> {
  progress(`B: ${nRunPolicies} policies, ${seconds} s each way`);
  const lines: string[] = [];
  for (let i = 0; i < nRunPolicies; i++) {
    const folder = path.join(root, `r${i}`);
    await fs.mkdir(folder);
    await tgz(folder, 'share-1.tar.gz');
    lines.push(`  - name: c${i}\n    policies:\n${policyYaml(`r${i}`, folder, 'every 1s')}`);
  }
  const configFile = path.join(root, 'b.yaml');
  await fs.writeFile(configFile, `daemon: { concurrency: 2, perClient: 1, checkEvery: 5s }\nclients:\n${lines.join('')}`);
  const config = await loadConfig(configFile);
  const runtime = new DockerRuntime();

  // Baseline: a pool of 2 calling runPolicy back to back.
  const baseStore = await RunStore.open({ dataDir: path.join(root, 'data-b1'), schema: 'backproof' });
  let direct = 0;
  const until = Date.now() + seconds * 1000;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (Date.now() < until) {
      const policy: PolicyConfig = config.policies[next++ % config.policies.length]!;
      await runPolicy(policy, { store: baseStore, runtime, driverFor, restorerFor, logger: quiet });
      direct++;
    }
  };
  await Promise.all([worker(), worker()]);
  await baseStore.close();

  const store = await RunStore.open({ dataDir: path.join(root, 'data-b2'), schema: 'backproof' });
  let viaDaemon = 0;
  const daemon = new Daemon({ configFile, config, store, runtime, driverFor, restorerFor, logger: quiet, onRun: () => viaDaemon++ });
  await daemon.start();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  await daemon.stop(120_000);
  await store.close();
  process.stdout.write(`\nB. run throughput, ${nRunPolicies} policies due every second, 2 at once, ${seconds} s\n`);
  process.stdout.write(`   pool of 2 calling runPolicy (baseline)   ${direct} runs   ${(direct / seconds).toFixed(2)} runs/s\n`);
  process.stdout.write(`   backproof daemon                         ${viaDaemon} runs   ${(viaDaemon / seconds).toFixed(2)} runs/s   ratio ${(viaDaemon / direct).toFixed(2)}x\n`);
}

const root = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-bench-daemon-'));
try {
  await partA(root);
  await partB(root);
  process.stdout.write(`\npeak RSS of this process: ${(peakRss / 1024 ** 2).toFixed(0)} MiB\n`);
} finally {
  clearInterval(sampler);
  await fs.rm(root, { recursive: true, force: true });
}
