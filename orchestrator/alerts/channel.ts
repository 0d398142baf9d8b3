import { setTimeout as sleep } from 'node:timers/promises';
import { BackproofError, isAbortError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { DEFAULTS } from '../core/defaults.js';
import type { Alert } from './alert.js';
import { oneLine, type Redactor } from './redact.js';

/**
 * The seam between alert evaluation and delivery. A channel owns its connections (SMTP
 * transport, HTTP agent) and closes them in `close()`; `deliver` never throws: whatever
 * happened is in the result, its `error` naming what failed (channel, server) and never a
 * secret. Implementations: email-channel.ts (SMTP), webhook-channel.ts (generic JSON, Slack,
 * Teams).
 */
export interface AlertChannel {
  readonly name: string;
  deliver(alert: Alert, signal?: AbortSignal, opts?: DeliverOptions): Promise<DeliveryResult>;
  /** Releases connections; safe to call twice. */
  close(): Promise<void>;
}

export interface DeliverOptions {
  /** Email: recipients added to the channel's own for this alert (the client's and policy's contacts). Webhooks ignore it. */
  extraTo?: readonly string[];
}

export interface DeliveryResult {
  /** The channel's name. */
  channel: string;
  ok: boolean;
  /** Attempts made, the successful one included. */
  attempts: number;
  /** Why delivery failed, when it did: what failed, where, and whether it was retried. */
  error?: string;
  /** When delivery ended (ISO 8601). */
  at: string;
  durationMs: number;
  /** What the receiver said: the SMTP message id and reply, or the HTTP status. */
  detail?: string;
  /** The failure will not go away by trying again (a refusal, not an outage). */
  permanent?: boolean;
}

/** Alert delivery defaults; units in the names. (Candidates for orchestrator/core/defaults.ts.) */

export interface RetryOptions {
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  maxRetryAfterMs?: number;
}
export type ResolvedRetryOptions = Required<RetryOptions>;

export function resolveRetry(o: RetryOptions = {}): ResolvedRetryOptions {
  return {
    maxAttempts: Math.max(1, Math.floor(o.maxAttempts ?? DEFAULTS.alert.maxAttempts)),
    baseDelayMs: o.baseDelayMs ?? DEFAULTS.alert.retryBaseDelayMs,
    maxDelayMs: o.maxDelayMs ?? DEFAULTS.alert.retryMaxDelayMs,
    maxRetryAfterMs: o.maxRetryAfterMs ?? DEFAULTS.alert.maxRetryAfterMs,
  };
}

/** Options every channel takes. */
export interface ChannelCommonOptions {
  /** The channel's name in results and logs (e.g. `ops-email`). */
  name?: string;
  /** Secret values from the config (the loader collects them); scrubbed from errors and logs. */
  secrets?: readonly string[];
  retry?: RetryOptions;
  logger?: Logger;
}

/**
 * One failed attempt, classified. `transient` failures are retried (SMTP 4xx, connection
 * errors, HTTP 408/429/5xx, timeouts); permanent ones are not. The message is already redacted.
 */
export class DeliveryError extends BackproofError {
  override name = 'DeliveryError';
  readonly transient: boolean;
  readonly retryAfterMs: number | undefined;
  constructor(message: string, opts: { transient: boolean; retryAfterMs?: number; cause?: unknown }) {
    super(opts.transient ? 'delivery_transient' : 'delivery_permanent', message, { cause: opts.cause });
    this.transient = opts.transient;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/** Exponential backoff with equal jitter: attempt 1 waits base/2..base, attempt 2 base..2·base, ... */
export function backoffDelayMs(retry: number, o: Pick<ResolvedRetryOptions, 'baseDelayMs' | 'maxDelayMs'>, random = Math.random): number {
  const ceiling = Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** Math.max(0, retry - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export interface RetryLoop {
  channel: string;
  /** What is being delivered to where, for messages: `webhook ops-slack (https://hooks.slack.com/…)`. */
  target: string;
  alert: Pick<Alert, 'id' | 'state'>;
  /** One attempt; resolves to the receiver's answer (detail). */
  attempt: (attempt: number, signal: AbortSignal | undefined) => Promise<string>;
  /** Turns whatever an attempt threw into a DeliveryError with a redacted message. */
  classify: (err: unknown) => DeliveryError;
  retry: ResolvedRetryOptions;
  redact: Redactor;
  signal?: AbortSignal | undefined;
  logger?: Logger | undefined;
  random?: () => number;
}

/** Runs attempts until one succeeds, a failure is permanent, attempts run out or `signal` aborts. */
export async function deliverWithRetries(loop: RetryLoop): Promise<DeliveryResult> {
  const started = Date.now();
  const result = (ok: boolean, attempts: number, extra: { error?: string; detail?: string; permanent?: boolean }): DeliveryResult => ({
    channel: loop.channel,
    ok,
    attempts,
    ...(extra.error !== undefined ? { error: oneLine(loop.redact(extra.error), 1000) } : {}),
    ...(extra.detail !== undefined ? { detail: oneLine(loop.redact(extra.detail), 500) } : {}),
    ...(extra.permanent ? { permanent: true } : {}),
    at: new Date().toISOString(),
    durationMs: Date.now() - started,
  });
  const cancelled = (attempts: number): DeliveryResult => result(false, attempts, { error: `${loop.target}: cancelled after ${attempts} attempt${attempts === 1 ? '' : 's'}` });

  for (let attempt = 1; ; attempt++) {
    if (loop.signal?.aborted) return cancelled(attempt - 1);
    let failure: DeliveryError;
    try {
      const detail = await loop.attempt(attempt, loop.signal);
      return result(true, attempt, { detail });
    } catch (err) {
      if (loop.signal?.aborted) return cancelled(attempt);
      failure = loop.classify(err);
    }
    const said = `${loop.target}: ${failure.message}`;
    if (!failure.transient) {
      return result(false, attempt, { error: `${said}; permanent failure, not retried${attempt > 1 ? ` (attempt ${attempt})` : ''}`, permanent: true });
    }
    if (attempt >= loop.retry.maxAttempts) {
      return result(false, attempt, { error: `${said}; gave up after ${attempt} attempt${attempt === 1 ? '' : 's'}` });
    }
    if (failure.retryAfterMs !== undefined && failure.retryAfterMs > loop.retry.maxRetryAfterMs) {
      return result(false, attempt, {
        error: `${said}; the server asked to retry after ${Math.ceil(failure.retryAfterMs / 1000)}s, more than the ${Math.ceil(loop.retry.maxRetryAfterMs / 1000)}s allowed: not retried`,
      });
    }
    const delayMs = Math.max(failure.retryAfterMs ?? 0, backoffDelayMs(attempt, loop.retry, loop.random));
    loop.logger?.warn(loop.redact(`alert delivery failed, retrying in ${delayMs} ms: ${said}`), {
      channel: loop.channel,
      alert: loop.alert.id,
      state: loop.alert.state,
      attempt,
      delayMs,
    });
    try {
      await sleep(delayMs, undefined, loop.signal ? { signal: loop.signal } : {});
    } catch (err) {
      if (isAbortError(err)) return cancelled(attempt);
      throw err;
    }
  }
}

/** What `deliver` answers once `close()` was called. */
export function closedResult(channel: string, target: string): DeliveryResult {
  return { channel, ok: false, attempts: 0, error: `${target}: the channel is closed`, at: new Date().toISOString(), durationMs: 0 };
}
