import { createHash } from 'node:crypto';
import { BACKPROOF_VERSION } from '../version.js';
import { DEFAULTS } from '../core/defaults.js';
import type { Alert } from './alert.js';
import {
  closedResult,
  DeliveryError,
  deliverWithRetries,
  resolveRetry,
  type AlertChannel,
  type ChannelCommonOptions,
  type DeliveryResult,
  type ResolvedRetryOptions,
} from './channel.js';
import { createRedactor, describeUrl, headerSecrets, oneLine, urlSecrets, type Redactor } from './redact.js';
import { webhookPayload, type WebhookPreset } from './render.js';
import { timeoutSignal } from '../core/timeout-signal.js';

/**
 * Alerts as an HTTP POST of JSON (Node's global fetch): `generic` sends `{ version: 1, alert }`,
 * `slack` a Slack incoming-webhook message, `teams` a MessageCard.
 *
 * The URL's query and long path segments (Slack and Teams keep their token there) and every
 * header value are treated as secrets: messages show the URL as `https://host/path?…` and scrub
 * those values. Redirects are not followed (they would carry the headers elsewhere).
 */
export interface WebhookChannelOptions extends ChannelCommonOptions {
  url: string;
  preset?: WebhookPreset;
  /** Extra request headers, e.g. `Authorization: Bearer ${token}`. */
  headers?: Record<string, string>;
  /** One request, reading the answer included. */
  timeoutMs?: number;
  /** For tests or a proxying fetch; the global fetch otherwise. */
  fetch?: typeof fetch;
}

/** Bytes of an error response kept for the message. */
const BODY_EXCERPT_BYTES = 2048;

class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    statusText: string,
    readonly body: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super(`HTTP ${status}${statusText ? ` ${statusText}` : ''}`);
  }
}

export class WebhookChannel implements AlertChannel {
  readonly name: string;
  readonly preset: WebhookPreset;
  private readonly url: URL;
  private readonly redact: Redactor;
  private readonly retry: ResolvedRetryOptions;
  private readonly timeoutMs: number;
  private readonly target: string;
  private readonly fetch: typeof fetch;
  private closed = false;

  constructor(private readonly opts: WebhookChannelOptions) {
    this.preset = opts.preset ?? 'generic';
    this.name = opts.name ?? 'webhook';
    this.redact = createRedactor([...(opts.secrets ?? []), ...urlSecrets(opts.url), ...headerSecrets(opts.headers)]);
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      throw new Error(`webhook ${this.name}: the url is not a URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`webhook ${this.name}: the url must be http(s), not ${url.protocol}`);
    this.url = url;
    this.target = `${this.name === 'webhook' ? 'webhook' : `webhook ${this.name}`} (${describeUrl(url)})`;
    this.retry = resolveRetry(opts.retry);
    this.timeoutMs = opts.timeoutMs ?? DEFAULTS.alert.webhookTimeoutMs;
    this.fetch = opts.fetch ?? globalThis.fetch;
  }

  deliver(alert: Alert, signal?: AbortSignal): Promise<DeliveryResult> {
    if (this.closed) return Promise.resolve(closedResult(this.name, this.target));
    const body = JSON.stringify(webhookPayload(this.preset, alert));
    const headers: Record<string, string> = {
      'content-type': 'application/json; charset=utf-8',
      'user-agent': `backproof/${BACKPROOF_VERSION}`,
      'x-backproof-alert-id': encodeURIComponent(alert.id),
      // The same for every attempt of one delivery, different for a reminder or the resolution.
      'idempotency-key': createHash('sha256').update(`${alert.id}\n${alert.state}\n${alert.occurredAt}`).digest('hex').slice(0, 32),
      ...this.opts.headers,
    };
    return deliverWithRetries({
      channel: this.name,
      target: this.target,
      alert,
      retry: this.retry,
      redact: this.redact,
      signal,
      logger: this.opts.logger,
      classify: (err) => this.classify(err),
      attempt: async (_n, sig) => {
        const timeout = timeoutSignal(this.timeoutMs);
        const res = await this.fetch(this.url, {
          method: 'POST',
          headers,
          body,
          redirect: 'manual',
          signal: sig ? AbortSignal.any([sig, timeout]) : timeout,
        });
        const text = await readExcerpt(res);
        if (res.status >= 200 && res.status < 300) return `HTTP ${res.status}`;
        throw new HttpStatusError(res.status, res.statusText, text, retryAfterMs(res.headers.get('retry-after')));
      },
    });
  }

  async close(): Promise<void> {
    // fetch's keep-alive connections belong to the global dispatcher and time out by themselves.
    this.closed = true;
  }

  private classify(err: unknown): DeliveryError {
    if (err instanceof HttpStatusError) {
      const s = err.status;
      const said = err.body ? `: ${oneLine(this.redact(err.body), 200)}` : '';
      if (s >= 300 && s < 400) return new DeliveryError(`${err.message}, a redirect (not followed: configure the final URL)`, { transient: false });
      const transient = s === 408 || s === 429 || s >= 500;
      return new DeliveryError(this.redact(`${err.message}${said}`), { transient, ...(err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {}) });
    }
    const e = err as { name?: string; message?: string; cause?: { code?: string; name?: string; message?: string } } | undefined;
    if (e?.name === 'TimeoutError' || e?.cause?.name === 'TimeoutError') {
      return new DeliveryError(`no answer within ${this.timeoutMs} ms (timeout)`, { transient: true, cause: err });
    }
    const code = e?.cause?.code;
    if (code) {
      const what = code === 'ECONNREFUSED' ? 'connection refused' : code === 'ENOTFOUND' ? 'host not found' : 'connection failed';
      return new DeliveryError(`${what} (${code})`, { transient: !code.startsWith('ERR_TLS') && !code.includes('CERT'), cause: err });
    }
    // Anything else (an invalid header value, ...) will not get better by trying again.
    const message = [e?.message, e?.cause?.message].filter(Boolean).join(': ') || 'request failed';
    return new DeliveryError(this.redact(oneLine(message, 300)), { transient: false, cause: err });
  }
}

async function readExcerpt(res: Response): Promise<string> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    chunks.push(chunk);
    size += chunk.byteLength;
    if (size >= BODY_EXCERPT_BYTES) break;
  }
  return Buffer.concat(chunks).subarray(0, BODY_EXCERPT_BYTES).toString('utf8');
}

/** Retry-After: delay-seconds or an HTTP date. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}
