import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { VerificationError } from '../../orchestrator/core/errors.js';

/** One GET of the object from `start` on (a Range request when start > 0). */
export interface RangeResponse {
  body: AsyncIterable<Uint8Array> & { destroy?: (err?: Error) => void };
  /** The entity tag of what this response holds; a resumed response must carry the same one. */
  etag?: string;
}

export interface ResumableOptions {
  size: number;
  fetch(start: number, signal: AbortSignal): Promise<RangeResponse>;
  /** A response that delivers no byte for this long is dropped and resumed (a stalled transfer). */
  idleTimeoutMs: number;
  /** Consecutive failed attempts without progress before giving up. */
  maxRetries: number;
  baseDelayMs: number;
  isRetryable(err: unknown): boolean;
  /** Turns the final failure into a VerificationError naming the object. */
  fail(err: unknown, offset: number, attempts: number): VerificationError;
  /** Called after each successful resume, for the log. */
  onResume?(offset: number, attempt: number, cause: unknown): void;
  signal?: AbortSignal;
}

/**
 * The object's bytes as one stream that survives dropped connections: when a transfer breaks
 * (reset, timeout, a response shorter than the object), it asks again from the byte where it
 * stopped, with exponential backoff and jitter, at most `maxRetries` times in a row without
 * progress. A resumed response of another version of the object (a different ETag) stops the
 * read: bytes from two versions must never be spliced into one backup. Backpressure holds: the
 * next chunk is read only when the consumer wants it.
 */
export function resumableDownload(opts: ResumableOptions): Readable {
  const abort = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, abort.signal]) : abort.signal;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    let offset = 0;
    let failures = 0;
    let etag: string | undefined;
    let lastError: unknown;
    while (true) {
      let response: RangeResponse | undefined;
      try {
        response = await opts.fetch(offset, signal);
        if (etag === undefined) etag = response.etag;
        else if (response.etag !== undefined && response.etag !== etag) {
          throw new VerificationError('source_changed', `the object changed while it was being read (ETag ${etag} became ${response.etag} at byte ${offset}); run again`);
        }
        if (failures > 0) opts.onResume?.(offset, failures, lastError);
        // HTTP clients time out waiting for a response, not a body that stops mid-way: watch it.
        // One timer per response, re-armed per chunk; while the consumer holds a chunk
        // (backpressure) the wait is ours, not the store's, so it does not count.
        const body = response.body;
        let consumerHasIt = false;
        const idle: NodeJS.Timeout = setTimeout(() => {
          if (consumerHasIt) {
            idle.refresh();
            return;
          }
          const stalled = Object.assign(new Error(`no data for ${opts.idleTimeoutMs} ms at byte ${offset}`), { name: 'TimeoutError', code: 'ETIMEDOUT' });
          body.destroy?.(stalled);
        }, opts.idleTimeoutMs);
        try {
          for await (const chunk of body) {
            offset += chunk.length;
            failures = 0;
            consumerHasIt = true;
            yield chunk;
            consumerHasIt = false;
            idle.refresh();
          }
        } finally {
          clearTimeout(idle);
        }
        if (offset >= opts.size) return;
        throw Object.assign(new Error(`the response ended at byte ${offset} of ${opts.size}`), { code: 'ECONNRESET' });
      } catch (err) {
        if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : err;
        if (!opts.isRetryable(err)) throw opts.fail(err, offset, failures + 1);
        lastError = err;
        failures++;
        if (failures > opts.maxRetries) throw opts.fail(err, offset, failures);
        const delay = opts.baseDelayMs * 2 ** (failures - 1) * (0.5 + Math.random() / 2);
        await sleep(delay, undefined, { signal });
      } finally {
        response?.body.destroy?.();
      }
    }
  }
  const stream = Readable.from(chunks(), { objectMode: false, highWaterMark: 1024 * 1024 });
  stream.once('close', () => abort.abort(new Error('the download stream was closed')));
  return stream;
}
