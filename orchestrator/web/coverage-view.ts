import { belowTarget, coverageShare, coverageTarget } from '../core/coverage.js';
import type { CoveragePlan, CoverageWhy, RunRecord } from '../core/domain.js';
import { formatAge } from '../core/format.js';
import { html, joinHtml, type SafeHtml } from '../core/html.js';
import { ago, badge, enc, when } from './html.js';
import type { CoveragePlanView, CoverageRunView } from './web-queries.js';

/**
 * Retention coverage on the dashboard (policy `coverage:`, domain.ts CoverageRecord): the
 * board's and the policy page's figure from the newest plan, the policy page's list of recent
 * coverage runs, and what a run's page says of its plan or of the older restore point it restored.
 */

export const WHY_TEXT: Record<CoverageWhy, string> = { never: 'never verified', oldest: 'oldest proof', sample: 'random sample' };

/** Proven / points as a whole percent; null without points. */
export function sharePercent(plan: Pick<CoveragePlan, 'points' | 'proven'>): number | null {
  const share = coverageShare(plan);
  return share === null ? null : Math.round(100 * share);
}

/** "coverage 12/49 (24%)", red when below the target. */
export function coverageFigure(view: CoveragePlanView): SafeHtml {
  const p = view.plan;
  const share = sharePercent(p);
  const target = coverageTarget(p);
  const title = `${p.proven} of ${p.points} restore points proven restorable within ${formatAge(p.everyMs)}${target !== null ? `; target ${Math.round(target * 100)}%` : ''}; ${p.neverVerified} never verified`;
  return html`<span class="coverage${belowTarget(p) ? ' err' : ''}" data-coverage="${p.proven}/${p.points}" title="${title}">coverage ${p.proven}/${p.points}${share !== null && ` (${share}%)`}</span>`;
}

/** The policy page's fact: the figure, the window, the target and the plan's run. */
export function coverageFact(view: CoveragePlanView, now: Date): SafeHtml {
  const p = view.plan;
  const target = coverageTarget(p);
  return html`${coverageFigure(view)} <span class="muted">proven within ${formatAge(p.everyMs)}${target !== null && `, target ${Math.round(target * 100)}%`}, ${p.neverVerified} never verified; plan of <a href="/runs/${enc(view.runId)}">run ${view.runId.slice(0, 8)}</a> ${ago(view.startedAt, now)}</span>${
    belowTarget(p) && html` <b class="err">below target</b>`
  }`;
}

/** The policy page's list of recent coverage runs. */
export function coverageRunsTable(runs: CoverageRunView[], now: Date): SafeHtml {
  if (runs.length === 0) return html`<p class="muted">No coverage run yet.</p>`;
  const rows = runs.map(
    (r) => html`<tr class="${r.verdict === 'pass' ? 'good' : r.verdict ? 'bad' : ''}" data-run="${r.id}"><td><a href="/runs/${enc(r.id)}">${when(r.startedAt)}</a><div class="small muted">${ago(r.startedAt, now)}</div></td>
<td class="small">${r.point.key}</td><td>${WHY_TEXT[r.point.why] ?? r.point.why}</td><td>${badge(r.verdict ?? r.status)}</td><td class="small">${r.reasons.map((x) => x.code).join(', ')}</td></tr>`,
  );
  return html`<table class="coverage-runs"><thead><tr><th>Started</th><th>Restore point</th><th>Why</th><th>Verdict</th><th>Reasons</th></tr></thead><tbody>${joinHtml(rows, '\n')}</tbody></table>`;
}

/** A run page's part about coverage: the older point this run restored, or the plan it made. */
export function coverageRunSection(run: RunRecord): SafeHtml | false {
  const c = run.coverage;
  if (!c) return false;
  const point = c.point;
  if (point) {
    return html`<section class="coverage" id="coverage"><h2>Coverage run</h2>
<p>A coverage run of an <b>older restore point</b>: <code>${point.key}</code> (${WHY_TEXT[point.why] ?? point.why}), planned by <a href="/runs/${enc(point.planRunId)}">run ${point.planRunId}</a>, so that every restore point is proven restorable within ${formatAge(point.everyMs)}. Its backup's age is no RPO breach, and it does not count as the policy's last run.</p></section>`;
  }
  const plan = c.plan;
  if (!plan) return false;
  const target = coverageTarget(plan);
  const share = sharePercent(plan);
  const planned =
    plan.planned.length > 0
      ? html`<ol class="planned">${plan.planned.map((p) => html`<li><code>${p.key}</code> <span class="muted">${WHY_TEXT[p.why] ?? p.why}</span></li>`)}</ol>`
      : html`<p class="muted">No older restore point planned.</p>`;
  return html`<section class="coverage" id="coverage"><h2>Retention coverage</h2>
<dl class="facts"><dt>Restore points</dt><dd>${plan.points}</dd><dt>Proven</dt><dd>${plan.proven}${share !== null && ` (${share}%)`} <span class="muted">within ${formatAge(plan.everyMs)}</span>${belowTarget(plan) && html` <b class="err">below target</b>`}</dd>
<dt>Target</dt><dd>${target !== null ? `${Math.round(target * 100)}%` : html`<span class="muted">none</span>`}</dd><dt>Never verified</dt><dd>${plan.neverVerified}</dd></dl>
<h3>Planned older restore points</h3>${planned}</section>`;
}
