import { BACKPROOF_VERSION } from '../version.js';
import type { HeartbeatConfig } from '../core/config-types.js';
import { DeliveryError, deliverWithRetries, resolveRetry, type DeliveryResult } from './channel.js';
import { createRedactor, describeUrl, oneLine, urlSecrets } from './redact.js';
import { timeoutSignal } from '../core/timeout-signal.js';

/**
 * Outbound heartbeat pings in the style of healthchecks.io: a GET of `url` when a run passes, of
 * `failUrl` when it fails or errs. The service alerts when pings stop coming: the dead man's
 * switch on backproof that works even when the whole verification host is down.
 */
export type HeartbeatOutcome = 'pass' | 'fail';

export async function pingHeartbeat(
  heartbeat: HeartbeatConfig,
  outcome: HeartbeatOutcome,
  opts: { runId: string; secrets?: readonly string[]; maxAttempts?: number; signal?: AbortSignal; fetch?: typeof fetch } = { runId: '' },
): Promise<DeliveryResult> {
  const url = outcome === 'pass' ? heartbeat.url : heartbeat.failUrl;
  const redact = createRedactor([...(opts.secrets ?? []), ...urlSecrets(heartbeat.url), ...urlSecrets(heartbeat.failUrl)]);
  const target = `heartbeat (${describeUrl(url)})`;
  const doFetch = opts.fetch ?? globalThis.fetch;
  return deliverWithRetries({
    channel: 'heartbeat',
    target,
    alert: { id: opts.runId, state: outcome === 'pass' ? 'resolved' : 'firing' },
    retry: resolveRetry({ maxAttempts: opts.maxAttempts ?? 3, baseDelayMs: 500, maxDelayMs: 5_000 }),
    redact,
    signal: opts.signal,
    classify: (err) => {
      if (err instanceof DeliveryError) return err;
      const e = err as Error & { cause?: { code?: string } };
      const what = e.name === 'TimeoutError' ? `no answer within ${Math.round(heartbeat.timeoutMs / 1000)}s` : (e.cause?.code ?? e.message ?? String(err));
      return new DeliveryError(redact(oneLine(String(what), 200)), { transient: true, cause: err });
    },
    attempt: async (_n, signal) => {
      const timeout = timeoutSignal(heartbeat.timeoutMs);
      const res = await doFetch(url, {
        method: 'GET',
        redirect: 'manual',
        headers: { 'user-agent': `backproof/${BACKPROOF_VERSION}` },
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      const body = oneLine(await res.text().catch(() => ''), 100);
      if (res.status >= 200 && res.status < 300) return `HTTP ${res.status}${body ? ` ${body}` : ''}`;
      const transient = res.status === 408 || res.status === 429 || res.status >= 500;
      throw new DeliveryError(`HTTP ${res.status}${body ? `: ${body}` : ''}`, { transient });
    },
  });
}
