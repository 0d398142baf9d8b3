import { AXIS, type Chart, CHART_WIDTH, type ChartShape, FAIL as BELOW, GRID, round } from './charts.js';
import type { MonthlyReport } from './model.js';

/**
 * Retention coverage as a chart: one horizontal bar per policy with a plan in the period, the
 * share of its restore points proven within `every` (proven / points), the target marked by a
 * vertical line. A bar at or above its target is green, below it red, without a target blue. Laid
 * out as the trend charts are (charts.ts: shapes, CHART_WIDTH wide), written as SVG into the HTML
 * (`chartSvg(chart, 'coverage-chart')`) and drawn by chart-pdf.ts into the PDF.
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

export function coverageChart(report: MonthlyReport): Chart {
  const bars = coverageBars(report);
  const height = coverageChartHeight(bars.length);
  const plotW = CHART_WIDTH - LEFT - RIGHT;
  const x = (percent: number): number => LEFT + (plotW * Math.min(Math.max(percent, 0), 100)) / 100;
  const bottom = TOP + Math.max(1, bars.length) * ROW;
  const title = `Restore points proven restorable per policy, ${report.period.label}`;
  const items: ChartShape[][] = [[{ kind: 'rect', x: 0, y: 0, width: CHART_WIDTH, height, fill: '#ffffff' }]];
  items.push([{ kind: 'text', x: LEFT, y: 14, size: 10, fill: AXIS, text: 'Share of restore points proven (newest plan); black line: target' }]);
  for (const tick of [0, 25, 50, 75, 100]) {
    const tx = round(x(tick));
    items.push([{ kind: 'line', x1: tx, y1: TOP - 4, x2: tx, y2: bottom, stroke: GRID, width: 1 }]);
    items.push([{ kind: 'text', x: tx, y: bottom + 13, size: 10, fill: AXIS, anchor: 'middle', text: `${tick}%` }]);
  }
  if (bars.length === 0) items.push([{ kind: 'text', x: round(LEFT + plotW / 2), y: TOP + ROW / 2 + 3, size: 11, fill: AXIS, anchor: 'middle', text: 'No coverage plan in this period' }]);
  bars.forEach((b, i) => {
    const y = TOP + i * ROW + ROW - BAR - 4;
    const share = b.sharePercent ?? 0;
    const below = b.targetPercent !== null && share < b.targetPercent;
    const color = b.targetPercent === null ? PLAIN : below ? BELOW : OK;
    items.push([{ kind: 'text', x: LEFT - 6, y: round(y + BAR - 3), size: 10, fill: '#222', anchor: 'end', text: clip(b.policy, 22) }]);
    items.push([{ kind: 'rect', x: LEFT, y: round(y), width: plotW, height: BAR, fill: '#f1f1f1' }]);
    items.push([
      { kind: 'rect', cls: 'coverage-bar', policy: b.policy, x: LEFT, y: round(y), width: round(x(share) - LEFT), height: BAR, fill: color, tooltip: `${b.policy}: ${b.proven} of ${b.points} restore points proven` },
    ]);
    if (b.targetPercent !== null) {
      const tx = round(x(b.targetPercent));
      items.push([{ kind: 'line', cls: 'coverage-target', x1: tx, y1: round(y - 2), x2: tx, y2: round(y + BAR + 2), stroke: TARGET, width: 2 }]);
      items.push([{ kind: 'text', x: tx, y: round(y - 4), size: 8, fill: TARGET, anchor: 'middle', text: `target ${b.targetPercent}%` }]);
    }
    const label = `${b.proven}/${b.points} (${b.sharePercent === null ? '-' : `${b.sharePercent}%`})`;
    items.push([{ kind: 'text', x: LEFT + plotW + 6, y: round(y + BAR - 3), size: 9, fill: below ? BELOW : '#222', text: label }]);
  });
  return { width: CHART_WIDTH, height, title, items };
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}
