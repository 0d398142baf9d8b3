import { buildMonthlyReport, renderMonthlyReport, reportFileName, REPORT_CONTENT_TYPES, type ChainReader, type ReportFormat } from '../../reports/monthly/index.js';
import { BackproofError } from '../core/errors.js';
import { EvidenceChain } from '../evidence/chain.js';
import type { RunStore } from '../evidence/run-store.js';
import { HttpError, type WebDeps } from './context.js';

/** Monthly report downloads: the reports engine (reports/monthly) behind the dashboard's links and the API. */
export const REPORT_FORMATS: readonly ReportFormat[] = ['pdf', 'html', 'csv', 'json'];
export type ReportChain = ChainReader;
export { REPORT_CONTENT_TYPES };

/** The store's own evidence chain, read-only (reports read links and verify; they never sign). */
export function chainFor(runs: RunStore): ReportChain {
  return new EvidenceChain(runs.executor, runs.schema);
}

export function isReportFormat(format: string): format is ReportFormat {
  return (REPORT_FORMATS as readonly string[]).includes(format);
}

/** The months offered for download: those with runs, plus the current and the previous month (in `timezone`), newest first. */
export function reportMonths(withRuns: string[], now: Date, timezone: string): string[] {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone: timezone, year: 'numeric', month: 'numeric' }).formatToParts(now);
  const year = Number(parts.find((p) => p.type === 'year')?.value);
  const month = Number(parts.find((p) => p.type === 'month')?.value);
  const current = `${year}-${String(month).padStart(2, '0')}`;
  const previous = month === 1 ? `${year - 1}-12` : `${year}-${String(month - 1).padStart(2, '0')}`;
  return [...new Set([current, previous, ...withRuns])].filter((m) => m <= current).sort().reverse();
}

/** Builds and renders one client's month; a malformed month is a 400. */
export async function renderReport(deps: WebDeps, client: string, month: string, format: ReportFormat): Promise<{ body: Buffer; fileName: string }> {
  let report: Awaited<ReturnType<typeof buildMonthlyReport>>;
  try {
    report = await buildMonthlyReport({ runs: deps.runs, alerts: deps.alerts, chain: deps.chain, config: deps.config() }, { client, month, now: deps.now() });
  } catch (err) {
    if (err instanceof BackproofError && err.code === 'report_month_invalid') throw new HttpError(400, 'bad_month', `${month} is not a month; write YYYY-MM, e.g. 2026-11`);
    throw err;
  }
  return { body: await renderMonthlyReport(report, format), fileName: reportFileName(report, format) };
}
