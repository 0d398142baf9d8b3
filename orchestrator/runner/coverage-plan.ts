import type { CoverageConfig } from '../core/config-types.js';
import { withinEvery } from '../core/coverage.js';
import type { CoveragePlan, CoverageWhy } from '../core/domain.js';

/**
 * Retention coverage: which older restore points a run restores after the newest, so that every
 * point the selector accepts is proven restorable (a passing run) at least once every `everyMs`.
 *
 * - A point is due when no run ever verified it, or its last verification (pass or fail) is
 *   older than `everyMs`. A point verified within it is not due, whatever the verdict: a point
 *   that failed stays failed (and alerted) until `everyMs` has passed, rather than eating every
 *   run's budget.
 * - Due points are planned never-verified first (oldest taken first), then by the age of their
 *   last verification (oldest first), up to the budget; then `sample` points are drawn at random
 *   among the older points not planned, so proven points are tried again too.
 * - Points that left storage (pruned) are not listed, so they leave the plan by themselves.
 */
export interface RestorePoint {
  key: string;
  backupTime: Date;
}

/** A point's last verification, as RunStore.pointProofs reads it. */
export interface PointProofView {
  verdict: 'pass' | 'fail';
  /** When the verifying run started (ISO). */
  at: string;
  passedAt?: string;
}

export interface PlanInput {
  /** Every restore point the selector accepts, the newest included, in any order. */
  points: readonly RestorePoint[];
  /** The newest point's key: this run restores it, so it is never planned. */
  newestKey: string;
  proofs: ReadonlyMap<string, PointProofView>;
  now: Date;
  config: CoverageConfig;
  /** Due points to plan at most (`points`, less what was used this day or week). */
  budget: number;
  random?: () => number;
}

export function planCoverage(input: PlanInput): CoveragePlan {
  const { points, newestKey, proofs, now, config } = input;
  const random = input.random ?? Math.random;
  const within = (iso: string | undefined): boolean => withinEvery(iso, now, config.everyMs);
  const never: RestorePoint[] = [];
  const stale: Array<RestorePoint & { at: number }> = [];
  const rest: RestorePoint[] = [];
  let proven = 0;
  let neverVerified = 0;
  for (const p of points) {
    const proof = proofs.get(p.key);
    if (within(proof?.passedAt)) proven++;
    if (!proof) neverVerified++;
    if (p.key === newestKey) continue;
    if (!proof) never.push(p);
    else if (!within(proof.at)) stale.push({ ...p, at: Date.parse(proof.at) });
    else rest.push(p);
  }
  never.sort((a, b) => a.backupTime.getTime() - b.backupTime.getTime() || a.key.localeCompare(b.key));
  stale.sort((a, b) => a.at - b.at || a.backupTime.getTime() - b.backupTime.getTime() || a.key.localeCompare(b.key));
  const due: Array<{ key: string; why: CoverageWhy }> = [...never.map((p) => ({ key: p.key, why: 'never' as const })), ...stale.map((p) => ({ key: p.key, why: 'oldest' as const }))];
  const planned = due.slice(0, Math.max(0, input.budget));
  // The sample: drawn among the older points not already planned (due ones left over included).
  const left = [...due.slice(planned.length).map((d) => d.key), ...rest.map((p) => p.key)];
  for (let i = 0; i < config.sample && left.length > 0; i++) {
    const j = Math.min(left.length - 1, Math.floor(random() * left.length));
    planned.push({ key: left[j]!, why: 'sample' });
    left.splice(j, 1);
  }
  return {
    everyMs: config.everyMs,
    points: points.length,
    proven,
    ...(config.target !== undefined ? { target: config.target } : {}),
    neverVerified,
    planned,
  };
}

/** Where the current budget period started: the UTC day, or the ISO week (Monday 00:00 UTC). */
export function budgetPeriodStart(per: 'day' | 'week', now: Date): Date {
  const day = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  if (per === 'day') return day;
  const sinceMonday = (day.getUTCDay() + 6) % 7;
  return new Date(day.getTime() - sinceMonday * 86_400_000);
}
