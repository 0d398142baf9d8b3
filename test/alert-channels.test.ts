import t, { type Test } from 'tap';
import { alertRunOf, createAlert, nextStepsFor, type Alert, type AlertInput } from '../orchestrator/alerts/alert.js';
import { backoffDelayMs, type DeliveryResult } from '../orchestrator/alerts/channel.js';
import { EmailChannel, type EmailChannelOptions } from '../orchestrator/alerts/email-channel.js';
import { describeUrl } from '../orchestrator/alerts/redact.js';
import { renderHtml, renderSubject, renderText, type SlackPayload, type TeamsMessageCard } from '../orchestrator/alerts/render.js';
import { retryAfterMs, WebhookChannel, type WebhookChannelOptions } from '../orchestrator/alerts/webhook-channel.js';
import { ERROR_CODES, FAIL_CODES, type RunRecord } from '../orchestrator/core/domain.js';
import { Logger } from '../orchestrator/core/logger.js';
import { startHttpReceiver, type HttpReceiver } from './helpers/http-receiver.js';
import { closedPort, startSmtpReceiver, type SmtpReceiver } from './helpers/smtp-receiver.js';

// Real servers on 127.0.0.1: smtp-server (AUTH required, no STARTTLS) and a node:http receiver
// with scripted answers. Backoff is shortened so the file runs in seconds.

const SMTP_USER = 'alerts@backproof.test';
const SMTP_PASS = 'canary-SMTP-pw-7f3a';
const HOOK_QUERY_TOKEN = 'canary-HOOK-tok-91c2';
const HOOK_HEADER_TOKEN = 'canary-HOOK-hdr-5d1e';
const FAST_RETRY = { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100 };
const EVIL_KEY = 'shop-<script>alert(1)</script>.dump';

let smtp: SmtpReceiver;
let http: HttpReceiver;
const logLines: string[] = [];
const logger = new Logger({ json: true, level: 'debug', write: (line) => logLines.push(line) });

t.before(async () => {
  smtp = await startSmtpReceiver({ user: SMTP_USER, pass: SMTP_PASS });
  http = await startHttpReceiver();
});
t.teardown(async () => {
  await http.close();
  await smtp.close();
});

function alertOf(over: Partial<AlertInput> = {}): Alert {
  return createAlert({
    id: 'acme/acme-shop-db/fail/2026-11-27T02:10:42Z',
    condition: 'fail',
    state: 'firing',
    client: { name: 'acme', displayName: 'ACME Corp & Sons' },
    policy: 'acme-shop-db',
    kind: 'postgres',
    occurredAt: '2026-11-27T02:10:42.000Z',
    summary: 'the newest backup of acme-shop-db does not match its checksum',
    reasons: [{ code: 'checksum_mismatch', message: `sha256 of ${EVIL_KEY} is 9f2c81d0, its .sha256 sidecar says 4b1a77e3` }],
    run: {
      id: '3f6c2a10-8d1e-4c55-9a0b-7f1e2d3c4b5a',
      verdict: 'fail',
      startedAt: '2026-11-27T02:10:00.000Z',
      durationMs: 44_720,
      phases: [
        { name: 'select', durationMs: 120, outcome: 'ok' },
        { name: 'sandbox', durationMs: 2_300, outcome: 'ok' },
        { name: 'fetch_restore', durationMs: 41_500, outcome: 'fail' },
        { name: 'teardown', durationMs: 800, outcome: 'ok' },
      ],
      backup: { key: EVIL_KEY, size: 12_582_912, backupTime: '2026-11-27T02:00:00.000Z', ageMs: 600_000 },
      metrics: { rpoMeasuredMs: 600_000, rpoTargetMs: 86_400_000, rtoMeasuredMs: 41_500, rtoTargetMs: 3_600_000 },
    },
    ...over,
  });
}

function email(over: Partial<EmailChannelOptions> = {}): EmailChannel {
  const ch = new EmailChannel({
    name: 'ops-email',
    host: '127.0.0.1',
    port: smtp.port,
    startTls: 'never',
    auth: { user: SMTP_USER, pass: SMTP_PASS },
    from: 'backproof <alerts@backproof.test>',
    to: ['oncall@msp.test', 'acme-owner@acme.test'],
    connectionTimeoutMs: 2_000,
    greetingTimeoutMs: 2_000,
    socketTimeoutMs: 5_000,
    retry: FAST_RETRY,
    logger,
    ...over,
  });
  t.teardown(() => ch.close());
  return ch;
}

function webhook(over: Partial<WebhookChannelOptions> = {}): WebhookChannel {
  const ch = new WebhookChannel({
    name: 'ops-hook',
    url: http.url(`/hooks/backproof?token=${HOOK_QUERY_TOKEN}`),
    headers: { Authorization: `Bearer ${HOOK_HEADER_TOKEN}` },
    timeoutMs: 2_000,
    retry: FAST_RETRY,
    logger,
    ...over,
  });
  t.teardown(() => ch.close());
  return ch;
}

/** Nothing we hand back or log may carry a canary, in any encoding. */
function assertNoSecrets(tt: Test, what: string, ...values: unknown[]): void {
  const text = JSON.stringify(values) + '\n' + logLines.join('\n');
  for (const secret of [SMTP_PASS, HOOK_QUERY_TOKEN, HOOK_HEADER_TOKEN]) {
    const forms = { plain: secret, base64: Buffer.from(secret).toString('base64'), json: JSON.stringify(secret).slice(1, -1) };
    for (const [how, form] of Object.entries(forms)) tt.notOk(text.includes(form), `${what}: no ${secret} (${how})`);
  }
  tt.notOk(text.includes('canary-'), `${what}: no canary at all`);
}

t.test('next steps: every reason code has its own step; conditions add theirs; unknown codes get a default', async (t) => {
  const base = alertOf();
  const stepFor = (condition: 'fail' | 'error', code: string): string[] => nextStepsFor({ ...base, condition, reasons: [{ code, message: 'm' }] });
  const steps = new Set<string>();
  for (const code of FAIL_CODES) {
    const s = stepFor('fail', code);
    t.equal(s.length, 1, `${code}: one step`);
    t.notMatch(s[0], /act on its message/, `${code}: not the default`);
    steps.add(s[0]!);
  }
  for (const code of ERROR_CODES) {
    const s = stepFor('error', code);
    t.notMatch(s[0], /act on its message/, `${code}: not the default`);
    steps.add(s[0]!);
  }
  t.equal(steps.size, FAIL_CODES.length + ERROR_CODES.length, 'a different step for every code');
  t.same(stepFor('fail', 'checksum_mismatch'), ["the backup's bytes differ from its checksum: check the backup job and storage; run the backup again"]);
  t.same(stepFor('error', 'docker_unreachable'), ['start the Docker engine on the verification host']);
  t.match(stepFor('fail', 'weird_new_code')[0], /^weird_new_code: read the run's evidence \(backproof runs show 3f6c2a10-/);
  t.same(nextStepsFor({ ...base, condition: 'stale', reasons: [{ code: 'stale_backup', message: 'm' }], since: '2026-11-25T02:00:00Z' }), [
    'the backup job has not produced a backup since 2026-11-25 02:00 UTC: check it',
  ]);
  t.match(nextStepsFor({ ...base, condition: 'overdue', reasons: [], since: '2026-11-26T03:00:00Z' })[0], /^backproof itself has not verified acme-shop-db since 2026-11-26 03:00 UTC: check the daemon/);
  t.same(nextStepsFor({ ...base, condition: 'recovery', state: 'resolved' }), ['no action']);
  t.same(nextStepsFor({ ...base, state: 'resolved' }), ['no action'], 'a resolved fail needs nothing either');
  t.match(nextStepsFor({ ...base, condition: 'rto_exceeded', reasons: [] })[0], /restoring took 41\.5s against a target of 1\.0h/);
  t.same(
    nextStepsFor({ ...base, reasons: [{ code: 'probe_failed', message: 'a' }, { code: 'probe_failed', message: 'b' }] }).length,
    1,
    'one step per distinct code',
  );
});

t.test('alertRunOf keeps what an alert shows of a run record', async (t) => {
  const record = {
    id: 'r-1',
    verdict: 'fail',
    startedAt: '2026-11-27T02:10:00.000Z',
    durationMs: 5_000,
    phases: [{ name: 'select', startedAt: 'a', endedAt: 'b', durationMs: 12, outcome: 'ok', detail: 'picked shop.dump' }],
    backup: { driver: 'local', location: '/b', key: 'shop.dump', size: 10, modifiedAt: 'm', backupTime: '2026-11-27T02:00:00.000Z', timestampSource: 'name', ageMs: 600_000, sha256: 'abc' },
    metrics: { rpoMeasuredMs: 600_000, rpoTargetMs: 86_400_000, rpoMet: true, fetchBytesPerSec: 9 },
  } as unknown as RunRecord;
  t.same(alertRunOf(record), {
    id: 'r-1',
    verdict: 'fail',
    startedAt: '2026-11-27T02:10:00.000Z',
    durationMs: 5_000,
    phases: [{ name: 'select', durationMs: 12, outcome: 'ok' }],
    backup: { key: 'shop.dump', size: 10, backupTime: '2026-11-27T02:00:00.000Z', ageMs: 600_000 },
    metrics: { rpoMeasuredMs: 600_000, rpoTargetMs: 86_400_000 },
  });
});

t.test('renderings: firing, reminder and recovery differ in subject and wording; HTML is escaped', async (t) => {
  const firing = alertOf();
  const reminder = alertOf({ state: 'reminder', occurredAt: '2026-11-28T02:10:42.000Z' });
  const recovery = alertOf({ condition: 'recovery', state: 'resolved', summary: 'acme-shop-db verifies again', reasons: [] });
  t.equal(renderSubject(firing), '[backproof] FAIL acme / acme-shop-db: checksum_mismatch');
  t.equal(renderSubject(reminder), '[backproof] REMINDER FAIL acme / acme-shop-db: checksum_mismatch');
  t.equal(renderSubject(recovery), '[backproof] RESOLVED acme / acme-shop-db: acme-shop-db verifies again');
  t.match(renderText(firing), /client's data is at risk/);
  t.match(renderText(reminder), /^Reminder: still unresolved\./m);
  t.match(renderText(recovery), /^Resolved: the policy verifies again\. No action needed\./m);
  t.match(renderText(recovery), /1\. no action/);
  t.notMatch(renderText(recovery), /Reminder|at risk/);
  t.not(renderHtml(firing), renderHtml(reminder));
  t.match(renderHtml(recovery), /#067647/, 'resolved is green');
  t.match(renderHtml(firing), /#b42318/, 'a fail is red');

  const html = renderHtml(firing);
  t.notMatch(html, /<script>/i, 'no live script tag');
  t.match(html, /shop-&lt;script&gt;alert\(1\)&lt;\/script&gt;\.dump/, 'the backup key is escaped');
  t.match(html, /ACME Corp &amp; Sons/);
  t.notMatch(html, /<a\s|href=|<style|class=/i, 'no links, inline styles only');
  t.equal(renderSubject(alertOf({ summary: 'two\nlines', reasons: [] })), '[backproof] FAIL acme / acme-shop-db: two lines', 'subjects stay on one line');
});

t.test('retry delays: exponential with jitter, capped; Retry-After in seconds or as a date', async (t) => {
  const o = { baseDelayMs: 100, maxDelayMs: 1_000 };
  t.same([1, 2, 3, 4, 5].map((n) => backoffDelayMs(n, o, () => 0)), [50, 100, 200, 400, 500], 'lowest: half the ceiling');
  t.same([1, 2, 3, 4, 5].map((n) => backoffDelayMs(n, o, () => 1)), [100, 200, 400, 800, 1_000], 'highest: the ceiling, capped');
  t.equal(retryAfterMs('7'), 7_000);
  t.equal(retryAfterMs('Wed, 21 Oct 2026 07:28:05 GMT', Date.parse('2026-10-21T07:28:00Z')), 5_000);
  t.equal(retryAfterMs('soon'), undefined);
  t.equal(retryAfterMs(null), undefined);
});

t.test('email: arrives over authenticated SMTP with subject, From/To, a text and an HTML part', async (t) => {
  const before = smtp.messages.length;
  const ch = email();
  const result = await ch.deliver(alertOf());
  t.ok(result.ok, result.error ?? 'delivered');
  t.equal(result.attempts, 1);
  t.match(result.detail, /^message-id <backproof\.[0-9a-f]+@backproof\.test>; 250 /);
  await smtp.waitForMessages(before + 1);
  t.match(smtp.logins.at(-1), { user: SMTP_USER, ok: true });
  const { parsed, envelope } = smtp.messages.at(-1)!;
  t.equal(parsed.subject, '[backproof] FAIL acme / acme-shop-db: checksum_mismatch');
  t.equal(parsed.from?.value[0]?.address, 'alerts@backproof.test');
  const to = Array.isArray(parsed.to) ? parsed.to : [parsed.to];
  t.same(to.flatMap((a) => a?.value.map((v) => v.address)), ['oncall@msp.test', 'acme-owner@acme.test']);
  t.same(envelope.to, ['oncall@msp.test', 'acme-owner@acme.test']);
  t.equal(parsed.headers.get('auto-submitted'), 'auto-generated');
  t.equal(parsed.headers.get('x-backproof-alert-id'), 'acme/acme-shop-db/fail/2026-11-27T02:10:42Z');

  const text = parsed.text ?? '';
  const html = typeof parsed.html === 'string' ? parsed.html : '';
  t.ok(text.length > 0 && html.length > 0, 'both parts present');
  for (const [name, body] of [['text', text], ['html', html]] as const) {
    t.match(body, /Verdict/, `${name}: verdict label`);
    t.match(body, /checksum_mismatch/, `${name}: reason code`);
    t.match(body, /9f2c81d0/, `${name}: reason message`);
    t.match(body, /fetch_restore/, `${name}: phase`);
    t.match(body, /41\.5s/, `${name}: phase timing`);
    t.match(body, /check the backup job and storage; run the backup again/, `${name}: next step`);
    t.match(body, /12\.0 MiB/, `${name}: backup size`);
  }
  t.match(text, /Verdict\s+fail/);
  t.match(text, /fetch_restore\s+41\.5s\s+fail/);
  t.match(text, EVIL_KEY, 'plain text carries the key as is');
  t.notMatch(html, /<script>/i, 'html: the key is not live markup');
  t.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/, 'html: the key arrives escaped');

  // A reminder threads under the firing notice.
  const reminder = await ch.deliver(alertOf({ state: 'reminder', occurredAt: '2026-11-28T02:10:42.000Z' }));
  t.ok(reminder.ok);
  await smtp.waitForMessages(before + 2);
  const r = smtp.messages.at(-1)!.parsed;
  t.match(r.subject, /^\[backproof\] REMINDER FAIL /);
  t.equal(r.inReplyTo, parsed.messageId, 'the reminder answers the firing message');
  assertNoSecrets(t, 'email results', result, reminder);
});

t.test('email: a wrong password is a permanent failure, not retried, naming the server but not the password', async (t) => {
  const logins = smtp.logins.length;
  const wrong = 'canary-SMTP-pw-WRONG';
  const ch = email({ auth: { user: SMTP_USER, pass: wrong }, secrets: [wrong] });
  const result = await ch.deliver(alertOf());
  t.notOk(result.ok);
  t.equal(result.attempts, 1, 'not retried');
  t.equal(smtp.logins.length, logins + 1, 'one login attempt reached the server');
  t.match(result.error, `email ops-email via SMTP 127.0.0.1:${smtp.port}`);
  t.match(result.error, /authentication as alerts@backproof\.test rejected/);
  t.match(result.error, /535/);
  t.match(result.error, /permanent failure, not retried/);
  t.notMatch(result.error, /canary-SMTP-pw/);
  assertNoSecrets(t, 'auth failure', result);
});

t.test('email: a server that is down is retried, then fails with the attempts counted', async (t) => {
  const port = await closedPort();
  const ch = email({ port });
  const started = Date.now();
  const result = await ch.deliver(alertOf());
  t.notOk(result.ok);
  t.equal(result.attempts, 3);
  t.match(result.error, `email ops-email via SMTP 127.0.0.1:${port}: connection refused`);
  t.match(result.error, /gave up after 3 attempts/);
  t.ok(Date.now() - started < 5_000, 'bounded');
  t.ok(logLines.some((l) => l.includes('retrying') && l.includes('"channel":"ops-email"')), 'retries are logged');
  assertNoSecrets(t, 'server down', result);
});

t.test('email: SMTP 4xx is retried, 5xx is not', async (t) => {
  const ch = email();
  const before = smtp.messages.length;
  smtp.rejectData({ code: 451, message: 'Temporary local problem, try again' });
  const transient = await ch.deliver(alertOf());
  t.ok(transient.ok, transient.error ?? '');
  t.equal(transient.attempts, 2, 'accepted on the second attempt');
  await smtp.waitForMessages(before + 1);
  t.equal(smtp.messages.length, before + 1, 'one message kept');

  smtp.rejectData({ code: 550, message: 'Mailbox unavailable' });
  const permanent = await ch.deliver(alertOf());
  t.notOk(permanent.ok);
  t.equal(permanent.attempts, 1);
  t.match(permanent.error, /550 Mailbox unavailable/);
  t.match(permanent.error, /permanent failure, not retried/);
});

t.test('webhook: generic, slack and teams bodies are JSON of the documented shapes', async (t) => {
  http.reset();
  const alert = alertOf();
  for (const preset of ['generic', 'slack', 'teams'] as const) {
    const result = await webhook({ preset, name: `hook-${preset}` }).deliver(alert);
    t.ok(result.ok, `${preset}: ${result.error ?? 'delivered'}`);
    t.equal(result.detail, 'HTTP 200');
  }
  t.equal(http.requests.length, 3);
  for (const req of http.requests) {
    t.equal(req.method, 'POST');
    t.equal(req.url, `/hooks/backproof?token=${HOOK_QUERY_TOKEN}`);
    t.equal(req.headers.authorization, `Bearer ${HOOK_HEADER_TOKEN}`, 'the configured header is sent');
    t.match(req.headers['content-type'], /^application\/json/);
    t.match(req.headers['idempotency-key'], /^[0-9a-f]{32}$/);
  }
  t.equal(new Set(http.requests.map((r) => r.headers['idempotency-key'])).size, 1, 'one idempotency key for one alert');

  const generic = JSON.parse(http.requests[0]!.body) as { version: number; alert: Alert };
  t.equal(generic.version, 1);
  t.same(generic.alert, alert, 'the alert as is');

  const slack = JSON.parse(http.requests[1]!.body) as SlackPayload;
  t.equal(slack.text, '[backproof] FAIL acme / acme-shop-db: checksum_mismatch');
  t.ok(slack.blocks.length >= 4);
  for (const b of slack.blocks) {
    t.equal(b.type, 'section');
    t.equal(b.text.type, 'mrkdwn');
    t.ok(b.text.text.length <= 3000);
  }
  const slackText = slack.blocks.map((b) => b.text.text).join('\n');
  t.notMatch(slackText, /<script>/, 'no raw < in mrkdwn');
  t.match(slackText, /shop-&lt;script&gt;alert\(1\)&lt;\/script&gt;\.dump/);
  t.match(slackText, /ACME Corp &amp; Sons/);
  t.match(slackText, /\*Next steps\*\n1\. the backup's bytes differ/);
  t.match(slackText, /fetch_restore\s+41\.5s\s+fail/);

  const teams = JSON.parse(http.requests[2]!.body) as TeamsMessageCard;
  t.match(teams, {
    '@type': 'MessageCard',
    '@context': 'https://schema.org/extensions',
    summary: '[backproof] FAIL acme / acme-shop-db: checksum_mismatch',
    themeColor: 'B42318',
    title: 'FAIL: acme / acme-shop-db (ACME Corp &amp; Sons)',
  });
  t.equal(teams.sections.length, 1);
  t.match(teams.sections[0]!.facts, [{ name: 'Client' }, { name: 'Policy' }]);
  t.ok(teams.sections[0]!.facts.some((f) => f.name === 'Verdict' && f.value === 'fail'));
  t.ok(teams.sections[0]!.facts.some((f) => f.name === 'Phases' && f.value.includes('fetch_restore 41.5s fail')));
  t.match(teams.sections[0]!.text, /\*\*Next steps\*\*/);
  t.notMatch(JSON.stringify(teams), /<script>/);
});

t.test('webhook: tokens in the Authorization header and the URL query never appear in results or logs', async (t) => {
  http.reset();
  const results: DeliveryResult[] = [];
  // A server that echoes the request headers and URL in its 400 answer.
  http.answer('echo');
  results.push(await webhook().deliver(alertOf()));
  t.equal(results[0]!.attempts, 1);
  t.match(results[0]!.error, /HTTP 400 Bad Request: bad request; you sent/, 'the server\'s words are kept...');
  t.match(results[0]!.error, /authorization=\*\*\* to \/hooks\/backproof\?\*\*\*/, '...with the tokens scrubbed');
  t.match(results[0]!.error, `webhook ops-hook (http://127.0.0.1:${http.port}/hooks/backproof?…)`, 'the URL without its query');
  // Retried failures (logged), a refused connection and a timeout.
  http.answer({ status: 503, body: `down; token=${HOOK_QUERY_TOKEN}` }, { status: 503 }, { status: 503 });
  results.push(await webhook().deliver(alertOf()));
  const port = await closedPort();
  results.push(await webhook({ url: `http://127.0.0.1:${port}/hook?token=${HOOK_QUERY_TOKEN}` }).deliver(alertOf()));
  http.answer('hang');
  results.push(await webhook({ timeoutMs: 200, retry: { maxAttempts: 1 } }).deliver(alertOf()));
  t.same(
    results.map((r) => r.ok),
    [false, false, false, false],
  );
  t.match(results[2]!.error, `webhook ops-hook (http://127.0.0.1:${port}/hook?…): connection refused (ECONNREFUSED)`);
  t.ok(logLines.some((l) => l.includes('"channel":"ops-hook"')), 'retries were logged');
  // A Slack-style URL keeps its token in the path.
  t.equal(describeUrl('https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/abcdefghijklmnopqrstuvwx'), 'https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/…');
  assertNoSecrets(t, 'webhook results and logs', results);
});

t.test('webhook: 500, 500, 200 is delivered on the third attempt', async (t) => {
  http.reset();
  http.answer({ status: 500, body: 'oops' }, { status: 500, body: 'oops' }, { status: 200, body: 'ok' });
  const result = await webhook().deliver(alertOf());
  t.ok(result.ok, result.error ?? '');
  t.equal(result.attempts, 3);
  t.equal(http.requests.length, 3);
  t.equal(new Set(http.requests.map((r) => r.headers['idempotency-key'])).size, 1, 'every attempt carries the same idempotency key');
});

t.test('webhook: 429 with Retry-After: 1 waits a second before the next attempt', async (t) => {
  http.reset();
  http.answer({ status: 429, headers: { 'retry-after': '1' }, body: 'slow down' });
  const result = await webhook().deliver(alertOf());
  t.ok(result.ok, result.error ?? '');
  t.equal(result.attempts, 2);
  const gap = http.requests[1]!.at - http.requests[0]!.at;
  t.ok(gap >= 950, `waited ${gap} ms (backoff alone would be ~20 ms)`);

  http.reset();
  http.answer({ status: 429, headers: { 'retry-after': '3600' } });
  const tooLong = await webhook().deliver(alertOf());
  t.notOk(tooLong.ok);
  t.equal(tooLong.attempts, 1);
  t.match(tooLong.error, /asked to retry after 3600s, more than the 120s allowed/);
});

t.test('webhook: 400 is a permanent failure, not retried', async (t) => {
  http.reset();
  http.answer({ status: 400, body: 'invalid_payload' });
  const result = await webhook({ preset: 'slack' }).deliver(alertOf());
  t.notOk(result.ok);
  t.equal(result.attempts, 1);
  t.equal(http.requests.length, 1);
  t.match(result.error, /HTTP 400 Bad Request: invalid_payload; permanent failure, not retried/);
});

t.test('webhook: a server that never answers times out, is retried, and the whole delivery is bounded', async (t) => {
  http.reset();
  http.answer('hang', 'hang', 'hang');
  const started = Date.now();
  const result = await webhook({ timeoutMs: 300 }).deliver(alertOf());
  const took = Date.now() - started;
  t.notOk(result.ok);
  t.equal(result.attempts, 3);
  t.equal(http.requests.length, 3);
  t.match(result.error, /no answer within 300 ms \(timeout\); gave up after 3 attempts/);
  t.ok(took >= 900 && took < 2_500, `took ${took} ms: 3 × 300 ms plus short backoff`);
});

t.test('channels: an abort signal stops retrying; close() is final and safe twice', async (t) => {
  http.reset();
  http.answer({ status: 503 }, { status: 503 }, { status: 503 });
  const ac = new AbortController();
  const ch = webhook({ retry: { maxAttempts: 3, baseDelayMs: 2_000, maxDelayMs: 2_000 } });
  const started = Date.now();
  setTimeout(() => ac.abort(), 200);
  const result = await ch.deliver(alertOf(), ac.signal);
  t.notOk(result.ok);
  t.equal(result.attempts, 1);
  t.match(result.error, /cancelled after 1 attempt/);
  t.ok(Date.now() - started < 1_500, 'did not sit out the backoff');

  const mail = email();
  await mail.close();
  await mail.close();
  const closed = await mail.deliver(alertOf());
  t.match(closed, { ok: false, attempts: 0, error: /the channel is closed/ });
});
