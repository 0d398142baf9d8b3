import type { Verdict } from '../../orchestrator/core/domain.js';
import { html, joinHtml, type SafeHtml } from '../../orchestrator/core/html.js';
import type { MonthlyReport } from './model.js';

/**
 * The report's trend charts as SVG strings: restore time (measured RTO) and backup size of every
 * run over the month, one line per policy, each run marked by its verdict (a dot passed, a red
 * cross failed, an orange diamond could not be verified), dashed lines for RTO targets. Pure
 * markup through core/html.ts's template (every text escaped); the same SVG goes inline into HTML and through
 * svg-to-pdfkit into the PDF. Drawn 520 units wide: about 1:1 at A4 width in the PDF.
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

/** Restore time of every run, per policy, with each policy's RTO target. */
export function restoreTimeChart(report: MonthlyReport): SafeHtml {
  return periodChart(report, 'Restore time', 'duration', (r) => r.rtoMeasuredMs, (p) => p.rto.targetMs);
}

/** Size of the backup each run verified, per policy. */
export function backupSizeChart(report: MonthlyReport): SafeHtml {
  return periodChart(report, 'Backup size', 'bytes', (r) => r.backupSizeBytes);
}

type ReportRun = MonthlyReport['runs'][number];
type ReportPolicy = MonthlyReport['policies'][number];

/** One line per policy with runs in the period: `value` of each counted run of the newest backup (coverage runs left out), and an optional target line. */
function periodChart(
  report: MonthlyReport,
  quantity: string,
  unit: Parameters<typeof lineChart>[0]['unit'],
  value: (r: ReportRun) => ChartSeries['points'][number]['value'],
  target?: (p: ReportPolicy) => ChartSeries['target'],
): SafeHtml {
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
export function lineChart(spec: ChartSpec): SafeHtml {
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
  const out: SafeHtml[] = [];
  out.push(
    html`<title>${spec.title}</title>`,
    html`<rect x="0" y="0" width="${CHART_WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
  );
  // Grid and y axis labels.
  for (const tick of scale.ticks) {
    const ty = fmt(y(tick));
    out.push(html`<line x1="${LEFT}" y1="${ty}" x2="${LEFT + plotW}" y2="${ty}" stroke="${GRID}" stroke-width="1"/>`);
    out.push(html`<text x="${LEFT - 6}" y="${fmt(y(tick) + 3.5)}" font-size="10" fill="${AXIS}" text-anchor="end">${scale.label(tick)}</text>`);
  }
  // x axis: a tick per week from the 1st, labelled with the day of the month.
  for (const day of dayTicks(spec.from, spec.to)) {
    const tx = fmt(x(day.at));
    out.push(html`<line x1="${tx}" y1="${top + plotH}" x2="${tx}" y2="${top + plotH + 4}" stroke="${AXIS}" stroke-width="1"/>`);
    out.push(html`<text x="${tx}" y="${top + plotH + 15}" font-size="10" fill="${AXIS}" text-anchor="middle">${day.label}</text>`);
  }
  out.push(html`<line x1="${LEFT}" y1="${top}" x2="${LEFT}" y2="${top + plotH}" stroke="${AXIS}" stroke-width="1"/>`);
  out.push(html`<line x1="${LEFT}" y1="${top + plotH}" x2="${LEFT + plotW}" y2="${top + plotH}" stroke="${AXIS}" stroke-width="1"/>`);
  out.push(html`<text x="${LEFT + plotW / 2}" y="${HEIGHT - 12}" font-size="10" fill="${AXIS}" text-anchor="middle">Day of the month (${spec.timezone})</text>`);
  const yTitle = `${spec.quantity} (${scale.unitName})`;
  out.push(html`<text x="0" y="0" font-size="10" fill="${AXIS}" text-anchor="middle" transform="translate(13 ${fmt(top + plotH / 2)}) rotate(-90)">${yTitle}</text>`);

  if (spec.series.every((s) => s.points.length === 0)) {
    out.push(html`<text x="${LEFT + plotW / 2}" y="${fmt(top + plotH / 2)}" font-size="12" fill="${AXIS}" text-anchor="middle">No runs in this period</text>`);
  }

  spec.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const dash = DASHES[Math.floor(i / PALETTE.length) % DASHES.length]!;
    if (s.target !== undefined && s.target !== null && s.target <= scale.max) {
      const ty = fmt(y(s.target));
      out.push(html`<line x1="${LEFT}" y1="${ty}" x2="${LEFT + plotW}" y2="${ty}" stroke="${color}" stroke-width="1" stroke-dasharray="5 4" opacity="0.8"/>`);
      out.push(html`<text x="${LEFT + plotW - 2}" y="${fmt(y(s.target) - 3)}" font-size="9" fill="${color}" text-anchor="end">${`target ${s.name}`}</text>`);
    }
    const measured = s.points.filter((p) => p.value !== null);
    if (measured.length > 1) {
      const pts = measured.map((p) => `${fmt(x(p.at))},${fmt(y(p.value!))}`).join(' ');
      out.push(html`<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="1.6"${dash && html` stroke-dasharray="${dash}"`}/>`);
    }
    for (const p of s.points) out.push(marker(x(p.at), p.value === null ? top + plotH : y(p.value), p.verdict, color));
  });

  out.push(...legend.items);
  return html`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${CHART_WIDTH} ${HEIGHT}" width="${CHART_WIDTH}" height="${HEIGHT}" role="img" aria-label="${spec.title}" font-family="${FONT}">
${joinHtml(out, '\n')}
</svg>`;
}

function marker(cx: number, cy: number, verdict: Verdict | null, color: string): SafeHtml {
  const X = fmt(cx);
  const Y = fmt(cy);
  if (verdict === 'fail') {
    const d = 3.6;
    return html`<path d="M ${fmt(cx - d)} ${fmt(cy - d)} L ${fmt(cx + d)} ${fmt(cy + d)} M ${fmt(cx - d)} ${fmt(cy + d)} L ${fmt(cx + d)} ${fmt(cy - d)}" stroke="${FAIL}" stroke-width="2" fill="none"/>`;
  }
  if (verdict === 'error') {
    const d = 4;
    return html`<path d="M ${X} ${fmt(cy - d)} L ${fmt(cx + d)} ${Y} L ${X} ${fmt(cy + d)} L ${fmt(cx - d)} ${Y} Z" stroke="${ERROR}" stroke-width="1.6" fill="#ffffff"/>`;
  }
  return html`<circle cx="${X}" cy="${Y}" r="3" fill="${color}" stroke="#ffffff" stroke-width="0.8"/>`;
}

/** The legend: the verdict markers, then one entry per policy; wrapped into rows. */
function legendLayout(series: ChartSeries[]): { height: number; items: SafeHtml[] } {
  const entries: Array<{ width: number; draw: (x: number, y: number) => SafeHtml }> = [
    { width: 44, draw: (x, y) => html`${marker(x + 4, y - 3.5, 'pass', AXIS)}<text x="${x + 11}" y="${y}" font-size="10" fill="${AXIS}">pass</text>` },
    { width: 40, draw: (x, y) => html`${marker(x + 4, y - 3.5, 'fail', AXIS)}<text x="${x + 11}" y="${y}" font-size="10" fill="${AXIS}">fail</text>` },
    { width: 128, draw: (x, y) => html`${marker(x + 4, y - 3.5, 'error', AXIS)}<text x="${x + 11}" y="${y}" font-size="10" fill="${AXIS}">error (not verified)</text>` },
    ...series.map((s, i) => {
      const color = PALETTE[i % PALETTE.length]!;
      const dash = DASHES[Math.floor(i / PALETTE.length) % DASHES.length]!;
      return {
        width: 30 + textWidth(s.name, 10),
        draw: (x: number, y: number) =>
          html`<line x1="${x}" y1="${y - 3.5}" x2="${x + 18}" y2="${y - 3.5}" stroke="${color}" stroke-width="2"${dash && html` stroke-dasharray="${dash}"`}/><text x="${x + 23}" y="${y}" font-size="10" fill="#222">${s.name}</text>`,
      };
    }),
  ];
  const items: SafeHtml[] = [];
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

function fmt(n: number): string {
  return (Math.round(n * 10) / 10).toString();
}
