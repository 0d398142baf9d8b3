import { accelText, attemptText, BOOT_VERDICT_LABEL, bootOutcome, diskText, diskUnchangedText, firmwareText, qemuText, screenshotCommand, screenshotText } from '../../reports/boot-text.js';
import type { BootMilestone, BootMilestoneName, BootRecord, BootVerdict, RunRecord } from '../core/domain.js';
import { formatSeconds } from '../core/format.js';
import { artifactPath } from './artifacts.js';
import { html, type SafeHtml } from '../core/html.js';
import { badge } from './html.js';

/**
 * The Boot part of a vm run's page (run-page.ts): the verdict and what decided it, the machine
 * QEMU emulated, the milestones on a time line (inline SVG) and in a table, the final screenshot
 * (served by artifacts.ts, its sealed sha256 beneath), the final screen's text and the serial
 * console's tail.
 */
const SERIAL_TAIL_LINES = 60;
const MILESTONE_TEXT_MAX = 200;

const VERDICT_CLASS: Record<BootVerdict, string> = { booted: 'booted', not_booted: 'not_booted', inconclusive: 'inconclusive' };

export function bootBadge(verdict: BootVerdict): SafeHtml {
  return badge(VERDICT_CLASS[verdict], BOOT_VERDICT_LABEL[verdict]);
}

export function bootSection(run: RunRecord): SafeHtml | false {
  const boot = run.boot;
  if (!boot) return false;
  return html`<section class="boot" id="boot"><h2>Boot ${bootBadge(boot.verdict)}</h2>
<div class="grid2"><section>${bootFacts(boot)}</section><section>${screenshot(run, boot)}</section></div>
<h3>Milestones</h3>${milestoneTimeline(boot)}${milestoneTable(boot)}
${screenAndSerial(boot)}</section>`;
}

function bootFacts(boot: BootRecord): SafeHtml {
  const facts: [string, SafeHtml | string][] = [
    ['Verdict', html`${bootBadge(boot.verdict)} ${boot.verdict === 'booted' ? 'in' : 'after'} ${formatSeconds(boot.bootMs)}`],
    ['Reason', html`${boot.reason}${boot.failure && html` <span class="muted">(failure <code>${boot.failure}</code>)</span>`}`],
    ['Boot time', html`${formatSeconds(boot.bootMs)} <span class="muted">from QEMU's start to the verdict</span>`],
    ['Acceleration', accelText(boot)],
    ...(boot.attempts?.length ? [['Attempts', html`<ol class="attempts">${boot.attempts.map((a) => html`<li>${attemptText(a)}</li>`)}</ol>`] as [string, SafeHtml]] : []),
    ['Firmware', firmwareText(boot)],
    ['Machine', boot.machine],
    ['Disk bus', boot.bus],
    ['Disk image', diskText(boot)],
    ['QEMU', qemuText(boot.qemuVersion)],
    ['Disk image unchanged after boot', boot.diskUnchanged === false ? html`<b class="err">${diskUnchangedText(false)}</b>` : diskUnchangedText(boot.diskUnchanged)],
    ['Screenshots taken', String(boot.screenshots)],
  ];
  return html`<dl class="facts boot-facts">${facts.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`;
}

function screenshot(run: RunRecord, boot: BootRecord): SafeHtml {
  const shot = boot.screenshot;
  if (!shot) return html`<p class="muted">No screenshot was kept (QEMU showed no screen).</p>`;
  const src = artifactPath(run.id, shot.name);
  const size = shot.width !== undefined && shot.height !== undefined && html` width="${shot.width}" height="${shot.height}"`;
  const alt = `The screen of ${run.policy} at the verdict (${BOOT_VERDICT_LABEL[boot.verdict]})`;
  return html`<figure class="shot"><a href="${src}"><img src="${src}"${size} alt="${alt}"></a>
<figcaption class="small">Final screen, ${screenshotText(shot)} · <a href="${src}" download>download</a><br>
sha256 <code class="sha">${shot.sha256}</code><br><span class="muted">sealed with the run's record; from a terminal: <code>${screenshotCommand(run.id)}</code></span></figcaption></figure>`;
}

const MILESTONE_COLOR: Record<BootMilestoneName, string> = { firmware: '#8c959f', bootloader: '#bf8700', kernel: '#0969da', init: '#8250df', login: '#1a7f37' };
const VERDICT_COLOR: Record<BootVerdict, string> = { booted: '#1a7f37', not_booted: '#cf222e', inconclusive: '#cf222e' };
/** About the width of a character of the 11px labels, to keep them apart. */
const LABEL_CHAR_W = 6.3;
const TICK_STEPS_MS = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600].map((s) => s * 1000);

/**
 * The milestones on one horizontal time line from QEMU's start to the verdict: a dot per
 * milestone (labels above, staggered on two rows), the verdict as a bar at its time, round ticks.
 */
export function milestoneTimeline(boot: BootRecord): SafeHtml {
  const w = 720;
  const h = 104;
  const left = 14;
  const right = 90;
  const axisY = 70;
  const end = Math.max(1, boot.bootMs, ...boot.milestones.map((m) => m.atMs));
  const x = (ms: number): number => left + (ms / end) * (w - left - right);
  const parts: SafeHtml[] = [];
  parts.push(html`<line x1="${left}" x2="${x(end).toFixed(1)}" y1="${axisY}" y2="${axisY}" stroke="#d0d7de" stroke-width="4" stroke-linecap="round"/>`);
  const step = TICK_STEPS_MS.find((s) => end / s <= 8) ?? Math.ceil(end / 8 / 3_600_000) * 3_600_000;
  for (let t = 0; t <= end; t += step) {
    parts.push(html`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${axisY + 4}" y2="${axisY + 8}" stroke="#8c959f"/>`);
    parts.push(html`<text x="${x(t).toFixed(1)}" y="${axisY + 20}" text-anchor="middle" font-size="10" fill="#656d76">${formatSeconds(t)}</text>`);
  }
  const verdictX = x(boot.bootMs).toFixed(1);
  const color = VERDICT_COLOR[boot.verdict];
  parts.push(html`<rect x="${(Number(verdictX) - 2).toFixed(1)}" y="${axisY - 14}" width="4" height="28" fill="${color}"><title>${`${bootOutcome(boot.verdict, boot.bootMs)}: ${boot.reason}`}</title></rect>`);
  parts.push(html`<text x="${(Number(verdictX) + 6).toFixed(1)}" y="${axisY + 4}" font-size="11" font-weight="600" fill="${color}">${BOOT_VERDICT_LABEL[boot.verdict]}</text>`);
  const sorted = [...boot.milestones].sort((a, b) => a.atMs - b.atMs);
  // Labels start at their dot and run right; each goes on the highest of three rows where it
  // clears the label before it (milestones often come seconds apart in a minute-long boot).
  const rowEnds = [-Infinity, -Infinity, -Infinity];
  sorted.forEach((m) => {
    const mx = x(m.atMs);
    const label = `${m.name} ${formatSeconds(m.atMs)}`;
    const start = Math.max(2, Math.min(mx - 6, w - 2 - label.length * LABEL_CHAR_W));
    const free = rowEnds.findIndex((end) => end + 6 <= start);
    const row = free >= 0 ? free : rowEnds.indexOf(Math.min(...rowEnds));
    rowEnds[row] = start + label.length * LABEL_CHAR_W;
    const labelY = 16 + row * 15;
    const fill = MILESTONE_COLOR[m.name] ?? '#656d76';
    const tip = `${m.name} at ${formatSeconds(m.atMs)} (${m.source}): ${m.text}`;
    parts.push(html`<line x1="${mx.toFixed(1)}" x2="${mx.toFixed(1)}" y1="${labelY + 3}" y2="${axisY - 6}" stroke="${fill}" stroke-dasharray="2 2"/>`);
    parts.push(html`<circle cx="${mx.toFixed(1)}" cy="${axisY}" r="6" fill="${fill}" data-milestone="${m.name}"><title>${tip}</title></circle>`);
    parts.push(html`<text x="${start.toFixed(1)}" y="${labelY}" font-size="11" fill="${fill}">${label}</text>`);
  });
  const label = `boot milestones: ${sorted.map((m) => `${m.name} at ${formatSeconds(m.atMs)}`).join(', ') || 'none'}; ${bootOutcome(boot.verdict, boot.bootMs)}`;
  return html`<svg class="timeline" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${label}"><title>${label}</title>${parts}</svg>`;
}

function milestoneTable(boot: BootRecord): SafeHtml {
  if (boot.milestones.length === 0) return html`<p class="muted">No milestone was seen on the screen, the serial console or from QEMU.</p>`;
  const rows = [...boot.milestones]
    .sort((a, b) => a.atMs - b.atMs)
    .map((m: BootMilestone) => html`<tr data-milestone="${m.name}"><td>${m.name}</td><td class="num">${formatSeconds(m.atMs)}</td><td>${m.source}</td><td><code class="small">${clip(m.text, MILESTONE_TEXT_MAX)}</code></td></tr>`);
  return html`<table class="milestones"><thead><tr><th>Milestone</th><th class="num">Since start</th><th>Seen on</th><th>Text</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function screenAndSerial(boot: BootRecord): SafeHtml {
  const screen = boot.screenText?.trimEnd();
  const serial = boot.serialTail?.trimEnd();
  const screenPart = screen
    ? html`<section><h3>Final screen text <span class="muted small">(${boot.screenTextSource === 'ocr' ? 'read by OCR' : 'VGA text mode'})</span></h3><pre class="log screen">${screen}</pre></section>`
    : html`<section><h3>Final screen text</h3><p class="muted">None read.</p></section>`;
  const serialPart = serial
    ? html`<section><h3>Serial console (last lines)</h3><pre class="log serial">${serial.split('\n').slice(-SERIAL_TAIL_LINES).join('\n')}</pre></section>`
    : html`<section><h3>Serial console</h3><p class="muted">Nothing was written to the serial console.</p></section>`;
  return html`<div class="grid2">${screenPart}${serialPart}</div>`;
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}
