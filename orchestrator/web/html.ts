import { formatAge } from '../core/format.js';
import { html, raw, type SafeHtml } from '../core/html.js';

/**
 * Building blocks of the dashboard's server-rendered HTML (all through core/html.ts's `html`
 * template, which escapes every value): the page frame with its inline style sheet, times,
 * badges and small inline-SVG charts. No external resource, no script: the
 * Content-Security-Policy the server sends forbids both.
 */

/** A path segment or query value. */
export const enc = encodeURIComponent;

export interface Frame {
  title: string;
  /** Who is signed in, for the header; absent on the login page. */
  who?: { name: string; scope: string };
  /** Which nav entry is current. */
  nav?: 'board' | 'runs' | 'reports';
  body: SafeHtml;
}

export function page(f: Frame): SafeHtml {
  const link = (href: string, label: string, key: Frame['nav']): SafeHtml => html`<a href="${href}"${f.nav === key && html` aria-current="page"`}>${label}</a>`;
  const header =
    f.who &&
    html`<nav>${link('/', 'Board', 'board')}${link('/runs', 'Runs', 'runs')}${link('/reports', 'Reports', 'reports')}</nav>
<div class="who"><span title="token name">${f.who.name}</span> <span class="scope">${f.who.scope}</span>
<form method="post" action="/logout"><button type="submit">Log out</button></form></div>`;
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${f.title} · backproof</title><style>${CSS}</style></head>
<body><header><a class="brand" href="/">backproof</a>${header}</header>
<main>${f.body}</main></body></html>`;
}

// raw: a constant of this file (the text of a <style> element is not entity-decoded, so it cannot be escaped).
const CSS = raw(`
:root{--ok:#1a7f37;--fail:#cf222e;--error:#bc4c00;--muted:#656d76;--line:#d0d7de;--bg:#f6f8fa;--run:#0969da}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2328;background:#fff}
header{display:flex;align-items:center;gap:24px;padding:10px 24px;background:#24292f;color:#fff}
header a{color:#fff;text-decoration:none}.brand{font-weight:700;font-size:16px;letter-spacing:.3px}
nav{display:flex;gap:16px;flex:1}nav a{opacity:.8}nav a[aria-current]{opacity:1;border-bottom:2px solid #fff}
.who{display:flex;align-items:center;gap:8px;font-size:13px}.who .scope{opacity:.7}
.who form{margin:0}.who button{font:inherit;font-size:12px;padding:2px 8px;border-radius:4px;border:1px solid #fff6;background:transparent;color:#fff;cursor:pointer}
main{padding:16px 24px 40px;max-width:1400px}
h1{font-size:20px;margin:4px 0 12px}h2{font-size:16px;margin:24px 0 8px}
a{color:#0969da}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.4px;color:var(--muted);background:var(--bg);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:var(--muted)}.small{font-size:12px}
.badge{display:inline-block;min-width:52px;text-align:center;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;background:var(--muted)}
.badge.ok,.badge.pass{background:var(--ok)}.badge.fail,.badge.stale,.badge.alert{background:var(--fail)}.badge.error{background:var(--error)}
.badge.running{background:var(--run)}.badge.never,.badge.skipped{background:#8c959f}
.badge.booted{background:var(--ok)}.badge.not_booted,.badge.inconclusive{background:var(--fail)}
tr.bad td:first-child{box-shadow:inset 4px 0 0 var(--fail)}tr.good td:first-child{box-shadow:inset 4px 0 0 var(--ok)}
.summary{display:flex;gap:12px;margin:0 0 16px;flex-wrap:wrap}
.tile{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:120px;background:var(--bg)}
.tile b{display:block;font-size:22px}.tile.bad b{color:var(--fail)}.tile.good b{color:var(--ok)}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;overflow-wrap:anywhere}
.reasons{list-style:none;padding:0;margin:8px 0}.reasons li{border-left:4px solid var(--fail);background:#ffebe9;padding:6px 10px;margin:4px 0}
.reasons li.error{border-color:var(--error);background:#fff1e5}.reasons code{font-weight:600}
pre.log{background:#0d1117;color:#e6edf3;padding:10px 12px;border-radius:6px;overflow:auto;max-height:360px;font-size:12px;line-height:1.4}
.bar{position:relative;height:14px;background:var(--bg);border-radius:3px;min-width:160px}
.bar span{position:absolute;top:0;bottom:0;border-radius:3px;min-width:2px}
.bar .ok{background:var(--ok)}.bar .fail{background:var(--fail)}.bar .error{background:var(--error)}.bar .skipped{background:#d0d7de}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px 32px}
form.filters{display:flex;gap:8px;align-items:end;margin:0 0 12px;flex-wrap:wrap}form.filters label{display:flex;flex-direction:column;font-size:12px;color:var(--muted)}
input,select,button{font:inherit}input,select{padding:4px 6px;border:1px solid var(--line);border-radius:4px}
.login{max-width:460px;margin:60px auto;border:1px solid var(--line);border-radius:8px;padding:24px;background:var(--bg)}
.login input{width:100%;padding:8px;font-family:ui-monospace,monospace}.login button{margin-top:12px;padding:6px 16px;border-radius:6px;border:1px solid var(--ok);background:var(--ok);color:#fff;cursor:pointer}
.err{color:var(--fail);font-weight:600}
svg.spark{vertical-align:middle}
h3{font-size:14px;margin:16px 0 6px}
figure.shot{margin:0}figure.shot img{display:block;max-width:100%;height:auto;border:1px solid var(--line);border-radius:4px;background:#000}
figure.shot figcaption{margin-top:6px}code.sha{overflow-wrap:anywhere}
svg.timeline{max-width:100%;height:auto;display:block;margin:4px 0 8px}
pre.screen{white-space:pre;max-height:420px}
.downloads .month{display:inline-block;margin:0 18px 4px 0;white-space:nowrap}.downloads .month b{font-weight:600;margin-right:4px}.downloads a{margin-right:4px}
table.reports td:first-child{width:280px}
`);

/** "2026-11-05 03:00 UTC" with the full ISO time as a tooltip. */
export function when(iso: string | null | undefined): SafeHtml {
  if (!iso) return html`<span class="muted">-</span>`;
  return html`<time datetime="${iso}" title="${iso}">${iso.slice(0, 16).replace('T', ' ')} UTC</time>`;
}

/** "3.2h ago" with the time as a tooltip. */
export function ago(iso: string | null | undefined, now: Date): SafeHtml {
  if (!iso) return html`<span class="muted">never</span>`;
  return html`<time datetime="${iso}" title="${iso}">${formatAge(Math.max(0, now.getTime() - Date.parse(iso)))} ago</time>`;
}

export function badge(kind: string, label: string = kind): SafeHtml {
  return html`<span class="badge ${kind}">${label.toUpperCase()}</span>`;
}

export interface ChartPoint {
  at: string;
  /** Restore time (ms); null when the run measured none (it failed before readiness). */
  value: number | null;
  verdict: string | null;
}

const COLOR: Record<string, string> = { pass: '#1a7f37', fail: '#cf222e', error: '#bc4c00' };

/**
 * The top of a restore-time chart's scale: the largest time measured, with headroom; the target
 * counts only when it is near (a 10-minute target would flatten 70-second restores into a line).
 */
function scaleMax(points: ChartPoint[], targetMs: number | undefined, headroom: number): { max: number; showTarget: boolean } {
  const top = Math.max(1, ...points.map((p) => p.value ?? 0));
  const showTarget = targetMs !== undefined && targetMs <= top * 2.5;
  return { max: Math.max(top, showTarget ? targetMs! : 0) * headroom, showTarget };
}

/**
 * A small line of restore times, oldest to newest, from 0, with a dashed target line when the
 * target is within reach; runs without a measured time are red/orange ticks on the baseline.
 */
export function sparkline(points: ChartPoint[], opts: { width?: number; height?: number; targetMs?: number; label: string }): SafeHtml {
  const w = opts.width ?? 120;
  const h = opts.height ?? 28;
  if (points.length === 0) return html`<span class="muted small">no runs</span>`;
  const { max, showTarget } = scaleMax(points, opts.targetMs, 1.1);
  const pad = 3;
  const x = (i: number): number => (points.length === 1 ? w / 2 : pad + (i * (w - 2 * pad)) / (points.length - 1));
  const y = (v: number): number => h - pad - (v / max) * (h - 2 * pad);
  const measured = points.map((p, i) => (p.value !== null ? `${x(i).toFixed(1)},${y(p.value).toFixed(1)}` : null)).filter((s): s is string => s !== null);
  const parts: SafeHtml[] = [];
  if (showTarget) {
    const ty = y(opts.targetMs!).toFixed(1);
    parts.push(html`<line x1="0" x2="${w}" y1="${ty}" y2="${ty}" stroke="#cf222e" stroke-width="1" stroke-dasharray="3 2" opacity=".6"/>`);
  }
  if (measured.length > 1) parts.push(html`<polyline fill="none" stroke="#0969da" stroke-width="1.5" points="${measured.join(' ')}"/>`);
  points.forEach((p, i) => {
    if (p.value === null) {
      parts.push(html`<rect x="${(x(i) - 1.5).toFixed(1)}" y="${h - 8}" width="3" height="8" fill="${COLOR[p.verdict ?? ''] ?? '#8c959f'}"/>`);
    } else if (p.verdict !== 'pass' || i === points.length - 1 || measured.length === 1) {
      parts.push(html`<circle cx="${x(i).toFixed(1)}" cy="${y(p.value).toFixed(1)}" r="2.5" fill="${COLOR[p.verdict ?? ''] ?? '#0969da'}"/>`);
    }
  });
  return html`<svg class="spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${opts.label}"><title>${opts.label}</title>${parts}</svg>`;
}

const ROUND_STEPS_MS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600].map((s) => s * 1000);

/** A larger chart of restore times with axis labels, a target line and a tooltip per point. */
export function restoreChart(points: ChartPoint[], opts: { targetMs?: number; formatMs: (ms: number) => string }): SafeHtml {
  if (points.length === 0) return html`<p class="muted">No runs yet.</p>`;
  const w = 640;
  const h = 180;
  const left = 56;
  const bottom = 22;
  const top = 10;
  const right = 10;
  const scaled = scaleMax(points, opts.targetMs, 1);
  const showTarget = scaled.showTarget;
  // Grid lines at 0, one and two round steps (1s, 2s, 5s, 10s, 15s, 30s, 1m, 2m, 5m, ...).
  const step = ROUND_STEPS_MS.find((s) => s * 2 >= scaled.max) ?? Math.ceil(scaled.max / 2 / 3_600_000) * 3_600_000;
  const max = step * 2 * 1.05;
  const x = (i: number): number => (points.length === 1 ? (left + w - right) / 2 : left + (i * (w - left - right)) / (points.length - 1));
  const y = (v: number): number => h - bottom - (v / max) * (h - bottom - top);
  const parts: SafeHtml[] = [];
  for (const v of [0, step, 2 * step]) {
    parts.push(html`<line x1="${left}" x2="${w - right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#d0d7de"/>`);
    parts.push(html`<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" font-size="11" fill="#656d76">${opts.formatMs(v)}</text>`);
  }
  if (showTarget) {
    const ty = y(opts.targetMs!).toFixed(1);
    parts.push(html`<line x1="${left}" x2="${w - right}" y1="${ty}" y2="${ty}" stroke="#cf222e" stroke-dasharray="5 3"/>`);
    parts.push(html`<text x="${w - right}" y="${(Number(ty) - 4).toFixed(1)}" text-anchor="end" font-size="11" fill="#cf222e">RTO target ${opts.formatMs(opts.targetMs!)}</text>`);
  } else if (opts.targetMs !== undefined) {
    parts.push(html`<text x="${w - right}" y="${top + 4}" text-anchor="end" font-size="11" fill="#1a7f37">RTO target ${opts.formatMs(opts.targetMs)}: far above</text>`);
  }
  const line = points.map((p, i) => (p.value !== null ? `${x(i).toFixed(1)},${y(p.value).toFixed(1)}` : null)).filter((s): s is string => s !== null);
  if (line.length > 1) parts.push(html`<polyline fill="none" stroke="#0969da" stroke-width="2" points="${line.join(' ')}"/>`);
  points.forEach((p, i) => {
    const tip = `${p.at.slice(0, 16).replace('T', ' ')} UTC: ${p.verdict ?? 'running'}${p.value !== null ? `, restore ${opts.formatMs(p.value)}` : ', no restore time'}`;
    const color = COLOR[p.verdict ?? ''] ?? '#8c959f';
    parts.push(
      p.value === null
        ? html`<rect x="${(x(i) - 2).toFixed(1)}" y="${h - bottom - 12}" width="4" height="12" fill="${color}"><title>${tip}</title></rect>`
        : html`<circle cx="${x(i).toFixed(1)}" cy="${y(p.value).toFixed(1)}" r="3.5" fill="${color}"><title>${tip}</title></circle>`,
    );
  });
  const first = points[0]!.at.slice(0, 10);
  const last = points.at(-1)!.at.slice(0, 10);
  parts.push(html`<text x="${left}" y="${h - 6}" font-size="11" fill="#656d76">${first}</text>`);
  parts.push(html`<text x="${w - right}" y="${h - 6}" text-anchor="end" font-size="11" fill="#656d76">${last}</text>`);
  return html`<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="restore times of the last ${points.length} runs">${parts}</svg>`;
}
