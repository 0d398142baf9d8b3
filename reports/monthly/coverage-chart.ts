import { html, joinHtml, type SafeHtml } from '../../orchestrator/core/html.js';
import { AXIS, CHART_WIDTH, FAIL as BELOW, FONT, GRID } from './charts.js';
import type { MonthlyReport } from './model.js';

/**
 * Retention coverage as a chart: one horizontal bar per policy with a plan in the period, the
 * share of its restore points proven within `every` (proven / points), the target marked by a
 * vertical line. A bar at or above its target is green, below it red, without a target blue. The
 * same SVG goes inline into the HTML and through svg-to-pdfkit into the PDF (CHART_WIDTH wide,
 * as the trend charts).
 */

const LEFT = 130;
const RIGHT = 80;
const TOP = 26;
const ROW = 32;
const BAR = 14;
const BOTTOM = 30;
const OK = '#2e7d32';
const PLAIN = '#1565c0';
const TARGET = '#222222';

export interface CoverageBar {
  policy: string;
  points: number;
  proven: number;
  sharePercent: number | null;
  targetPercent: number | null;
}

/** The bars of the report's policies that have a plan in the period. */
export function coverageBars(report: MonthlyReport): CoverageBar[] {
  return report.policies.flatMap((p) => {
    const plan = p.coverage?.plan;
    return plan ? [{ policy: p.policy, points: plan.points, proven: plan.proven, sharePercent: plan.sharePercent, targetPercent: plan.targetPercent }] : [];
  });
}

/** The chart's height for `bars` bars (the PDF scales it to the page's width). */
export function coverageChartHeight(bars: number): number {
  return TOP + Math.max(1, bars) * ROW + BOTTOM;
}

export function coverageChart(report: MonthlyReport): SafeHtml {
  const bars = coverageBars(report);
  const height = coverageChartHeight(bars.length);
  const plotW = CHART_WIDTH - LEFT - RIGHT;
  const x = (percent: number): number => LEFT + (plotW * Math.min(Math.max(percent, 0), 100)) / 100;
  const bottom = TOP + Math.max(1, bars.length) * ROW;
  const title = `Restore points proven restorable per policy, ${report.period.label}`;
  const out: SafeHtml[] = [html`<title>${title}</title>`, html`<rect x="0" y="0" width="${CHART_WIDTH}" height="${height}" fill="#ffffff"/>`];
  out.push(html`<text x="${LEFT}" y="14" font-size="10" fill="${AXIS}">Share of restore points proven (newest plan); black line: target</text>`);
  for (const tick of [0, 25, 50, 75, 100]) {
    const tx = fmt(x(tick));
    out.push(html`<line x1="${tx}" y1="${TOP - 4}" x2="${tx}" y2="${bottom}" stroke="${GRID}" stroke-width="1"/>`);
    out.push(html`<text x="${tx}" y="${bottom + 13}" font-size="10" fill="${AXIS}" text-anchor="middle">${`${tick}%`}</text>`);
  }
  if (bars.length === 0) out.push(html`<text x="${fmt(LEFT + plotW / 2)}" y="${TOP + ROW / 2 + 3}" font-size="11" fill="${AXIS}" text-anchor="middle">No coverage plan in this period</text>`);
  bars.forEach((b, i) => {
    const y = TOP + i * ROW + ROW - BAR - 4;
    const share = b.sharePercent ?? 0;
    const below = b.targetPercent !== null && share < b.targetPercent;
    const color = b.targetPercent === null ? PLAIN : below ? BELOW : OK;
    out.push(html`<text x="${LEFT - 6}" y="${fmt(y + BAR - 3)}" font-size="10" fill="#222" text-anchor="end">${clip(b.policy, 22)}</text>`);
    out.push(html`<rect x="${LEFT}" y="${fmt(y)}" width="${plotW}" height="${BAR}" fill="#f1f1f1"/>`);
    out.push(
      html`<rect class="coverage-bar" data-policy="${b.policy}" x="${LEFT}" y="${fmt(y)}" width="${fmt(x(share) - LEFT)}" height="${BAR}" fill="${color}"><title>${`${b.policy}: ${b.proven} of ${b.points} restore points proven`}</title></rect>`,
    );
    if (b.targetPercent !== null) {
      const tx = fmt(x(b.targetPercent));
      out.push(html`<line class="coverage-target" x1="${tx}" y1="${fmt(y - 2)}" x2="${tx}" y2="${fmt(y + BAR + 2)}" stroke="${TARGET}" stroke-width="2"/>`);
      out.push(html`<text x="${tx}" y="${fmt(y - 4)}" font-size="8" fill="${TARGET}" text-anchor="middle">${`target ${b.targetPercent}%`}</text>`);
    }
    const label = `${b.proven}/${b.points} (${b.sharePercent === null ? '-' : `${b.sharePercent}%`})`;
    out.push(html`<text x="${LEFT + plotW + 6}" y="${fmt(y + BAR - 3)}" font-size="9" fill="${below ? BELOW : '#222'}">${label}</text>`);
  });
  return html`<svg xmlns="http://www.w3.org/2000/svg" class="coverage-chart" viewBox="0 0 ${CHART_WIDTH} ${height}" width="${CHART_WIDTH}" height="${height}" role="img" aria-label="${title}" font-family="${FONT}">
${joinHtml(out, '\n')}
</svg>`;
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

function fmt(n: number): string {
  return (Math.round(n * 10) / 10).toString();
}
