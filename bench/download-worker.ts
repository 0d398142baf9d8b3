/**
 * One download + hash, in a fresh Node process, for bench/storage-download.ts: opens a backup
 * through a storage driver exactly as the runner does (details() first, so the S3 driver pins
 * the ETag; `HashingCounter` with md5 when a checksum is an MD5), pipes every byte through the
 * hasher into a sink that drops them, and prints one JSON line (WorkerResult) on stdout with the
 * digests, the time from open() to the last byte, the process's peak RSS and the peaks of its
 * JS heap and Buffer memory (sampled every 50 ms).
 *
 *   node --import tsx bench/download-worker.ts s3 ENDPOINT BUCKET KEY
 *   node --import tsx bench/download-worker.ts local FOLDER KEY
 *   node --import tsx bench/download-worker.ts baseline      # the same imports, no download
 *
 * Progress goes to stderr every 5 s.
 */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LocalStorageDriver } from '../drivers/local/local-storage-driver.js';
import { S3StorageDriver } from '../drivers/s3/s3-storage-driver.js';
import type { BackupEntry, StorageDriver } from '../drivers/storage-driver.js';
import { HashingCounter } from '../orchestrator/core/integrity.js';
import { S3RVER_CREDENTIALS } from '../test/helpers/s3-server.js';

export interface WorkerResult {
  mode: 'baseline' | 's3' | 'local';
  bytes: number;
  /** From open() to the end of the pipeline. */
  ms: number;
  sha256?: string;
  md5?: string;
  /** The MD5 the driver's details() reported (the S3 ETag), when there is one. */
  expectedMd5?: string;
  /** process.resourceUsage().maxRSS: peak resident set size in KiB. */
  maxRssKiB: number;
  /** Peaks of process.memoryUsage() heapUsed and arrayBuffers (bytes), sampled every 50 ms. */
  peakHeapUsed: number;
  peakArrayBuffers: number;
}

function driverFor(mode: string, args: string[]): { driver: StorageDriver; key: string } {
  if (mode === 's3') {
    const [endpoint, bucket, key] = args;
    if (!endpoint || !bucket || !key) throw new Error('usage: s3 ENDPOINT BUCKET KEY');
    const driver = new S3StorageDriver({ bucket, endpoint, forcePathStyle: true, credentials: { ...S3RVER_CREDENTIALS, origin: 'the bench (s3rver)' } });
    return { driver, key };
  }
  if (mode === 'local') {
    const [folder, key] = args;
    if (!folder || !key) throw new Error('usage: local FOLDER KEY');
    return { driver: new LocalStorageDriver({ path: folder }), key };
  }
  throw new Error(`unknown mode ${mode}: s3, local or baseline`);
}

async function main(): Promise<void> {
  const [mode = '', ...args] = process.argv.slice(2);
  if (mode === 'baseline') {
    const m = process.memoryUsage();
    const result: WorkerResult = { mode, bytes: 0, ms: 0, maxRssKiB: process.resourceUsage().maxRSS, peakHeapUsed: m.heapUsed, peakArrayBuffers: m.arrayBuffers };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const { driver, key } = driverFor(mode, args);
  try {
    let entry: BackupEntry | undefined;
    for await (const e of driver.list()) if (e.key === key) entry = e;
    if (!entry) throw new Error(`${key} is not in ${driver.location}`);
    const details = await driver.details(entry);
    const expectedMd5 = details.checksums.find((c) => c.algorithm === 'md5')?.hex;

    let bytes = 0;
    const sink = new Writable({ highWaterMark: 1024 * 1024, write: (_chunk: Buffer, _enc, cb) => cb() });
    let peakHeapUsed = 0;
    let peakArrayBuffers = 0;
    const sample = (): void => {
      const m = process.memoryUsage();
      peakHeapUsed = Math.max(peakHeapUsed, m.heapUsed);
      peakArrayBuffers = Math.max(peakArrayBuffers, m.arrayBuffers);
    };
    const sampler = setInterval(sample, 50);
    const t0 = performance.now();
    const raw = await driver.open(entry);
    const hasher = new HashingCounter((n) => (bytes = n), { md5: expectedMd5 !== undefined }).from(raw);
    const ticker = setInterval(() => {
      const s = (performance.now() - t0) / 1000;
      process.stderr.write(`[worker ${mode}] ${(bytes / 1024 ** 2).toFixed(0)} / ${(entry.size / 1024 ** 2).toFixed(0)} MiB after ${s.toFixed(0)} s\n`);
    }, 5000);
    try {
      await pipeline(raw, hasher, sink);
    } finally {
      clearInterval(ticker);
      clearInterval(sampler);
    }
    sample();
    const ms = performance.now() - t0;
    const result: WorkerResult = {
      mode: mode as 's3' | 'local',
      bytes: hasher.bytes,
      ms,
      ...(hasher.sha256 ? { sha256: hasher.sha256 } : {}),
      ...(hasher.md5 ? { md5: hasher.md5 } : {}),
      ...(expectedMd5 ? { expectedMd5 } : {}),
      maxRssKiB: process.resourceUsage().maxRSS,
      peakHeapUsed,
      peakArrayBuffers,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await driver.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`download-worker failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
