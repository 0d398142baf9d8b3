/**
 * Retention coverage arithmetic shared by the runner's plan, the alerts, `backproof coverage`,
 * the monthly report and the dashboard (domain.ts CoveragePlan).
 */

/** Whether an ISO time lies within `everyMs` before `now` (a proof still counts). */
export function withinEvery(iso: string | undefined, now: Date, everyMs: number): boolean {
  return iso !== undefined && now.getTime() - Date.parse(iso) <= everyMs;
}

/** The share of restore points proven, 0..1; null without points. */
export function coverageShare(c: { points: number; proven: number }): number | null {
  return c.points > 0 ? c.proven / c.points : null;
}

/**
 * The plan's target (0..1), when it has one: CoverageConfig.target is optional, and a record
 * read back from JSON may hold null.
 */
export function coverageTarget(plan: { target?: number | null }): number | null {
  return typeof plan.target === 'number' && Number.isFinite(plan.target) ? plan.target : null;
}

/** Fewer points proven than the target (false without a target or without points). */
export function belowTarget(plan: { points: number; proven: number; target?: number | null }): boolean {
  const target = coverageTarget(plan);
  const share = coverageShare(plan);
  return target !== null && share !== null && share < target;
}
