import { randomInt } from 'node:crypto';
import { describeExpect, selectNewest, type Candidate, type JudgedEntry } from '../../../drivers/selection.js';
import { unsafeEntry, type BackupEntry } from '../../../drivers/storage-driver.js';
import { VerificationError } from '../../core/errors.js';
import { formatAge, formatBytes } from '../../core/format.js';
import { withinEvery } from '../../core/coverage.js';
import type { CoveragePlan } from '../../core/domain.js';
import type { PolicyConfig, RecoveryTarget } from '../../core/config-types.js';
import type { RunState } from '../run-state.js';
import { budgetPeriodStart, planCoverage } from '../coverage-plan.js';
import { judgeSize } from '../size-check.js';

/**
 * select: the newest backup the policy's selector accepts, then what can be judged before a
 * byte is read: its age against the rpo target, its size against earlier passing runs, an empty
 * file, and the checksums its store keeps.
 */
export async function selectBackup(s: RunState): Promise<void> {
  const { policy, driver, signal, reasons, run } = s;
  const sampled = recoveryOf(policy) === 'sampled' && !s.point;
  let newest: Candidate | undefined;
  const picked = await s.clock.phase('select', async () => {
    const takenAt = driver.takenAt ? (e: BackupEntry) => driver.takenAt!(e, signal) : undefined;
    // Every restore point the selector accepts, when coverage needs them (a plan, or the point to
    // restore) or a sampled recovery time is drawn among them.
    const points: Candidate[] = [];
    const collect = policy.coverage || s.point || sampled ? (j: JudgedEntry) => void (j.status === 'candidate' && j.backupTime && points.push({ entry: j.entry, backupTime: j.backupTime, timestampSource: policy.source.select.timestamp.from })) : undefined;
    const selection = await selectNewest(driver.list(signal), policy.source.select, s.started, collect, takenAt);
    if (s.point) return pickPoint(s, points);
    if (!selection.picked) throw new VerificationError('no_backup', `${selection.explanation} in ${driver.location}`);
    if (policy.coverage) await planCoverageRuns(s, points, selection.picked.entry.key);
    if (selection.picked.entry.unsafe) throw unsafeEntry(selection.picked.entry);
    if (selection.missingPeriod) {
      reasons.push({
        code: 'missing_backup',
        message: `no backup for ${selection.missingPeriod} (expect: ${describeExpect(policy.source.select.expect!)}); the newest is ${selection.picked.entry.key}, taken ${selection.picked.backupTime.toISOString()}`,
      });
    }
    newest = selection.picked;
    return sampled ? drawRecoveryTime(s, points, selection.picked) : selection.picked;
  });
  s.picked = picked;
  const { entry, backupTime } = picked;
  const ageMs = s.started.getTime() - backupTime.getTime();
  // A sampled recovery restores an older backup on purpose: the RPO is the newest one's age.
  const newestAgeMs = newest ? s.started.getTime() - newest.backupTime.getTime() : ageMs;
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
  if (!s.point) run.metrics.rpoMeasuredMs = newestAgeMs;
  s.log.info(`picked ${entry.key} (${formatBytes(entry.size)}, taken ${backupTime.toISOString()})${s.point ? ` for retention coverage (${s.point.why})` : ''}`);
  s.progress.push();
  // A coverage run restores an older point: its age and size say nothing of the newest backup.
  if (policy.targets.rpoMs !== undefined && !s.point) {
    run.metrics.rpoMet = newestAgeMs <= policy.targets.rpoMs;
    if (!run.metrics.rpoMet) {
      reasons.push({
        code: 'stale_backup',
        message: `the newest backup ${(newest ?? picked).entry.key} is ${formatAge(newestAgeMs)} old, older than the rpo target of ${formatAge(policy.targets.rpoMs)}`,
      });
    }
  }
  // Sizes are compared run to run: a sampled run restores full and incremental backups alike.
  if (policy.sizeAnomaly && entry.size > 0 && s.deps.store.passingBackupSizes && !s.point && !sampled) {
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
  if (sampled && recoveryOf(s.policy) === 'latest') {
    run.backup.provider = { ...run.backup.provider, recoverySampled: 'one backup only: no time to draw, replayed to the end of the log' };
  }
  s.progress.push();
}

function recoveryOf(policy: PolicyConfig): RecoveryTarget | 'sampled' | undefined {
  return policy.kind === 'postgres' ? policy.postgres.recovery : policy.kind === 'mysql' ? policy.mysql.recovery : undefined;
}

/**
 * recovery: sampled. A time drawn at random after the end of the oldest backup the selector
 * accepts and no later than the end of the newest; the run restores the newest backup that ended
 * before it and replays the log to it (s.policy gets the drawn time), so over many runs every
 * backup in the retention window and the log between them are restored. With a single backup there
 * is nothing to draw: it is restored to the end of the log.
 */
function drawRecoveryTime(s: RunState, points: readonly Candidate[], newest: Candidate): Candidate {
  const from = Math.min(...points.map((p) => p.backupTime.getTime()));
  const to = newest.backupTime.getTime();
  const policy = s.policy;
  const set = (recovery: RecoveryTarget): void => {
    if (policy.kind === 'postgres') s.policy = { ...policy, postgres: { ...policy.postgres, recovery } };
    else if (policy.kind === 'mysql') s.policy = { ...policy, mysql: { ...policy.mysql, recovery } };
  };
  if (!(to > from)) {
    set('latest');
    s.log.info(`recovery sampled: ${newest.entry.key} is the only backup, so it is replayed to the end of the log`);
    return newest;
  }
  const at = from + 1 + randomInt(to - from);
  const base = points.filter((p) => p.backupTime.getTime() < at).reduce((a, b) => (b.backupTime > a.backupTime ? b : a));
  const time = new Date(at).toISOString();
  set({ time, sampled: { from: new Date(from).toISOString(), to: new Date(to).toISOString() } });
  s.log.info(`recovery sampled: ${time}, drawn between ${new Date(from).toISOString()} and ${new Date(to).toISOString()}; restoring ${base.entry.key} and replaying to it`);
  return base;
}

/** A coverage run: the restore point it was planned for, if it is still in storage. */
function pickPoint(s: RunState, points: readonly Candidate[]): Candidate {
  const point = s.point!;
  const found = points.find((p) => p.entry.key === point.key);
  if (!found) {
    // Pruned (or renamed) between the plan and this run: the listing changed, the point says nothing.
    throw new VerificationError('source_changed', `the restore point ${point.key} that run ${point.planRunId.slice(0, 8)} planned for retention coverage is no longer among the backups in ${s.driver.location} (pruned since?)`);
  }
  if (found.entry.unsafe) throw unsafeEntry(found.entry);
  return found;
}

/**
 * The run of the newest backup plans which older restore points to restore after it
 * (coverage-plan.ts), from each point's last verification in the store. The plan goes into the
 * record; the caller runs it (runner/coverage-runs.ts).
 */
async function planCoverageRuns(s: RunState, points: readonly Candidate[], newestKey: string): Promise<void> {
  const { policy, deps } = s;
  const config = policy.coverage!;
  if (!deps.store.pointProofs) return;
  const proofs = await deps.store.pointProofs(policy.name);
  let budget = config.points;
  if (config.per !== 'run' && deps.store.coverageRunsSince) {
    budget = Math.max(0, budget - (await deps.store.coverageRunsSince(policy.name, budgetPeriodStart(config.per, s.started).toISOString())));
  }
  // The client's storage budget: once this month's spend reaches it, no coverage runs are planned.
  let spend: NonNullable<CoveragePlan['budget']> | undefined;
  if (policy.budget && deps.store.clientSpend) {
    const monthStart = new Date(Date.UTC(s.started.getUTCFullYear(), s.started.getUTCMonth(), 1)).toISOString();
    const spent = await deps.store.clientSpend(policy.client, monthStart, policy.budget.currency);
    spend = { monthly: policy.budget.monthly, spent, currency: policy.budget.currency, exhausted: spent >= policy.budget.monthly };
    if (spend.exhausted) budget = 0;
  }
  const plan = planCoverage({ points: points.map((p) => ({ key: p.entry.key, backupTime: p.backupTime })), newestKey, proofs, now: s.started, config: spend?.exhausted ? { ...config, sample: 0 } : config, budget });
  if (spend) plan.budget = spend;
  s.run.coverage = { plan };
  s.newestProven = withinEvery(proofs.get(newestKey)?.passedAt, s.started, config.everyMs);
  s.log.info(
    `retention coverage: ${plan.proven} of ${plan.points} restore point(s) proven within ${formatAge(config.everyMs)}; ${plan.planned.length ? `next: ${plan.planned.map((p) => `${p.key} (${p.why})`).join(', ')}` : 'none planned'}${spend?.exhausted ? ` (the client's storage budget of ${spend.monthly} ${spend.currency} this month is spent: ${spend.spent} ${spend.currency})` : ''}`,
  );
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
