import { createHash } from 'node:crypto';
import type { MonthlyReport, PolicySection, ReportScreenshot } from './model.js';

/**
 * The report model as JSON (pretty-printed, UTF-8): the same numbers every other format shows.
 * The logo and the boot screenshots are left out (their media type, size and SHA-256 stay) so the
 * file holds only evidence; a screenshot's SHA-256 is the one sealed in its run's record.
 */
export type MonthlyReportJson = Omit<MonthlyReport, 'msp' | 'policies'> & {
  msp: { name: string; logo: { mediaType: string; bytes: number; sha256: string } | null };
  policies: Array<Omit<PolicySection, 'screenshots'> & { screenshots: Array<Omit<ReportScreenshot, 'base64'>> }>;
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
    policies: report.policies.map((p) => ({ ...p, screenshots: p.screenshots.map(({ base64: _bytes, ...shot }) => shot) })),
  };
}

export function renderJson(report: MonthlyReport): string {
  return JSON.stringify(reportJson(report), null, 2) + '\n';
}
