import t from 'tap';
import { createAlert, type Alert } from '../orchestrator/alerts/alert.js';
import type { AlertChannel } from '../orchestrator/alerts/channel.js';
import { EmailChannel } from '../orchestrator/alerts/email-channel.js';
import { WebhookChannel } from '../orchestrator/alerts/webhook-channel.js';
import { CHANNEL_TYPES, type ChannelType } from '../orchestrator/core/config-types.js';
import { Logger } from '../orchestrator/core/logger.js';
import { startHttpReceiver, type HttpReceiver } from './helpers/http-receiver.js';
import { startSmtpReceiver, type SmtpReceiver } from './helpers/smtp-receiver.js';

// One suite, every alert channel type, against real receivers on loopback: a delivery arrives;
// a transient failure is retried; an abort stops the backoff at once; close() is final and safe
// twice; a receiver that echoes the channel's secret back gets it redacted from the result and
// the logs. FIXTURES is a Record over the config's channel types: a new type does not compile
// without its fixture here.


const SMTP_USER = 'alerts@backproof.test';
const SMTP_PASS = 'canary-conformance-smtp-4e1b';
const HOOK_TOKEN = 'canary-conformance-hook-8c2d';

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

interface Fixture {
  /** The secret the channel holds (a password, a token). */
  secret: string;
  make(retry: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number }): AlertChannel;
  /** The receiver starts afresh: nothing received, no failure planned. */
  reset(): void;
  /** The next `n` attempts fail the way a busy receiver fails (retried). */
  failTransiently(n: number): void;
  /** The next attempt is refused for good, with an answer that quotes the channel's secret. */
  refuseEchoingSecret(): void;
  /** Messages that arrived. */
  received(): number;
}

/** Webhook requests answered with a planned failure; every other one was answered 200. */
let hookFailures = 0;

const FIXTURES: Record<ChannelType, Fixture> = {
  email: {
    secret: SMTP_PASS,
    make: (retry) =>
      new EmailChannel({
        name: 'conformance-email',
        host: '127.0.0.1',
        port: smtp.port,
        startTls: 'never',
        auth: { user: SMTP_USER, pass: SMTP_PASS },
        from: 'backproof <alerts@backproof.test>',
        to: ['oncall@msp.test'],
        connectionTimeoutMs: 2_000,
        greetingTimeoutMs: 2_000,
        socketTimeoutMs: 5_000,
        retry,
        logger,
      }),
    reset: () => smtp.reset(),
    failTransiently: (n) => smtp.rejectData(...Array.from({ length: n }, () => ({ code: 451, message: 'try again later' }))),
    refuseEchoingSecret: () => smtp.rejectData({ code: 554, message: `rejected for ${SMTP_USER} with password ${SMTP_PASS}` }),
    received: () => smtp.messages.length,
  },
  webhook: {
    secret: HOOK_TOKEN,
    make: (retry) =>
      new WebhookChannel({
        name: 'conformance-webhook',
        url: http.url(`/hook?token=${HOOK_TOKEN}`),
        preset: 'generic',
        headers: { Authorization: `Bearer ${HOOK_TOKEN}` },
        timeoutMs: 2_000,
        retry,
        logger,
      }),
    reset: () => {
      http.reset();
      hookFailures = 0;
    },
    failTransiently: (n) => {
      hookFailures += n;
      http.answer(...Array.from({ length: n }, () => ({ status: 503 })));
    },
    refuseEchoingSecret: () => {
      hookFailures += 1;
      http.answer({ status: 400, body: `bad request: Authorization: Bearer ${HOOK_TOKEN}` });
    },
    received: () => http.requests.length - hookFailures,
  },
};

function alert(): Alert {
  return createAlert({
    id: 'acme/acme-db/fail/2026-11-27T02:10:42Z',
    condition: 'fail',
    state: 'firing',
    client: { name: 'acme', displayName: 'ACME Corp' },
    policy: 'acme-db',
    kind: 'postgres',
    occurredAt: '2026-11-27T02:10:42.000Z',
    summary: 'the newest backup of acme-db does not match its checksum',
    reasons: [{ code: 'checksum_mismatch', message: 'sha256 differs from the sidecar' }],
  });
}

const FAST = { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100 };

for (const type of CHANNEL_TYPES) {
  const fx = FIXTURES[type];
  t.test(`${type} channel`, async (t) => {
    t.test('a delivery arrives once; a transient failure is retried', async (t) => {
      fx.reset();
      const ch = fx.make(FAST);
      t.teardown(() => ch.close());
      const first = await ch.deliver(alert());
      t.match(first, { ok: true, attempts: 1, channel: ch.name });
      t.equal(fx.received(), 1, 'one message arrived');
      fx.failTransiently(1);
      const second = await ch.deliver(alert());
      t.match(second, { ok: true, attempts: 2 }, 'delivered on the second attempt');
      t.equal(fx.received(), 2);
    });

    t.test('an abort during the backoff stops the delivery at once', async (t) => {
      fx.reset();
      fx.failTransiently(3);
      const ch = fx.make({ maxAttempts: 3, baseDelayMs: 2_000, maxDelayMs: 2_000 });
      t.teardown(() => ch.close());
      const ac = new AbortController();
      const started = Date.now();
      setTimeout(() => ac.abort(), 200);
      const result = await ch.deliver(alert(), ac.signal);
      t.match(result, { ok: false, attempts: 1 });
      t.match(result.error, /cancelled/);
      t.ok(Date.now() - started < 1_500, `did not sit out the backoff (${Date.now() - started} ms)`);
    });

    t.test('close() is final and safe twice', async (t) => {
      fx.reset();
      const ch = fx.make(FAST);
      await ch.close();
      await ch.close();
      const result = await ch.deliver(alert());
      t.match(result, { ok: false, attempts: 0, error: /closed/ });
      t.equal(fx.received(), 0, 'nothing was sent');
    });

    t.test("a refusal that quotes the channel's secret: permanent, and the secret is redacted everywhere", async (t) => {
      fx.reset();
      logLines.length = 0;
      fx.refuseEchoingSecret();
      const ch = fx.make(FAST);
      t.teardown(() => ch.close());
      const result = await ch.deliver(alert());
      t.match(result, { ok: false, attempts: 1 }, 'a refusal is not retried');
      t.ok(result.error && result.error.length > 0, `the error says what happened: ${result.error}`);
      t.notOk(JSON.stringify(result).includes(fx.secret), 'no secret in the result');
      t.notOk(logLines.join('\n').includes(fx.secret), 'no secret in the log');
    });
  });
}
