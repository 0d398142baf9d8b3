import { storageCostText } from './cost-section.js';
import { html, joinHtml, raw, type SafeHtml } from '../../orchestrator/core/html.js';
import { backupSizeChart, chartSvg, restoreTimeChart } from './charts.js';
import { runColumns } from './columns.js';
import { coverageHtml, coverageSummaryHtml } from './coverage-html.js';
import type { MonthlyReport, PolicySection, ReportRun, ReportScreenshot } from './model.js';
import {
  bootSummary,
  bytes,
  chainText,
  incidentOutcome,
  lastSuccess,
  rate,
  REPORT_TITLE,
  screenshotCaption,
  screenshotTitle,
  short,
  targetSummary,
  verdictText,
  when,
} from './text.js';

const BR = html`<br>`;

/**
 * The report as one self-contained HTML page: inline CSS, inline SVG charts, the logo and vm
 * policies' boot screenshots as data URIs; no script, no external resource. Built through
 * core/html.ts's template: every value from the evidence or the config is escaped.
 */
export function renderHtml(report: MonthlyReport): string {
  const title = `${report.client.displayName}: ${REPORT_TITLE}, ${report.period.label}`;
  const s = report.summary;
  const chain = chainText(report);
  const logo = report.msp.logo && html`<img class="logo" alt="${report.msp.name}" src="data:${report.msp.logo.mediaType};base64,${report.msp.logo.base64}">`;
  const out: SafeHtml[] = [];
  out.push(html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>${title}</title>
<style>${CSS}</style>
</head>
<body>
<header class="cover">
  ${logo}
  <p class="msp">${report.msp.name}</p>
  <h1>${REPORT_TITLE}</h1>
  <p class="client">${report.client.displayName}</p>
  <p class="period">${report.period.label} <span class="muted">(${when(report, report.period.from, false)} to ${when(report, new Date(Date.parse(report.period.to) - 1).toISOString(), false)}, ${report.period.timezone})</span></p>
  <p class="muted">Generated ${when(report, report.generatedAt)} by ${report.generator}</p>
</header>

<section>
<h2>Summary</h2>
<div class="tiles">
  ${tile('Policies tested', `${s.policiesTested} of ${s.policiesConfigured}`)}
  ${tile('Verification runs', String(s.runs))}
  ${tile('Pass rate', rate(s.passRatePercent), s.passRatePercent !== null && s.passRatePercent < 100 ? 'warn' : 'ok')}
  ${tile('Failed / errors', `${s.failed} / ${s.errored}`, s.failed > 0 ? 'bad' : s.errored > 0 ? 'warn' : 'ok')}
  ${tile('RTO within target', s.rto.met + s.rto.missed > 0 ? `${s.rto.met} of ${s.rto.met + s.rto.missed}` : '-')}
  ${tile('RPO within target', s.rpo.met + s.rpo.missed > 0 ? `${s.rpo.met} of ${s.rpo.met + s.rpo.missed}` : '-')}
  ${tile('Alert incidents', `${s.incidents}${s.openAtEnd > 0 ? ` (${s.openAtEnd} open)` : ''}`, s.openAtEnd > 0 ? 'warn' : 'ok')}
</div>
${s.cancelled + s.inProgress > 0 && html`<p class="muted">Not counted: ${s.cancelled} cancelled run(s), ${s.inProgress} still running.</p>`}
${coverageSummaryHtml(report)}
${joinHtml(s.storageCost.map((c) => html`<p class="storage-cost${c.budget?.over ? ' bad' : ''}">${storageCostText(c)}.</p>`), '\n')}
<table>
<thead><tr><th>Policy</th><th>Kind</th><th class="num">Runs</th><th class="num">Pass rate</th><th>Last successful restore</th><th>Measured RTO</th><th>RPO (backup age)</th><th>Last verdict</th></tr></thead>
<tbody>
${joinHtml(
  report.policies.map((p) => policyRow(report, p)),
  '\n',
)}
</tbody>
</table>
</section>

<section>
<h2>Trends</h2>
<figure><figcaption>Restore time per run (measured RTO)</figcaption>${chartSvg(restoreTimeChart(report))}</figure>
<figure><figcaption>Backup size per run</figcaption>${chartSvg(backupSizeChart(report))}</figure>
</section>
`);

  for (const p of report.policies) out.push(policySection(report, p));
  const coverage = coverageHtml(report);
  if (coverage) out.push(coverage);

  out.push(html`<section>
<h2>Failures and what was done</h2>
${report.failures.length === 0 && html`<p>No verification failed in this period.</p>`}
${joinHtml(
  report.failures.map(
    (f) => html`<article class="failure ${f.verdict}">
<h3>${when(report, f.at)} &middot; ${f.policy} &middot; <span class="v-${f.verdict}">${verdictText(f.verdict)}</span> <span class="muted">run ${f.runId}</span></h3>
<ul class="reasons">${f.reasons.map((r) => html`<li><code>${r.code}</code> ${r.message}</li>`)}</ul>
<p><strong>Next steps:</strong></p>
<ul>${f.nextSteps.map((step) => html`<li>${step}</li>`)}</ul>
<p><strong>What was done:</strong> ${
      f.incidents.length > 0
        ? joinHtml(
            f.incidents.map((ref) => incidentOutcome(report, report.incidents.find((i) => i.id === ref.id)!)),
            BR,
          )
        : 'no alert incident was recorded for this run'
    }${f.recoveredAt ? html`<br>Recovered: the next verification passed on ${when(report, f.recoveredAt)} (run ${short(f.recoveredByRunId!)}).` : html`<br>Not recovered by the time of this report.`}</p>
</article>`,
  ),
  '\n',
)}
</section>

<section>
<h2>Alert incidents</h2>
${report.incidents.length === 0 && html`<p>No alert incident in this period.</p>`}
${
  report.incidents.length > 0 &&
  html`<table>
<thead><tr><th>Opened</th><th>Policy</th><th>Condition</th><th>Summary</th><th>What was done</th></tr></thead>
<tbody>
${joinHtml(
  report.incidents.map(
    (i) =>
      html`<tr><td>${when(report, i.openedAt)}</td><td>${i.policy}</td><td>${i.condition}</td><td>${i.summary}<div class="muted">${joinHtml(i.nextSteps, BR)}</div></td><td>${incidentOutcome(report, i)}</td></tr>`,
  ),
  '\n',
)}
</tbody>
</table>`
}
</section>

<section class="appendix">
<h2>Evidence appendix</h2>
<p class="${chain.ok ? 'ok' : 'bad'}"><strong>${chain.headline}</strong></p>
<ul>${chain.lines.map((l) => html`<li>${l}</li>`)}</ul>
<p>Signing key fingerprint: <code>${report.evidence.signingKeyFingerprint ?? 'none'}</code>${
    report.evidence.publicKeys.length > 0 &&
    html`<br>Installation public keys: ${joinHtml(
      report.evidence.publicKeys.map((k) => html`<code>${k}</code>`),
      ', ',
    )}`
  }</p>
<p class="muted">Each run's record is hashed with the hash of the record before it; changing, removing, inserting or reordering any record breaks every hash after it. Check them with <code>backproof evidence verify</code>.</p>
<table class="hashes">
<thead><tr><th>Started</th><th>Policy</th><th>Run id</th><th>Seq</th><th>Hash (SHA-256)</th></tr></thead>
<tbody>
${joinHtml(
  report.runs.map(
    (r) =>
      html`<tr><td>${when(report, r.startedAt)}</td><td>${r.policy}</td><td><code>${r.runId}</code></td><td class="num">${r.chainSeq ?? '-'}</td><td><code>${r.hash ?? 'not chained'}</code></td></tr>`,
  ),
  '\n',
)}
</tbody>
</table>
</section>
</body>
</html>
`);
  return joinHtml(out, '\n').toString();
}

function tile(label: string, value: string, tone: 'ok' | 'warn' | 'bad' | '' = ''): SafeHtml {
  return html`<div class="tile ${tone}"><div class="value">${value}</div><div class="label">${label}</div></div>`;
}

function policyRow(report: MonthlyReport, p: PolicySection): SafeHtml {
  return html`<tr><td>${p.policy}${!p.configured && html` <span class="muted">(no longer configured)</span>`}</td><td>${p.kind}</td><td class="num">${p.runs}</td><td class="num">${rate(p.passRatePercent)}</td><td>${lastSuccess(report, p)}</td><td>${targetSummary(p.rto, 'rto')}${p.boot && html`<br><span class="muted">Boot: ${bootSummary(p.boot)}</span>`}</td><td>${targetSummary(p.rpo, 'rpo')}</td><td class="v-${p.lastVerdict ?? 'none'}">${verdictText(p.lastVerdict)}</td></tr>`;
}

function policySection(report: MonthlyReport, p: PolicySection): SafeHtml {
  // Runs of the newest backup; coverage runs of older restore points are in their own section.
  const runs = report.runs.filter((r) => r.policy === p.policy && r.coverage === null);
  return html`<section class="policy">
<h2>Policy ${p.policy} <span class="muted">(${p.kind}${p.schedule && `, ${p.schedule}`})</span></h2>
<p>${p.runs} runs: ${p.passed} passed, ${p.failed} failed, ${p.errored} errors; pass rate ${rate(p.passRatePercent)}. Last successful restore: ${lastSuccess(report, p)}.
RTO: ${targetSummary(p.rto, 'rto')}. RPO: ${targetSummary(p.rpo, 'rpo')}.${p.backupSize && ` Backup size ${bytes(p.backupSize.firstBytes)} to ${bytes(p.backupSize.lastBytes)}.`}${p.boot && ` Boot: ${bootSummary(p.boot)}.`}</p>
${p.screenshots.length > 0 && html`<div class="screens">\n${joinHtml(p.screenshots.map((shot) => screenshotFigure(report, shot)), '\n')}\n</div>`}
${runs.length === 0 ? html`<p>No run in this period.</p>` : runTable(report, runs, p.boot !== null)}
</section>`;
}

/** A policy's runs: the columns of columns.ts, as the PDF and CSV have them. */
function runTable(report: MonthlyReport, runs: ReportRun[], withBoot: boolean): SafeHtml {
  const columns = runColumns(withBoot);
  const head = columns.map((c) => html`<th${c.numeric && html` class="num"`}>${c.header}</th>`);
  const rows = runs.map(
    (r) =>
      html`<tr>${columns.map((c) => {
        const tone = c.tone?.(r);
        const cls = [c.htmlClass, c.numeric && 'num', tone && `v-${tone}`].filter(Boolean).join(' ');
        const text = c.text(r, report);
        return html`<td${cls && html` class="${cls}"`}>${c.mono ? html`<code>${text}</code>` : text}</td>`;
      })}</tr>`,
  );
  return html`<table>
<thead><tr>${head}</tr></thead>
<tbody>
${joinHtml(rows, '\n')}
</tbody>
</table>`;
}

function screenshotFigure(report: MonthlyReport, shot: ReportScreenshot): SafeHtml {
  const img =
    shot.base64 &&
    shot.image &&
    html`<img class="screen" alt="${`The screen of run ${short(shot.runId)} at its boot verdict`}" src="data:${shot.image.mediaType};base64,${shot.base64}"${
      shot.image.width !== undefined && shot.image.height !== undefined && html` width="${shot.image.width}" height="${shot.image.height}"`
    }>`;
  return html`<figure class="screen ${shot.role}" data-run="${shot.runId}">
<figcaption class="v-${shot.bootVerdict === 'booted' ? 'pass' : 'fail'}">${screenshotTitle(shot)}</figcaption>
${img}
<p class="caption">${joinHtml(screenshotCaption(report, shot), BR)}</p>
</figure>`;
}

// Kept here so that the page needs nothing else; tuned to print on A4 too. raw: a constant of this
// file (the text of a <style> element is not entity-decoded, so it cannot be escaped).
const CSS = raw(`
:root { color-scheme: light; }
body { font-family: Helvetica, Arial, sans-serif; color: #222; margin: 0 auto; max-width: 60rem; padding: 1.5rem; line-height: 1.4; font-size: 14px; }
h1 { font-size: 1.6rem; margin: .3rem 0; }
h2 { font-size: 1.25rem; border-bottom: 2px solid #1565c0; padding-bottom: .2rem; margin-top: 2rem; }
h3 { font-size: 1rem; margin: .4rem 0; }
.cover { border-bottom: 4px solid #1565c0; padding-bottom: 1rem; }
.cover .logo { max-height: 64px; max-width: 240px; display: block; margin-bottom: .5rem; }
.cover .msp { font-weight: bold; color: #1565c0; margin: 0; }
.cover .client { font-size: 1.4rem; font-weight: bold; margin: .2rem 0; }
.cover .period { font-size: 1.1rem; margin: .2rem 0; }
.muted { color: #666; font-weight: normal; font-size: .9em; }
.tiles { display: flex; flex-wrap: wrap; gap: .6rem; margin: 1rem 0; }
.tile { border: 1px solid #ccc; border-radius: 6px; padding: .5rem .8rem; min-width: 8rem; }
.tile .value { font-size: 1.3rem; font-weight: bold; }
.tile .label { color: #555; font-size: .85rem; }
.tile.ok { border-color: #2e7d32; } .tile.warn { border-color: #ef6c00; } .tile.bad { border-color: #c62828; background: #fdecea; }
table { border-collapse: collapse; width: 100%; margin: .6rem 0; font-size: .85rem; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .4rem; text-align: left; vertical-align: top; }
th { background: #f2f5fa; }
td.num, th.num { text-align: right; }
td.key { word-break: break-all; }
td.when { white-space: nowrap; }
code { font-size: .85em; word-break: break-all; }
.v-pass { color: #2e7d32; } .v-fail { color: #c62828; font-weight: bold; } .v-error { color: #ef6c00; font-weight: bold; }
.ok { color: #2e7d32; } .bad { color: #c62828; }
figure { margin: 1rem 0; } figcaption { font-weight: bold; margin-bottom: .3rem; }
figure svg { width: 100%; height: auto; max-width: 52rem; }
.failure { border-left: 4px solid #c62828; padding: .2rem .8rem; margin: .8rem 0; background: #fafafa; }
.failure.error { border-left-color: #ef6c00; }
.reasons { margin: .2rem 0; }
.coverage-summary { border-left: 4px solid #2e7d32; padding: .2rem .6rem; }
.coverage-summary.warn { border-left-color: #ef6c00; } .coverage-summary.bad { border-left-color: #c62828; background: #fdecea; }
table.coverage-runs tr.bad td { background: #fdecea; }
.coverage .failure { margin: .4rem 0; }
table.hashes td { font-size: .8rem; }
.screens { display: flex; flex-wrap: wrap; gap: 1rem; margin: .8rem 0; }
figure.screen { flex: 1 1 24rem; margin: 0; break-inside: avoid; }
figure.screen img { display: block; width: auto; max-width: 100%; height: auto; max-height: 28rem; border: 1px solid #999; background: #000; }
figure.screen .caption { font-size: .8rem; color: #444; margin: .3rem 0 0; overflow-wrap: anywhere; }
@media print { body { max-width: none; padding: 0; } section { break-inside: auto; } h2 { break-after: avoid; } .failure, tr { break-inside: avoid; } }
`);
