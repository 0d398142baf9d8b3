/**
 * Soak: the real daemon (`node bin/backproof.js daemon`, a child process, embedded PGlite store)
 * with `--policies` (50) files-kind policies over one local folder holding one small backup,
 * due every few seconds, `--concurrency` (4) runs at once, until `--runs` (600) runs are recorded.
 * After each run (its `run finished` log line) the daemon is sampled: open file descriptors
 * (/proc/PID/fd, also counted by kind), VmRSS and of it the file-backed pages (/proc/PID/status)
 * and the embedded store's WASM memory resident (/proc/PID/smaps), and the daemon's own numbers
 * from its status snapshot (daemon-status.json: V8's heap, external memory, the store's WASM
 * memory size). Printed: the mean of each measure over the first `--window` (50) runs (the raw
 * baseline), over the window after the `--warmup` (400) runs, and over the last window, with the
 * ratios last/first and last/after-warm-up (the issue's target: within 10%); then the mean of
 * every window, so a leak shows as a slope and warm-up as a step that levels off. Measured
 * (bench/README.md): RSS rises for the first ~400 runs (the store opens its relation files at
 * the first check, its caches and the process's malloc arenas fill), then holds, swinging with
 * V8's heap. Then, the daemon stopped (SIGTERM), it checks that every run it logged is
 * recorded exactly once (no duplicate id, none left `running`, the evidence chain verifies with
 * one link per run) and that no container or volume of the daemon's (label backproof.pid) is left.
 *
 *   npm run build && npm run bench:soak
 *   node --import tsx bench/soak.ts [--policies 50] [--concurrency 4] [--runs 600] [--warmup 400] [--window 50] [--every 10s] [--check-every 1m] [--samples FILE.csv]
 *
 * Progress to stderr, results to stdout; exit 1 when a check fails (not when a ratio is off: it
 * is a benchmark, the numbers are for a person to read). Needs `npm run build`, dockerd and the
 * backproof/files image.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import type { ProcessMemory } from '../orchestrator/daemon/liveness.js';

const exec = promisify(execFile);
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(REPO, 'bin', 'backproof.js');
const progress = (msg: string): boolean => process.stderr.write(`[soak] ${msg}\n`);
const { values } = parseArgs({
  options: {
    policies: { type: 'string', default: '50' },
    concurrency: { type: 'string', default: '4' },
    runs: { type: 'string', default: '600' },
    window: { type: 'string', default: '50' },
    warmup: { type: 'string', default: '400' },
    samples: { type: 'string' },
    every: { type: 'string', default: '10s' },
    'check-every': { type: 'string', default: '1m' },
  },
});
const nPolicies = Number(values.policies);
const concurrency = Number(values.concurrency);
const nRuns = Number(values.runs);
const window = Math.min(Number(values.window), Math.floor(nRuns / 2));
/** Runs left out of the steady-state comparison (still printed, in the raw ratio and the windows). */
const warmup = Math.min(Number(values.warmup), Math.max(0, nRuns - 2 * window));

interface Sample {
  run: number;
  fds: number;
  rssKb: number;
  /** Of VmRSS: pages mapped from files (the node binary, libraries: code), /proc/PID/status RssFile. */
  rssFileKb: number;
  /**
   * Of VmRSS: the resident pages of the WebAssembly memory reservations (V8 reserves 8 GiB and
   * more of address space for each; the embedded store's PGlite is the daemon's only one), from
   * /proc/PID/smaps: the store's memory as the OS counts it, where its byteLength is what it has
   * grown to.
   */
  wasmRssKb: number;
  /** Open fds by what they are: socket, pipe, anon_inode:[eventfd], a file's folder. */
  kinds: Map<string, number>;
  /** The daemon's own numbers from its status snapshot (daemon-status.json, written after each run), when it has them. */
  memory?: DaemonMemory;
}

/** What the daemon reports of its memory (LivenessStatus.memory), in bytes. */
type DaemonMemory = ProcessMemory;

function daemonMemory(dataDir: string): DaemonMemory | undefined {
  try {
    const snap = JSON.parse(readFileSync(path.join(dataDir, 'daemon-status.json'), 'utf8')) as { daemon?: { memory?: DaemonMemory } };
    return snap.daemon?.memory;
  } catch {
    return undefined; // not written yet, or being renamed over
  }
}

function fdKind(link: string): string {
  const m = /^(socket|pipe|anon_inode):/.exec(link);
  if (m) return link.startsWith('anon_inode:') ? link : m[1]!;
  return link.startsWith('/') ? path.dirname(link) : link;
}

function sample(pid: number, run: number, dataDir: string): Sample | undefined {
  try {
    const kinds = new Map<string, number>();
    const fds = readdirSync(`/proc/${pid}/fd`);
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue; // closed meanwhile
      }
      const kind = fdKind(link);
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
    return { run, fds: fds.length, rssKb: kb('VmRSS'), rssFileKb: kb('RssFile'), wasmRssKb: wasmRssKb(pid), kinds, memory: daemonMemory(dataDir) };
  } catch {
    return undefined; // the daemon is gone
  }
}

/**
 * Resident kB of V8's WebAssembly memories: each is a reservation of 8 GiB and more of address
 * space of which the memory's current size is mapped read-write and the rest left inaccessible,
 * so in /proc/PID/smaps an anonymous rw-p mapping followed at once by a ---p mapping of 4 GiB or
 * more.
 */
function wasmRssKb(pid: number): number {
  const maps: { start: bigint; end: bigint; perms: string; anon: boolean; sizeKb: number; rssKb: number }[] = [];
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      maps.push({ start: BigInt(`0x${head[1]}`), end: BigInt(`0x${head[2]}`), perms: head[3]!, anon: head[4] === '0' && head[5] === '', sizeKb: 0, rssKb: 0 });
      continue;
    }
    const m = maps.at(-1);
    const size = /^Size:\s+(\d+) kB/.exec(line);
    if (m && size) m.sizeKb = Number(size[1]);
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (m && rss) m.rssKb = Number(rss[1]);
  }
  let total = 0;
  for (let i = 0; i + 1 < maps.length; i++) {
    const [m, next] = [maps[i]!, maps[i + 1]!];
    if (m.anon && m.perms === 'rw-p' && next.perms === '---p' && next.start === m.end && next.sizeKb >= 4 * 2 ** 20) total += m.rssKb;
  }
  return total;
}

async function tgz(folder: string, name: string): Promise<void> {
  const tree = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-soak-tree-'));
  await fs.mkdir(path.join(tree, 'docs'));
  await fs.writeFile(path.join(tree, 'docs', 'a.txt'), randomBytes(4096).toString('hex'));
  await exec('tar', ['-c', '-z', '-f', path.join(folder, name), '-C', tree, '.']);
  await fs.rm(tree, { recursive: true, force: true });
  const past = new Date(Date.now() - 60_000);
  await fs.utimes(path.join(folder, name), past, past);
}

function configYaml(folder: string): string {
  const perClient = 10;
  const clients: string[] = [];
  for (let c = 0; c * perClient < nPolicies; c++) {
    const policies: string[] = [];
    for (let p = c * perClient; p < Math.min(nPolicies, (c + 1) * perClient); p++) {
      policies.push(`      - name: soak-${String(p).padStart(3, '0')}
        kind: files
        source: { driver: local, path: ${JSON.stringify(folder)}, select: { glob: "*.tar.gz", settle: 0s } }
        targets: { rpo: 1h, rto: 10m }
        sizeAnomaly: false
        sandbox: { memory: 256m, timeout: 2m }
        schedule: ${JSON.stringify(`every ${values.every}`)}
        probes:
          - files: { exist: ["docs/*.txt"], nonEmpty: true }`);
    }
    clients.push(`  - name: client-${c}\n    displayName: Client ${c}\n    policies:\n${policies.join('\n')}`);
  }
  return `daemon: { concurrency: ${concurrency}, perClient: ${concurrency}, catchUp: false, checkEvery: ${values['check-every']} }\nclients:\n${clients.join('\n')}\n`;
}

function fdKinds(a: Sample | undefined, b: Sample | undefined): string {
  const names = new Set([...(a?.kinds.keys() ?? []), ...(b?.kinds.keys() ?? [])]);
  return [...names]
    .sort()
    .map((k) => `${k} ${a?.kinds.get(k) ?? 0}/${b?.kinds.get(k) ?? 0}`)
    .join(', ');
}

/** Mean of the numbers known (a sample whose status snapshot could not be read has NaN there); NaN when none is. */
const mean = (xs: number[]): number => {
  const known = xs.filter((x) => !Number.isNaN(x));
  return known.length ? known.reduce((a, b) => a + b, 0) / known.length : NaN;
};

async function ourLeftovers(pid: number): Promise<{ containers: string[]; volumes: string[] }> {
  const label = `label=backproof.pid=${pid}`;
  const containers = (await exec('docker', ['ps', '-a', '-q', '--filter', label])).stdout.split('\n').filter(Boolean);
  const volumes = (await exec('docker', ['volume', 'ls', '-q', '--filter', label])).stdout.split('\n').filter(Boolean);
  return { containers, volumes };
}

async function main(): Promise<number> {
  if (!existsSync(path.join(REPO, 'dist', 'cli', 'backproof.js'))) throw new Error('run npm run build first');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-soak-'));
  const folder = path.join(dir, 'backups');
  const dataDir = path.join(dir, 'data');
  await fs.mkdir(folder);
  await tgz(folder, 'share-1.tar.gz');
  const config = path.join(dir, 'backproof.yaml');
  await fs.writeFile(config, configYaml(folder));
  progress(`${nPolicies} policies (every ${values.every}), concurrency ${concurrency}, until ${nRuns} runs; data dir ${dataDir}`);

  const env: NodeJS.ProcessEnv = { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  delete env.NODE_OPTIONS;
  const t0 = performance.now();
  const daemon = spawn(process.execPath, [CLI, '--config', config, '--data-dir', dataDir, 'daemon'], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const pid = daemon.pid!;
  const exited = new Promise<number | null>((resolve) => daemon.once('exit', (code) => resolve(code)));
  const samples: Sample[] = [];
  const logged = new Map<string, string>(); // run id -> verdict
  const duplicates: string[] = [];
  const verdicts = new Map<string, number>();
  let done!: () => void;
  const enough = new Promise<void>((resolve) => (done = resolve));
  let tail: string[] = [];
  createInterface({ input: daemon.stderr! }).on('line', (line) => {
    tail = [...tail.slice(-20), line];
    let entry: { msg?: string; runId?: string };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      return;
    }
    const m = /^run (finished|cancelled): (\w+)/.exec(entry.msg ?? '');
    if (!m || !entry.runId) return;
    if (logged.has(entry.runId)) duplicates.push(entry.runId);
    logged.set(entry.runId, m[2]!);
    verdicts.set(m[2]!, (verdicts.get(m[2]!) ?? 0) + 1);
    const s = sample(pid, logged.size, dataDir);
    if (s) samples.push(s);
    if (logged.size % 25 === 0) progress(`${logged.size} runs, ${((performance.now() - t0) / 1000).toFixed(0)} s, ${s?.fds} fds, ${((s?.rssKb ?? 0) / 1024).toFixed(0)} MB (store ${((s?.wasmRssKb ?? 0) / 1024).toFixed(0)}, heap ${((s?.memory?.heapUsedBytes ?? 0) / 2 ** 20).toFixed(0)} used)`);
    if (logged.size >= nRuns) done();
  });
  const ended = await Promise.race([enough.then(() => false), exited.then(() => true)]);
  const wall = (performance.now() - t0) / 1000;
  if (ended) {
    progress(`the daemon exited early:\n${tail.join('\n')}`);
    return 1;
  }
  daemon.kill('SIGTERM');
  const code = await exited;
  progress(`daemon stopped (exit ${code}) after ${wall.toFixed(0)} s`);

  // Every run recorded exactly once.
  const store = await RunStore.open({ dataDir, schema: 'backproof' });
  const problems: string[] = [];
  let recorded: number;
  try {
    const runs = await store.list({ limit: 1_000_000 });
    recorded = runs.length;
    const ids = new Set(runs.map((r) => r.id));
    if (ids.size !== runs.length) problems.push(`${runs.length - ids.size} run ids recorded twice`);
    const running = runs.filter((r) => r.status === 'running' || r.status === 'aborted');
    if (running.length) problems.push(`${running.length} runs left running/aborted`);
    const notLogged = runs.filter((r) => !logged.has(r.id));
    // The stop may finish (or cancel) a run after the last line was read: recorded, logged later.
    if (notLogged.length > concurrency) problems.push(`${notLogged.length} recorded runs the daemon never logged`);
    const missing = [...logged.keys()].filter((id) => !ids.has(id));
    if (missing.length) problems.push(`${missing.length} logged runs not recorded`);
    if (duplicates.length) problems.push(`${duplicates.length} runs logged twice`);
    const chain = await store.evidenceChain().verify();
    if (!chain.ok) problems.push(`the evidence chain does not verify: ${JSON.stringify(chain.firstBad)}`);
    if (chain.checked !== runs.length) problems.push(`${chain.checked} chain links for ${runs.length} runs`);
  } finally {
    await store.close();
  }
  const left = await ourLeftovers(pid);
  if (left.containers.length + left.volumes.length) problems.push(`left in the engine: ${left.containers.length} containers, ${left.volumes.length} volumes`);

  const first = samples.slice(0, window);
  const steady = samples.slice(warmup, warmup + window);
  const last = samples.slice(-window);
  const within = (r: number): string => (Math.abs(r - 1) <= 0.1 ? 'within 10%' : 'OUTSIDE 10%');
  const mb = (bytes: number | undefined): number => (bytes ?? NaN) / 2 ** 20;
  const measures: [string, (s: Sample) => number][] = [
    ['open fds', (s) => s.fds],
    ['VmRSS MB', (s) => s.rssKb / 1024],
    // Of VmRSS: the store's WASM memory resident, V8's heap (from the daemon's status), code and mapped files, the rest.
    ['store rss', (s) => s.wasmRssKb / 1024],
    ['heap total', (s) => mb(s.memory?.heapTotalBytes)],
    ['file rss', (s) => s.rssFileKb / 1024],
    ['other', (s) => (s.memory ? (s.rssKb - s.wasmRssKb - s.rssFileKb) / 1024 - mb(s.memory.heapTotalBytes) : NaN)],
    // Not parts of VmRSS: V8's live objects; buffers outside the heap (external less the store's WASM memory); the WASM memory's size.
    ['heap used', (s) => mb(s.memory?.heapUsedBytes)],
    ['buffers', (s) => (s.memory ? mb(s.memory.externalBytes - (s.memory.embeddedStoreBytes ?? 0)) : NaN)],
    ['store size', (s) => mb(s.memory?.embeddedStoreBytes)],
  ];
  const cell = (v: number, w = 10): string => (Number.isNaN(v) ? '-' : v.toFixed(1)).padStart(w);
  const ratio = (a: number, b: number): string => (Number.isNaN(a) || Number.isNaN(b) ? '' : `${(b / a).toFixed(3)}x ${within(b / a)}`.padEnd(22));
  const span = (w: Sample[]): string => (w.length ? `${w[0]!.run}-${w.at(-1)!.run}` : '-');
  const head = `${''.padEnd(10)} ${`first ${span(first)}`.padStart(13)} ${`after ${span(steady)}`.padStart(15)} ${`last ${span(last)}`.padStart(15)}   last/first             last/after warm-up`;
  const rows = measures.map(([name, pick]) => {
    const [a, b, c] = [first, steady, last].map((w) => mean(w.map(pick)));
    return `${name.padEnd(10)} ${cell(a!, 13)} ${cell(b!, 15)} ${cell(c!, 15)}   ${ratio(a!, c!)} ${ratio(b!, c!)}`;
  });
  // Every window, so growth that goes on is seen as a slope, warm-up as a step that levels off.
  const windows: string[] = [`per ${window} runs (mean) ${measures.map(([n]) => n.padStart(10)).join(' ')}`];
  for (let i = 0; i < samples.length; i += window) {
    const w = samples.slice(i, i + window);
    windows.push(`${`runs ${span(w)}`.padEnd(20)} ${measures.map(([, pick]) => cell(mean(w.map(pick)))).join(' ')}`);
  }
  if (values.samples) {
    const csv = ['run,fds,vmrss_kb,rss_file_kb,wasm_rss_kb,rss_bytes,heap_used_bytes,heap_total_bytes,external_bytes,array_buffers_bytes,embedded_store_bytes'];
    for (const x of samples) {
      const m = x.memory;
      csv.push([x.run, x.fds, x.rssKb, x.rssFileKb, x.wasmRssKb, m?.rssBytes ?? '', m?.heapUsedBytes ?? '', m?.heapTotalBytes ?? '', m?.externalBytes ?? '', m?.arrayBuffersBytes ?? '', m?.embeddedStoreBytes ?? ''].join(','));
    }
    await fs.writeFile(values.samples, csv.join('\n') + '\n');
  }
  const out = [
    `soak: ${nPolicies} policies, concurrency ${concurrency}, ${logged.size} runs logged, ${recorded} recorded, in ${wall.toFixed(0)} s (${((logged.size / wall) * 60).toFixed(1)} runs/min); verdicts ${[...verdicts].map(([v, n]) => `${v} ${n}`).join(', ')}`,
    `daemon pid ${pid}, sampled after each run; warm-up: the first ${warmup} runs (--warmup); MB are MiB; heap and buffers from the daemon's status (its snapshot after the previous run), the rest from /proc`,
    head,
    ...rows,
    ...windows,
    `fds min/max over all runs: ${Math.min(...samples.map((s) => s.fds))}/${Math.max(...samples.map((s) => s.fds))}; VmRSS min/max: ${(Math.min(...samples.map((s) => s.rssKb)) / 1024).toFixed(0)}/${(Math.max(...samples.map((s) => s.rssKb)) / 1024).toFixed(0)} MB`,
    `open fds by kind, first sample / last sample: ${fdKinds(samples[0], samples.at(-1)).replaceAll(dataDir, '<data dir>')}`,
    problems.length ? `checks FAILED:\n  ${problems.join('\n  ')}` : `checks: every run recorded exactly once, none left running, chain intact (${recorded} links), no container or volume left`,
  ];
  process.stdout.write(out.join('\n') + '\n');
  await fs.rm(dir, { recursive: true, force: true });
  return problems.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
