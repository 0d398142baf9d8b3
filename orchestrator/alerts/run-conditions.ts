import { ERROR_CODES, type ReasonCode, type RunRecord } from '../core/domain.js';
import { belowTarget, coverageShare, coverageTarget } from '../core/coverage.js';
import { formatAge, formatSeconds } from '../core/format.js';
import type { AlertCondition, AlertReason } from './alert.js';

/**
 * What one finished run says about a policy's alert conditions: which ones it shows to be true
 * (firing) and which ones it shows to be over (resolved). A run can only resolve what it looked
 * at: a run that never got a backup says nothing about its size; a run that could not verify
 * (`error`) says nothing about whether the backup is bad.
 */
export type FiringCondition = Exclude<AlertCondition, 'recovery'>;

export interface Observation {
  condition: FiringCondition;
  /** Tells apart several incidents of one condition (the channel of a `delivery_failed`). */
  key?: string;
  summary: string;
  reasons: AlertReason[];
  /** ISO time: the newest backup's time (stale), the last run (overdue). */
  since?: string;
}

export interface RunJudgement {
  firing: Observation[];
  resolved: FiringCondition[];
  /** Incidents of a condition with a key that the run shows to be over (an older point that restores again). */
  resolvedKeys?: Array<{ condition: FiringCondition; key: string }>;
}

const ERROR_SET: ReadonlySet<string> = new Set(ERROR_CODES);

/** The condition a run's reason belongs to. */
export function conditionOfReason(code: ReasonCode | string): FiringCondition {
  switch (code) {
    case 'no_backup':
    case 'missing_backup':
      return 'missing';
    case 'stale_backup':
      return 'stale';
    case 'size_anomaly':
      return 'size_anomaly';
    default:
      return ERROR_SET.has(code) ? 'error' : 'fail';
  }
}

/** The name of the size check's probe (runner/size-check.ts). */
const SIZE_PROBE = 'size vs history';

export function judgeRun(run: RunRecord): RunJudgement {
  if (run.status === 'cancelled' || run.verdict === null) return { firing: [], resolved: [] };
  if (run.coverage?.point) return judgeCoverageRun(run, run.coverage.point.key);
  const judged = judgeNewestRun(run);
  const plan = run.coverage?.plan;
  const target = plan ? coverageTarget(plan) : null;
  if (plan && target !== null && run.status === 'finished') {
    if (belowTarget(plan)) {
      const summary = `retention coverage ${pct(coverageShare(plan) ?? 1)}: ${plan.proven} of ${plan.points} restore points proven within ${formatAge(plan.everyMs)}, below the target of ${pct(target)}`;
      judged.firing.push({ condition: 'coverage', summary, reasons: [{ code: 'coverage_below_target', message: summary }] });
    } else judged.resolved.push('coverage');
  }
  return judged;
}

/**
 * A coverage run of an older restore point: a point that does not restore opens an incident of
 * its own (condition `coverage`, keyed by the point), closed when it restores again; it says
 * nothing of the newest backup's conditions. One that could not verify is an `error` as any run.
 */
function judgeCoverageRun(run: RunRecord, key: string): RunJudgement {
  if (run.verdict === 'error') {
    const reasons = run.reasons.map((r) => ({ code: r.code, message: r.message }));
    return { firing: [{ condition: 'error', reasons, summary: `coverage of ${key}: ${summaryOf(reasons)}` }], resolved: [] };
  }
  if (run.verdict === 'fail') {
    const reasons = run.reasons.map((r) => ({ code: r.code, message: r.message }));
    return { firing: [{ condition: 'coverage', key, reasons, summary: `the older restore point ${key} does not restore: ${summaryOf(reasons)}` }], resolved: ['error'] };
  }
  return { firing: [], resolved: ['error'], resolvedKeys: [{ condition: 'coverage', key }] };
}

function pct(share: number): string {
  return `${Math.floor(share * 1000) / 10}%`;
}

function judgeNewestRun(run: RunRecord): RunJudgement {
  const byCondition = new Map<FiringCondition, AlertReason[]>();
  for (const r of run.reasons) {
    const c = conditionOfReason(r.code);
    byCondition.set(c, [...(byCondition.get(c) ?? []), { code: r.code, message: r.message }]);
  }
  const { rtoMet, rtoMeasuredMs, rtoTargetMs } = run.metrics;
  if (rtoMet === false && rtoMeasuredMs !== undefined && rtoTargetMs !== undefined) {
    byCondition.set('rto_exceeded', [
      { code: 'rto_exceeded', message: `fetch and restore took ${formatSeconds(rtoMeasuredMs)}; the target (targets.rto) is ${formatAge(rtoTargetMs)}` },
    ]);
  }

  const resolved: FiringCondition[] = [];
  const verified = run.verdict === 'pass' || run.verdict === 'fail';
  if (verified) resolved.push('error');
  if (run.verdict === 'pass') resolved.push('fail');
  if (run.backup !== null) {
    // The run found a backup: it looked at its period and its age.
    if (!byCondition.has('missing')) resolved.push('missing');
    if (!byCondition.has('stale')) resolved.push('stale');
  }
  if (run.probes.some((p) => p.name === SIZE_PROBE && p.pass)) resolved.push('size_anomaly');
  if (rtoMet === true) resolved.push('rto_exceeded');

  const firing = [...byCondition].map(([condition, reasons]): Observation => ({
    condition,
    reasons,
    summary: summaryOf(reasons),
    ...(condition === 'stale' && run.backup ? { since: run.backup.backupTime } : {}),
  }));
  return { firing, resolved: resolved.filter((c) => !byCondition.has(c)) };
}

/** The first reason's message, and how many more there are. */
export function summaryOf(reasons: readonly AlertReason[]): string {
  const first = reasons[0]?.message ?? 'no reason recorded';
  return reasons.length > 1 ? `${first} (+${reasons.length - 1} more)` : first;
}
