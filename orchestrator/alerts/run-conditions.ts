import { ERROR_CODES, type ReasonCode, type RunRecord } from '../core/domain.js';
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
