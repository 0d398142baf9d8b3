import type { BootVerdict, CoverageWhy, Verdict } from '../../orchestrator/core/domain.js';
import type { CoverageCounts, ReportCoveragePlan, ReportCoverageRun } from './coverage-section.js';
import { formatAge, formatBytes, formatSeconds } from '../../orchestrator/core/format.js';
import { BOOT_VERDICT_LABEL, bootOutcome, screenshotText } from '../boot-text.js';
import type { BootFigures, MonthlyReport, PolicySection, ReportIncident, ReportRun, ReportScreenshot, TargetFigures } from './model.js';
import { formatLocal } from './period.js';

/**
 * The words and number formats the HTML and PDF renderers share, so that both say the same
 * thing the same way. Times are shown in the report's zone; measured RTOs as durations (4.2s,
 * 3m07s), RPOs and targets as ages (26.0h).
 */

export const REPORT_TITLE = 'Backup restore verification report';

export const VERDICT_LABEL: Record<Verdict, string> = { pass: 'pass', fail: 'FAIL', error: 'error' };

export function verdictText(v: Verdict | null, status?: string): string {
  if (status === 'running') return 'running';
  if (status === 'cancelled') return 'cancelled';
  return v === null ? '-' : VERDICT_LABEL[v];
}

export function when(report: MonthlyReport, iso: string | null, withTime = true): string {
  return iso === null ? '-' : formatLocal(iso, report.period.timezone, withTime);
}

export function rate(p: number | null): string {
  return p === null ? '-' : `${p.toFixed(1)}%`;
}

export function bytes(n: number | null): string {
  return n === null ? '-' : formatBytes(n);
}

export function rto(ms: number | null): string {
  return ms === null ? '-' : formatSeconds(ms);
}

export function age(ms: number | null): string {
  return ms === null ? '-' : formatAge(ms);
}

/** "3m07s / 30m" (measured against target). */
export function measuredVsTarget(measured: number | null, target: number | null, kind: 'rto' | 'rpo'): string {
  const m = kind === 'rto' ? rto(measured) : age(measured);
  return target === null ? m : `${m} / ${age(target)}`;
}

/** "worst 3m07s, median 2m55s against 30m: 12 of 12 met" */
export function targetSummary(f: TargetFigures, kind: 'rto' | 'rpo'): string {
  if (f.measured === 0) return f.targetMs === null ? 'not measured' : `target ${age(f.targetMs)}; not measured`;
  const show = kind === 'rto' ? rto : age;
  const figures = `worst ${show(f.worstMs)}, median ${show(f.medianMs)}`;
  if (f.targetMs === null && f.met + f.missed === 0) return `${figures}; no target`;
  const against = f.targetMs === null ? '' : ` against ${age(f.targetMs)}`;
  return `${figures}${against}: ${f.met} of ${f.met + f.missed} within target`;
}

export function lastSuccess(report: MonthlyReport, p: PolicySection): string {
  const s = p.lastSuccessfulRestore;
  if (!s) return 'never';
  return `${when(report, s.at)}${s.inPeriod ? '' : ' (before this period)'}`;
}

export function reasonsText(r: Pick<ReportRun, 'reasons'>): string {
  return r.reasons.map((x) => `${x.code}: ${x.message}`).join('; ');
}

export function incidentOutcome(report: MonthlyReport, i: ReportIncident): string {
  const parts = [`opened ${when(report, i.openedAt)}`];
  if (i.notifications > 0) {
    parts.push(`notified ${i.notifications}x${i.notifiedVia.length > 0 ? ` via ${i.notifiedVia.join(', ')}` : ''}${i.lastNotifiedAt ? ` (last ${when(report, i.lastNotifiedAt)})` : ''}`);
  } else {
    parts.push('no notification sent');
  }
  if (i.failedDeliveries > 0) parts.push(`${i.failedDeliveries} delivery failure${i.failedDeliveries === 1 ? '' : 's'}`);
  parts.push(i.resolvedAt ? `resolved ${when(report, i.resolvedAt)} after ${formatAge(i.openForMs)}${i.resolvedRunId ? ` by run ${short(i.resolvedRunId)}` : ''}` : `still open after ${formatAge(i.openForMs)}`);
  return parts.join('; ');
}

export function chainText(report: MonthlyReport): { ok: boolean; headline: string; lines: string[] } {
  const v = report.evidence.verification;
  if ('error' in v) return { ok: false, headline: 'Evidence chain NOT verified', lines: [v.error] };
  const lines = [`${v.checked} record${v.checked === 1 ? '' : 's'} checked${v.from || v.to ? ` (${v.from ? when(report, v.from) : 'start'} to ${v.to ? when(report, v.to) : 'end'})` : ''}`];
  if (v.firstBad) lines.push(`first bad record: ${v.firstBad.runId ? `run ${v.firstBad.runId}` : `seq ${v.firstBad.seq ?? '?'}`}: ${v.firstBad.problem}`);
  if (v.clientDigest && v.checkpoint) {
    const n = v.clientDigest.links;
    lines.push(`this client's ${n} link${n === 1 ? '' : 's'} through seq ${v.checkpoint.seq} match the digest signed by the checkpoint of ${when(report, v.checkpoint.madeAt)}`);
  }
  if (v.head) lines.push(`last link checked: seq ${v.head.seq}, hash ${v.head.hash}, signature ${v.head.signatureValid ? 'valid' : 'INVALID'}${v.head.keyFingerprint ? ` (key ${v.head.keyFingerprint})` : ''}`);
  lines.push(`runs of this period in the chain: ${report.evidence.chainedRuns}${report.evidence.unchainedRuns > 0 ? `; not (yet) chained: ${report.evidence.unchainedRuns}` : ''}`);
  return { ok: v.ok, headline: v.ok ? 'Evidence chain verified: no record was altered, removed, inserted or reordered' : 'Evidence chain verification FAILED', lines };
}

/** The first 8 characters of a run id, as `backproof runs show` accepts. */
export function short(id: string): string {
  return id.slice(0, 8);
}

/** A run's boot for a table cell: "booted 41.2s", "NOT BOOTED 2m00s", or "-". */
export function bootCell(verdict: BootVerdict | null, ms: number | null): string {
  return verdict === null || ms === null ? '-' : `${BOOT_VERDICT_LABEL[verdict]} ${formatSeconds(ms)}`;
}

/** "5 of 6 runs booted (1 not booted); boot time median 41.2s, worst 58.0s" */
export function bootSummary(b: BootFigures): string {
  const others = [b.notBooted > 0 ? `${b.notBooted} not booted` : '', b.inconclusive > 0 ? `${b.inconclusive} inconclusive` : ''].filter(Boolean).join(', ');
  const times = b.medianMs !== null ? `; boot time median ${formatSeconds(b.medianMs)}, worst ${formatSeconds(b.worstMs!)}` : '';
  return `${b.booted} of ${b.runs} run${b.runs === 1 ? '' : 's'} booted${others ? ` (${others})` : ''}${times}`;
}

/** The heading of a screenshot: "Latest boot: booted in 41.2s" / "Last successful boot of the month: ...". */
export function screenshotTitle(s: ReportScreenshot): string {
  return `${s.role === 'latest' ? 'Latest boot' : 'Last successful boot of the period'}: ${bootOutcome(s.bootVerdict, s.bootMs)}`;
}

/** The caption lines under a screenshot: the run, when, its verdict and boot, the image and its sealed sha256. */
export function screenshotCaption(report: MonthlyReport, s: ReportScreenshot): string[] {
  const lines = [`Run ${s.runId}, ${when(report, s.startedAt)}; run verdict ${verdictText(s.verdict)}; boot ${bootOutcome(s.bootVerdict, s.bootMs)}: ${s.reason}`];
  if (s.image) lines.push(`${s.image.name}, ${screenshotText(s.image)}; sha256 ${s.image.sha256}`);
  if (s.problem) lines.push(`No image shown: ${s.problem}.`);
  return lines;
}

// ---- retention coverage (coverage-section.ts) -------------------------------------------------------

export const COVERAGE_WHY_LABEL: Record<CoverageWhy, string> = { never: 'never verified', oldest: 'oldest proof', sample: 'random sample' };

/** "12 of 49 restore points proven within 30.0d (24.5%); target 90%: BELOW TARGET; 5 never verified" */
export function coveragePlanText(plan: ReportCoveragePlan): string {
  const share = plan.sharePercent === null ? '' : ` (${plan.sharePercent}%)`;
  const target = plan.targetPercent === null ? '; no target' : `; target ${plan.targetPercent}%: ${plan.targetMet === false ? 'BELOW TARGET' : 'met'}`;
  return `${plan.proven} of ${plan.points} restore point${plan.points === 1 ? '' : 's'} proven within ${formatAge(plan.everyMs)}${share}${target}; ${plan.neverVerified} never verified`;
}

/** "6 coverage runs of older restore points: 5 passed, 1 failed, 0 errors" */
export function coverageCountsText(c: CoverageCounts): string {
  return `${c.runs} coverage run${c.runs === 1 ? '' : 's'} of older restore points: ${c.passed} passed, ${c.failed} failed, ${c.errored} error${c.errored === 1 ? '' : 's'}`;
}

/** A coverage run's first reason, "code: message", or "-". */
export function coverageReasonText(r: ReportCoverageRun): string {
  return r.reason ? `${r.reason.code}: ${r.reason.message}` : '-';
}
