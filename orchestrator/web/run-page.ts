import { ERROR_CODES, type RunRecord } from '../core/domain.js';
import { formatAge, formatBytes, formatSeconds } from '../core/format.js';
import { notFound, type RequestContext } from './context.js';
import { html, type SafeHtml } from '../core/html.js';
import { ago, badge, enc, page, when } from './html.js';
import { who } from './pages.js';
import { visibleRun } from './api.js';
import { bootSection } from './boot-section.js';
import { coverageRunSection } from './coverage-view.js';

/**
 * GET /runs/:id: one run in detail, as `backproof runs show` prints it (reports/run-summary.ts),
 * laid out for a browser: why it failed first, then a vm run's boot (boot-section.ts), the phases
 * on a time line, the probes, the backup and sandbox facts, and the server's log excerpt.
 */
const LOG_TAIL_LINES = 60;

export async function runPage(ctx: RequestContext): Promise<SafeHtml> {
  const run = await visibleRun(ctx, ctx.params[0]!);
  if (!run) throw notFound('no such run');
  const now = ctx.deps.now();
  const verdict = run.verdict ?? run.status;
  const head = html`<h1>${badge(verdict)} <a href="/policies/${enc(run.policy)}">${run.policy}</a> <span class="muted small">run ${run.id}</span></h1>
<p class="muted">${run.client} · ${run.kind} · ${run.status}, started ${when(run.startedAt)} (${ago(run.startedAt, now)})${run.durationMs !== null && `, took ${formatSeconds(run.durationMs)}`} · host ${run.host} · backproof ${run.backproofVersion}</p>`;
  const reasons =
    run.reasons.length > 0 &&
    html`<h2>Reasons</h2><ul class="reasons">${run.reasons.map((r) => html`<li class="${(ERROR_CODES as readonly string[]).includes(r.code) ? 'error' : 'fail'}"><code>${r.code}</code> ${r.message}</li>`)}</ul>`;
  const body = html`${head}${reasons}${coverageRunSection(run)}${bootSection(run)}
<div class="grid2"><section><h2>Phases</h2>${phasesTable(run)}</section><section><h2>Targets</h2>${targets(run)}</section></div>
<h2>Probes</h2>${probesTable(run)}
<div class="grid2"><section><h2>Backup</h2>${backupFacts(run)}</section><section><h2>Sandbox</h2>${sandboxFacts(run)}</section></div>
${logTail(run)}`;
  return page({ title: `${verdict} ${run.policy}`, who: who(ctx), nav: 'runs', body });
}

const muted = (text: string): SafeHtml => html`<p class="muted">${text}</p>`;
const MISSED = html`<b class="err">missed</b>`;

function phasesTable(run: RunRecord): SafeHtml {
  if (run.phases.length === 0) return muted('No phases recorded.');
  const t0 = Date.parse(run.startedAt);
  const end = Math.max(t0 + 1, ...run.phases.map((p) => Date.parse(p.endedAt)));
  const span = end - t0;
  const rows = run.phases.map((p) => {
    const left = ((Date.parse(p.startedAt) - t0) / span) * 100;
    const width = (p.durationMs / span) * 100;
    return html`<tr><td>${p.name}</td><td>${badge(p.outcome)}</td><td class="num">${p.outcome === 'skipped' ? '-' : formatSeconds(p.durationMs)}</td>
<td><div class="bar" title="${`${p.startedAt} - ${p.endedAt}`}"><span class="${p.outcome}" style="left:${left.toFixed(2)}%;width:${Math.max(0, width).toFixed(2)}%"></span></div>${p.detail && html`<div class="small muted">${p.detail}</div>`}</td></tr>`;
  });
  return html`<table><thead><tr><th>Phase</th><th>Outcome</th><th class="num">Time</th><th>Time line (${formatSeconds(span)})</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function targets(run: RunRecord): SafeHtml {
  const m = run.metrics;
  const facts: [string, SafeHtml][] = [];
  if (m.rpoMeasuredMs !== undefined) {
    facts.push(['RPO measured', html`${formatAge(m.rpoMeasuredMs)}${m.rpoTargetMs !== undefined && html` <span class="muted">target ${formatAge(m.rpoTargetMs)}</span> ${m.rpoMet ? 'met' : MISSED}`}`]);
  }
  if (m.rtoMeasuredMs !== undefined) {
    facts.push(['RTO measured', html`${formatSeconds(m.rtoMeasuredMs)}${m.rtoTargetMs !== undefined && html` <span class="muted">target ${formatSeconds(m.rtoTargetMs)}</span> ${m.rtoMet ? 'met' : MISSED}`}`]);
  }
  if (m.fetchBytesPerSec !== undefined) facts.push(['Fetch speed', html`${formatBytes(m.fetchBytesPerSec)}/s`]);
  for (const [k, v] of Object.entries(run.restored ?? {})) facts.push([`Restored ${words(k)}`, html`${k.endsWith('Bytes') ? formatBytes(Number(v)) : v}`]);
  return facts.length > 0 ? dl(facts) : muted('Nothing measured.');
}

function probesTable(run: RunRecord): SafeHtml {
  if (run.probes.length === 0) return muted('No probe ran.');
  const rows = run.probes.map(
    (p) => html`<tr class="${p.pass ? 'good' : 'bad'}"><td>${badge(p.pass ? 'pass' : 'fail')}</td><td>${p.name}<div class="small muted">${p.type}</div></td>
<td>${p.expected}</td><td>${p.error ? html`<span class="err">error: ${p.error}</span>` : p.actual}</td><td class="num">${formatSeconds(p.durationMs)}</td></tr>`,
  );
  return html`<table class="probes"><thead><tr><th>Result</th><th>Probe</th><th>Expected</th><th>Got</th><th class="num">Time</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function backupFacts(run: RunRecord): SafeHtml {
  const b = run.backup;
  if (!b) return muted('No backup was selected.');
  const facts: [string, SafeHtml][] = [
    ['Key', html`${b.key}`],
    ['Location', html`${b.driver} ${b.location}`],
    ['Size', html`${formatBytes(b.size)}`],
    ['Taken', html`${when(b.backupTime)} <span class="muted">(from ${b.timestampSource}), ${formatAge(b.ageMs)} old at the run</span>`],
  ];
  if (b.format) facts.push(['Format', html`${`${b.format}${b.compression && b.compression !== 'none' ? ` + ${b.compression}` : ''}`}`]);
  if (b.sha256) facts.push(['sha256', html`<code class="small">${b.sha256}</code> <span class="muted">(${formatBytes(b.bytesRead ?? 0)} read)</span>`]);
  for (const c of b.checksums ?? []) facts.push([`${c.algorithm} (${c.source})`, c.verified ? html`verified` : b.sha256 ? html`<b class="err">not matching</b>` : html`not checked`]);
  if (b.checksums?.length === 0) facts.push(['Checksums', html`<span class="muted">none kept by the store or beside the backup (sha256 recorded only)</span>`]);
  for (const u of b.unverifiableChecksums ?? []) facts.push(['Checksum', html`${u}`]);
  for (const [k, v] of Object.entries(b.header ?? {})) facts.push([`Dump ${k}`, html`${v}`]);
  for (const [k, v] of Object.entries(b.provider ?? {})) facts.push([k, html`${v}`]);
  if (b.storageCheck) facts.push([b.storageCheck.what, html`${b.storageCheck.summary}${b.storageCheck.problems.map((p) => html`<div class="small err">${p}</div>`)}`]);
  return dl(facts);
}

function sandboxFacts(run: RunRecord): SafeHtml {
  const s = run.sandbox;
  if (!s) return muted('No sandbox was started.');
  const facts: [string, SafeHtml][] = [
    ['Runtime', html`${s.runtime}`],
    ['Image', html`${s.image}`],
  ];
  if (s.imageChoice) facts.push(['Image chosen', html`${s.imageChoice}`]);
  if (s.serverVersion) facts.push(['Server', html`${s.serverVersion}`]);
  if (s.limits) facts.push(['Limits', html`${Object.entries(s.limits).map(([k, v]) => `${words(k)} ${k.endsWith('Bytes') ? formatBytes(Number(v)) : v}`).join(', ')}`]);
  return dl(facts);
}

function logTail(run: RunRecord): SafeHtml | false {
  const text = run.sandbox?.logTail?.trimEnd();
  if (!text) return false;
  const lines = text.split('\n').slice(-LOG_TAIL_LINES).join('\n');
  const pre = html`<pre class="log">${lines}</pre>`;
  // A passing run's log is rarely wanted: folded away; a failed run's is shown.
  return run.verdict === 'pass' ? html`<details><summary>Server log (last lines)</summary>${pre}</details>` : html`<h2>Server log (last lines)</h2>${pre}`;
}

/** `sizeBytes` -> `size`, `memoryBytes` -> `memory`, `rows_orders` -> `rows orders`. */
function words(key: string): string {
  return key.replace(/Bytes$/, '').replace(/_/g, ' ').replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
}

function dl(facts: [string, SafeHtml][]): SafeHtml {
  return html`<dl class="facts">${facts.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`;
}
