import { describeExpect, selectNewest } from '../../../drivers/selection.js';
import { unsafeEntry, type BackupEntry } from '../../../drivers/storage-driver.js';
import { VerificationError } from '../../core/errors.js';
import { formatAge, formatBytes } from '../../core/format.js';
import type { RunState } from '../run-state.js';
import { judgeSize } from '../size-check.js';

/**
 * select: the newest backup the policy's selector accepts, then what can be judged before a
 * byte is read: its age against the rpo target, its size against earlier passing runs, an empty
 * file, and the checksums its store keeps.
 */
export async function selectBackup(s: RunState): Promise<void> {
  const { policy, driver, signal, reasons, run } = s;
  const picked = await s.clock.phase('select', async () => {
    const takenAt = driver.takenAt ? (e: BackupEntry) => driver.takenAt!(e, signal) : undefined;
    const selection = await selectNewest(driver.list(signal), policy.source.select, s.started, undefined, takenAt);
    if (!selection.picked) throw new VerificationError('no_backup', `${selection.explanation} in ${driver.location}`);
    if (selection.picked.entry.unsafe) throw unsafeEntry(selection.picked.entry);
    if (selection.missingPeriod) {
      reasons.push({
        code: 'missing_backup',
        message: `no backup for ${selection.missingPeriod} (expect: ${describeExpect(policy.source.select.expect!)}); the newest is ${selection.picked.entry.key}, taken ${selection.picked.backupTime.toISOString()}`,
      });
    }
    return selection.picked;
  });
  s.picked = picked;
  const { entry, backupTime } = picked;
  const ageMs = s.started.getTime() - backupTime.getTime();
  run.backup = {
    driver: driver.name,
    location: driver.location,
    key: entry.key,
    size: entry.size,
    modifiedAt: entry.modifiedAt.toISOString(),
    backupTime: backupTime.toISOString(),
    timestampSource: picked.timestampSource,
    ageMs,
  };
  run.metrics.rpoMeasuredMs = ageMs;
  s.log.info(`picked ${entry.key} (${formatBytes(entry.size)}, taken ${backupTime.toISOString()})`);
  s.progress.push();
  if (policy.targets.rpoMs !== undefined) {
    run.metrics.rpoMet = ageMs <= policy.targets.rpoMs;
    if (!run.metrics.rpoMet) {
      reasons.push({
        code: 'stale_backup',
        message: `the newest backup ${entry.key} is ${formatAge(ageMs)} old, older than the rpo target of ${formatAge(policy.targets.rpoMs)}`,
      });
    }
  }
  if (policy.sizeAnomaly && entry.size > 0 && s.deps.store.passingBackupSizes) {
    const history = await s.deps.store.passingBackupSizes(policy.name, policy.sizeAnomaly.lastRuns);
    const check = judgeSize(entry.size, history, policy.sizeAnomaly);
    run.probes = [check];
    if (!check.pass) reasons.push({ code: 'size_anomaly', message: `the backup ${entry.key} shrank: ${check.actual}; expected ${check.expected}` });
  }
  if (entry.size === 0) throw new VerificationError('empty_backup', `the backup ${entry.key} is empty (0 bytes)${entry.note ? `: ${entry.note}` : ''}`);
  const details = await driver.details(entry, signal);
  s.details = details;
  run.backup.checksums = details.checksums.map((c) => ({ algorithm: c.algorithm, expected: c.hex, source: c.source, verified: false }));
  if (details.unverifiable.length > 0) run.backup.unverifiableChecksums = details.unverifiable;
  if (Object.keys(details.facts).length > 0) run.backup.provider = details.facts;
  s.progress.push();
}

/**
 * storage_check: the store's own integrity check (restic check). Damage found is a fail, but the
 * restore still runs, so the evidence says whether this backup's own data came through.
 */
export async function checkStorage(s: RunState): Promise<void> {
  const { driver, run } = s;
  const entry = s.picked!.entry;
  if (!driver.check) {
    s.clock.skip('storage_check', `the ${driver.name} store has no integrity check of its own`);
    return;
  }
  await s.clock.phase('storage_check', async (mark) => {
    const result = await driver.check!(entry, s.signal);
    run.backup!.storageCheck = { what: result.what, summary: result.summary, problems: result.problems };
    if (result.problems.length > 0) {
      s.reasons.push({ code: 'repository_damaged', message: `${result.what} found ${result.problems.length} problem(s): ${result.problems.slice(0, 3).join('; ')}` });
      mark('fail', result.summary);
    }
  });
}
