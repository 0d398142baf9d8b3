import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import { RunStore } from '../../orchestrator/evidence/run-store.js';
import { cleanEnv, REPO, runCommand } from '../helpers/command.js';
import { seededBytes } from '../helpers/bytes.js';
import { leftoversOf, tempDir } from '../helpers/harness.js';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.js';
import type { FaultName, Point } from './cells.js';
import { cellOf } from './cells.js';

// The fault matrix's bench (README "Fault matrix"): a real `backproof run` (the built CLI) held at
// a point of its run through the fault-injection seam (orchestrator/runner/fault-gate.ts), a fault
// injected there for real (a process killed, an engine or a server stopped, a folder unmounted),
// the run let go, and then what the issue asks of every cell: the run recorded once with the
// right verdict and phase (or `aborted` at the next start), nothing with our labels left in the
// engine, the evidence chain intact, the backups and the working directory unchanged.

const exec = promisify(execFile);
const CLI = path.join(REPO, 'bin', 'backproof.js');
export const RESTIC_PASSWORD = 'fault-matrix-restic-password';
/** Bytes of each backup: more than socket buffers hold, so a stream cut at fetch_restore is cut mid-way. */
export const BACKUP_BYTES = 24 * 1024 * 1024;

export interface Bench {
  dir: string;
  pg: PgCluster;
  store: RunStore;
  schema: string;
  /** The config file every run of this bench reads. */
  config: string;
  /** Folders whose bytes must not change (the backups), checked after every cell. */
  sources: string[];
  dockerHost?: string;
}

/** A PostgreSQL evidence store (the server fault needs one; the others share it) and a config. */
export async function openBench(t: Test, o: { name: string; policies: string; dockerHost?: string; sources: string[] }): Promise<Bench> {
  const pg = await startPgCluster();
  const dir = await tempDir(`faults-${o.name}`);
  const schema = `faults_${o.name.replace(/\W/g, '_')}`;
  const config = path.join(dir, 'backproof.yaml');
  const docker = o.dockerHost ? `docker: { host: ${JSON.stringify(o.dockerHost)} }\n` : '';
  await fs.writeFile(config, `${docker}database: { url: ${JSON.stringify(pg.url)}, schema: ${schema} }\nclients:\n  - name: acme\n    policies:\n${o.policies}`);
  const store = await RunStore.open({ url: pg.url, dataDir: path.join(dir, 'data'), schema });
  const bench: Bench = { dir, pg, store, schema, config, sources: o.sources, ...(o.dockerHost ? { dockerHost: o.dockerHost } : {}) };
  t.teardown(async () => {
    await store.close();
    await pg.stop();
  });
  return bench;
}

/** One policy of kind custom in the `backproof/files` image; `restore`, `ready` and `probe` are shell lines. */
export function customPolicy(o: { name: string; source: string; restore?: string; ready?: string; probe?: string; cmd?: string; sandbox?: string; probeTimeout?: string; readinessTimeout?: string }): string {
  const sh = (line: string): string => `[sh, -c, ${JSON.stringify(line)}]`;
  return `      - name: ${o.name}
        kind: custom
        source: ${o.source}
        targets: { rpo: 30d, rto: 10m }
        sizeAnomaly: false
        sandbox: { memory: 256m${o.sandbox?.includes('timeout:') ? '' : ', timeout: 3m'}${o.sandbox ? `, ${o.sandbox}` : ''} }
        custom:
          image: backproof/files
          user: "1000:1000"${o.cmd ? `\n          cmd: ${sh(o.cmd)}` : ''}
          restore: ${sh(o.restore ?? 'cat > /restore/backup.bin && test -s /restore/backup.bin')}
          ready: ${sh(o.ready ?? 'test -s /restore/backup.bin')}
          readinessTimeout: ${o.readinessTimeout ?? '20s'}
        probes:
          - name: restored bytes
            command: ${sh(o.probe ?? 'wc -c < /restore/backup.bin')}
            atLeast: ${BACKUP_BYTES}${o.probeTimeout ? `\n            timeout: ${o.probeTimeout}` : ''}
`;
}

/** A local folder holding one backup of BACKUP_BYTES fixed bytes, aged past the selection's settle time. */
export async function backupFolder(folder: string, name = 'shop-20261201.bin'): Promise<string> {
  await fs.mkdir(folder, { recursive: true });
  const file = path.join(folder, name);
  await fs.writeFile(file, fixedBytes(BACKUP_BYTES));
  const past = new Date(Date.now() - 3_600_000);
  await fs.utimes(file, past, past);
  return file;
}

/** A restic repository in `repo` with one snapshot holding /data/shop.bin (the backup). */
export async function resticRepo(repo: string): Promise<void> {
  const src = `${repo}-src`;
  await fs.mkdir(path.join(src, 'data'), { recursive: true });
  await fs.writeFile(path.join(src, 'data', 'shop.bin'), fixedBytes(BACKUP_BYTES));
  const env = { ...process.env, RESTIC_REPOSITORY: repo, RESTIC_PASSWORD };
  await exec('restic', ['--no-cache', 'init'], { env });
  await exec('restic', ['--no-cache', 'backup', '--quiet', '--host', 'db1', path.join(src, 'data')], { env, cwd: src });
}

/**
 * The bench most columns use: one policy `shop` over a restic repository (so storage_check is a
 * real phase), and the digest of the repository before any cell.
 */
export async function openResticBench(t: Test, name: string, dockerHost?: string): Promise<{ bench: Bench; before: string }> {
  const repo = path.join(await tempDir(`faults-${name}-repo`), 'repo');
  await resticRepo(repo);
  const bench = await openBench(t, { name, policies: customPolicy({ name: 'shop', source: resticSource(repo) }), sources: [repo], ...(dockerHost ? { dockerHost } : {}) });
  return { bench, before: await snapshotOf(bench.sources) };
}

export function resticSource(repo: string): string {
  return `{ driver: restic, repository: ${JSON.stringify(repo)}, password: ${JSON.stringify(RESTIC_PASSWORD)}, file: ${JSON.stringify(`${repo}-src/data/shop.bin`)}, check: 5%, select: { settle: 0s } }`;
}

/** The matrix's backup bytes: the same on every run, incompressible (seededBytes). */
export function fixedBytes(n: number): Buffer {
  return seededBytes(n, 'fault-matrix');
}

export interface HeldRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The run's id, from the gate (written when the run reached the point). */
  runId: string;
}

/**
 * Runs `backproof run --policy P --json`, holds it at `point`, calls `inject` (the fault), lets it
 * go and waits for its end. `inject` gets the CLI process (to kill it) and the run's id.
 */
export async function runHeld(bench: Bench, policy: string, point: Point, inject: (child: ChildProcess, runId: string) => Promise<void>, timeoutMs = 240_000): Promise<HeldRun> {
  const gate = await fs.mkdtemp(path.join(bench.dir, 'gate-'));
  const hold = path.join(gate, `hold-${point}`);
  await fs.writeFile(hold, '');
  const child = spawn(process.execPath, [CLI, '--config', bench.config, '--data-dir', path.join(bench.dir, 'data'), 'run', '--policy', policy, '--json'], {
    cwd: bench.dir,
    env: cleanEnv({ BACKPROOF_FAULT_GATE: gate }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    const reached = path.join(gate, `reached-${point}`);
    const deadline = Date.now() + timeoutMs;
    while (!existsSync(reached)) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the run ended before it reached ${point}:\n${stderr.slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`the run never reached ${point}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const { runId } = JSON.parse(await fs.readFile(reached, 'utf8')) as { runId: string };
    await inject(child, runId);
    await fs.rm(hold, { force: true });
    const code = await exited;
    return { code, stdout, stderr, runId };
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    throw err;
  } finally {
    clearTimeout(killer);
  }
}

/** The next start: a plain run of `policy` (marks dead runs aborted, reaps their sandboxes). */
export async function nextStart(bench: Bench, policy: string): Promise<{ code: number | null; stderr: string }> {
  const r = await runCommand(process.execPath, [CLI, '--config', bench.config, '--data-dir', path.join(bench.dir, 'data'), 'run', '--policy', policy, '--json'], {
    cwd: bench.dir,
    timeoutMs: 240_000,
  });
  return { code: r.code, stderr: r.stderr };
}

/** A digest of every file under the folders (names, sizes, bytes). */
export async function snapshotOf(folders: string[]): Promise<string> {
  const h = createHash('sha256');
  for (const folder of folders) {
    const walk = async (dir: string): Promise<void> => {
      for (const entry of (await fs.readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
        const p = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(p);
        else if (entry.isFile()) h.update(`${p}\0`).update(await fs.readFile(p));
      }
    };
    if (existsSync(folder)) await walk(folder);
  }
  return h.digest('hex');
}

/**
 * Checks a cell against cells.ts: recorded once, its verdict, reason and the phase it names, no
 * leftovers, the chain intact, the backups unchanged (`before`: snapshotOf them before the cell).
 */
export async function checkCell(t: Test, bench: Bench, fault: FaultName, point: Point, held: HeldRun, before: string): Promise<void> {
  const expected = cellOf(fault, point);
  if ('na' in expected) throw new Error(`${fault} at ${point} is not a cell that runs (${expected.na})`);
  const rows = await bench.pg.psql(`SELECT count(*) FROM ${bench.schema}.runs WHERE id = '${held.runId}'`);
  t.equal(rows.trim(), '1', 'recorded once');
  const run = await bench.store.get(held.runId);
  if (!run) {
    t.fail(`run ${held.runId} is not in the store`);
    return;
  }
  const summary = `${run.status} ${run.verdict} [${run.reasons.map((r) => `${r.code}: ${r.message}`).join(' | ')}] phases ${run.phases.map((p) => `${p.name}=${p.outcome}`).join(' ')}`;
  if (expected.verdict === 'aborted') {
    t.equal(run.status, 'aborted', summary);
    t.equal(run.verdict, 'error', summary);
  } else {
    t.equal(run.status, 'finished', summary);
    t.equal(run.verdict, expected.verdict, summary);
  }
  if (expected.reason) t.ok(run.reasons.some((r) => r.code === expected.reason && (!expected.says || r.message.includes(expected.says))), `reason ${expected.reason}${expected.says ? ` saying "${expected.says}"` : ''}: ${summary}`);
  if (expected.verdict === 'pass') t.same(run.reasons, [], summary);
  if (expected.phase) {
    const outcome = expected.verdict === 'aborted' ? 'unfinished' : expected.verdict;
    const phase = run.phases.find((p) => p.name === expected.phase);
    t.equal(phase?.outcome, outcome, `phase ${expected.phase} is ${outcome}: ${summary}`);
  }
  t.equal(await leftoversOf(run.id, bench.dockerHost), 0, 'nothing of the run left in the engine');
  const chain = await bench.store.evidenceChain().verify();
  t.equal(chain.ok, true, `the evidence chain verifies: ${JSON.stringify(chain.firstBad)}`);
  t.equal(await snapshotOf(bench.sources), before, 'the backups are unchanged');
}
