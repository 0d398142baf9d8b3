import schedule from 'node-schedule';
import { buildMonthlyReport, chainForBatch, previousMonth, REPORT_CONTENT_TYPES, renderMonthlyReport, reportFileName, type MonthlyReport } from '../../reports/monthly/index.js';
import { rate } from '../../reports/monthly/text.js';
import type { RoutedChannel } from '../alerts/channels-from-config.js';
import { EmailChannel } from '../alerts/email-channel.js';
import type { ClientConfig, ResolvedConfig } from '../core/config-types.js';
import type { AlertStore } from '../evidence/alert-store.js';
import { EvidenceChain } from '../evidence/chain.js';
import type { RunStore } from '../evidence/run-store.js';
import { formatBytes } from '../core/format.js';
import type { Logger } from '../core/logger.js';

/**
 * The daemon's monthly mailing: on `reports.schedule` (default the 1st at 06:00 in
 * reports.timezone) every client's report of the previous month goes, in `reports.format`, to
 * the client's `reports.to` (else its `alerts.to`) through the email channel `reports.channel`.
 * Each sending is recorded as a delivery of kind `report` (policy '', condition 'report') and
 * logged; a client without recipients is skipped with a log line. A failed sending is not
 * retried later (the channel retries within the sending); `backproof report` makes it by hand.
 */
export interface ReportMailerDeps {
  config: ResolvedConfig;
  runs: RunStore;
  alerts: AlertStore;
  /** The daemon's channels (channels-from-config.ts); `reports.channel` must be an email one. */
  channels: Map<string, RoutedChannel>;
  logger: Logger;
  signal?: AbortSignal;
  now?: () => Date;
}

export interface ReportMailing {
  client: string;
  month: string;
  outcome: 'sent' | 'failed' | 'skipped';
  to: string[];
  filename?: string;
  error?: string;
}

/** Recipients of a client's report: its `reports.to`, else its `alerts.to`. */
export function reportRecipients(client: ClientConfig): string[] {
  return [...(client.reports?.to ?? client.alerts.to ?? [])];
}

/** Builds and mails every client's report of `month` (YYYY-MM); one client's failure does not stop the others. */
export async function mailMonthlyReports(deps: ReportMailerDeps, month: string): Promise<ReportMailing[]> {
  const reports = deps.config.reports;
  const now = deps.now ?? (() => new Date());
  const out: ReportMailing[] = [];
  const routed = reports?.channel !== undefined ? deps.channels.get(reports.channel) : undefined;
  const channel = routed?.channel instanceof EmailChannel ? routed.channel : undefined;
  if (!reports || !channel) {
    deps.logger.warn(`monthly reports for ${month} not mailed: ${!reports ? 'the config has no reports: block' : `no email channel ${reports.channel ?? '(reports.channel)'} under alerts.channels`}`);
    return out;
  }
  const chain = chainForBatch(new EvidenceChain(deps.runs.executor, deps.runs.schema));
  for (const client of deps.config.clients) {
    if (deps.signal?.aborted) break;
    const to = reportRecipients(client);
    if (to.length === 0) {
      deps.logger.info(`monthly report of ${client.name} for ${month} not mailed: no recipients (set clients[].reports.to or clients[].alerts.to)`);
      out.push({ client: client.name, month, outcome: 'skipped', to });
      continue;
    }
    const createdAt = now().toISOString();
    let report: MonthlyReport;
    let file: Buffer;
    try {
      report = await buildMonthlyReport({ runs: deps.runs, alerts: deps.alerts, chain, config: deps.config }, { client: client.name, month, now: now() });
      file = await renderMonthlyReport(report, reports.format);
    } catch (err) {
      const error = `the report could not be built: ${(err as Error).message}`;
      deps.logger.error(`monthly report of ${client.name} for ${month}: ${error}`);
      await record(deps, { client: client.name, channel: channel.name, ok: false, attempts: 0, createdAt, at: now().toISOString(), durationMs: 0, error, payload: { month, to } });
      out.push({ client: client.name, month, outcome: 'failed', to, error });
      continue;
    }
    const filename = reportFileName(report, reports.format);
    const result = await channel.sendDocument(
      {
        to,
        subject: `${report.client.displayName}: backup restore verification report, ${report.period.label}`,
        text: mailText(report, filename),
        attachments: [{ filename, content: file, contentType: REPORT_CONTENT_TYPES[reports.format].split(';')[0]! }],
      },
      deps.signal,
    );
    await record(deps, {
      client: client.name,
      channel: channel.name,
      ok: result.ok,
      attempts: result.attempts,
      createdAt,
      at: result.at,
      durationMs: result.durationMs,
      ...(result.error !== undefined ? { error: result.error } : {}),
      detail: `${filename} (${formatBytes(file.length)})${result.detail ? `: ${result.detail}` : ''}`,
      payload: { month, format: reports.format, filename, bytes: file.length, to },
    });
    if (result.ok) {
      deps.logger.info(`monthly report of ${client.name} for ${month} mailed to ${to.join(', ')} via ${channel.name} (${filename}, ${formatBytes(file.length)})`);
      out.push({ client: client.name, month, outcome: 'sent', to, filename });
    } else {
      deps.logger.warn(`monthly report of ${client.name} for ${month} not delivered: ${result.error ?? 'unknown error'}`);
      out.push({ client: client.name, month, outcome: 'failed', to, filename, ...(result.error !== undefined ? { error: result.error } : {}) });
    }
  }
  return out;
}

/**
 * The node-schedule job of `reports.schedule`, calling `onDue` with the previous month (in
 * reports.timezone) at each firing; null when reports are not mailed (no schedule or channel).
 */
export function scheduleReportMailing(config: ResolvedConfig, logger: Logger, onDue: (month: string) => void): schedule.Job | null {
  const reports = config.reports;
  if (!reports?.schedule) return null;
  if (reports.channel === undefined) {
    logger.info('monthly reports are not mailed: no email channel under alerts.channels (see reports.channel)');
    return null;
  }
  const s = reports.schedule;
  const job = schedule.scheduleJob({ rule: s.cron, tz: s.timezone }, (fireDate: Date) => onDue(previousMonth(fireDate instanceof Date ? fireDate : new Date(), s.timezone)));
  if (!job) {
    logger.error(`cannot schedule the monthly reports: node-schedule refused ${JSON.stringify(s.cron)} in ${s.timezone}`);
    return null;
  }
  logger.info(`monthly reports: mailed ${s.text} (${s.timezone}) through ${reports.channel}, as ${reports.format}`);
  return job;
}

function mailText(report: MonthlyReport, filename: string): string {
  const s = report.summary;
  const lines = [
    `${report.msp.name}: backup restore verification report for ${report.client.displayName}, ${report.period.label}.`,
    '',
    `Policies tested: ${s.policiesTested} of ${s.policiesConfigured}`,
    `Verification runs: ${s.runs} (${s.passed} passed, ${s.failed} failed, ${s.errored} could not verify)`,
    `Pass rate: ${rate(s.passRatePercent)}`,
    `Alert incidents: ${s.incidents}${s.openAtEnd > 0 ? ` (${s.openAtEnd} still open at the end of the month)` : ''}`,
    `Evidence chain: ${report.evidence.verification.ok ? 'verified' : 'NOT verified (see the report)'}`,
    '',
    `The full report is attached (${filename}).`,
  ];
  return lines.join('\n');
}

async function record(
  deps: ReportMailerDeps,
  d: { client: string; channel: string; ok: boolean; attempts: number; createdAt: string; at: string; durationMs: number; error?: string; detail?: string; payload: object },
): Promise<void> {
  try {
    await deps.alerts.recordDelivery({
      kind: 'report',
      client: d.client,
      policy: '',
      channel: d.channel,
      condition: 'report',
      ok: d.ok,
      attempts: d.attempts,
      createdAt: d.createdAt,
      at: d.at,
      durationMs: d.durationMs,
      retryPending: false,
      ...(d.error !== undefined ? { error: d.error } : {}),
      ...(d.detail !== undefined ? { detail: d.detail } : {}),
      payload: d.payload,
    });
  } catch (err) {
    deps.logger.error(`the report delivery of ${d.client} could not be recorded: ${(err as Error).message}`);
  }
}
