import type { Verdict } from '../../orchestrator/core/domain.js';
import { html, joinHtml, type SafeHtml } from '../../orchestrator/core/html.js';
import type { MonthlyReport } from './model.js';

/**
 * The report's trend charts: restore time (measured RTO) and backup size of every run over the
 * month, one line per policy, each run marked by its verdict (a dot passed, a red cross failed, an
 * orange diamond could not be verified), dashed lines for RTO targets. A chart is laid out once as
 * shapes in its own units (`Chart`, 520 units wide: about 1:1 at A4 width in the PDF); `chartSvg`
 * writes them as SVG markup through core/html.ts's template (every text escaped), inline in the
 * HTML, and chart-pdf.ts draws the same shapes with pdfkit into the PDF.
 */

export const CHART_WIDTH = 520;
export const CHART_HEIGHT = 240;
const HEIGHT = CHART_HEIGHT;
const LEFT = 58;
const RIGHT = 14;
const BOTTOM = 46;
/** Shared by the report's charts (coverage-chart.ts too). */
export const FONT = 'Helvetica, Arial, sans-serif';
export const AXIS = '#555';
export const GRID = '#e3e3e3';
export const FAIL = '#c62828';
const ERROR = '#ef6c00';
const PALETTE = ['#1565c0', '#2e7d32', '#6a1b9a', '#00838f', '#5d4037', '#ad1457', '#283593', '#558b2f'];
const DASHES = ['', '6 3', '2 3', '8 3 2 3'];

export interface ChartPoint {
  at: string;
  value: number | null;
  verdict: Verdict | null;
}

export interface ChartSeries {
  name: string;
  points: ChartPoint[];
  /** A horizontal dashed line (a target), in the series' colour. */
  target?: number | null;
}

export interface ChartSpec {
  /** For screen readers and the SVG's <title>. */
  title: string;
  /** The y axis's quantity, without the unit: "Restore time". */
  quantity: string;
  unit: 'duration' | 'bytes';
  from: string;
  to: string;
  /** The zone the period's days are counted in, for the x axis's title. */
  timezone: string;
  series: ChartSeries[];
}

/** One shape of a chart, in the chart's units (y down, as in SVG). */
export type ChartShape =
  | { kind: 'rect'; x: number; y: number; width: number; height: number; fill: string; cls?: string; policy?: string; tooltip?: string }
  | { kind: 'line'; x1: number; y1: number; x2: number; y2: number; stroke: string; width: number; dash?: string; opacity?: number; cls?: string }
  | { kind: 'polyline'; points: Array<[number, number]>; stroke: string; width: number; dash?: string }
  /** Text whose baseline starts at (x, y), or ends or is centred there (`anchor`); `vertical`: turned a quarter left about that point. */
  | { kind: 'text'; x: number; y: number; size: number; fill: string; text: string; anchor?: 'middle' | 'end'; vertical?: boolean }
  /** A run's verdict marker centred at (x, y): `color` is the dot's (a passed run's policy). */
  | { kind: 'marker'; x: number; y: number; verdict: Verdict | null; color: string };

export interface Chart {
  width: number;
  height: number;
  title: string;
  /** Drawn in order; the shapes of an item are written on one line of the SVG. */
  items: ChartShape[][];
}

/** Restore time of every run, per policy, with each policy's RTO target. */
export function restoreTimeChart(report: MonthlyReport): Chart {
  return periodChart(report, 'Restore time', 'duration', (r) => r.rtoMeasuredMs, (p) => p.rto.targetMs);
}

/** Size of the backup each run verified, per policy. */
export function backupSizeChart(report: MonthlyReport): Chart {
  return periodChart(report, 'Backup size', 'bytes', (r) => r.backupSizeBytes);
}

type ReportRun = MonthlyReport['runs'][number];
type ReportPolicy = MonthlyReport['policies'][number];

/** One line per policy with runs in the period: `value` of each counted run of the newest backup (coverage runs left out), and an optional target line. */
function periodChart(
  report: MonthlyReport,
  quantity: string,
  unit: ChartSpec['unit'],
  value: (r: ReportRun) => ChartSeries['points'][number]['value'],
  target?: (p: ReportPolicy) => ChartSeries['target'],
): Chart {
  return lineChart({
    title: `${quantity} per run, ${report.period.label}`,
    quantity,
    unit,
    from: report.period.from,
    to: report.period.to,
    timezone: report.period.timezone,
    series: report.policies
      .filter((p) => p.runs > 0)
      .map((p) => ({
        name: p.policy,
        ...(target ? { target: target(p) } : {}),
        points: report.runs.filter((r) => r.policy === p.policy && r.counted && r.coverage === null).map((r) => ({ at: r.startedAt, value: value(r), verdict: r.verdict })),
      })),
  });
}

/** A line chart over the period: x is time, y the values (null values sit on the x axis as markers only). */
export function lineChart(spec: ChartSpec): Chart {
  const from = Date.parse(spec.from);
  const to = Date.parse(spec.to);
  const legend = legendLayout(spec.series);
  const top = 14 + legend.height;
  const plotW = CHART_WIDTH - LEFT - RIGHT;
  const plotH = HEIGHT - top - BOTTOM;
  const values = spec.series.flatMap((s) => [...s.points.map((p) => p.value), s.target ?? null]).filter((v): v is number => v !== null && Number.isFinite(v));
  const scale = yScale(Math.max(0, ...values), spec.unit);
  const x = (iso: string): number => LEFT + (plotW * Math.min(Math.max(Date.parse(iso) - from, 0), to - from)) / Math.max(1, to - from);
  const y = (v: number): number => top + plotH - (plotH * v) / scale.max;
  const items: ChartShape[][] = [[{ kind: 'rect', x: 0, y: 0, width: CHART_WIDTH, height: HEIGHT, fill: '#ffffff' }]];
  // Grid and y axis labels.
  for (const tick of scale.ticks) {
    const ty = round(y(tick));
    items.push([{ kind: 'line', x1: LEFT, y1: ty, x2: LEFT + plotW, y2: ty, stroke: GRID, width: 1 }]);
    items.push([{ kind: 'text', x: LEFT - 6, y: round(y(tick) + 3.5), size: 10, fill: AXIS, anchor: 'end', text: scale.label(tick) }]);
  }
  // x axis: a tick per week from the 1st, labelled with the day of the month.
  for (const day of dayTicks(spec.from, spec.to)) {
    const tx = round(x(day.at));
    items.push([{ kind: 'line', x1: tx, y1: top + plotH, x2: tx, y2: top + plotH + 4, stroke: AXIS, width: 1 }]);
    items.push([{ kind: 'text', x: tx, y: top + plotH + 15, size: 10, fill: AXIS, anchor: 'middle', text: day.label }]);
  }
  items.push([{ kind: 'line', x1: LEFT, y1: top, x2: LEFT, y2: top + plotH, stroke: AXIS, width: 1 }]);
  items.push([{ kind: 'line', x1: LEFT, y1: top + plotH, x2: LEFT + plotW, y2: top + plotH, stroke: AXIS, width: 1 }]);
  items.push([{ kind: 'text', x: LEFT + plotW / 2, y: HEIGHT - 12, size: 10, fill: AXIS, anchor: 'middle', text: `Day of the month (${spec.timezone})` }]);
  items.push([{ kind: 'text', x: 13, y: round(top + plotH / 2), size: 10, fill: AXIS, anchor: 'middle', vertical: true, text: `${spec.quantity} (${scale.unitName})` }]);

  if (spec.series.every((s) => s.points.length === 0)) {
    items.push([{ kind: 'text', x: LEFT + plotW / 2, y: round(top + plotH / 2), size: 12, fill: AXIS, anchor: 'middle', text: 'No runs in this period' }]);
  }

  spec.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const dash = DASHES[Math.floor(i / PALETTE.length) % DASHES.length]!;
    if (s.target !== undefined && s.target !== null && s.target <= scale.max) {
      const ty = round(y(s.target));
      items.push([{ kind: 'line', x1: LEFT, y1: ty, x2: LEFT + plotW, y2: ty, stroke: color, width: 1, dash: '5 4', opacity: 0.8 }]);
      items.push([{ kind: 'text', x: LEFT + plotW - 2, y: round(y(s.target) - 3), size: 9, fill: color, anchor: 'end', text: `target ${s.name}` }]);
    }
    const measured = s.points.filter((p) => p.value !== null);
    if (measured.length > 1) {
      items.push([{ kind: 'polyline', points: measured.map((p) => [round(x(p.at)), round(y(p.value!))]), stroke: color, width: 1.6, ...(dash ? { dash } : {}) }]);
    }
    for (const p of s.points) items.push([{ kind: 'marker', x: x(p.at), y: p.value === null ? top + plotH : y(p.value), verdict: p.verdict, color }]);
  });

  items.push(...legend.items);
  return { width: CHART_WIDTH, height: HEIGHT, title: spec.title, items };
}

/** The chart as inline SVG markup (the HTML report's); `cls`, the svg element's class. */
export function chartSvg(chart: Chart, cls?: string): SafeHtml {
  return html`<svg xmlns="http://www.w3.org/2000/svg"${cls !== undefined && html` class="${cls}"`} viewBox="0 0 ${chart.width} ${chart.height}" width="${chart.width}" height="${chart.height}" role="img" aria-label="${chart.title}" font-family="${FONT}">
${chartSvgBody(chart)}
</svg>`;
}

/** The SVG's content: the title, then each item's shapes on a line. */
function chartSvgBody(chart: Chart): SafeHtml {
  return joinHtml([html`<title>${chart.title}</title>`, ...chart.items.map((item) => joinHtml(item.map(shapeSvg)))], '\n');
}

function shapeSvg(s: ChartShape): SafeHtml {
  switch (s.kind) {
    case 'rect': {
      const attrs = html`${s.cls !== undefined && html` class="${s.cls}"`}${s.policy !== undefined && html` data-policy="${s.policy}"`} x="${s.x}" y="${s.y}" width="${s.width}" height="${s.height}" fill="${s.fill}"`;
      return s.tooltip === undefined ? html`<rect${attrs}/>` : html`<rect${attrs}><title>${s.tooltip}</title></rect>`;
    }
    case 'line':
      return html`<line${s.cls !== undefined && html` class="${s.cls}"`} x1="${s.x1}" y1="${s.y1}" x2="${s.x2}" y2="${s.y2}" stroke="${s.stroke}" stroke-width="${s.width}"${s.dash !== undefined && html` stroke-dasharray="${s.dash}"`}${s.opacity !== undefined && html` opacity="${s.opacity}"`}/>`;
    case 'polyline':
      return html`<polyline points="${s.points.map(([px, py]) => `${px},${py}`).join(' ')}" fill="none" stroke="${s.stroke}" stroke-width="${s.width}"${s.dash !== undefined && html` stroke-dasharray="${s.dash}"`}/>`;
    case 'text':
      // A vertical text is written at 0,0 and moved there (the y axis's title).
      return s.vertical
        ? html`<text x="0" y="0" font-size="${s.size}" fill="${s.fill}"${s.anchor !== undefined && html` text-anchor="${s.anchor}"`} transform="translate(${s.x} ${s.y}) rotate(-90)">${s.text}</text>`
        : html`<text x="${s.x}" y="${s.y}" font-size="${s.size}" fill="${s.fill}"${s.anchor !== undefined && html` text-anchor="${s.anchor}"`}>${s.text}</text>`;
    case 'marker':
      return markerSvg(s.x, s.y, s.verdict, s.color);
  }
}

/** The cross's and the diamond's half sizes, the dot's radius, and their strokes. */
export const MARKER = {
  fail: { d: 3.6, stroke: FAIL, width: 2 },
  error: { d: 4, stroke: ERROR, width: 1.6, fill: '#ffffff' },
  pass: { r: 3, stroke: '#ffffff', width: 0.8 },
} as const;

function markerSvg(cx: number, cy: number, verdict: Verdict | null, color: string): SafeHtml {
  const X = fmt(cx);
  const Y = fmt(cy);
  if (verdict === 'fail') {
    const { d, stroke, width } = MARKER.fail;
    return html`<path d="M ${fmt(cx - d)} ${fmt(cy - d)} L ${fmt(cx + d)} ${fmt(cy + d)} M ${fmt(cx - d)} ${fmt(cy + d)} L ${fmt(cx + d)} ${fmt(cy - d)}" stroke="${stroke}" stroke-width="${width}" fill="none"/>`;
  }
  if (verdict === 'error') {
    const { d, stroke, width, fill } = MARKER.error;
    return html`<path d="M ${X} ${fmt(cy - d)} L ${fmt(cx + d)} ${Y} L ${X} ${fmt(cy + d)} L ${fmt(cx - d)} ${Y} Z" stroke="${stroke}" stroke-width="${width}" fill="${fill}"/>`;
  }
  const { r, stroke, width } = MARKER.pass;
  return html`<circle cx="${X}" cy="${Y}" r="${r}" fill="${color}" stroke="${stroke}" stroke-width="${width}"/>`;
}

/** The legend: the verdict markers, then one entry per policy; wrapped into rows. */
function legendLayout(series: ChartSeries[]): { height: number; items: ChartShape[][] } {
  const entries: Array<{ width: number; draw: (x: number, y: number) => ChartShape[] }> = [
    { width: 44, draw: (x, y) => [{ kind: 'marker', x: x + 4, y: y - 3.5, verdict: 'pass', color: AXIS }, { kind: 'text', x: x + 11, y, size: 10, fill: AXIS, text: 'pass' }] },
    { width: 40, draw: (x, y) => [{ kind: 'marker', x: x + 4, y: y - 3.5, verdict: 'fail', color: AXIS }, { kind: 'text', x: x + 11, y, size: 10, fill: AXIS, text: 'fail' }] },
    { width: 128, draw: (x, y) => [{ kind: 'marker', x: x + 4, y: y - 3.5, verdict: 'error', color: AXIS }, { kind: 'text', x: x + 11, y, size: 10, fill: AXIS, text: 'error (not verified)' }] },
    ...series.map((s, i) => {
      const color = PALETTE[i % PALETTE.length]!;
      const dash = DASHES[Math.floor(i / PALETTE.length) % DASHES.length]!;
      return {
        width: 30 + textWidth(s.name, 10),
        draw: (x: number, y: number): ChartShape[] => [
          { kind: 'line', x1: x, y1: y - 3.5, x2: x + 18, y2: y - 3.5, stroke: color, width: 2, ...(dash ? { dash } : {}) },
          { kind: 'text', x: x + 23, y, size: 10, fill: '#222', text: s.name },
        ],
      };
    }),
  ];
  const items: ChartShape[][] = [];
  let x = LEFT;
  let row = 0;
  for (const e of entries) {
    if (x + e.width > CHART_WIDTH - RIGHT && x > LEFT) {
      row++;
      x = LEFT;
    }
    items.push(e.draw(x, 12 + row * 14));
    x += e.width + 10;
  }
  return { height: (row + 1) * 14, items };
}

/** Helvetica's average width, generously: for laying out the legend. */
function textWidth(text: string, size: number): number {
  return Math.ceil(text.length * size * 0.56);
}

interface YScale {
  max: number;
  ticks: number[];
  unitName: string;
  label: (v: number) => string;
}

const DURATION_UNITS: Array<[string, number]> = [
  ['h', 3_600_000],
  ['min', 60_000],
  ['s', 1000],
];
const BYTE_UNITS: Array<[string, number]> = [
  ['GiB', 1024 ** 3],
  ['MiB', 1024 ** 2],
  ['KiB', 1024],
  ['bytes', 1],
];

/** A y axis from 0 to a round number above `max`, in the largest unit that keeps it at 1 or more. */
function yScale(max: number, unit: 'duration' | 'bytes'): YScale {
  const units = unit === 'duration' ? DURATION_UNITS : BYTE_UNITS;
  const fallback = units[units.length - 1]!;
  const [unitName, size] = units.find(([, s]) => max >= 1.5 * s) ?? (unit === 'duration' ? ['s', 1000] : fallback);
  const top = Math.max(max / size, 1) * 1.08;
  const step = niceStep(top / 4);
  const count = Math.ceil(top / step);
  const ticks = Array.from({ length: count + 1 }, (_, i) => i * step * size);
  const decimals = step < 1 ? Math.min(3, Math.ceil(-Math.log10(step))) : 0;
  return { max: count * step * size, ticks, unitName, label: (v) => (v / size).toFixed(decimals) };
}

function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(raw));
  const f = raw / power;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * power;
}

/** Days 1, 8, 15, 22, 29 of the period (in its zone, whose days are 24 h apart except across DST). */
function dayTicks(fromIso: string, toIso: string): Array<{ at: string; label: string }> {
  const from = Date.parse(fromIso);
  const to = Date.parse(toIso);
  const out: Array<{ at: string; label: string }> = [];
  for (let day = 1; ; day += 7) {
    const at = from + (day - 1) * 86_400_000;
    if (at >= to - 43_200_000) break;
    out.push({ at: new Date(at).toISOString(), label: String(day) });
  }
  return out;
}

/** To a tenth: the SVG's coordinates. */
export function round(n: number): number {
  return Math.round(n * 10) / 10;
}

function fmt(n: number): string {
  return round(n).toString();
}
