/**
 * Benchmark: reading a backup through the storage drivers and hashing it, as the runner does
 * (driver.open() piped through HashingCounter), against `sha256sum` of the same bytes on disk;
 * and the peak RSS of that process for each size, to show it does not grow with the backup.
 *
 *   node --import tsx bench/storage-download.ts [--sizes 1,4] [--repeat 3] [--quick]
 *
 * --sizes are GiB (decimals allowed); --quick is --sizes 0.25,1. For each size one file of random
 * bytes is written in 4 MiB chunks to a temp folder (the local driver's source) and uploaded,
 * streaming, to a local S3-compatible server (s3rver, test/helpers/s3-server.ts), which keeps
 * it in a file of its own; sha256sum reads that file. Every download runs in a fresh child
 * (bench/download-worker.ts) that reports its maxRSS; a child that only loads the same modules
 * is the baseline. The smallest size is timed `--repeat` times, alternating with sha256sum;
 * larger sizes twice at most (they are there for RSS). Every file is read once by sha256sum before any
 * timing, so both sides read from a warm page cache. Progress goes to stderr, results to stdout;
 * the temp folder and the server's folder are removed at the end, also on failure or Ctrl-C.
 *
 * Exits 1 when a digest differs from sha256sum's (or the MD5 from the ETag).
 */
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startS3Server, type S3Server } from '../test/helpers/s3-server.js';
import type { WorkerResult } from './download-worker.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const BUCKET = 'bench';
const WORKER = fileURLToPath(new URL('./download-worker.ts', import.meta.url));
/**
 * Peak RSS growth from the smallest to the largest size that still counts as "does not grow":
 * single runs of the same size differ by up to ~15 MiB (when V8 collects the consumed chunks).
 */
const GROWTH_TOLERANCE_MIB = 24;
const RSS_TARGET_MIB = 150;

const progress = (msg: string): boolean => process.stderr.write(`[bench] ${msg}\n`);
const sizeLabel = (bytes: number): string => (bytes % GiB === 0 ? `${bytes / GiB} GiB` : `${bytes / MiB} MiB`);
const mib = (kib: number): string => `${(kib / 1024).toFixed(0)} MiB`;
const rate = (bytes: number, ms: number): string => `${(bytes / MiB / (ms / 1000)).toFixed(0)}`;

/** Aborted on Ctrl-C / SIGTERM: kills the running child, stops the upload, and no step starts after it. */
const stop = new AbortController();

/** Runs a program (argv, no shell); resolves with stdout, rejects with stderr on a non-zero exit. */
function exec(cmd: string, args: string[], stderr: 'pipe' | 'inherit' = 'pipe'): Promise<string> {
  return new Promise((resolve, reject) => {
    if (stop.signal.aborted) return reject(new Error('stopped'));
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', stderr], signal: stop.signal });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${path.basename(cmd)} ${args.slice(0, 4).join(' ')} exited ${code ?? signal}: ${err.trim()}`));
    });
  });
}

async function sha256sum(file: string): Promise<{ hex: string; ms: number }> {
  const t0 = performance.now();
  const out = await exec('sha256sum', [file]);
  const ms = performance.now() - t0;
  return { hex: out.split(/\s+/)[0]!, ms };
}

async function worker(args: string[]): Promise<WorkerResult> {
  const out = await exec(process.execPath, ['--import', 'tsx', WORKER, ...args], 'inherit');
  const last = out.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as WorkerResult;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Random bytes, written 4 MiB at a time: never more than one chunk in memory. */
async function writeRandomFile(file: string, bytes: number): Promise<void> {
  const chunk = Buffer.allocUnsafe(4 * MiB);
  const fh = await fs.open(file, 'w');
  const t0 = performance.now();
  let last = t0;
  try {
    for (let written = 0; written < bytes; ) {
      stop.signal.throwIfAborted();
      const n = Math.min(chunk.length, bytes - written);
      randomFillSync(chunk, 0, n);
      await fh.write(chunk, 0, n);
      written += n;
      if (performance.now() - last > 5000) {
        last = performance.now();
        progress(`  wrote ${(written / MiB).toFixed(0)} / ${(bytes / MiB).toFixed(0)} MiB`);
      }
    }
  } finally {
    await fh.close();
  }
  progress(`  ${sizeLabel(bytes)} of random bytes in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

/** PutObject with the file as a stream body: the upload is never in memory either. */
async function upload(server: S3Server, file: string, key: string, bytes: number): Promise<string> {
  const body = createReadStream(file, { highWaterMark: MiB, signal: stop.signal });
  const t0 = performance.now();
  const ticker = setInterval(() => progress(`  uploaded ${(body.bytesRead / MiB).toFixed(0)} / ${(bytes / MiB).toFixed(0)} MiB`), 5000);
  try {
    await server.put(BUCKET, key, body, { ContentLength: bytes });
  } finally {
    clearInterval(ticker);
    body.destroy();
  }
  const stored = await server.objectFile(BUCKET, key);
  const size = (await fs.stat(stored)).size;
  if (size !== bytes) throw new Error(`s3rver stored ${size} bytes of ${key}, not ${bytes}`);
  progress(`  uploaded to s3rver in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return stored;
}

interface Sample {
  source: 's3' | 'local';
  bytes: number;
  runs: WorkerResult[];
  sums: number[];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { sizes: { type: 'string' }, repeat: { type: 'string', default: '3' }, quick: { type: 'boolean', default: false } },
  });
  const sizesText = values.sizes ?? (values.quick ? '0.25,1' : '1,4');
  // Smallest first: it is the one timed --repeat times, and RSS is compared smallest to largest.
  const sizes = [...new Set(sizesText.split(',').map((s) => Math.round(Number(s) * GiB)))].sort((a, b) => a - b);
  if (sizes.some((b) => !Number.isFinite(b) || b < MiB || b % MiB !== 0)) throw new Error('--sizes takes GiB, e.g. 1,4 or 0.25 (whole MiB, at least 1 MiB)');
  const repeat = Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error('--repeat takes a whole number, at least 1');

  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-bench-storage-'));
  const localDir = path.join(tmp, 'local');
  await fs.mkdir(localDir);
  let server: S3Server | undefined;
  let cleaned: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (cleaned ??= (async () => {
      if (server) {
        // S3Server.stop() waits for an 'exit' that already happened when s3rver died of a
        // signal itself (Ctrl-C reaches the whole process group): give it 5 s, then remove
        // its folder here.
        const stopped = server.stop().then(
          () => true,
          (err: unknown) => {
            progress(`stopping s3rver: ${String(err)}`);
            return false;
          },
        );
        const timer = new Promise<false>((resolve) => setTimeout(resolve, 5000, false).unref());
        if (!(await Promise.race([stopped, timer]))) {
          try {
            process.kill(server.pid, 'SIGKILL');
          } catch {
            // already gone
          }
          await fs.rm(server.directory, { recursive: true, force: true });
        }
      }
      await fs.rm(tmp, { recursive: true, force: true });
      progress(`cleanup: removed ${tmp}${server ? ` and ${server.directory}` : ''}`);
    })());
  const onSignal = (sig: NodeJS.Signals): void => {
    progress(`${sig}: cleaning up`);
    stop.abort(new Error(`stopped by ${sig}`));
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const t0 = performance.now();
  const mismatches: string[] = [];
  const samples: Sample[] = [];
  const baseline: WorkerResult[] = [];
  try {
    server = await startS3Server();
    await server.createBucket(BUCKET);
    progress(`s3rver at ${server.endpoint}, files in ${server.directory}; temp folder ${tmp}`);

    const files: Array<{ bytes: number; key: string; local: string; stored: string }> = [];
    for (const bytes of sizes) {
      const key = `backup-${bytes / MiB}mib.bin`;
      const local = path.join(localDir, key);
      progress(`${sizeLabel(bytes)}: writing ${local}`);
      await writeRandomFile(local, bytes);
      progress(`${sizeLabel(bytes)}: uploading to s3://${BUCKET}/${key}`);
      files.push({ bytes, key, local, stored: await upload(server, local, key, bytes) });
    }

    progress('baseline: 3 children that only load the modules');
    for (let i = 0; i < 3; i++) baseline.push(await worker(['baseline']));

    const check = (what: string, r: WorkerResult, expected: string): void => {
      if (r.sha256 !== expected) mismatches.push(`${what}: HashingCounter sha256 ${r.sha256} != sha256sum ${expected}`);
      if (r.expectedMd5 !== undefined && r.md5 !== r.expectedMd5) mismatches.push(`${what}: HashingCounter md5 ${r.md5} != ETag ${r.expectedMd5}`);
    };
    for (const [i, f] of files.entries()) {
      const rounds = i === 0 ? repeat : Math.min(repeat, 2);
      progress(`${sizeLabel(f.bytes)}: sha256sum of both files (warms the page cache, gives the reference digest)`);
      const ref = (await sha256sum(f.stored)).hex;
      const refLocal = (await sha256sum(f.local)).hex;
      if (ref !== refLocal) mismatches.push(`${f.key}: s3rver's file has sha256 ${ref}, the uploaded file ${refLocal}`);
      const s3: Sample = { source: 's3', bytes: f.bytes, runs: [], sums: [] };
      const local: Sample = { source: 'local', bytes: f.bytes, runs: [], sums: [] };
      const endpoint = server.endpoint;
      const steps: Array<() => Promise<void>> = [
        async () => void s3.runs.push(await worker(['s3', endpoint, BUCKET, f.key])),
        async () => void s3.sums.push((await sha256sum(f.stored)).ms),
        async () => void local.runs.push(await worker(['local', localDir, f.key])),
        async () => void local.sums.push((await sha256sum(f.local)).ms),
      ];
      for (let round = 1; round <= rounds; round++) {
        // Alternate which of each pair goes first, so neither always follows the other.
        const order = round % 2 ? [0, 1, 2, 3] : [1, 0, 3, 2];
        for (const idx of order) await steps[idx]!();
        const last = (s: Sample): string => `backproof ${(s.runs.at(-1)!.ms / 1000).toFixed(1)} s, sha256sum ${(s.sums.at(-1)! / 1000).toFixed(1)} s`;
        progress(`${sizeLabel(f.bytes)} round ${round}/${rounds}: s3 ${last(s3)}; local ${last(local)}`);
      }
      for (const r of s3.runs) check(`s3 ${f.key}`, r, ref);
      for (const r of local.runs) check(`local ${f.key}`, r, ref);
      samples.push(s3, local);
    }
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  const baseRss = median(baseline.map((b) => b.maxRssKiB));
  const sumVersion = (await exec('sha256sum', ['--version']).catch(() => 'sha256sum')).split('\n')[0];
  const lines: string[] = [
    '',
    `download + hash through the storage drivers vs sha256sum of the same bytes on disk (warm page cache; ${os.cpus().length} CPUs, node ${process.version})`,
    `backproof = a fresh child: driver.details(), driver.open() piped through HashingCounter into a sink; time from open() to the last byte`,
    '',
    `${'source'.padEnd(8)}${'size'.padEnd(9)}${'runs'.padStart(5)}${'backproof ms'.padStart(14)}${'MiB/s'.padStart(7)}${'sha256sum ms'.padStart(14)}${'MiB/s'.padStart(7)}${'ratio'.padStart(8)}   hashes`,
  ];
  for (const s of samples) {
    const bp = median(s.runs.map((r) => r.ms));
    const sum = median(s.sums);
    const hashes = s.runs[0]?.expectedMd5 !== undefined ? 'sha256 + md5 (ETag)' : 'sha256';
    lines.push(
      `${s.source.padEnd(8)}${sizeLabel(s.bytes).padEnd(9)}${String(s.runs.length).padStart(5)}${bp.toFixed(0).padStart(14)}${rate(s.bytes, bp).padStart(7)}` +
        `${sum.toFixed(0).padStart(14)}${rate(s.bytes, sum).padStart(7)}${`${(bp / sum).toFixed(2)}x`.padStart(8)}   ${hashes}`,
    );
  }
  lines.push(
    `ratio = backproof / sha256sum (medians); below 1 is faster than sha256sum (${sumVersion}).`,
    's3 also hashes md5, as the runner does when the ETag is one; s3rver serves from its own Node process on the same CPUs.',
    '',
  );
  lines.push(
    `peak RSS of the child (process.resourceUsage().maxRSS), median and max over its runs; baseline, the same imports and no download: ${mib(baseRss)} (median of ${baseline.length})`,
    `${'source'.padEnd(8)}${'size'.padEnd(9)}${'runs'.padStart(5)}${'peak RSS'.padStart(10)}${'max'.padStart(9)}${'growth'.padStart(9)}${'heapUsed'.padStart(10)}${'arrayBuffers'.padStart(14)}`,
  );
  const verdicts: string[] = [];
  for (const source of ['s3', 'local'] as const) {
    const mine = samples.filter((s) => s.source === source);
    const peaks = mine.map((s) => median(s.runs.map((r) => r.maxRssKiB)));
    const maxes = mine.map((s) => Math.max(...s.runs.map((r) => r.maxRssKiB)));
    for (const [i, s] of mine.entries()) {
      const heap = Math.max(...s.runs.map((r) => r.peakHeapUsed)) / MiB;
      const buffers = Math.max(...s.runs.map((r) => r.peakArrayBuffers)) / MiB;
      lines.push(
        `${source.padEnd(8)}${sizeLabel(s.bytes).padEnd(9)}${String(s.runs.length).padStart(5)}${mib(peaks[i]!).padStart(10)}${mib(maxes[i]!).padStart(9)}` +
          `${`+${mib(peaks[i]! - baseRss)}`.padStart(9)}${`${heap.toFixed(0)} MiB`.padStart(10)}${`${buffers.toFixed(0)} MiB`.padStart(14)}`,
      );
    }
    const first = peaks[0]!;
    const lastPeak = peaks.at(-1)!;
    const max = Math.max(...maxes);
    const grows = mine.length > 1 && lastPeak - first > GROWTH_TOLERANCE_MIB * 1024;
    const sizesText = mine.map((s) => sizeLabel(s.bytes)).join(' -> ');
    verdicts.push(
      `${source}: ${sizesText}: ${mib(first)} -> ${mib(lastPeak)} (${lastPeak >= first ? '+' : ''}${((lastPeak - first) / 1024).toFixed(0)} MiB): ` +
        `${mine.length < 2 ? 'one size only' : grows ? 'GROWS with size' : `does not grow with size (within ${GROWTH_TOLERANCE_MIB} MiB)`}; ` +
        `highest ${mib(max)}, ${max <= RSS_TARGET_MIB * 1024 ? `under the ${RSS_TARGET_MIB} MiB target` : `OVER the ${RSS_TARGET_MIB} MiB target`}`,
    );
  }
  lines.push('growth = peak RSS - baseline; heapUsed and arrayBuffers: highest of process.memoryUsage() sampled every 50 ms during the download.');
  lines.push('', ...verdicts, '');
  lines.push(
    mismatches.length === 0
      ? `correctness: every HashingCounter sha256 equals sha256sum's (and every md5 the ETag) over ${samples.reduce((n, s) => n + s.runs.length, 0)} downloads`
      : `CORRECTNESS FAILED:\n  ${mismatches.join('\n  ')}`,
    `total bench time ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  );
  process.stdout.write(lines.join('\n') + '\n');
  if (mismatches.length > 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
