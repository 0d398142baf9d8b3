import type { BackupEntry, StorageDriver } from '../../../drivers/storage-driver.js';
import type { Reason, RunRecord } from '../../core/domain.js';
import { VerificationError } from '../../core/errors.js';
import { formatAge } from '../../core/format.js';
import { giveBack } from '../../core/chunk-pool.js';
import { HashingCounter } from '../../core/integrity.js';
import { unlessExhausted } from '../exhaustion.js';
import { isReadFailure, type Digests, type RunState } from '../run-state.js';

/**
 * fetch_restore: fetch, integrity and restore in one pass. The hashed stream from the sandbox
 * phase goes into the restore tool; then every checksum the store keeps is checked against the
 * bytes (a second pass hashes the rest when the tool stopped reading early).
 */
export async function streamRestore(s: RunState): Promise<void> {
  const { driver, restorer, signal, run } = s;
  const entry = s.picked!.entry;
  const hasher = s.hasher!;
  const backup = run.backup!;
  const rctx = s.ctx!;
  const input = s.backupStream!.stream;
  s.fetchStart = performance.now();
  try {
    const outcome = await s.clock.phase('fetch_restore', async () => {
      s.streaming = true;
      try {
        return await restorer.restore(rctx, input);
      } catch (err) {
        // Storage failing mid-read is ours to report (`error`), not the backup's fault.
        if (isReadFailure(s.raw?.errored)) s.readError ??= s.raw.errored;
        if (s.readError instanceof VerificationError && !signal.aborted) throw s.readError; // the driver's own verdict
        if (s.readError && !signal.aborted) {
          throw new VerificationError('source_unreachable', `reading ${entry.key} from ${driver.location} failed after ${hasher.bytes} bytes: ${s.readError.message}`, { cause: s.readError });
        }
        throw await unlessExhausted(s, err);
      }
    });
    backup.format = outcome.format;
    backup.compression = outcome.compression;
    backup.header = outcome.header;
    if (outcome.dataAsOf) measureRpoFromData(s, outcome.dataAsOf);
  } finally {
    backup.bytesRead = hasher.bytes;
    const transfer = driver.transferFacts?.(entry) ?? {};
    if (Object.keys(transfer).length > 0) backup.provider = { ...backup.provider, ...transfer };
    const seconds = (performance.now() - s.fetchStart) / 1000;
    if (seconds > 0) run.metrics.fetchBytesPerSec = Math.round(hasher.bytes / seconds);
    if (hasher.sha256) s.digests = hasher;
  }
  // The restore tool finished without reading to the end: hash the rest in a second pass.
  s.digests ??= await hashWhole(driver, entry, signal, s.details!.checksums.some((c) => c.algorithm === 'md5'));
  checkIntegrity(run, s.digests, s.reasons);
}

/**
 * A restore that replayed past its backup (WAL archived after a base backup) holds data newer than
 * the backup's own time: the RPO is the age of that data when the run started, and the select
 * phase's judgement on the backup's age is replaced by one on it.
 */
function measureRpoFromData(s: RunState, dataAsOf: Date): void {
  const { run, policy, reasons } = s;
  const ageMs = Math.max(0, s.started.getTime() - dataAsOf.getTime());
  run.metrics.rpoMeasuredMs = ageMs;
  if (policy.targets.rpoMs === undefined) return;
  run.metrics.rpoMet = ageMs <= policy.targets.rpoMs;
  const stale = reasons.findIndex((r) => r.code === 'stale_backup');
  if (stale >= 0) reasons.splice(stale, 1);
  if (!run.metrics.rpoMet) {
    reasons.push({
      code: 'stale_backup',
      message: `the newest data restored (last replayed commit ${dataAsOf.toISOString()}) is ${formatAge(ageMs)} old, older than the rpo target of ${formatAge(policy.targets.rpoMs)}`,
    });
  }
}

/** Every expected checksum against the bytes' digests; a mismatch is the first reason given. */
export function checkIntegrity(run: RunRecord, digests: Digests, reasons: Reason[]): void {
  const b = run.backup;
  if (!b) return;
  b.sha256 = digests.digest('sha256');
  for (const c of b.checksums ?? []) {
    const actual = digests.digest(c.algorithm);
    if (!actual || c.verified) continue;
    if (actual === c.expected) {
      c.verified = true;
      continue;
    }
    if (reasons.some((r) => r.code === 'checksum_mismatch' && r.message.includes(c.source))) continue;
    reasons.unshift({
      code: 'checksum_mismatch',
      message: `${c.algorithm} of the backup's bytes is ${actual.slice(0, 16)}…, but ${c.source} says ${c.expected.slice(0, 16)}…`,
    });
  }
}

async function hashWhole(driver: StorageDriver, entry: BackupEntry, signal: AbortSignal, md5: boolean): Promise<Digests> {
  const raw = await driver.open(entry, signal);
  const hasher = new HashingCounter(undefined, { md5 }).from(raw);
  // Hashed and not kept: a pooled chunk goes back to be read into again.
  for await (const chunk of raw.pipe(hasher)) giveBack(chunk as Buffer);
  return hasher;
}
