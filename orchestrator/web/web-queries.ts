import type { BootVerdict, CoveragePlan, CoveragePoint, Reason, RunStatus, Verdict } from '../core/domain.js';
import { quoteSchema } from '../evidence/migrate.js';
import { json } from '../evidence/row-values.js';
import type { RunStore } from '../evidence/run-store.js';
import type { ChartPoint } from './html.js';

/**
 * The few light read queries the dashboard and /metrics need beyond RunStore's: they read a
 * handful of columns of many runs (charts, counters, the last verdict per policy), where
 * RunStore would load whole records. Plain SQL that runs on PostgreSQL and PGlite alike.
 */

type Row = Record<string, unknown>;

/** SQL over the runs table as `r`: not a coverage run of an older restore point (those are no word on the newest backup). */
const NOT_POINT = "(r.coverage IS NULL OR NOT (r.coverage ? 'point'))";

function runsTable(runs: RunStore): string {
  return `${quoteSchema(runs.schema)}.runs`;
}

/** Per named policy, its last `perPolicy` finished runs of the newest backup since `since`, oldest first: restore time and verdict. */
export async function restoreSeries(runs: RunStore, opts: { since: string; perPolicy: number; policies: readonly string[] }): Promise<Map<string, ChartPoint[]>> {
  if (opts.policies.length === 0) return new Map();
  // Each policy's newest runs are one probe of the (policy, started_at, id) index, LIMIT per
  // policy. The points come back as one JSON value ({policy: [[ms, rto, verdict], ...]}): with
  // 1,045 policies, 20,900 rows of four columns cost more to hand over and convert than to find
  // (the board in full, bench/evidence-scale.ts).
  const { rows } = await runs.executor.query<Row>(
    `SELECT json_object_agg(names.policy, s.points) AS series FROM unnest($3::text[]) AS names(policy) CROSS JOIN LATERAL (
       SELECT json_agg(json_build_array(floor(extract(epoch FROM x.started_at) * 1000), x.rto, x.verdict) ORDER BY x.started_at, x.id) AS points FROM (
         SELECT r.started_at, r.id, r.verdict, (r.metrics->>'rtoMeasuredMs')::float8 AS rto FROM ${runsTable(runs)} r
          WHERE r.policy = names.policy AND r.started_at >= $1::timestamptz AND r.status <> 'running' AND ${NOT_POINT}
          ORDER BY r.started_at DESC, r.id DESC LIMIT $2
       ) x
     ) s WHERE s.points IS NOT NULL`,
    [opts.since, opts.perPolicy, [...opts.policies]],
  );
  const series = (json(rows[0]?.series) ?? {}) as Record<string, Array<[number, number | null, string | null]>>;
  return new Map(
    Object.entries(series).map(([policy, points]) => [
      policy,
      points.map(([ms, rto, verdict]): ChartPoint => ({ at: new Date(ms).toISOString(), value: rto, verdict: verdict as Verdict | null })),
    ]),
  );
}

export interface LastVerdict {
  verdict: Verdict;
  startedAt: string;
  /** When the run ended (finished, cancelled or found aborted). */
  endedAt: string;
}

/** Each policy's newest measured restore time (RTO) of its newest backup, in ms. */
export async function lastRestoreTimes(runs: RunStore): Promise<Map<string, { ms: number; startedAt: string }>> {
  const { rows } = await runs.executor.query<Row>(
    `SELECT DISTINCT ON (policy) policy, (metrics->>'rtoMeasuredMs')::float8 AS rto, started_at FROM ${runsTable(runs)} r
      WHERE metrics ? 'rtoMeasuredMs' AND ${NOT_POINT} ORDER BY policy, started_at DESC, id DESC`,
  );
  return new Map(rows.map((r) => [String(r.policy), { ms: Number(r.rto), startedAt: iso(r.started_at) }]));
}

export interface LastBoot {
  runId: string;
  startedAt: string;
  verdict: BootVerdict;
  bootMs: number;
}

/** Each vm policy's newest run that recorded a boot: its boot verdict and boot time. */
export async function lastBoots(runs: RunStore, policies: readonly string[]): Promise<Map<string, LastBoot>> {
  const rows = await runs.newestPerPolicy("r.policy, r.id, r.started_at, r.boot->>'verdict' AS verdict, (r.boot->>'bootMs')::float8 AS boot_ms", {
    where: 'r.boot IS NOT NULL',
    policies,
  });
  return new Map(
    rows.map((r) => [String(r.policy), { runId: String(r.id), startedAt: iso(r.started_at), verdict: String(r.verdict) as BootVerdict, bootMs: Number(r.boot_ms) }]),
  );
}

export interface CoveragePlanView {
  /** The run of the newest backup that made the plan. */
  runId: string;
  startedAt: string;
  plan: CoveragePlan;
}

/**
 * Retention coverage: each named policy's newest plan (the newest run with coverage.plan), in one
 * query (newestPerPolicy: one probe of the (policy, started_at, id) index per policy). Name only
 * the policies with `coverage:`: for them nearly every run of the newest backup carries a plan,
 * so each probe stops within a few rows; a policy without any would scan all its runs.
 */
export async function coveragePlans(runs: RunStore, policies: readonly string[]): Promise<Map<string, CoveragePlanView>> {
  if (policies.length === 0) return new Map();
  const rows = await runs.newestPerPolicy("r.policy, r.id, r.started_at, r.coverage->'plan' AS plan", { where: "r.coverage ? 'plan'", policies });
  return new Map(rows.map((r) => [String(r.policy), { runId: String(r.id), startedAt: iso(r.started_at), plan: json(r.plan) as CoveragePlan }]));
}

export interface CoverageRunView {
  id: string;
  startedAt: string;
  status: RunStatus;
  verdict: Verdict | null;
  point: CoveragePoint;
  reasons: Reason[];
}

/** The policy's newest coverage runs (older restore points), newest first. */
export async function recentCoverageRuns(runs: RunStore, policy: string, limit: number): Promise<CoverageRunView[]> {
  const { rows } = await runs.executor.query<Row>(
    `SELECT r.id, r.started_at, r.status, r.verdict, r.coverage->'point' AS point, r.reasons FROM ${runsTable(runs)} r
      WHERE r.policy = $1 AND r.coverage ? 'point' ORDER BY r.started_at DESC, r.id DESC LIMIT $2`,
    [policy, limit],
  );
  return rows.map((r) => ({
    id: String(r.id),
    startedAt: iso(r.started_at),
    status: String(r.status) as RunStatus,
    verdict: r.verdict === null || r.verdict === undefined ? null : (String(r.verdict) as Verdict),
    point: json(r.point) as CoveragePoint,
    reasons: (json(r.reasons) as Reason[] | null) ?? [],
  }));
}

/** Runs per policy and verdict, all time (running runs excluded). */
export async function runCounts(runs: RunStore): Promise<{ policy: string; verdict: Verdict; count: number }[]> {
  const { rows } = await runs.executor.query<Row>(
    `SELECT policy, verdict, count(*) AS n FROM ${runsTable(runs)} WHERE verdict IS NOT NULL GROUP BY policy, verdict`,
  );
  return rows.map((r) => ({ policy: String(r.policy), verdict: String(r.verdict) as Verdict, count: Number(r.n) }));
}

/** The months (YYYY-MM in `timezone`) in which each client has runs, newest first, since `since`. */
export async function monthsWithRuns(runs: RunStore, since: string, timezone: string): Promise<Map<string, string[]>> {
  const { rows } = await runs.executor.query<Row>(
    `SELECT DISTINCT client, to_char(started_at AT TIME ZONE $2, 'YYYY-MM') AS month FROM ${runsTable(runs)}
      WHERE started_at >= $1::timestamptz ORDER BY client, month DESC`,
    [since, timezone],
  );
  const out = new Map<string, string[]>();
  for (const r of rows) out.set(String(r.client), [...(out.get(String(r.client)) ?? []), String(r.month)]);
  return out;
}

function iso(v: unknown): string {
  return (v instanceof Date ? v : new Date(String(v))).toISOString();
}
