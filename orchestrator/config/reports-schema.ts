/**
 * The parts of the config schema for monthly client reports: the top-level `reports:` block
 * (the MSP's branding, the zone months are counted in, when and through which email channel the
 * daemon mails them) and each client's `reports: { to }`. schema.ts puts them in place; load.ts
 * makes `logo` absolute and checks the file (`checkLogo`).
 *
 * Recipients: a client's `reports.to`; without it, the client's `alerts.to` (the people already
 * told about its backups). The channel's own `to` (the MSP's on-call inbox) is not used for
 * reports; its `cc` is.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseScheduleText } from '../scheduler/schedule.js';
import { emailAddress } from './daemon-schema.js';
import { addProblem, identifier, nonEmptyText, quote, timezone, typeError, type Ctx } from './schema-helpers.js';
import type { AlertsConfig, ClientReportsConfig, ReportFormat, ReportsConfig } from '../core/config-types.js';

export const REPORT_FORMATS = ['pdf', 'html', 'csv', 'json'] as const satisfies readonly ReportFormat[];
export const DEFAULT_REPORT_SCHEDULE = 'monthly on 1 at 06:00';
export const DEFAULT_REPORT_TIMEZONE = 'UTC';

const reportSchedule = z
  .union([z.literal(false), z.string()], { error: typeError('a schedule', () => `write a shorthand such as "${DEFAULT_REPORT_SCHEDULE}", a cron expression, or false`) })
  .transform((value, ctx) => {
    if (value === false) return false as const;
    const parsed = parseScheduleText(value);
    if ('problem' in parsed) {
      addProblem(ctx, parsed.problem, parsed.fix);
      return z.NEVER;
    }
    return { text: value.trim(), cron: parsed.cron };
  });

/** `reports:` before the channel is resolved (that needs `alerts:`). */
export type ReportsDraft = Omit<ReportsConfig, 'channel' | 'schedule'> & { channel?: string; schedule: { text: string; cron: string } | false };

export const reportsSchema = z
  .strictObject({
    mspName: nonEmptyText('mspName').describe("Your company's name, shown on every report's cover."),
    logo: nonEmptyText('logo')
      .optional()
      .describe("A PNG or JPEG file shown on report covers; relative paths start at the config file's folder. Default: none."),
    timezone: timezone.optional().describe(`IANA zone months are counted in (a report of 2026-11 covers November in that zone), e.g. Europe/Berlin. Default ${DEFAULT_REPORT_TIMEZONE}.`),
    schedule: reportSchedule
      .optional()
      .describe(`When backproof daemon mails every client's report of the previous month, in reports.timezone: a shorthand or cron expression, or false for never. Default "${DEFAULT_REPORT_SCHEDULE}".`),
    channel: identifier('channel')
      .optional()
      .describe('The email channel under alerts.channels that mails reports. Default: the only email channel, if there is exactly one; with none, reports are not mailed.'),
    format: z
      .enum(REPORT_FORMATS, { error: typeError('a report format', () => `use ${REPORT_FORMATS.join(', ')}`) })
      .default('pdf')
      .describe('Format of mailed reports: pdf, html, csv or json. Default pdf.'),
  })
  .transform((v): ReportsDraft => {
    const schedule = v.schedule === undefined ? { text: DEFAULT_REPORT_SCHEDULE, cron: (parseScheduleText(DEFAULT_REPORT_SCHEDULE) as { cron: string }).cron } : v.schedule;
    return {
      mspName: v.mspName.trim(),
      ...(v.logo !== undefined ? { logo: v.logo } : {}),
      timezone: v.timezone ?? DEFAULT_REPORT_TIMEZONE,
      schedule,
      ...(v.channel !== undefined ? { channel: v.channel } : {}),
      format: v.format,
    };
  })
  .describe("Monthly client reports (backproof report, and the daemon's mailing): your branding, the zone months are counted in, when and how they are mailed. Optional.");

export const clientReportsSchema = z
  .strictObject({
    to: z
      .array(emailAddress)
      .min(1)
      .describe("Recipients of this client's monthly report. Default: the client's alerts.to."),
  })
  .transform((v): ClientReportsConfig => ({ to: [...new Set(v.to)] }))
  .describe("Who receives this client's monthly report. Optional; default: the client's alerts.to.");

/** The email channels named in `alerts.channels` of the data as written. */
function emailChannelsOf(value: Record<string, unknown>): { names: string[]; all: string[] } {
  const alerts = value.alerts as { channels?: unknown } | undefined;
  const list = Array.isArray(alerts?.channels) ? (alerts.channels as unknown[]) : [];
  const named = list.filter((c): c is { name: string; type?: unknown } => c !== null && typeof c === 'object' && typeof (c as { name?: unknown }).name === 'string');
  return { names: named.filter((c) => c.type === 'email').map((c) => c.name), all: named.map((c) => c.name) };
}

/**
 * `reports.channel` names an email channel of `alerts.channels`; without it, there is at most one
 * email channel to choose. Runs on the file as written (like checkChannelNames).
 */
export function checkReportsChannel(value: Record<string, unknown>, ctx: Ctx): void {
  const reports = value.reports;
  if (reports === null || typeof reports !== 'object' || Array.isArray(reports)) return;
  const { channel, schedule } = reports as { channel?: unknown; schedule?: unknown };
  const { names, all } = emailChannelsOf(value);
  if (typeof channel === 'string') {
    if (names.includes(channel)) return;
    const problem = all.includes(channel) ? `channel ${quote(channel)} is not an email channel` : `there is no alert channel ${quote(channel)}`;
    const fix = names.length > 0 ? `use one of the email channels: ${names.join(', ')}` : 'define an email channel under alerts.channels (type: email) and name it here';
    addProblem(ctx, problem, fix, ['reports', 'channel']);
    return;
  }
  if (channel === undefined && schedule !== false && names.length > 1) {
    addProblem(ctx, `several email channels (${names.join(', ')}) could mail reports`, 'name one in reports.channel, or set reports.schedule: false to mail none', ['reports']);
  }
}

/** `reports:` resolved: the channel defaults to the only email channel; the schedule runs in reports.timezone. */
export function resolveReports(draft: ReportsDraft, alerts: AlertsConfig): ReportsConfig {
  const emails = alerts.channels.filter((c) => c.type === 'email').map((c) => c.name);
  const channel = draft.channel ?? (emails.length === 1 ? emails[0] : undefined);
  return {
    mspName: draft.mspName,
    ...(draft.logo !== undefined ? { logo: draft.logo } : {}),
    timezone: draft.timezone,
    ...(draft.schedule !== false ? { schedule: { ...draft.schedule, timezone: draft.timezone } } : {}),
    ...(channel !== undefined ? { channel } : {}),
    format: draft.format,
  };
}

/** What is wrong with a logo file (absolute path), or undefined when it is a readable PNG or JPEG. */
export function checkLogo(file: string): { problem: string; fix: string } | undefined {
  let head: Buffer;
  try {
    head = readFileSync(file).subarray(0, 8);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a folder' : code === 'EACCES' ? 'is not readable (permission denied)' : `cannot be read (${code ?? String(err)})`;
    return { problem: `logo file ${file} ${why}`, fix: "correct the path (relative paths start at the config file's folder), or remove logo" };
  }
  if (logoMediaType(head) === undefined) {
    return { problem: `logo file ${file} is not a PNG or JPEG image`, fix: 'convert it to PNG or JPEG (PDF reports can embed only those)' };
  }
  return undefined;
}

/** image/png or image/jpeg from a file's first bytes. */
export function logoMediaType(bytes: Uint8Array): 'image/png' | 'image/jpeg' | undefined {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'image/png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  return undefined;
}
