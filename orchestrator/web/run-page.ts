import { ERROR_CODES, type RunRecord } from '../core/domain.js';
import { formatAge, formatBytes, formatSeconds } from '../core/format.js';
import { notFound, type RequestContext } from './context.js';
import { ago, badge, enc, esc, page, when } from './html.js';
import { who } from './pages.js';
import { visibleRun } from './api.js';
import { bootSection } from './boot-section.js';

/**
 * GET /runs/:id: one run in detail, as `backproof runs show` prints it (reports/run-summary.ts),
 * laid out for a browser: why it failed first, then a vm run's boot (boot-section.ts), the phases
 * on a time line, the probes, the backup and sandbox facts, and the server's log excerpt.
 */
const LOG_TAIL_LINES = 60;

export async function runPage(ctx: RequestContext): Promise<string> {
  const run = await visibleRun(ctx, ctx.params[0]!);
  if (!run) throw notFound('no such run');
  const now = ctx.deps.now();
  const verdict = run.verdict ?? run.status;
  const head = `<h1>${badge(verdict)} <a href="/policies/${enc(run.policy)}">${esc(run.policy)}</a> <span class="muted small">run ${esc(run.id)}</span></h1>
<p class="muted">${esc(run.client)} · ${esc(run.kind)} · ${esc(run.status)}, started ${when(run.startedAt)} (${ago(run.startedAt, now)})${run.durationMs !== null ? `, took ${esc(formatSeconds(run.durationMs))}` : ''} · host ${esc(run.host)} · backproof ${esc(run.backproofVersion)}</p>`;
  const reasons = run.reasons.length
    ? `<h2>Reasons</h2><ul class="reasons">${run.reasons
        .map((r) => `<li class="${(ERROR_CODES as readonly string[]).includes(r.code) ? 'error' : 'fail'}"><code>${esc(r.code)}</code> ${esc(r.message)}</li>`)
        .join('')}</ul>`
    : '';
  const body = `${head}${reasons}${bootSection(run)}
<div class="grid2"><section><h2>Phases</h2>${phasesTable(run)}</section><section><h2>Targets</h2>${targets(run)}</section></div>
<h2>Probes</h2>${probesTable(run)}
<div class="grid2"><section><h2>Backup</h2>${backupFacts(run)}</section><section><h2>Sandbox</h2>${sandboxFacts(run)}</section></div>
${logTail(run)}`;
  return page({ title: `${verdict} ${run.policy}`, who: who(ctx), nav: 'runs', body });
}

function phasesTable(run: RunRecord): string {
  if (run.phases.length === 0) return '<p class="muted">No phases recorded.</p>';
  const t0 = Date.parse(run.startedAt);
  const end = Math.max(t0 + 1, ...run.phases.map((p) => Date.parse(p.endedAt)));
  const span = end - t0;
  const rows = run.phases.map((p) => {
    const left = ((Date.parse(p.startedAt) - t0) / span) * 100;
    const width = (p.durationMs / span) * 100;
    return `<tr><td>${esc(p.name)}</td><td>${badge(p.outcome)}</td><td class="num">${p.outcome === 'skipped' ? '-' : esc(formatSeconds(p.durationMs))}</td>
<td><div class="bar" title="${esc(`${p.startedAt} - ${p.endedAt}`)}"><span class="${esc(p.outcome)}" style="left:${left.toFixed(2)}%;width:${Math.max(0, width).toFixed(2)}%"></span></div>${p.detail ? `<div class="small muted">${esc(p.detail)}</div>` : ''}</td></tr>`;
  });
  return `<table><thead><tr><th>Phase</th><th>Outcome</th><th class="num">Time</th><th>Time line (${esc(formatSeconds(span))})</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function targets(run: RunRecord): string {
  const m = run.metrics;
  const facts: [string, string][] = [];
  if (m.rpoMeasuredMs !== undefined) {
    facts.push(['RPO measured', `${esc(formatAge(m.rpoMeasuredMs))}${m.rpoTargetMs !== undefined ? ` <span class="muted">target ${esc(formatAge(m.rpoTargetMs))}</span> ${m.rpoMet ? 'met' : '<b class="err">missed</b>'}` : ''}`]);
  }
  if (m.rtoMeasuredMs !== undefined) {
    facts.push(['RTO measured', `${esc(formatSeconds(m.rtoMeasuredMs))}${m.rtoTargetMs !== undefined ? ` <span class="muted">target ${esc(formatSeconds(m.rtoTargetMs))}</span> ${m.rtoMet ? 'met' : '<b class="err">missed</b>'}` : ''}`]);
  }
  if (m.fetchBytesPerSec !== undefined) facts.push(['Fetch speed', `${esc(formatBytes(m.fetchBytesPerSec))}/s`]);
  for (const [k, v] of Object.entries(run.restored ?? {})) facts.push([`Restored ${words(k)}`, esc(k.endsWith('Bytes') ? formatBytes(Number(v)) : v)]);
  return facts.length ? dl(facts) : '<p class="muted">Nothing measured.</p>';
}

function probesTable(run: RunRecord): string {
  if (run.probes.length === 0) return '<p class="muted">No probe ran.</p>';
  const rows = run.probes.map(
    (p) => `<tr class="${p.pass ? 'good' : 'bad'}"><td>${badge(p.pass ? 'pass' : 'fail')}</td><td>${esc(p.name)}<div class="small muted">${esc(p.type)}</div></td>
<td>${esc(p.expected)}</td><td>${p.error ? `<span class="err">error: ${esc(p.error)}</span>` : esc(p.actual)}</td><td class="num">${esc(formatSeconds(p.durationMs))}</td></tr>`,
  );
  return `<table class="probes"><thead><tr><th>Result</th><th>Probe</th><th>Expected</th><th>Got</th><th class="num">Time</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function backupFacts(run: RunRecord): string {
  const b = run.backup;
  if (!b) return '<p class="muted">No backup was selected.</p>';
  const facts: [string, string][] = [
    ['Key', esc(b.key)],
    ['Location', `${esc(b.driver)} ${esc(b.location)}`],
    ['Size', esc(formatBytes(b.size))],
    ['Taken', `${when(b.backupTime)} <span class="muted">(from ${esc(b.timestampSource)}), ${esc(formatAge(b.ageMs))} old at the run</span>`],
  ];
  if (b.format) facts.push(['Format', esc(`${b.format}${b.compression && b.compression !== 'none' ? ` + ${b.compression}` : ''}`)]);
  if (b.sha256) facts.push(['sha256', `<code class="small">${esc(b.sha256)}</code> <span class="muted">(${esc(formatBytes(b.bytesRead ?? 0))} read)</span>`]);
  for (const c of b.checksums ?? []) facts.push([`${c.algorithm} (${c.source})`, c.verified ? 'verified' : b.sha256 ? '<b class="err">not matching</b>' : 'not checked']);
  if (b.checksums?.length === 0) facts.push(['Checksums', '<span class="muted">none kept by the store or beside the backup (sha256 recorded only)</span>']);
  for (const u of b.unverifiableChecksums ?? []) facts.push(['Checksum', esc(u)]);
  for (const [k, v] of Object.entries(b.header ?? {})) facts.push([`Dump ${k}`, esc(v)]);
  for (const [k, v] of Object.entries(b.provider ?? {})) facts.push([k, esc(v)]);
  if (b.storageCheck) facts.push([b.storageCheck.what, `${esc(b.storageCheck.summary)}${b.storageCheck.problems.map((p) => `<div class="small err">${esc(p)}</div>`).join('')}`]);
  return dl(facts);
}

function sandboxFacts(run: RunRecord): string {
  const s = run.sandbox;
  if (!s) return '<p class="muted">No sandbox was started.</p>';
  const facts: [string, string][] = [
    ['Runtime', esc(s.runtime)],
    ['Image', esc(s.image)],
  ];
  if (s.imageChoice) facts.push(['Image chosen', esc(s.imageChoice)]);
  if (s.serverVersion) facts.push(['Server', esc(s.serverVersion)]);
  if (s.limits) facts.push(['Limits', esc(Object.entries(s.limits).map(([k, v]) => `${words(k)} ${k.endsWith('Bytes') ? formatBytes(Number(v)) : v}`).join(', '))]);
  return dl(facts);
}

function logTail(run: RunRecord): string {
  const text = run.sandbox?.logTail?.trimEnd();
  if (!text) return '';
  const lines = text.split('\n').slice(-LOG_TAIL_LINES).join('\n');
  const pre = `<pre class="log">${esc(lines)}</pre>`;
  // A passing run's log is rarely wanted: folded away; a failed run's is shown.
  return run.verdict === 'pass' ? `<details><summary>Server log (last lines)</summary>${pre}</details>` : `<h2>Server log (last lines)</h2>${pre}`;
}

/** `sizeBytes` -> `size`, `memoryBytes` -> `memory`, `rows_orders` -> `rows orders`. */
function words(key: string): string {
  return key.replace(/Bytes$/, '').replace(/_/g, ' ').replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
}

function dl(facts: [string, string][]): string {
  return `<dl class="facts">${facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join('')}</dl>`;
}
