/**
 * Benchmark: kind files. backproof's runner (archive guard: every entry checked, hashed and
 * sniffed, re-packed into the sandbox's `tar -x`) against the same archive extracted by hand in
 * a sandbox of the same image and limits (`tar -x` fed the file directly, no checks), alternating
 * `--repeat` times; prints medians, the ratio backproof/by-hand, and this process's peak RSS.
 *
 *   node --import tsx bench/files-extract.ts [--size-mb 100] [--repeat 3]
 *
 * The file share (text documents, CSVs and incompressible blobs) is archived once per size with
 * the real tar (plain and gzip) and cached in os.tmpdir(). Progress to stderr, results to stdout.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { driverFor, restorerFor } from '../orchestrator/cli/plugins.js';
import { parseConfigText } from '../orchestrator/config/load.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { Logger } from '../orchestrator/core/logger.js';
import { runPolicy } from '../orchestrator/runner/run-policy.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { FilesRestorer, RESTORE_ROOT } from '../restore-sandboxes/files/files-restorer.js';

const run = promisify(execFile);
const progress = (msg: string): boolean => process.stderr.write(`[bench] ${msg}\n`);

const { values } = parseArgs({ options: { 'size-mb': { type: 'string', default: '100' }, repeat: { type: 'string', default: '3' } } });
const sizeMb = Number(values['size-mb']);
const repeat = Number(values.repeat);

async function buildArchives(): Promise<{ dir: string; tar: string; tgz: string }> {
  const dir = path.join(os.tmpdir(), `backproof-bench-files-${sizeMb}mb`);
  const tar = path.join(dir, 'share.tar');
  const tgz = path.join(dir, 'share.tar.gz');
  if (await fs.stat(tgz).then(() => true, () => false)) return { dir, tar, tgz };
  progress(`building a ${sizeMb} MB file share in ${dir}`);
  const tree = path.join(dir, 'tree');
  await fs.mkdir(tree, { recursive: true });
  const words = 'invoice customer order amount delivered pending paid total tax net gross ledger'.split(' ');
  let bytes = 0;
  for (let i = 0; bytes < sizeMb * 1024 ** 2; i++) {
    const sub = path.join(tree, `dept-${i % 20}`);
    await fs.mkdir(sub, { recursive: true });
    let data: Buffer;
    if (i % 4 === 0) data = randomBytes(96 * 1024); // already-compressed content (photos, archives)
    else if (i % 4 === 1) data = Buffer.from(Array.from({ length: 2000 }, (_, r) => `${r},${i},${(r * 1.5).toFixed(2)},EUR`).join('\n'));
    else data = Buffer.from(Array.from({ length: 6000 }, (_, w) => words[(w * 7 + i) % words.length]).join(' '));
    await fs.writeFile(path.join(sub, `file-${i}.${['bin', 'csv', 'txt', 'md'][i % 4]}`), data);
    bytes += data.length;
  }
  await run('tar', ['-c', '-f', tar, '-C', tree, '.']);
  await run('tar', ['-c', '-z', '-f', tgz, '-C', tree, '.']);
  return { dir, tar, tgz };
}

function policyFor(folder: string, glob: string) {
  return parseConfigText(
    `clients:
  - name: bench
    policies:
      - name: bench-files
        kind: files
        sizeAnomaly: false
        source: { driver: local, path: ${JSON.stringify(folder)}, select: { glob: ${JSON.stringify(glob)}, settle: 0s } }
        sandbox: { memory: 1g, timeout: 10m }
        probes:
          - files: { exist: ["dept-0/**"], nonEmpty: true }
          - encryptedLooking: { maxShare: 30% }`,
    path.join(folder, 'backproof.yaml'),
    {},
  ).policies[0]!;
}

const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 50);

const { dir, tar, tgz } = await buildArchives();
const runtime = new DockerRuntime();
const store = await RunStore.open({ dataDir: path.join(dir, 'store'), schema: 'backproof' });
const logger = new Logger({ level: 'warn', json: true });
const baselineRss = process.memoryUsage.rss();

for (const [label, file, gzip] of [
  ['tar', tar, false],
  ['tar.gz', tgz, true],
] as const) {
  const size = (await fs.stat(file)).size;
  const policy = policyFor(dir, path.basename(file));
  const bp: number[] = [];
  const manual: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const r = await runPolicy(policy, { store, runtime, driverFor, restorerFor, logger });
    if (r.verdict !== 'pass') throw new Error(`backproof run did not pass: ${JSON.stringify(r.reasons)}`);
    bp.push(r.phases.find((p) => p.name === 'fetch_restore')!.durationMs);
    // By hand: the same sandbox, the file fed straight into tar -x.
    const restorer = new FilesRestorer();
    const sandbox = await runtime.create(restorer.sandboxSpec(policy, `bench-manual-${process.pid}-${i}`));
    try {
      await sandbox.exec(['mkdir', '-p', RESTORE_ROOT]);
      const t0 = performance.now();
      const x = await sandbox.exec(['tar', '-x', ...(gzip ? ['-z'] : []), '-f', '-', '-C', RESTORE_ROOT], { stdin: createReadStream(file, { highWaterMark: 1024 * 1024 }) });
      if (x.exitCode !== 0) throw new Error(`manual tar failed: ${x.stderr}`);
      manual.push(performance.now() - t0);
    } finally {
      await sandbox.remove();
    }
    progress(`${label} round ${i + 1}: backproof ${bp.at(-1)} ms, by hand ${Math.round(manual.at(-1)!)} ms`);
  }
  const b = median(bp);
  const m = median(manual);
  console.log(
    `${label.padEnd(7)} ${(size / 1024 ** 2).toFixed(1)} MB stored: backproof fetch+check+extract ${(b / 1000).toFixed(2)} s, by hand tar -x ${(m / 1000).toFixed(2)} s, ratio ${(b / m).toFixed(2)}x (median of ${repeat})`,
  );
}
clearInterval(sampler);
console.log(`peak RSS ${(peakRss / 1024 ** 2).toFixed(0)} MiB (after start-up ${(baselineRss / 1024 ** 2).toFixed(0)} MiB)`);
await store.close();
