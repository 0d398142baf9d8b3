/**
 * The parts of the config schema for `backproof daemon`: the top-level `daemon:` and `alerts:`
 * blocks, each policy's `schedule`, `heartbeat` and `alerts`, and each client's `alerts`.
 * schema.ts puts them in place. A policy cannot see `daemon:` or `alerts:`, so its schedule and
 * routing come out of the policy schema as drafts; the top-level transform turns them into the
 * resolved types with `resolveClient`, and checks the channel names with `checkChannelNames`.
 *
 * Messages follow schema.ts: each issue carries the problem and the fix (see `say`).
 */
import { z } from 'zod';
import { defaultFailUrl, secret } from './secret-schema.js';
import { DEFAULTS } from '../core/defaults.js';
import { parseScheduleText, shortestGapMs, SHORTHAND_EXAMPLES } from '../scheduler/schedule.js';
import { DURATION_EXAMPLES } from './duration.js';
import { addProblem, compactDuration, duration, durationKey, nonEmptyText, quote, say, timezone, typeError, type Ctx } from './schema-helpers.js';
import type { AlertRouting, AlertRoutingInput, AlertsConfig, ClientConfig, DaemonConfig, HeartbeatConfig, PolicyConfig, ScheduleConfig } from '../core/config-types.js';
import { channelName, emailAddress, httpUrl } from './alerts-schema.js';

// `alerts:` (channels, conditions, addresses) is in alerts-schema.ts; these stay importable from here.
export { alertsSchema, ALERT_CONDITION_NAMES, emailAddress, isHttpUrl } from './alerts-schema.js';

const A = DEFAULTS.alert;

// ---- daemon: -----------------------------------------------------------------------------------

const D = DEFAULTS.daemon;

const liveness = z
  .strictObject({
    file: nonEmptyText('file').optional().describe("JSON status file, rewritten at every check and after each run; relative paths start at the config file's folder. Default: none."),
    port: z.number().int().min(0).max(65535).optional().describe('Port of an HTTP endpoint answering GET /healthz (200 alive, 503 stalled); 0 picks a free port. Default: none.'),
    host: nonEmptyText('host').optional().describe(`Address the endpoint listens on. Default ${D.livenessHost}.`),
  })
  .describe('How process supervisors see that the daemon is alive: a status file and/or an HTTP endpoint. Optional.');

export const daemonSchema = z
  .strictObject({
    concurrency: z.number().int().min(1).default(D.concurrency).describe(`Runs at once, overall. Default ${D.concurrency}.`),
    perClient: z.number().int().min(1).default(D.perClient).describe(`Runs at once per client. Default ${D.perClient}.`),
    catchUp: z.boolean().default(D.catchUp).describe(`At start, run each policy whose last scheduled time passed without a run. Default ${String(D.catchUp)}.`),
    shutdownGrace: durationKey('First stop signal: running runs may finish within this, then they are cancelled.', D.shutdownGraceMs),
    checkEvery: duration
      .refine((ms) => ms >= 1000, { error: (iss) => say(`${compactDuration(Number(iss.input))} is too short`, 'use at least 1s; minutes (5m) are plenty for the checks between runs') })
      .optional()
      .describe(`How often conditions between runs are checked (stale, missing, overdue, reminders, delivery retries); at least 1s. A duration: ${DURATION_EXAMPLES}. Default ${compactDuration(D.checkEveryMs)}.`),
    timezone: timezone.optional().describe(`IANA zone of schedules that name none, e.g. Europe/Berlin. Default ${D.timezone}.`),
    overdueGrace: durationKey('Default grace of schedules: a scheduled run not started within it is overdue.', D.overdueGraceMs),
    liveness: liveness.optional(),
    web: z
      .strictObject({
        port: z.number().int().min(0).max(65535).describe('Port of the dashboard, e.g. 8080; 0 picks a free port.'),
        host: nonEmptyText('host').optional().describe('Address it listens on. Default 127.0.0.1; put a TLS proxy in front of anything else.'),
      })
      .optional()
      .describe('Serve the dashboard, JSON API and /metrics from inside the daemon (what backproof serve does), sharing its evidence store: the way to have both with the embedded store. Optional.'),
  })
  .transform(
    (v): DaemonConfig => ({
      concurrency: v.concurrency,
      perClient: v.perClient,
      catchUp: v.catchUp,
      shutdownGraceMs: v.shutdownGrace ?? D.shutdownGraceMs,
      checkEveryMs: v.checkEvery ?? D.checkEveryMs,
      timezone: v.timezone ?? D.timezone,
      overdueGraceMs: v.overdueGrace ?? D.overdueGraceMs,
      liveness: {
        // load.ts makes the file absolute (relative to the config file).
        ...(v.liveness?.file !== undefined ? { file: v.liveness.file } : {}),
        ...(v.liveness?.port !== undefined ? { port: v.liveness.port } : {}),
        host: v.liveness?.host ?? D.livenessHost,
      },
      ...(v.web ? { web: { port: v.web.port, host: v.web.host ?? D.livenessHost } } : {}),
    }),
  )
  .describe('backproof daemon: how many runs at once, catch-up at start, shutdown, checks between runs, liveness. All keys optional.');

// ---- Routing (clients and policies) -------------------------------------------------------------

export function alertRouting(level: 'client' | 'policy') {
  const over = level === 'client' ? 'alerts:' : "the client's, then alerts:";
  return z
    .strictObject({
      channels: z
        .array(channelName)
        .optional()
        .describe(`Names of channels under alerts.channels this ${level}'s alerts go to; [] sends none. Default: ${level === 'policy' ? "the client's, else " : ''}all channels.`),
      to: z
        .array(emailAddress)
        .optional()
        .describe(`Extra recipients for email channels${level === 'policy' ? ", added to the client's" : ''}.`),
      reminderAfter: durationKey(`Remind of an open condition after this long; "0s": never. Default: ${over} reminderAfter.`),
    })
    .transform(
      (v): AlertRoutingInput => ({
        ...(v.channels !== undefined ? { channels: v.channels } : {}),
        ...(v.to !== undefined ? { to: v.to } : {}),
        ...(v.reminderAfter !== undefined ? { reminderAfterMs: v.reminderAfter } : {}),
      }),
    )
    .describe(level === 'client' ? "Alert routing for all of this client's policies. Optional." : "Alert routing of this policy, over the client's. Optional.");
}

// ---- Schedules and heartbeats (policies) --------------------------------------------------------

/** A schedule before the daemon's defaults are applied. */
export interface ScheduleDraft {
  text: string;
  cron: string;
  timezone?: string;
  jitterMs: number;
  graceMs?: number;
}

const scheduleText = z.string().transform((text, ctx) => {
  const parsed = parseScheduleText(text);
  if ('problem' in parsed) {
    addProblem(ctx, parsed.problem, parsed.fix);
    return z.NEVER;
  }
  return { text: text.trim(), cron: parsed.cron };
});

const SCHEDULE_FORMS = `a cron expression ("30 2 * * *"; six fields with seconds first) or a shorthand: ${SHORTHAND_EXAMPLES}`;

export const scheduleSchema = z
  .union(
    [
      scheduleText.transform((s): ScheduleDraft => ({ ...s, jitterMs: 0 })),
      z
        .strictObject({
          when: scheduleText.describe(`When: ${SCHEDULE_FORMS}.`),
          timezone: timezone.optional().describe('IANA zone the schedule runs in, e.g. Europe/Berlin. Default: daemon.timezone.'),
          jitter: durationKey('Each scheduled run starts after a random delay of up to this (spreads runs of many policies). Default 0s.'),
          grace: durationKey('A scheduled run not started within this (plus jitter) is overdue. Default: daemon.overdueGrace.'),
        })
        .transform((v, ctx): ScheduleDraft => {
          const jitterMs = v.jitter ?? 0;
          if (jitterMs > 0) {
            const gap = shortestGapMs({ cron: v.when.cron, timezone: v.timezone ?? 'UTC' });
            if (jitterMs >= gap) {
              addProblem(ctx, `jitter ${compactDuration(jitterMs)} is not shorter than the ${compactDuration(gap)} between runs`, `use a jitter well below ${compactDuration(gap)}, or remove it`, ['jitter']);
            }
          }
          return {
            ...v.when,
            jitterMs,
            ...(v.timezone !== undefined ? { timezone: v.timezone } : {}),
            ...(v.grace !== undefined ? { graceMs: v.grace } : {}),
          };
        }),
    ],
    { error: typeError('a schedule', () => `write ${SCHEDULE_FORMS}; or { when: "0 2 * * *", timezone: Europe/Berlin, jitter: 5m, grace: 2h }`) },
  )
  .describe(`When backproof daemon verifies this policy: ${SCHEDULE_FORMS}; or { when, timezone, jitter, grace }. Default: never (the daemon still checks staleness).`);

const PING_EXAMPLE = 'https://hc-ping.com/<uuid>';

export const heartbeatSchema = z
  .union(
    [
      secret(httpUrl(PING_EXAMPLE), 'heartbeat').transform((url): HeartbeatConfig => ({ url, failUrl: defaultFailUrl(url), timeoutMs: A.heartbeatTimeoutMs })),
      z
        .strictObject({
          url: secret(httpUrl(PING_EXAMPLE).describe('Pinged (GET) after each passing run.'), 'heartbeat'),
          failUrl: secret(httpUrl(`${PING_EXAMPLE}/fail`), 'heartbeat').optional().describe('Pinged after a failing or erroring run. Default: url + "/fail".'),
          timeout: durationKey('Limit for one ping.', A.heartbeatTimeoutMs),
        })
        .transform((v): HeartbeatConfig => ({ url: v.url, failUrl: v.failUrl ?? defaultFailUrl(v.url), timeoutMs: v.timeout ?? A.heartbeatTimeoutMs })),
    ],
    { error: typeError('a heartbeat', () => `write the ping URL (${PING_EXAMPLE}, best from a reference) or { url, failUrl, timeout }`) },
  )
  .describe(`healthchecks.io-style pings after each run: the ping URL (${PING_EXAMPLE}), or { url, failUrl, timeout }. Its URLs are treated as secrets.`);

// ---- Resolution (top level) ----------------------------------------------------------------------

/** A policy as its schema produces it: schedule and routing not yet resolved. */
export type PolicyDraft = Omit<PolicyConfig, 'schedule' | 'alerts'> & { schedule?: ScheduleDraft; alerts?: AlertRoutingInput };

/** A client as its schema produces it. */
export interface ClientDraft {
  name: string;
  displayName: string;
  alerts: AlertRoutingInput;
  policies: PolicyDraft[];
}

export function resolveSchedule(s: ScheduleDraft, daemon: DaemonConfig): ScheduleConfig {
  return { text: s.text, cron: s.cron, timezone: s.timezone ?? daemon.timezone, jitterMs: s.jitterMs, graceMs: s.graceMs ?? daemon.overdueGraceMs };
}

/** Policy over client over `alerts:`; `to` is the client's and the policy's together. */
export function resolveRouting(policy: AlertRoutingInput | undefined, client: AlertRoutingInput, alerts: AlertsConfig): AlertRouting {
  const to: string[] = [];
  for (const address of [...(client.to ?? []), ...(policy?.to ?? [])]) if (!to.includes(address)) to.push(address);
  return {
    channels: [...(policy?.channels ?? client.channels ?? alerts.channels.map((c) => c.name))],
    to,
    reminderAfterMs: policy?.reminderAfterMs ?? client.reminderAfterMs ?? alerts.reminderAfterMs,
  };
}

export function resolveClient(c: ClientDraft, daemon: DaemonConfig, alerts: AlertsConfig): ClientConfig {
  return {
    name: c.name,
    displayName: c.displayName,
    alerts: c.alerts,
    policies: c.policies.map(
      ({ schedule, alerts: routing, ...rest }) =>
        // The policy schema's refinement gives kind custom its custom block and kind vm its vm block.
        ({
          ...rest,
          ...(schedule !== undefined ? { schedule: resolveSchedule(schedule, daemon) } : {}),
          alerts: resolveRouting(routing, c.alerts, alerts),
        }) as PolicyConfig,
    ),
  };
}

/**
 * Every channel named in a client's or policy's `alerts.channels` is defined under
 * `alerts.channels`. Runs on the file even when other keys failed, so it sees values partly as
 * written; only strings in lists are looked at.
 */
export function checkChannelNames(value: Record<string, unknown>, ctx: Ctx): void {
  const defined = [
    ...new Set(
      listAt(value, ['alerts', 'channels'])
        .map((c) => (c as { name?: unknown } | null)?.name)
        .filter((n): n is string => typeof n === 'string'),
    ),
  ];
  const check = (at: Array<string | number>) => {
    listAt(value, at).forEach((name, k) => {
      if (typeof name !== 'string' || defined.includes(name)) return;
      const fix = defined.length > 0 ? `use one of ${defined.join(', ')}, or define it under alerts.channels` : 'define it under alerts.channels (name, type: email or webhook, and its keys)';
      addProblem(ctx, `there is no alert channel ${quote(name)}`, fix, [...at, k]);
    });
  };
  listAt(value, ['clients']).forEach((client, ci) => {
    check(['clients', ci, 'alerts', 'channels']);
    listAt(client, ['policies']).forEach((_policy, pi) => check(['clients', ci, 'policies', pi, 'alerts', 'channels']));
  });
}

function listAt(data: unknown, at: Array<string | number>): unknown[] {
  let node = data;
  for (const key of at) {
    if (node === null || typeof node !== 'object') return [];
    node = (node as Record<string | number, unknown>)[key];
  }
  return Array.isArray(node) ? node : [];
}

