import type { ReportFormat } from '../../orchestrator/core/config-types.js';
import type { MonthlyReport } from './model.js';
import { renderCsv } from './render-csv.js';
import { renderHtml } from './render-html.js';
import { renderJson } from './render-json.js';

/**
 * Monthly client reports: `buildMonthlyReport` (model.ts) reads the evidence into a model;
 * `renderMonthlyReport` turns it into a file. The CLI (`backproof report`), the daemon's monthly
 * mailing and the web dashboard's downloads all go through these two.
 */
export { buildMonthlyReport, chainForBatch, findClient, type MonthlyReport, type MonthlyReportDeps, type MonthlyReportOptions, type ChainReader } from './model.js';
export { monthPeriod, parseMonth, previousMonth } from './period.js';
export type { ReportFormat };

export const REPORT_CONTENT_TYPES: Record<ReportFormat, string> = {
  pdf: 'application/pdf',
  html: 'text/html; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
  json: 'application/json; charset=utf-8',
};

export async function renderMonthlyReport(report: MonthlyReport, format: ReportFormat): Promise<Buffer> {
  switch (format) {
    case 'pdf': {
      // pdfkit (with fontkit and its tables) costs ~200 ms and ~23 MB to load: only when a PDF is made.
      const { renderPdf } = await import('./render-pdf.js');
      return renderPdf(report);
    }
    case 'html':
      return Buffer.from(renderHtml(report), 'utf8');
    case 'csv':
      return Buffer.from(renderCsv(report), 'utf8');
    case 'json':
      return Buffer.from(renderJson(report), 'utf8');
  }
}

/** `backproof-acme-2026-11.pdf`: the client's name is an identifier, so the name is safe as it is. */
export function reportFileName(report: Pick<MonthlyReport, 'client' | 'period'>, format: ReportFormat): string {
  return `backproof-${report.client.name.replace(/[^a-z0-9._-]/gi, '_')}-${report.period.month}.${format}`;
}
