import { html, joinHtml, type SafeHtml } from '../../orchestrator/core/html.js';
import { chartSvg } from './charts.js';
import { coverageChart } from './coverage-chart.js';
import type { PolicyCoverage } from './coverage-section.js';
import type { MonthlyReport, PolicySection } from './model.js';
import { COVERAGE_WHY_LABEL, coverageCountsText, coveragePlanText, coverageReasonText, rto, short, verdictText, when } from './text.js';

/**
 * The HTML report's "Retention coverage" section (coverage-section.ts), present only when some
 * policy has coverage in the period: the share chart, then per policy its newest plan, its
 * coverage runs' counts, the older restore points that failed (marked as the report's other
 * failures are) and a table of every coverage run.
 */
export function coverageHtml(report: MonthlyReport): SafeHtml | false {
  const withCoverage = report.policies.filter((p): p is PolicySection & { coverage: PolicyCoverage } => p.coverage !== null);
  if (withCoverage.length === 0) return false;
  return html`<section class="coverage" id="coverage">
<h2>Retention coverage</h2>
<p class="muted">Besides the newest backup, older restore points are restored now and then, so that every restore point is proven restorable within a set time. These coverage runs are not counted in the pass rates, RPO and RTO figures and trends above.</p>
${withCoverage.some((p) => p.coverage.plan) && html`<figure><figcaption>Restore points proven restorable</figcaption>${chartSvg(coverageChart(report), 'coverage-chart')}</figure>`}
${joinHtml(
  withCoverage.map((p) => policyCoverageHtml(report, p.policy, p.coverage)),
  '\n',
)}
</section>`;
}

/** The summary's line about coverage, when there is some: the failing older points stand out. */
export function coverageSummaryHtml(report: MonthlyReport): SafeHtml | false {
  const c = report.summary.coverage;
  if (!c) return false;
  const bad = c.failed > 0 ? 'bad' : c.errored > 0 ? 'warn' : 'ok';
  return html`<p class="coverage-summary ${bad}">Retention coverage: ${coverageCountsText(c)}${c.failed > 0 && html` <strong>(${c.failed} older restore point${c.failed === 1 ? '' : 's'} FAILED to restore)</strong>`}. <a href="#coverage">Details</a>.</p>`;
}

function policyCoverageHtml(report: MonthlyReport, policy: string, c: PolicyCoverage): SafeHtml {
  const plan = c.plan;
  const failed = c.coverageRuns.filter((r) => r.verdict === 'fail' || r.verdict === 'error');
  return html`<article class="coverage-policy" data-policy="${policy}">
<h3>${policy}</h3>
<p>${
    plan
      ? html`<span class="${plan.targetMet === false ? 'bad' : ''}">${coveragePlanText(plan)}</span>. <span class="muted">Newest plan: run ${short(plan.runId)}, ${when(report, plan.at)}${plan.planned.length > 0 && `; planned next: ${plan.planned.map((x) => `${x.key} (${COVERAGE_WHY_LABEL[x.why]})`).join(', ')}`}.</span>`
      : html`<span class="muted">No plan in this period.</span>`
  }<br>${coverageCountsText(c)}.</p>
${joinHtml(
  failed.map(
    (r) => html`<div class="failure ${r.verdict}"><strong>${when(report, r.startedAt)} &middot; restore point <code>${r.key}</code> &middot; <span class="v-${r.verdict}">${verdictText(r.verdict)}</span></strong> <span class="muted">run ${r.runId}</span><br>${coverageReasonText(r)}</div>`,
  ),
  '\n',
)}
${
  c.coverageRuns.length === 0
    ? html`<p class="muted">No coverage run in this period.</p>`
    : html`<table class="coverage-runs">
<thead><tr><th>Started</th><th>Restore point</th><th>Why</th><th>Verdict</th><th class="num">Restore time</th><th>Run</th><th>First reason</th></tr></thead>
<tbody>
${joinHtml(
  c.coverageRuns.map((r) => {
    const tone = r.status === 'running' || r.status === 'cancelled' || r.verdict === null ? 'muted' : `v-${r.verdict}`;
    return html`<tr class="${r.verdict === 'fail' || r.verdict === 'error' ? `bad ${r.verdict}` : ''}" data-run="${r.runId}"><td class="when">${when(report, r.startedAt)}</td><td class="key">${r.key}</td><td>${COVERAGE_WHY_LABEL[r.why]}</td><td class="${tone}">${verdictText(r.verdict, r.status)}</td><td class="num">${rto(r.restoreMs)}</td><td><code>${short(r.runId)}</code></td><td>${coverageReasonText(r)}</td></tr>`;
  }),
  '\n',
)}
</tbody>
</table>`
}
</article>`;
}
