import { createHash } from 'node:crypto';
import type { MonthlyReport } from './model.js';

/**
 * The report model as JSON (pretty-printed, UTF-8): the same numbers every other format shows.
 * The logo is left out (its media type, size and SHA-256 stay) so the file holds only evidence.
 */
export type MonthlyReportJson = Omit<MonthlyReport, 'msp'> & {
  msp: { name: string; logo: { mediaType: string; bytes: number; sha256: string } | null };
};

export function reportJson(report: MonthlyReport): MonthlyReportJson {
  const logo = report.msp.logo;
  const data = logo ? Buffer.from(logo.base64, 'base64') : null;
  return {
    ...report,
    msp: {
      name: report.msp.name,
      logo: logo && data ? { mediaType: logo.mediaType, bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') } : null,
    },
  };
}

export function renderJson(report: MonthlyReport): string {
  return JSON.stringify(reportJson(report), null, 2) + '\n';
}
