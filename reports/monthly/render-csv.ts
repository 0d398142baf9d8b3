import { csvName, csvValue, RUN_COLUMNS } from './columns.js';
import type { CoverageCounts } from './coverage-section.js';
import type { MonthlyReport, PolicySection, ReportRun, TargetFigures } from './model.js';

/**
 * The report as one CSV file (RFC 4180, UTF-8, CRLF), one row per record with a `section` column
 * telling the kinds of rows apart:
 * - `run`: one per run of the period, oldest first: the fields of the run table's columns
 *   (columns.ts: date, kind, verdict and status, backup key and size, RPO and RTO measured,
 *   target and met, boot, run id, reasons), plus duration, evidence hash and screenshot sha256;
 * - `policy`: one per policy (counts, pass rate, last successful restore, RTO/RPO figures;
 *   `verdict` is the policy's last verdict of the month);
 * - `summary`: one for the whole client and month.
 * Kind vm fills, at the end: `boot_verdict`, `boot_ms` and `screenshot_sha256` (the sealed one) on
 * run rows; `boot_median_ms` and `boot_worst_ms` (over the runs that booted) on policy rows.
 * Retention coverage fills, after those: on run rows of a coverage run (an older restore point,
 * not counted in the policy's runs and figures), `coverage_why` (never, oldest or sample) and
 * `coverage_plan_run_id`, empty on runs of the newest backup; on policy rows, the period's newest
 * plan (`coverage_points`, `coverage_proven`, `coverage_share_percent`, `coverage_target_percent`,
 * `coverage_never_verified`, `coverage_plan_run_id`) and the coverage runs' counts
 * (`coverage_runs`, `coverage_passed`, `coverage_failed`, `coverage_errored`); the summary row
 * has the counts over every policy.
 * Columns a section does not use are empty. Times are ISO 8601 UTC, durations in ms, sizes in
 * bytes, rates in percent; the same numbers as the JSON, HTML and PDF. Text cells that a
 * spreadsheet would run as a formula (starting with = + - @) are prefixed with an apostrophe.
 */
export const CSV_COLUMNS = [
  'section',
  'client',
  'month',
  'policy',
  'kind',
  'started_at',
  'run_id',
  'status',
  'verdict',
  'reasons',
  'backup_key',
  'backup_size_bytes',
  'rpo_measured_ms',
  'rpo_target_ms',
  'rpo_met',
  'rto_measured_ms',
  'rto_target_ms',
  'rto_met',
  'duration_ms',
  'hash',
  'runs',
  'passed',
  'failed',
  'errored',
  'pass_rate_percent',
  'last_success_at',
  'last_success_run_id',
  'rto_median_ms',
  'rto_worst_ms',
  'rto_within_target',
  'rto_beyond_target',
  'rpo_median_ms',
  'rpo_worst_ms',
  'rpo_within_target',
  'rpo_beyond_target',
  'boot_verdict',
  'boot_ms',
  'screenshot_sha256',
  'boot_median_ms',
  'boot_worst_ms',
  'coverage_why',
  'coverage_plan_run_id',
  'coverage_points',
  'coverage_proven',
  'coverage_share_percent',
  'coverage_target_percent',
  'coverage_never_verified',
  'coverage_runs',
  'coverage_passed',
  'coverage_failed',
  'coverage_errored',
] as const;

type Column = (typeof CSV_COLUMNS)[number];
type Row = Partial<Record<Column, string | number | boolean | null>>;

export function renderCsv(report: MonthlyReport): string {
  const base: Row = { client: report.client.name, month: report.period.month };
  const rows: Row[] = [
    ...report.runs.map((r) => ({ ...base, ...runRow(r) })),
    ...report.policies.map((p) => ({ ...base, ...policyRow(p) })),
    {
      ...base,
      section: 'summary',
      runs: report.summary.runs,
      passed: report.summary.passed,
      failed: report.summary.failed,
      errored: report.summary.errored,
      pass_rate_percent: report.summary.passRatePercent,
      ...figures('rto', report.summary.rto),
      ...figures('rpo', report.summary.rpo),
      ...coverageCounts(report.summary.coverage),
    },
  ];
  return [CSV_COLUMNS.join(','), ...rows.map((row) => CSV_COLUMNS.map((c) => cell(row[c])).join(','))].join('\r\n') + '\r\n';
}

function runRow(r: ReportRun): Row {
  const row: Record<string, string | number | boolean | null> = { section: 'run', policy: r.policy };
  for (const column of RUN_COLUMNS) for (const field of column.fields) row[csvName(field)] = csvValue(r, field);
  return {
    ...(row as Row),
    duration_ms: r.durationMs,
    hash: r.hash,
    screenshot_sha256: r.screenshotSha256,
    coverage_why: r.coverage?.why ?? null,
    coverage_plan_run_id: r.coverage?.planRunId ?? null,
  };
}

function policyRow(p: PolicySection): Row {
  return {
    section: 'policy',
    policy: p.policy,
    verdict: p.lastVerdict,
    runs: p.runs,
    passed: p.passed,
    failed: p.failed,
    errored: p.errored,
    pass_rate_percent: p.passRatePercent,
    last_success_at: p.lastSuccessfulRestore?.at ?? null,
    last_success_run_id: p.lastSuccessfulRestore?.runId ?? null,
    rpo_target_ms: p.rpo.targetMs,
    rto_target_ms: p.rto.targetMs,
    ...figures('rto', p.rto),
    ...figures('rpo', p.rpo),
    boot_median_ms: p.boot?.medianMs ?? null,
    boot_worst_ms: p.boot?.worstMs ?? null,
    ...coverageCounts(p.coverage),
    ...(p.coverage?.plan
      ? {
          coverage_plan_run_id: p.coverage.plan.runId,
          coverage_points: p.coverage.plan.points,
          coverage_proven: p.coverage.plan.proven,
          coverage_share_percent: p.coverage.plan.sharePercent,
          coverage_target_percent: p.coverage.plan.targetPercent,
          coverage_never_verified: p.coverage.plan.neverVerified,
        }
      : {}),
  };
}

function coverageCounts(c: CoverageCounts | null): Row {
  return c ? { coverage_runs: c.runs, coverage_passed: c.passed, coverage_failed: c.failed, coverage_errored: c.errored } : {};
}

function figures(which: 'rto' | 'rpo', f: TargetFigures): Row {
  return { [`${which}_median_ms`]: f.medianMs, [`${which}_worst_ms`]: f.worstMs, [`${which}_within_target`]: f.met, [`${which}_beyond_target`]: f.missed };
}

function cell(value: string | number | boolean | null | undefined): string {
  if (value === null || value === undefined) return '';
  if (typeof value !== 'string') return String(value);
  const text = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}
