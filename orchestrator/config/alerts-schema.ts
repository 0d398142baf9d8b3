/** The config schema's `alerts:` block: the channels (email, webhook) and their delivery, alert conditions, addresses and URLs. Messages follow schema.ts. */
import { z } from 'zod';
import { secret } from './secret-schema.js';
import { DEFAULTS } from '../core/defaults.js';
import { addProblem, durationKey, identifier, isRecordPayload, matching, nonEmptyText, quote, say, typeError } from './schema-helpers.js';
import type { AlertConditionName, AlertsConfig, ChannelType, EmailChannelConfig, WebhookChannelConfig } from '../core/config-types.js';

// ---- Conditions, addresses, URLs -------------------------------------------------------------

const CONDITION_HELP: Record<AlertConditionName, string> = {
  fail: 'the backup is bad',
  error: 'the verification could not run',
  recovery: 'a condition ended',
  stale: 'no new backup within the RPO',
  missing: 'an expected backup is absent',
  size_anomaly: 'a backup much smaller than usual',
  rto_exceeded: 'the restore took longer than its RTO',
  overdue: 'backproof has not verified the policy on time',
  delivery_failed: 'another alert could not be delivered',
  no_worker: 'cluster mode: no live worker may run the policy',
  coverage: 'retention coverage: an older restore point does not restore, or too few are proven',
};

/** Every alert condition, in the order they are documented. */
export const ALERT_CONDITION_NAMES = Object.keys(CONDITION_HELP) as [AlertConditionName, ...AlertConditionName[]];

const conditions = z
  .array(z.enum(ALERT_CONDITION_NAMES, { error: typeError('an alert condition', () => `use ${ALERT_CONDITION_NAMES.join(', ')}`) }))
  .min(1, { error: say('conditions is empty', 'list the conditions to send, or remove conditions to send all') })
  .optional()
  .describe(`Conditions this channel is told about (their resolutions included): ${ALERT_CONDITION_NAMES.map((c) => `${c} (${CONDITION_HELP[c]})`).join(', ')}. Default: all.`);

/** A light check: something@something, no spaces or brackets. */
const ADDRESS = '[^\\s@<>(),;:"]+@[^\\s@<>(),;:"]+';

export const emailAddress = matching(new RegExp(`^${ADDRESS}$`), 'an email address', 'write name@example.com; several addresses go in a list: [a@example.com, b@example.com]');
const sender = matching(
  new RegExp(`^(?:${ADDRESS}|[^<>]*<\\s*${ADDRESS}\\s*>)$`),
  'a sender address',
  'write alerts@example.com or "backproof <alerts@example.com>" (quoted in YAML)',
);

export function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.host !== '';
  } catch {
    return false;
  }
}

export function httpUrl(example: string) {
  return z.string().superRefine((value, ctx) => {
    if (!isHttpUrl(value)) addProblem(ctx, `${quote(value)} is not an http(s) URL`, `write the full URL, e.g. ${example}, or a reference such as \${env:...}`);
  });
}

export const channelName = identifier('channel');

// ---- alerts: -----------------------------------------------------------------------------------

const A = DEFAULTS.alert;

const emailChannel = z
  .strictObject({
    name: channelName.describe('Channel name, used in alerts.channels of clients and policies; unique.'),
    type: z.literal('email').describe('Email through an SMTP server.'),
    host: nonEmptyText('host').describe('SMTP server, e.g. smtp.example.com.'),
    port: z.number().int().min(1).max(65535).optional().describe('SMTP port. Default 587, or 465 with secure: true.'),
    secure: z.boolean().default(false).describe('Implicit TLS from the first byte (usually port 465). Default false: a plain connection upgraded with STARTTLS (see startTls).'),
    startTls: z
      .enum(['required', 'opportunistic', 'never'])
      .optional()
      .describe('Without secure: "required" (default) fails unless the upgrade to TLS works; "opportunistic" upgrades when offered; "never" stays plain.'),
    tlsRejectUnauthorized: z.boolean().default(true).describe('Check the server certificate. Default true; false only for a server with a self-signed certificate you trust.'),
    user: nonEmptyText('user').optional().describe('SMTP login; together with password. Default: no authentication.'),
    password: secret(nonEmptyText('password')).optional().describe('SMTP password, from a reference: ${env:SMTP_PASSWORD} or ${file:secrets/smtp}.'),
    from: sender.describe('Sender: alerts@example.com or "backproof <alerts@example.com>".'),
    to: z.array(emailAddress).default([]).describe("Recipients of every alert; clients' and policies' alerts.to are added. Default none."),
    cc: z.array(emailAddress).default([]).describe('Copy recipients of every alert. Default none.'),
    conditions,
  })
  .superRefine((v, ctx) => {
    if (v.user !== undefined && v.password === undefined) {
      addProblem(ctx, 'user is set but password is not', 'add password: ${env:SMTP_PASSWORD} (a reference keeps it out of the file), or remove user to send without authentication', ['user']);
    }
    if (v.password !== undefined && v.user === undefined) {
      addProblem(ctx, 'password is set but user is not', 'add user: (the SMTP login), or remove password to send without authentication', ['password']);
    }
    if (v.secure === true && v.startTls !== undefined) {
      addProblem(ctx, 'startTls applies only without secure: true', 'remove startTls (secure: true encrypts from the first byte, usually on port 465), or set secure: false to upgrade with STARTTLS (port 587)', ['startTls']);
    }
  }, { when: isRecordPayload })
  .transform(
    ({ user, password, port, startTls, conditions: only, ...v }): EmailChannelConfig => ({
      ...v,
      port: port ?? (v.secure ? 465 : 587),
      // With implicit TLS there is nothing to upgrade.
      startTls: startTls ?? (v.secure ? 'never' : 'required'),
      ...(user !== undefined && password !== undefined ? { auth: { user, pass: password } } : {}),
      conditions: only ?? [...ALERT_CONDITION_NAMES],
    }),
  );

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const webhookChannel = z
  .strictObject({
    name: channelName.describe('Channel name, used in alerts.channels of clients and policies; unique.'),
    type: z.literal('webhook').describe('An HTTP POST of the alert as JSON: generic, Slack or Microsoft Teams.'),
    url: secret(httpUrl('https://hooks.slack.com/services/...').describe('Where to POST; it usually holds a token: use a reference, ${env:SLACK_WEBHOOK_URL}.'), 'url'),
    preset: z.enum(['generic', 'slack', 'teams']).default('generic').describe('Body format: "generic" (backproof\'s JSON, default), "slack" (incoming webhook) or "teams" (workflow webhook, adaptive card).'),
    headers: secret(
      z.record(
        matching(HEADER_NAME, 'a header name', 'use letters, digits and "-", e.g. Authorization or X-Api-Key'),
        z.string({ error: typeError('a header value', () => 'write the value as text, e.g. "Bearer ${env:HOOK_TOKEN}"') }),
      ),
      'headers',
    )
      .default({})
      .describe('Extra request headers, e.g. { Authorization: "Bearer ${env:HOOK_TOKEN}" }; their values are treated as secrets. Default none.'),
    timeout: durationKey('Limit for one request, body included.', A.webhookTimeoutMs),
    conditions,
  })
  .transform(
    ({ timeout, conditions: only, ...v }): WebhookChannelConfig => ({
      ...v,
      timeoutMs: timeout ?? A.webhookTimeoutMs,
      conditions: only ?? [...ALERT_CONDITION_NAMES],
    }),
  );

// One block per name of CHANNEL_TYPES: a channel type without one does not compile.
const CHANNEL_BLOCKS = { email: emailChannel, webhook: webhookChannel } satisfies Record<ChannelType, z.ZodType>;
const channel = z
  .discriminatedUnion('type', [CHANNEL_BLOCKS.email, CHANNEL_BLOCKS.webhook], {
    error: (issue) =>
      issue.code === 'invalid_union' && (issue as { note?: string }).note === 'No matching discriminator'
        ? say('unknown or missing channel type', 'set type: email (host, from, to) or type: webhook (url, preset)')
        : undefined,
  })
  .describe('An alert channel: type email or webhook, with that type\'s keys.');

export const alertsSchema = z
  .strictObject({
    reminderAfter: durationKey('An open condition is notified again after this long; "0s": never.', A.reminderAfterMs),
    maxAttempts: z.number().int().min(1).max(20).default(A.maxAttempts).describe(`Attempts per delivery, the first included. Default ${A.maxAttempts}.`),
    retryFor: durationKey('A delivery that failed every attempt is tried again at each check for this long.', A.retryForMs),
    channels: z.array(channel).default([]).describe('Where alerts go. Default none: alerts are evaluated and recorded but sent nowhere.'),
  })
  .superRefine((v, ctx) => {
    const first = new Map<string, number>();
    (Array.isArray(v.channels) ? (v.channels as unknown[]) : []).forEach((c, i) => {
      const name = (c as { name?: unknown } | null)?.name;
      if (typeof name !== 'string') return;
      const at = first.get(name);
      if (at === undefined) first.set(name, i);
      else addProblem(ctx, `channel name ${quote(name)} is already used by alerts.channels[${at}]`, 'give each channel a unique name', ['channels', i, 'name']);
    });
  }, { when: isRecordPayload })
  .transform(
    (v): AlertsConfig => ({
      channels: v.channels,
      reminderAfterMs: v.reminderAfter ?? A.reminderAfterMs,
      maxAttempts: v.maxAttempts,
      retryForMs: v.retryFor ?? A.retryForMs,
    }),
  )
  .describe('Alert channels and delivery defaults. Optional; without channels nothing is sent.');
