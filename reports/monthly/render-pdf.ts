import { storageCostText } from './cost-section.js';
import PDFDocument from 'pdfkit';
import { backupSizeChart, restoreTimeChart } from './charts.js';
import { runColumns, type Tone } from './columns.js';
import { coveragePdf, coverageSummaryPdf } from './coverage-pdf.js';
import { batchContent } from './pdf-content.js';
import { fastStandardFonts } from './pdf-fonts.js';
import type { MonthlyReport, PolicySection, ReportScreenshot } from './model.js';
import {
  BLUE,
  bullets,
  type Cell,
  chart,
  clip,
  COLORS,
  CONTENT_W,
  type Doc,
  ensureSpace,
  heading,
  MARGIN,
  MUTED,
  PAGE_H,
  PAGE_W,
  para,
  table,
  TEXT,
  verdictCell,
  widths,
} from './pdf-blocks.js';
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
import { toWinAnsi } from './win-ansi.js';

/**
 * The report as an A4 PDF drawn with pdfkit (pure JavaScript: no browser in the image), the
 * charts drawn with pdfkit from the very shapes the HTML report's SVGs are written from
 * (charts.ts, chart-pdf.ts), a vm policy's boot
 * screenshots as images with their sealed sha256 beneath. Text uses the
 * built-in Helvetica and Courier, so every string goes through `toWinAnsi` (non-Latin names are
 * transliterated; HTML, CSV and JSON keep them as written).
 */

const REASONS_MAX = 240;
const SCREEN_MAX_W = CONTENT_W * 0.6;
const SCREEN_MAX_H = 210;

export async function renderPdf(report: MonthlyReport): Promise<Buffer> {
  const doc = new PDFDocument({
    size: 'A4',
    margins: { top: MARGIN, bottom: MARGIN + 14, left: MARGIN, right: MARGIN },
    bufferPages: true,
    info: {
      Title: `${report.client.displayName}: ${REPORT_TITLE}, ${report.period.label}`,
      Author: report.msp.name,
      Subject: `Restore verification evidence of ${report.client.name} for ${report.period.month}`,
      Creator: report.generator,
      CreationDate: new Date(report.generatedAt),
    },
  });
  // The report's fonts, measured character by character once (pdf-fonts.ts).
  fastStandardFonts(doc, ['Helvetica', 'Helvetica-Bold', 'Courier']);
  // Each page's operators written to it at once (pdf-content.ts).
  batchContent(doc);
  const chunks: Buffer[] = [];
  doc.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });

  cover(doc, report);
  summary(doc, report);
  trends(doc, report);
  for (const p of report.policies) policySection(doc, report, p);
  coveragePdf(doc, report);
  failures(doc, report);
  incidents(doc, report);
  appendix(doc, report);
  footers(doc, report);
  doc.end();
  return done;
}

// ---- building blocks -----------------------------------------------------------------------------

// ---- sections ------------------------------------------------------------------------------------

function cover(doc: Doc, report: MonthlyReport): void {
  doc.rect(0, 0, PAGE_W, 8).fill(BLUE);
  let y = MARGIN;
  if (report.msp.logo) {
    try {
      doc.image(Buffer.from(report.msp.logo.base64, 'base64'), MARGIN, y, { fit: [180, 60] });
      y += 70;
    } catch {
      // An image pdfkit cannot decode (the loader checked only its signature): the name stands alone.
    }
  }
  doc.font('Helvetica-Bold').fontSize(12).fillColor(BLUE).text(toWinAnsi(report.msp.name), MARGIN, y, { width: CONTENT_W });
  doc.moveDown(0.8);
  doc.font('Helvetica').fontSize(11).fillColor(MUTED).text(toWinAnsi(REPORT_TITLE), { width: CONTENT_W });
  doc.moveDown(0.2);
  doc.font('Helvetica-Bold').fontSize(24).fillColor(TEXT).text(toWinAnsi(report.client.displayName), { width: CONTENT_W });
  doc.moveDown(0.2);
  doc.font('Helvetica').fontSize(14).fillColor(TEXT).text(toWinAnsi(report.period.label), { width: CONTENT_W });
  const last = new Date(Date.parse(report.period.to) - 1).toISOString();
  doc.font('Helvetica').fontSize(9).fillColor(MUTED).text(toWinAnsi(`${when(report, report.period.from, false)} to ${when(report, last, false)} (${report.period.timezone}); generated ${when(report, report.generatedAt)} by ${report.generator}`), { width: CONTENT_W });
  const ruleY = doc.y + 10;
  doc.moveTo(MARGIN, ruleY).lineTo(MARGIN + CONTENT_W, ruleY).lineWidth(3).strokeColor(BLUE).stroke();
  doc.y = ruleY + 6;
}

function summary(doc: Doc, report: MonthlyReport): void {
  const s = report.summary;
  heading(doc, 'Summary');
  const tiles: Array<{ label: string; value: string; color?: string }> = [
    { label: 'Policies tested', value: `${s.policiesTested} of ${s.policiesConfigured}` },
    { label: 'Verification runs', value: String(s.runs) },
    { label: 'Pass rate', value: rate(s.passRatePercent), color: s.passRatePercent === null || s.passRatePercent === 100 ? COLORS.pass : COLORS.error },
    { label: 'Failed / errors', value: `${s.failed} / ${s.errored}`, color: s.failed > 0 ? COLORS.fail : s.errored > 0 ? COLORS.error : COLORS.pass },
    { label: 'RTO within target', value: s.rto.met + s.rto.missed > 0 ? `${s.rto.met} of ${s.rto.met + s.rto.missed}` : '-', color: s.rto.missed > 0 ? COLORS.error : TEXT },
    { label: 'RPO within target', value: s.rpo.met + s.rpo.missed > 0 ? `${s.rpo.met} of ${s.rpo.met + s.rpo.missed}` : '-', color: s.rpo.missed > 0 ? COLORS.error : TEXT },
    { label: 'Alert incidents', value: String(s.incidents), color: TEXT },
    { label: 'Open at month end', value: String(s.openAtEnd), color: s.openAtEnd > 0 ? COLORS.fail : COLORS.pass },
  ];
  const perRow = 4;
  const gap = 8;
  const w = (CONTENT_W - gap * (perRow - 1)) / perRow;
  const h = 44;
  for (let i = 0; i < tiles.length; i += perRow) {
    ensureSpace(doc, h + gap);
    const y = doc.y;
    tiles.slice(i, i + perRow).forEach((t, j) => {
      const x = MARGIN + j * (w + gap);
      doc.roundedRect(x, y, w, h, 4).lineWidth(0.8).strokeColor('#c8c8c8').stroke();
      doc.font('Helvetica-Bold').fontSize(15).fillColor(t.color ?? TEXT).text(toWinAnsi(t.value), x + 8, y + 7, { width: w - 16, lineBreak: false });
      doc.font('Helvetica').fontSize(8).fillColor(MUTED).text(toWinAnsi(t.label), x + 8, y + 28, { width: w - 16, lineBreak: false });
    });
    doc.y = y + h + gap;
  }
  if (s.cancelled + s.inProgress > 0) para(doc, `Not counted: ${s.cancelled} cancelled run(s), ${s.inProgress} still running.`, { size: 8, color: MUTED });
  coverageSummaryPdf(doc, report);
  for (const c of report.summary.storageCost) para(doc, `${storageCostText(c)}.`, { size: 8.5, bold: c.budget?.over === true, color: c.budget?.over ? COLORS.fail : TEXT, gap: 6 });
  para(doc, 'Pass rate: passed runs of all runs that finished with a verdict; a run that could not verify (error) counts against it. RTO: measured from the start of the fetch until the restored system answered. RPO: the age of the newest backup when the run started.', { size: 7.5, color: MUTED, gap: 6 });

  const [c0, ck, c1, c2, c3, c4, c5, c6] = widths(84, 34, 30, 38, 74, 112, 112, 38);
  table(
    doc,
    [
      { header: 'Policy', width: c0! },
      { header: 'Kind', width: ck! },
      { header: 'Runs', width: c1!, align: 'right' },
      { header: 'Pass rate', width: c2!, align: 'right' },
      { header: 'Last successful restore', width: c3! },
      { header: 'Measured RTO', width: c4! },
      { header: 'RPO (backup age)', width: c5! },
      { header: 'Last verdict', width: c6! },
    ],
    report.policies.map((p) => [
      `${p.policy}${p.configured ? '' : ' (no longer configured)'}`,
      p.kind,
      String(p.runs),
      rate(p.passRatePercent),
      lastSuccess(report, p),
      `${targetSummary(p.rto, 'rto')}${p.boot ? `\nBoot: ${bootSummary(p.boot)}` : ''}`,
      targetSummary(p.rpo, 'rpo'),
      verdictCell(p.lastVerdict),
    ]),
  );
}

function trends(doc: Doc, report: MonthlyReport): void {
  doc.addPage();
  heading(doc, 'Trends');
  chart(doc, restoreTimeChart(report), 'Restore time per run (measured RTO; dashed: RTO target)');
  chart(doc, backupSizeChart(report), 'Backup size per run');
}

function policySection(doc: Doc, report: MonthlyReport, p: PolicySection): void {
  heading(doc, `Policy ${p.policy}`);
  para(doc, `${p.kind}${p.schedule ? `, verified ${p.schedule}` : ''}${p.configured ? '' : ' (no longer configured)'}`, { size: 8.5, color: MUTED });
  para(
    doc,
    `${p.runs} runs: ${p.passed} passed, ${p.failed} failed, ${p.errored} errors; pass rate ${rate(p.passRatePercent)}. Last successful restore: ${lastSuccess(report, p)}.`,
  );
  para(doc, `RTO: ${targetSummary(p.rto, 'rto')}. RPO: ${targetSummary(p.rpo, 'rpo')}.${p.backupSize ? ` Backup size from ${bytes(p.backupSize.firstBytes)} to ${bytes(p.backupSize.lastBytes)} (min ${bytes(p.backupSize.minBytes)}, max ${bytes(p.backupSize.maxBytes)}).` : ''}`, { gap: 6 });
  if (p.boot) para(doc, `Boot: ${bootSummary(p.boot)}.`, { gap: 6 });
  for (const shot of p.screenshots) screenshot(doc, report, shot);
  // Runs of the newest backup; coverage runs of older restore points are in their own section.
  const runs = report.runs.filter((r) => r.policy === p.policy && r.coverage === null);
  if (runs.length === 0) return para(doc, 'No run in this period.', { color: MUTED });
  // The columns of columns.ts, as the HTML and CSV have them.
  const columns = runColumns(p.boot !== null);
  const colWidths = widths(...columns.map((c) => c.pdfWidth));
  table(
    doc,
    columns.map((c, i) => ({ header: c.header, width: colWidths[i]!, ...(c.numeric ? { align: 'right' as const } : {}), ...(c.mono ? { mono: true } : {}) })),
    runs.map((r) =>
      columns.map((c): Cell => {
        const text = c.text(r, report);
        return { text: c.id === 'reasons' ? clip(text, REASONS_MAX) : text, ...toneStyle(c.tone?.(r) ?? null) };
      }),
    ),
  );
}

function toneStyle(tone: Tone | null): Omit<Cell, 'text'> {
  if (tone === null) return {};
  if (tone === 'muted') return { color: MUTED };
  return { color: COLORS[tone], bold: tone !== 'pass' };
}

/** A boot screenshot, scaled to fit, framed, with its title above and its run and sealed sha256 below. */
function screenshot(doc: Doc, report: MonthlyReport, shot: ReportScreenshot): void {
  const image = shot.base64 ? Buffer.from(shot.base64, 'base64') : null;
  const size = image ? (pngSize(image) ?? (shot.image?.width && shot.image.height ? { width: shot.image.width, height: shot.image.height } : null)) : null;
  const scale = size ? Math.min(SCREEN_MAX_W / size.width, SCREEN_MAX_H / size.height) : 0;
  const w = size ? size.width * scale : SCREEN_MAX_W;
  const h = size ? size.height * scale : SCREEN_MAX_H;
  const [first, ...rest] = screenshotCaption(report, shot).map(toWinAnsi);
  doc.font('Helvetica').fontSize(7.5);
  const captionH = doc.heightOfString(first ?? '', { width: CONTENT_W }) + rest.length * 10;
  ensureSpace(doc, 18 + (image ? h + 6 : 0) + captionH + 10);
  const color = shot.bootVerdict === 'booted' ? COLORS.pass : COLORS.fail;
  doc.font('Helvetica-Bold').fontSize(9.5).fillColor(color).text(toWinAnsi(screenshotTitle(shot)), MARGIN, doc.y, { width: CONTENT_W });
  doc.y += 3;
  if (image) {
    const y = doc.y;
    try {
      doc.image(image, MARGIN, y, size ? { width: w, height: h } : { fit: [w, h] });
      doc.rect(MARGIN, y, w, h).lineWidth(0.6).strokeColor('#999999').stroke();
      doc.y = y + h + 4;
    } catch {
      doc.y = y;
      para(doc, 'The screenshot could not be drawn (pdfkit cannot decode it); its sha256 is below.', { size: 8, color: COLORS.fail });
    }
  }
  doc.font('Helvetica').fontSize(7.5).fillColor(TEXT).text(first ?? '', MARGIN, doc.y, { width: CONTENT_W });
  for (const line of rest) {
    const mono = line.includes('sha256 ');
    doc.font(mono ? 'Courier' : 'Helvetica').fontSize(mono ? 7 : 7.5).fillColor(line.startsWith('No image') ? COLORS.fail : MUTED).text(line, MARGIN, doc.y, { width: CONTENT_W });
  }
  doc.x = MARGIN;
  doc.y += 8;
}

/** Width and height from a PNG's IHDR; null for anything else. */
function pngSize(bytes: Buffer): { width: number; height: number } | null {
  const signature = '89504e470d0a1a0a';
  if (bytes.length < 24 || bytes.subarray(0, 8).toString('hex') !== signature || bytes.toString('latin1', 12, 16) !== 'IHDR') return null;
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  return width > 0 && height > 0 ? { width, height } : null;
}

function failures(doc: Doc, report: MonthlyReport): void {
  heading(doc, 'Failures and what was done');
  if (report.failures.length === 0) return para(doc, 'No verification failed in this period.');
  for (const f of report.failures) {
    ensureSpace(doc, 80);
    const y0 = doc.y;
    doc.font('Helvetica-Bold').fontSize(9.5).fillColor(TEXT).text(toWinAnsi(`${when(report, f.at)}  ${f.policy}  `), MARGIN + 8, y0, { continued: true, width: CONTENT_W - 8 });
    doc.fillColor(COLORS[f.verdict]).text(verdictText(f.verdict), { continued: true });
    doc.font('Courier').fontSize(7.5).fillColor(MUTED).text(`   run ${f.runId}`);
    doc.y += 2;
    const indent = 8;
    for (const r of f.reasons) para(doc, `${r.code}: ${r.message}`, { size: 8.5, indent, gap: 1 });
    para(doc, 'Next steps:', { size: 8.5, bold: true, indent, gap: 1 });
    for (const step of f.nextSteps) para(doc, `- ${step}`, { size: 8.5, indent: indent + 6, gap: 1 });
    const done = f.incidents.length > 0 ? f.incidents.map((ref) => incidentOutcome(report, report.incidents.find((i) => i.id === ref.id)!)).join('. ') : 'No alert incident was recorded for this run';
    para(doc, `What was done: ${done}.`, { size: 8.5, indent, gap: 1 });
    para(doc, f.recoveredAt ? `Recovered: the next verification passed on ${when(report, f.recoveredAt)} (run ${short(f.recoveredByRunId!)}).` : 'Not recovered by the time of this report.', {
      size: 8.5,
      indent,
      color: f.recoveredAt ? COLORS.pass : COLORS.fail,
      gap: 1,
    });
    // A coloured bar beside the entry, when it stayed on one page.
    if (doc.y > y0) doc.rect(MARGIN, y0, 3, doc.y - y0).fill(COLORS[f.verdict]);
    doc.y += 8;
  }
}

function incidents(doc: Doc, report: MonthlyReport): void {
  heading(doc, 'Alert incidents');
  if (report.incidents.length === 0) return para(doc, 'No alert incident in this period.');
  const [c0, c1, c2, c3, c4] = widths(58, 70, 52, 160, 155);
  table(
    doc,
    [
      { header: 'Opened', width: c0! },
      { header: 'Policy', width: c1! },
      { header: 'Condition', width: c2! },
      { header: 'Summary and next steps', width: c3! },
      { header: 'What was done', width: c4! },
    ],
    report.incidents.map((i) => [when(report, i.openedAt), i.policy, i.condition, clip([i.summary, ...i.nextSteps.map((s) => `- ${s}`)].join('\n'), 700), incidentOutcome(report, i)]),
  );
}

function appendix(doc: Doc, report: MonthlyReport): void {
  heading(doc, 'Evidence appendix');
  const chain = chainText(report);
  para(doc, chain.headline, { bold: true, color: chain.ok ? COLORS.pass : COLORS.fail, size: 10 });
  bullets(doc, chain.lines);
  para(doc, `Signing key fingerprint: ${report.evidence.signingKeyFingerprint ?? 'none'}`, { size: 8.5 });
  if (report.evidence.publicKeys.length > 0) para(doc, `Installation public keys: ${report.evidence.publicKeys.join(', ')}`, { size: 8.5 });
  para(
    doc,
    "Each run's record is hashed together with the hash of the record before it, so changing, removing, inserting or reordering any record breaks every hash after it. Check with backproof evidence verify, or offline with an exported bundle (backproof evidence export).",
    { size: 7.5, color: MUTED, gap: 6 },
  );
  if (report.runs.length === 0) return;
  const [c0, c1, c2, c3] = widths(62, 80, 28, 325);
  table(
    doc,
    [
      { header: 'Started', width: c0! },
      { header: 'Policy', width: c1! },
      { header: 'Seq', width: c2!, align: 'right' },
      { header: 'Run id / record hash (SHA-256)', width: c3!, mono: true },
    ],
    report.runs.map((r) => [when(report, r.startedAt), r.policy, r.chainSeq === null ? '-' : String(r.chainSeq), `${r.runId}\n${r.hash ?? 'not chained'}`]),
    7,
  );
}

function footers(doc: Doc, report: MonthlyReport): void {
  const range = doc.bufferedPageRange();
  for (let i = range.start; i < range.start + range.count; i++) {
    doc.switchToPage(i);
    // Below the bottom margin: lift it while writing, or pdfkit would start a new page.
    const margin = doc.page.margins.bottom;
    doc.page.margins.bottom = 0;
    const y = PAGE_H - MARGIN + 12;
    doc.moveTo(MARGIN, y - 4).lineTo(MARGIN + CONTENT_W, y - 4).lineWidth(0.4).strokeColor('#c8c8c8').stroke();
    doc.font('Helvetica').fontSize(7.5).fillColor(MUTED);
    doc.text(clip(toWinAnsi(`${report.msp.name}  |  ${report.client.displayName}  |  ${report.period.label}`), 90), MARGIN, y, { width: CONTENT_W * 0.8, lineBreak: false });
    doc.text(`page ${i - range.start + 1} of ${range.count}`, MARGIN, y, { width: CONTENT_W, align: 'right', lineBreak: false });
    doc.page.margins.bottom = margin;
  }
}

