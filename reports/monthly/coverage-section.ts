import { coverageShare, coverageTarget } from '../../orchestrator/core/coverage.js';
import type { CoverageWhy, RunRecord, RunStatus, Verdict } from '../../orchestrator/core/domain.js';

/**
 * Retention coverage in the monthly report (policy `coverage:`, domain.ts CoverageRecord): besides
 * the newest backup, a policy restores some older restore points ("coverage runs"). Those runs are
 * no runs of the newest backup: the policy's pass rate, RPO and RTO figures, charts and failures
 * leave them out (model.ts), and this section shows them apart, with the newest plan of the period
 * (how many restore points there are and how many were proven within `every`).
 */

/** On a report run: it restored this older restore point (null: a run of the newest backup). */
export interface ReportCoverageRef {
  key: string;
  why: CoverageWhy;
  /** The run of the newest backup that planned it. */
  planRunId: string;
}

export interface ReportCoveragePlan {
  /** The run of the newest backup that made the plan, and when it started. */
  runId: string;
  at: string;
  everyMs: number;
  /** Restore points in storage (the newest included). */
  points: number;
  /** Of them, those with a passing run within everyMs. */
  proven: number;
  /** proven / points, in percent (one decimal); null without points. */
  sharePercent: number | null;
  /** The policy's target share in percent; null when none is set. */
  targetPercent: number | null;
  /** Below target: false; true when at or above it; null without a target. */
  targetMet: boolean | null;
  neverVerified: number;
  /** Older points it planned to restore next, in order. */
  planned: Array<{ key: string; why: CoverageWhy }>;
}

/** One coverage run of the period. */
export interface ReportCoverageRun {
  runId: string;
  startedAt: string;
  status: RunStatus;
  verdict: Verdict | null;
  /** The older restore point restored. */
  key: string;
  why: CoverageWhy;
  planRunId: string;
  /** Measured restore time (RTO), else the fetch and restore phase's time; null when it did not restore. */
  restoreMs: number | null;
  /** The first reason of a run that failed or erred. */
  reason: { code: string; message: string } | null;
}

export interface CoverageCounts {
  /** Coverage runs with a verdict that were not cancelled. */
  runs: number;
  passed: number;
  failed: number;
  errored: number;
}

export interface PolicyCoverage extends CoverageCounts {
  /** The newest plan of the period; null when no run of the newest backup made one in it. */
  plan: ReportCoveragePlan | null;
  /** Every coverage run of the period, oldest first (cancelled and running ones too). */
  coverageRuns: ReportCoverageRun[];
}

/** The run's restore point when it is a coverage run of an older one, else null. */
export function coverageRef(r: RunRecord): ReportCoverageRef | null {
  const p = r.coverage?.point;
  return p ? { key: p.key, why: p.why, planRunId: p.planRunId } : null;
}

/**
 * A policy's coverage in the period from its runs (oldest first); null when the period holds
 * neither a plan nor a coverage run of it (the section then leaves the policy out).
 */
export function policyCoverage(records: RunRecord[]): PolicyCoverage | null {
  const planRun = records.findLast((r) => r.coverage?.plan && !r.coverage.point);
  const coverageRuns = records.filter((r) => r.coverage?.point).map(coverageRun);
  if (!planRun && coverageRuns.length === 0) return null;
  const counted = coverageRuns.filter((r) => r.verdict !== null && r.status !== 'cancelled' && r.status !== 'running');
  return {
    plan: planRun ? planOf(planRun) : null,
    ...countsOf(counted),
    coverageRuns,
  };
}

/** The counts of several policies added up; null when none has coverage. */
export function coverageTotals(list: Array<PolicyCoverage | null>): CoverageCounts | null {
  const present = list.filter((c): c is PolicyCoverage => c !== null);
  if (present.length === 0) return null;
  return present.reduce((a, c) => ({ runs: a.runs + c.runs, passed: a.passed + c.passed, failed: a.failed + c.failed, errored: a.errored + c.errored }), { runs: 0, passed: 0, failed: 0, errored: 0 });
}

function countsOf(runs: ReportCoverageRun[]): CoverageCounts {
  return {
    runs: runs.length,
    passed: runs.filter((r) => r.verdict === 'pass').length,
    failed: runs.filter((r) => r.verdict === 'fail').length,
    errored: runs.filter((r) => r.verdict === 'error').length,
  };
}

function planOf(r: RunRecord): ReportCoveragePlan {
  const plan = r.coverage!.plan!;
  // CoverageConfig.target is optional: a record may hold none (or null, read back from JSON).
  const target = coverageTarget(plan);
  const share = coverageShare(plan);
  return {
    runId: r.id,
    at: r.startedAt,
    everyMs: plan.everyMs,
    points: plan.points,
    proven: plan.proven,
    sharePercent: share === null ? null : oneDecimal(share * 100),
    targetPercent: target === null ? null : oneDecimal(target * 100),
    targetMet: target === null || share === null ? null : share >= target,
    neverVerified: plan.neverVerified,
    planned: (plan.planned ?? []).map((p) => ({ key: p.key, why: p.why })),
  };
}

function coverageRun(r: RunRecord): ReportCoverageRun {
  const point = r.coverage!.point!;
  const restore = r.phases.find((p) => p.name === 'fetch_restore' && p.outcome !== 'skipped' && p.outcome !== 'unfinished');
  const first = r.verdict === 'pass' ? undefined : r.reasons[0];
  return {
    runId: r.id,
    startedAt: r.startedAt,
    status: r.status,
    verdict: r.verdict,
    key: point.key,
    why: point.why,
    planRunId: point.planRunId,
    restoreMs: r.metrics.rtoMeasuredMs ?? restore?.durationMs ?? null,
    reason: first ? { code: first.code, message: first.message } : null,
  };
}

function oneDecimal(n: number): number {
  return Math.round(n * 10) / 10;
}
