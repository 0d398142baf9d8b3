import type { MonthlyReport, ReportRun } from './model.js';
import { bootCell, bytes, measuredVsTarget, reasonsText, short, verdictText, when } from './text.js';

/**
 * The run table's columns, once for every format: the HTML and PDF tables show `header` and
 * `text`; the CSV's run rows carry each of `fields` as a column (snake_case, raw values: ms,
 * bytes, ISO times); the JSON's runs carry `fields` as they are in the model. A column added
 * here appears in all four (test/report-formats.test.ts checks).
 */

/** How a cell is marked in HTML (class `v-<tone>`) and PDF (colour; bold unless pass). */
export type Tone = 'pass' | 'fail' | 'error' | 'muted';

export interface RunColumn {
  id: string;
  header: string;
  /** The model fields the column shows. */
  fields: ReadonlyArray<keyof ReportRun>;
  text: (r: ReportRun, report: MonthlyReport) => string;
  tone?: (r: ReportRun) => Tone | null;
  /** Right-aligned. */
  numeric?: boolean;
  /** Monospace (a run id). */
  mono?: boolean;
  /** Only in the table of a policy whose runs booted a machine (kind vm). */
  bootOnly?: boolean;
  /** The HTML cell's class, for its layout. */
  htmlClass?: string;
  /** The column's share of the PDF table's width. */
  pdfWidth: number;
}

const bad = (flag: boolean): Tone | null => (flag ? 'fail' : null);

export const RUN_COLUMNS: readonly RunColumn[] = [
  { id: 'started', header: 'Started', fields: ['startedAt'], text: (r, report) => when(report, r.startedAt), htmlClass: 'when', pdfWidth: 68 },
  { id: 'kind', header: 'Kind', fields: ['kind'], text: (r) => r.kind, pdfWidth: 38 },
  {
    id: 'verdict',
    header: 'Verdict',
    fields: ['verdict', 'status'],
    text: (r) => verdictText(r.verdict, r.status),
    tone: (r) => (r.status === 'running' || r.status === 'cancelled' || r.verdict === null ? 'muted' : r.verdict),
    pdfWidth: 32,
  },
  { id: 'backup', header: 'Backup', fields: ['backupKey'], text: (r) => r.backupKey ?? '-', htmlClass: 'key', pdfWidth: 76 },
  { id: 'size', header: 'Size', fields: ['backupSizeBytes'], text: (r) => bytes(r.backupSizeBytes), numeric: true, pdfWidth: 40 },
  {
    id: 'rpo',
    header: 'RPO / target',
    fields: ['rpoMeasuredMs', 'rpoTargetMs', 'rpoMet'],
    text: (r) => measuredVsTarget(r.rpoMeasuredMs, r.rpoTargetMs, 'rpo'),
    tone: (r) => bad(r.rpoMet === false),
    pdfWidth: 50,
  },
  {
    id: 'rto',
    header: 'RTO / target',
    fields: ['rtoMeasuredMs', 'rtoTargetMs', 'rtoMet'],
    text: (r) => measuredVsTarget(r.rtoMeasuredMs, r.rtoTargetMs, 'rto'),
    tone: (r) => bad(r.rtoMet === false),
    pdfWidth: 50,
  },
  {
    id: 'boot',
    header: 'Boot',
    fields: ['bootVerdict', 'bootMs'],
    text: (r) => bootCell(r.bootVerdict, r.bootMs),
    tone: (r) => bad(r.bootVerdict !== null && r.bootVerdict !== 'booted'),
    bootOnly: true,
    pdfWidth: 52,
  },
  { id: 'run', header: 'Run', fields: ['runId'], text: (r) => short(r.runId), mono: true, pdfWidth: 42 },
  { id: 'reasons', header: 'Reasons', fields: ['reasons'], text: (r) => reasonsText(r), pdfWidth: 99 },
];

/** The columns of one policy's run table: the boot's only when its runs booted a machine. */
export function runColumns(withBoot: boolean): RunColumn[] {
  return RUN_COLUMNS.filter((c) => withBoot || !c.bootOnly);
}

/** `rpoMeasuredMs` -> `rpo_measured_ms`: a field's CSV column. */
export function csvName(field: keyof ReportRun): string {
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** A field's raw value for the CSV: reasons as `code: message; ...`, the rest as in the model. */
export function csvValue(r: ReportRun, field: keyof ReportRun): string | number | boolean | null {
  if (field === 'reasons') return reasonsText(r);
  const value = r[field];
  return Array.isArray(value) ? null : (value as string | number | boolean | null);
}
