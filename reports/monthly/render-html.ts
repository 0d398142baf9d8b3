import { backupSizeChart, escapeXml, restoreTimeChart } from './charts.js';
import type { MonthlyReport, PolicySection, ReportRun, ReportScreenshot } from './model.js';
import {
  bootCell,
  bootSummary,
  bytes,
  chainText,
  incidentOutcome,
  lastSuccess,
  measuredVsTarget,
  rate,
  reasonsText,
  REPORT_TITLE,
  screenshotCaption,
  screenshotTitle,
  short,
  targetSummary,
  verdictText,
  when,
} from './text.js';

/**
 * The report as one self-contained HTML page: inline CSS, inline SVG charts, the logo and vm
 * policies' boot screenshots as data URIs; no script, no external resource. Every value from the
 * evidence or the config is escaped.
 */
export function renderHtml(report: MonthlyReport): string {
  const e = escapeXml;
  const title = `${report.client.displayName}: ${REPORT_TITLE}, ${report.period.label}`;
  const s = report.summary;
  const chain = chainText(report);
  const logo = report.msp.logo ? `<img class="logo" alt="${e(report.msp.name)}" src="data:${report.msp.logo.mediaType};base64,${report.msp.logo.base64}">` : '';
  const out: string[] = [];
  out.push(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>${e(title)}</title>
<style>${CSS}</style>
</head>
<body>
<header class="cover">
  ${logo}
  <p class="msp">${e(report.msp.name)}</p>
  <h1>${e(REPORT_TITLE)}</h1>
  <p class="client">${e(report.client.displayName)}</p>
  <p class="period">${e(report.period.label)} <span class="muted">(${e(when(report, report.period.from, false))} to ${e(when(report, new Date(Date.parse(report.period.to) - 1).toISOString(), false))}, ${e(report.period.timezone)})</span></p>
  <p class="muted">Generated ${e(when(report, report.generatedAt))} by ${e(report.generator)}</p>
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
${s.cancelled + s.inProgress > 0 ? `<p class="muted">Not counted: ${s.cancelled} cancelled run(s), ${s.inProgress} still running.</p>` : ''}
<table>
<thead><tr><th>Policy</th><th>Kind</th><th class="num">Runs</th><th class="num">Pass rate</th><th>Last successful restore</th><th>Measured RTO</th><th>RPO (backup age)</th><th>Last verdict</th></tr></thead>
<tbody>
${report.policies.map((p) => policyRow(report, p)).join('\n')}
</tbody>
</table>
</section>

<section>
<h2>Trends</h2>
<figure><figcaption>Restore time per run (measured RTO)</figcaption>${restoreTimeChart(report)}</figure>
<figure><figcaption>Backup size per run</figcaption>${backupSizeChart(report)}</figure>
</section>
`);

  for (const p of report.policies) out.push(policySection(report, p));

  out.push(`<section>
<h2>Failures and what was done</h2>
${report.failures.length === 0 ? '<p>No verification failed in this period.</p>' : ''}
${report.failures
  .map(
    (f) => `<article class="failure ${f.verdict}">
<h3>${e(when(report, f.at))} &middot; ${e(f.policy)} &middot; <span class="v-${f.verdict}">${e(verdictText(f.verdict))}</span> <span class="muted">run ${e(f.runId)}</span></h3>
<ul class="reasons">${f.reasons.map((r) => `<li><code>${e(r.code)}</code> ${e(r.message)}</li>`).join('')}</ul>
<p><strong>Next steps:</strong></p>
<ul>${f.nextSteps.map((step) => `<li>${e(step)}</li>`).join('')}</ul>
<p><strong>What was done:</strong> ${
      f.incidents.length > 0
        ? f.incidents.map((ref) => e(incidentOutcome(report, report.incidents.find((i) => i.id === ref.id)!))).join('<br>')
        : 'no alert incident was recorded for this run'
    }${f.recoveredAt ? `<br>Recovered: the next verification passed on ${e(when(report, f.recoveredAt))} (run ${e(short(f.recoveredByRunId!))}).` : '<br>Not recovered by the time of this report.'}</p>
</article>`,
  )
  .join('\n')}
</section>

<section>
<h2>Alert incidents</h2>
${report.incidents.length === 0 ? '<p>No alert incident in this period.</p>' : ''}
${
  report.incidents.length > 0
    ? `<table>
<thead><tr><th>Opened</th><th>Policy</th><th>Condition</th><th>Summary</th><th>What was done</th></tr></thead>
<tbody>
${report.incidents
  .map((i) => `<tr><td>${e(when(report, i.openedAt))}</td><td>${e(i.policy)}</td><td>${e(i.condition)}</td><td>${e(i.summary)}<div class="muted">${i.nextSteps.map(e).join('<br>')}</div></td><td>${e(incidentOutcome(report, i))}</td></tr>`)
  .join('\n')}
</tbody>
</table>`
    : ''
}
</section>

<section class="appendix">
<h2>Evidence appendix</h2>
<p class="${chain.ok ? 'ok' : 'bad'}"><strong>${e(chain.headline)}</strong></p>
<ul>${chain.lines.map((l) => `<li>${e(l)}</li>`).join('')}</ul>
<p>Signing key fingerprint: <code>${e(report.evidence.signingKeyFingerprint ?? 'none')}</code>${
    report.evidence.publicKeys.length > 0 ? `<br>Installation public keys: ${report.evidence.publicKeys.map((k) => `<code>${e(k)}</code>`).join(', ')}` : ''
  }</p>
<p class="muted">Each run's record is hashed with the hash of the record before it; changing, removing, inserting or reordering any record breaks every hash after it. Check them with <code>backproof evidence verify</code>.</p>
<table class="hashes">
<thead><tr><th>Started</th><th>Policy</th><th>Run id</th><th>Seq</th><th>Hash (SHA-256)</th></tr></thead>
<tbody>
${report.runs.map((r) => `<tr><td>${e(when(report, r.startedAt))}</td><td>${e(r.policy)}</td><td><code>${e(r.runId)}</code></td><td class="num">${r.chainSeq ?? '-'}</td><td><code>${e(r.hash ?? 'not chained')}</code></td></tr>`).join('\n')}
</tbody>
</table>
</section>
</body>
</html>
`);
  return out.join('\n');
}

function tile(label: string, value: string, tone: 'ok' | 'warn' | 'bad' | '' = ''): string {
  return `<div class="tile ${tone}"><div class="value">${escapeXml(value)}</div><div class="label">${escapeXml(label)}</div></div>`;
}

function policyRow(report: MonthlyReport, p: PolicySection): string {
  const e = escapeXml;
  return `<tr><td>${e(p.policy)}${p.configured ? '' : ' <span class="muted">(no longer configured)</span>'}</td><td>${e(p.kind)}</td><td class="num">${p.runs}</td><td class="num">${e(rate(p.passRatePercent))}</td><td>${e(lastSuccess(report, p))}</td><td>${e(targetSummary(p.rto, 'rto'))}${p.boot ? `<br><span class="muted">Boot: ${e(bootSummary(p.boot))}</span>` : ''}</td><td>${e(targetSummary(p.rpo, 'rpo'))}</td><td class="v-${p.lastVerdict ?? 'none'}">${e(verdictText(p.lastVerdict))}</td></tr>`;
}

function policySection(report: MonthlyReport, p: PolicySection): string {
  const e = escapeXml;
  const runs = report.runs.filter((r) => r.policy === p.policy);
  return `<section class="policy">
<h2>Policy ${e(p.policy)} <span class="muted">(${e(p.kind)}${p.schedule ? `, ${e(p.schedule)}` : ''})</span></h2>
<p>${p.runs} runs: ${p.passed} passed, ${p.failed} failed, ${p.errored} errors; pass rate ${e(rate(p.passRatePercent))}. Last successful restore: ${e(lastSuccess(report, p))}.
RTO: ${e(targetSummary(p.rto, 'rto'))}. RPO: ${e(targetSummary(p.rpo, 'rpo'))}.${p.backupSize ? ` Backup size ${e(bytes(p.backupSize.firstBytes))} to ${e(bytes(p.backupSize.lastBytes))}.` : ''}${p.boot ? ` Boot: ${e(bootSummary(p.boot))}.` : ''}</p>
${p.screenshots.length > 0 ? `<div class="screens">\n${p.screenshots.map((shot) => screenshotFigure(report, shot)).join('\n')}\n</div>` : ''}
${
  runs.length === 0
    ? '<p>No run in this period.</p>'
    : `<table>
<thead><tr><th>Started</th><th>Verdict</th><th>Backup</th><th class="num">Size</th><th>RPO / target</th><th>RTO / target</th>${p.boot ? '<th>Boot</th>' : ''}<th>Run</th><th>Reasons</th></tr></thead>
<tbody>
${runs.map((r) => runRow(report, r, p.boot !== null)).join('\n')}
</tbody>
</table>`
}
</section>`;
}

function screenshotFigure(report: MonthlyReport, shot: ReportScreenshot): string {
  const e = escapeXml;
  const img =
    shot.base64 && shot.image
      ? `<img class="screen" alt="${e(`The screen of run ${short(shot.runId)} at its boot verdict`)}" src="data:${e(shot.image.mediaType)};base64,${shot.base64}"${
          shot.image.width !== undefined && shot.image.height !== undefined ? ` width="${shot.image.width}" height="${shot.image.height}"` : ''
        }>`
      : '';
  return `<figure class="screen ${shot.role}" data-run="${e(shot.runId)}">
<figcaption class="v-${shot.bootVerdict === 'booted' ? 'pass' : 'fail'}">${e(screenshotTitle(shot))}</figcaption>
${img}
<p class="caption">${screenshotCaption(report, shot).map(e).join('<br>')}</p>
</figure>`;
}

function runRow(report: MonthlyReport, r: ReportRun, withBoot = false): string {
  const e = escapeXml;
  const v = r.status === 'running' || r.status === 'cancelled' ? r.status : (r.verdict ?? 'none');
  return `<tr><td class="when">${e(when(report, r.startedAt))}</td><td class="v-${v}">${e(verdictText(r.verdict, r.status))}</td><td class="key">${e(r.backupKey ?? '-')}</td><td class="num">${e(bytes(r.backupSizeBytes))}</td><td class="${r.rpoMet === false ? 'v-fail' : ''}">${e(measuredVsTarget(r.rpoMeasuredMs, r.rpoTargetMs, 'rpo'))}</td><td class="${r.rtoMet === false ? 'v-fail' : ''}">${e(measuredVsTarget(r.rtoMeasuredMs, r.rtoTargetMs, 'rto'))}</td>${
    withBoot ? `<td class="${r.bootVerdict !== null && r.bootVerdict !== 'booted' ? 'v-fail' : ''}">${e(bootCell(r.bootVerdict, r.bootMs))}</td>` : ''
  }<td><code>${e(short(r.runId))}</code></td><td>${e(reasonsText(r))}</td></tr>`;
}

// Kept here so that the page needs nothing else; tuned to print on A4 too.
const CSS = `
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
table.hashes td { font-size: .8rem; }
.screens { display: flex; flex-wrap: wrap; gap: 1rem; margin: .8rem 0; }
figure.screen { flex: 1 1 24rem; margin: 0; break-inside: avoid; }
figure.screen img { display: block; width: auto; max-width: 100%; height: auto; max-height: 28rem; border: 1px solid #999; background: #000; }
figure.screen .caption { font-size: .8rem; color: #444; margin: .3rem 0 0; overflow-wrap: anywhere; }
@media print { body { max-width: none; padding: 0; } section { break-inside: auto; } h2 { break-after: avoid; } .failure, tr { break-inside: avoid; } }
`;
