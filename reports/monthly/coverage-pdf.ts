import { coverageChart, coverageBars } from './coverage-chart.js';
import type { PolicyCoverage } from './coverage-section.js';
import type { MonthlyReport, PolicySection } from './model.js';
import { chart, clip, COLORS, type Doc, heading, MARGIN, MUTED, para, table, TEXT, verdictCell, widths } from './pdf-blocks.js';
import { COVERAGE_WHY_LABEL, coverageCountsText, coveragePlanText, coverageReasonText, rto, short, when } from './text.js';

/**
 * The PDF report's "Retention coverage" section, as the HTML's (coverage-html.ts): the share chart
 * (the same shapes as its SVG), then per policy its newest plan, the counts, the older restore points that
 * failed in red, and a table of its coverage runs. Drawn only when some policy has coverage.
 */
export function coveragePdf(doc: Doc, report: MonthlyReport): void {
  const withCoverage = report.policies.filter((p): p is PolicySection & { coverage: PolicyCoverage } => p.coverage !== null);
  if (withCoverage.length === 0) return;
  heading(doc, 'Retention coverage');
  para(
    doc,
    'Besides the newest backup, older restore points are restored now and then, so that every restore point is proven restorable within a set time. These coverage runs are not counted in the pass rates, RPO and RTO figures and trends.',
    { size: 7.5, color: MUTED, gap: 6 },
  );
  const bars = coverageBars(report);
  if (bars.length > 0) chart(doc, coverageChart(report), 'Restore points proven restorable (share per policy; vertical line: target)');
  for (const p of withCoverage) policyCoverage(doc, report, p.policy, p.coverage);
}

/** The summary's line about coverage, when there is some: red when an older point failed. */
export function coverageSummaryPdf(doc: Doc, report: MonthlyReport): void {
  const c = report.summary.coverage;
  if (!c) return;
  const failed = c.failed > 0 ? ` (${c.failed} older restore point${c.failed === 1 ? '' : 's'} FAILED to restore)` : '';
  para(doc, `Retention coverage: ${coverageCountsText(c)}${failed}; see Retention coverage.`, { size: 8.5, bold: c.failed > 0, color: c.failed > 0 ? COLORS.fail : c.errored > 0 ? COLORS.error : TEXT, gap: 6 });
}

function policyCoverage(doc: Doc, report: MonthlyReport, policy: string, c: PolicyCoverage): void {
  heading(doc, policy, 2);
  const plan = c.plan;
  if (plan) {
    para(doc, `${coveragePlanText(plan)}.`, { size: 8.5, color: plan.targetMet === false ? COLORS.fail : TEXT, bold: plan.targetMet === false, gap: 1 });
    const next = plan.planned.length > 0 ? `; planned next: ${plan.planned.map((x) => `${x.key} (${COVERAGE_WHY_LABEL[x.why]})`).join(', ')}` : '';
    para(doc, `Newest plan: run ${short(plan.runId)}, ${when(report, plan.at)}${next}.`, { size: 7.5, color: MUTED, gap: 2 });
  } else {
    para(doc, 'No plan in this period.', { size: 8.5, color: MUTED, gap: 2 });
  }
  para(doc, `${coverageCountsText(c)}.`, { size: 8.5, gap: 3 });
  for (const r of c.coverageRuns.filter((x) => x.verdict === 'fail' || x.verdict === 'error')) {
    const color = r.verdict === 'fail' ? COLORS.fail : COLORS.error;
    const y0 = doc.y;
    para(doc, `${when(report, r.startedAt)}  restore point ${r.key}  ${r.verdict === 'fail' ? 'FAILED' : 'could not be verified (error)'}  (run ${r.runId})`, { size: 8.5, bold: true, color, indent: 8, gap: 1 });
    para(doc, coverageReasonText(r), { size: 8, indent: 8, gap: 1 });
    if (doc.y > y0) doc.rect(MARGIN, y0, 3, doc.y - y0).fill(color);
    doc.y += 4;
  }
  if (c.coverageRuns.length === 0) return para(doc, 'No coverage run in this period.', { color: MUTED });
  const [c0, c1, c2, c3, c4, c5, c6] = widths(66, 102, 50, 32, 54, 40, 118);
  table(
    doc,
    [
      { header: 'Started', width: c0! },
      { header: 'Restore point', width: c1! },
      { header: 'Why', width: c2! },
      { header: 'Verdict', width: c3! },
      { header: 'Restore time', width: c4!, align: 'right' },
      { header: 'Run', width: c5!, mono: true },
      { header: 'First reason', width: c6! },
    ],
    c.coverageRuns.map((r) => [when(report, r.startedAt), r.key, COVERAGE_WHY_LABEL[r.why], verdictCell(r.verdict, r.status), rto(r.restoreMs), short(r.runId), clip(coverageReasonText(r), 240)]),
  );
}
