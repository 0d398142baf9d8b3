import type { BootRecord, RunRecord } from '../orchestrator/core/domain.js';
import { accelText, attemptText, bootOutcome, diskText, diskUnchangedText, firmwareText, qemuText, screenshotCommand, screenshotText } from './boot-text.js';
import { renderTable } from './text-table.js';
import { formatAge as age, formatBytes as bytes, formatSeconds as secs } from '../orchestrator/core/format.js';

/** Plain-text views of run evidence for the terminal: one run in detail, or a table of runs. */

const WHY_TEXT = { never: 'never verified before', oldest: 'its proof was the oldest', sample: 'random sample' } as const;

/** Retention coverage: what a coverage run restored and why, or the plan a run of the newest made. */
function coverageLines(run: RunRecord): string[] {
  const point = run.coverage?.point;
  if (point) return [`  coverage older restore point ${point.key} (${WHY_TEXT[point.why]}), planned by run ${point.planRunId}`];
  const plan = run.coverage?.plan;
  if (!plan) return [];
  const next = plan.planned.length ? `; next: ${plan.planned.map((p) => `${p.key} (${WHY_TEXT[p.why]})`).join(', ')}` : '';
  return [`  coverage ${plan.proven} of ${plan.points} restore points proven within ${age(plan.everyMs)}${plan.target !== undefined ? ` (target ${Math.round(plan.target * 100)}%)` : ''}${next}`];
}

export function renderRunSummary(run: RunRecord): string {
  const lines: string[] = [];
  const verdict = run.verdict ? run.verdict.toUpperCase() : run.status.toUpperCase();
  lines.push(`${verdict}  ${run.client}/${run.policy}  run ${run.id}`);
  lines.push(`  status   ${run.status}, started ${run.startedAt}${run.durationMs !== null ? `, took ${secs(run.durationMs)}` : ''}`);
  for (const r of run.reasons) lines.push(`  reason   ${r.code}: ${r.message}`);
  lines.push(...coverageLines(run));
  const b = run.backup;
  if (b) {
    lines.push(`  backup   ${b.location}/${b.key}`);
    lines.push(`           ${bytes(b.size)}, taken ${b.backupTime} (${b.timestampSource}), age ${age(b.ageMs)}`);
    if (b.format) lines.push(`           format ${b.format}${b.compression && b.compression !== 'none' ? ` + ${b.compression}` : ''}${b.header?.serverVersion ? `, dumped from ${dumpedFrom(run.kind, b.header)} ${b.header.serverVersion}` : ''}`);
    const h = b.header ?? {};
    for (const [key, label] of [['databases', 'databases'], ['probedDatabase', 'probed in'], ['rolesCreated', 'roles made'], ['localesReplaced', 'locales']] as const) {
      if (h[key]) lines.push(`           ${label}: ${h[key]}`);
    }
    if (b.sha256) lines.push(`  sha256   ${b.sha256}  (${bytes(b.bytesRead ?? 0)} read)`);
    // Records written before checksums became a list (backproof 0.1 first runs) hold one.
    const legacy = (b as { checksum?: { expected?: string; source?: string; verified: boolean } }).checksum;
    if (legacy?.expected) lines.push(`  checksum sha256 ${legacy.verified ? 'verified against' : 'NOT matching'} ${legacy.source}`);
    for (const c of b.checksums ?? []) {
      lines.push(`  checksum ${c.algorithm} ${c.verified ? 'verified against' : b.sha256 ? 'NOT matching' : 'not checked against'} ${c.source}`);
    }
    if (b.checksums?.length === 0) lines.push(`  checksum none kept by the store or beside the backup (sha256 recorded only)`);
    for (const u of b.unverifiableChecksums ?? []) lines.push(`  checksum ${u}`);
    for (const [key, value] of Object.entries(b.provider ?? {})) lines.push(`  ${key.padEnd(8)} ${value}`);
    if (b.storageCheck) {
      lines.push(`  check    ${b.storageCheck.what}: ${b.storageCheck.summary}`);
      for (const p of b.storageCheck.problems.slice(0, 5)) lines.push(`           ${p}`);
    }
  }
  const m = run.metrics;
  if (m.rpoMeasuredMs !== undefined) {
    lines.push(`  rpo      ${age(m.rpoMeasuredMs)}${m.rpoTargetMs !== undefined ? ` (target ${age(m.rpoTargetMs)}: ${m.rpoMet ? 'met' : 'MISSED'})` : ''}`);
  }
  if (m.rtoMeasuredMs !== undefined) {
    lines.push(`  rto      ${secs(m.rtoMeasuredMs)}${m.rtoTargetMs !== undefined ? ` (target ${age(m.rtoTargetMs)}: ${m.rtoMet ? 'met' : 'MISSED'})` : ''}`);
  }
  if (run.sandbox) {
    lines.push(`  sandbox  ${run.sandbox.runtime} ${run.sandbox.image}${run.sandbox.serverVersion && run.sandbox.serverVersion !== run.sandbox.image ? `, ${SERVER_OF_KIND[run.kind] ?? ''}${run.sandbox.serverVersion}` : ''}, no network`);
    if (run.sandbox.imageChoice) lines.push(`           image chosen: ${run.sandbox.imageChoice}`);
  }
  if (run.restored) {
    lines.push(`  restored ${Object.entries(run.restored).map(([k, v]) => `${k} ${k === 'sizeBytes' ? bytes(Number(v)) : v}`).join(', ')}`);
  }
  if (run.boot) lines.push(...bootLines(run.id, run.boot));
  lines.push('  phases');
  for (const p of run.phases) {
    const mark = p.outcome === 'ok' ? 'ok  ' : p.outcome === 'skipped' ? '-   ' : p.outcome.toUpperCase().padEnd(4);
    const after = p.outcome === 'skipped' ? (p.detail ? `   ${p.detail}` : '') : secs(p.durationMs).padStart(8);
    lines.push(`    ${mark} ${p.name.padEnd(14)} ${after}`.trimEnd());
  }
  if (run.probes.length > 0) {
    lines.push('  probes');
    for (const p of run.probes) {
      lines.push(`    ${p.pass ? 'ok  ' : 'FAIL'} ${p.name}: expected ${p.expected}; got ${p.error ? `error: ${p.error}` : p.actual} (${secs(p.durationMs)})`);
    }
  }
  if (run.sandbox?.logTail && run.verdict !== 'pass') {
    lines.push('  server log (tail)');
    for (const l of run.sandbox.logTail.trim().split('\n').slice(-8)) lines.push(`    ${l}`);
  }
  return lines.join('\n');
}

const SCREEN_LINES = 12;
const SERIAL_LINES = 8;

/** Kind vm: the verdict and its reason, the machine, the milestones, the screenshot and how to save it. */
function bootLines(runId: string, boot: BootRecord): string[] {
  const lines = [`  boot     ${bootOutcome(boot.verdict, boot.bootMs)}: ${boot.reason}`];
  if (boot.failure) lines.push(`           failure: ${boot.failure}`);
  lines.push(`           ${accelText(boot)}; firmware ${firmwareText(boot)}`);
  for (const a of boot.attempts ?? []) lines.push(`           attempt: ${attemptText(a)}`);
  lines.push(`           machine ${boot.machine}, ${boot.bus} disk: ${diskText(boot)}; ${qemuText(boot.qemuVersion)}`);
  lines.push(`           disk image unchanged after boot: ${diskUnchangedText(boot.diskUnchanged)}`);
  if (boot.milestones.length > 0) {
    lines.push('  milestones');
    for (const m of [...boot.milestones].sort((a, b) => a.atMs - b.atMs)) {
      const text = m.text.replace(/\s+/g, ' ').trim();
      lines.push(`    ${secs(m.atMs).padStart(8)}  ${m.name.padEnd(10)} ${m.source.padEnd(6)} ${text.length > 90 ? `${text.slice(0, 87)}...` : text}`);
    }
  } else {
    lines.push('  milestones none seen');
  }
  if (boot.screenshot) {
    lines.push(`  screen   ${boot.screenshot.name}, ${screenshotText(boot.screenshot)}, ${boot.screenshots} taken`);
    lines.push(`           sha256 ${boot.screenshot.sha256}`);
    lines.push(`           save it: ${screenshotCommand(runId)}`);
  }
  const screen = boot.screenText?.trimEnd();
  if (screen && boot.verdict !== 'booted') {
    lines.push(`  screen text (${boot.screenTextSource === 'ocr' ? 'OCR' : 'VGA text'}, last lines)`);
    for (const l of screen.split('\n').filter((x) => x.trim() !== '').slice(-SCREEN_LINES)) lines.push(`    ${l.trimEnd()}`);
  }
  const serial = boot.serialTail?.trimEnd();
  if (serial && boot.verdict !== 'booted') {
    lines.push('  serial console (tail)');
    for (const l of serial.split('\n').slice(-SERIAL_LINES)) lines.push(`    ${l.trimEnd()}`);
  }
  return lines;
}

export function renderRunsTable(runs: RunRecord[]): string {
  if (runs.length === 0) return 'no runs recorded yet';
  const rows = runs.map((r) => [
    r.id.slice(0, 8),
    r.startedAt.replace('T', ' ').slice(0, 19),
    `${r.client}/${r.policy}`,
    r.verdict ?? '-',
    r.status,
    r.durationMs !== null ? secs(r.durationMs) : '-',
    // A coverage run restores an older restore point: marked, so it is not read as the newest backup.
    `${r.backup?.key ?? r.coverage?.point?.key ?? '-'}${r.coverage?.point ? ' (coverage)' : ''}`,
    r.reasons[0] ? `${r.reasons[0].code}` : '',
  ]);
  const head = ['RUN', 'STARTED (UTC)', 'POLICY', 'VERDICT', 'STATUS', 'TIME', 'BACKUP', 'REASON'];
  return renderTable(head, rows);
}

/** What runs in the sandbox, named before its version where the version does not say. */
const SERVER_OF_KIND: Record<string, string> = { postgres: 'PostgreSQL ', sqlite: 'SQLite ' };

/** The server a dump came from, as its header says. */
function dumpedFrom(kind: string, header: Record<string, string>): string {
  if (kind === 'mysql') return header.serverFlavor ?? 'MySQL';
  return kind === 'postgres' ? 'PostgreSQL' : kind;
}
