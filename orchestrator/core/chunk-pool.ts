import type { FileHandle } from 'node:fs/promises';
import { addAbortSignal, Readable } from 'node:stream';

/**
 * Read buffers that go back into use once the sandbox has been fed them.
 *
 * Streaming a backup allocated a fresh 1 MiB buffer per chunk. Held across the socket's
 * asynchronous writes into the sandbox, they outlive the young generation, and collecting them
 * was most of this process's CPU per GiB streamed (bench/stream-restore.ts). A pooled stream
 * reads into a few buffers that its sink gives back after writing them.
 *
 * A buffer is given back only when reusing it cannot change bytes that someone still holds:
 * - the sink gives back the exact chunk object the stream lent, never a slice or a copy (a
 *   transform between them makes new buffers, which are not lent);
 * - the stream the sink reads is marked as pooled: a pooled source, or a stage of our own that
 *   passes chunks on unchanged and keeps none of them (`passesPooled`);
 * - that stream has one reader (the sink).
 * A chunk that is never given back (the stream was cut, or a stage kept it) is only garbage:
 * the pool reads into a new buffer instead; so when in doubt, do not give back: it costs speed,
 * never bytes.
 */
class ChunkPool {
  private readonly free: Buffer[] = [];

  constructor(
    readonly chunkBytes: number,
    private readonly keep: number,
  ) {}

  /**
   * A free buffer, or a new one. Plain memory, never a SharedArrayBuffer: V8 does not count
   * shared memory towards collecting garbage, so chunks that never come back (behind a
   * transform) would pile up to the backup's size before a collection.
   */
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.chunkBytes);
  }

  put(buf: Buffer): void {
    if (this.free.length < this.keep) this.free.push(buf);
  }
}

/** Free buffers a pool keeps for reuse: more than are in flight between the read and the sandbox. */
const KEEP = 8;

/** Each lent chunk: the pool and the whole buffer it views. */
const lent = new WeakMap<Buffer, { pool: ChunkPool; buf: Buffer }>();
/** Streams whose chunks may be lent ones, with one reader: see the rules above. */
const pooled = new WeakSet<Readable>();

/** Marks `stream` as passing lent chunks on unchanged (a stage that keeps none of them). */
export function passesPooled(from: Readable, stream: Readable): void {
  if (pooled.has(from)) pooled.add(stream);
}

/**
 * Whether a sink that reads `stream` may give its chunks back once written: a pooled stream
 * with no other reader than the sink (its own `data` listener).
 */
export function givesBack(stream: Readable): boolean {
  return pooled.has(stream) && stream.listenerCount('data') <= 1 && stream.listenerCount('readable') === 0;
}

/** Gives a written chunk back to its pool; anything not lent, or given back already, is left alone. */
export function giveBack(chunk: Buffer): void {
  const loan = lent.get(chunk);
  if (!loan) return;
  lent.delete(chunk);
  loan.pool.put(loan.buf);
}

/**
 * A file read as a stream of chunks from a pool (at most `keep` free buffers kept for reuse). The
 * handle is closed when the stream ends or is destroyed; `signal` destroys it.
 */
export function pooledFileStream(handle: FileHandle, opts: { chunkBytes: number; keep?: number; signal?: AbortSignal }): Readable {
  const pool = new ChunkPool(opts.chunkBytes, opts.keep ?? KEEP);
  let position = 0;
  const stream = new Readable({
    highWaterMark: opts.chunkBytes,
    read() {
      const buf = pool.take();
      handle.read(buf, 0, buf.length, position).then(
        ({ bytesRead }) => {
          if (bytesRead === 0) {
            pool.put(buf);
            stream.push(null);
            return;
          }
          position += bytesRead;
          const chunk = bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
          lent.set(chunk, { pool, buf });
          stream.push(chunk);
        },
        (err: Error) => stream.destroy(err),
      );
    },
    destroy(err, cb) {
      handle.close().then(
        () => cb(err),
        (closeErr: Error) => cb(err ?? closeErr),
      );
    },
  });
  pooled.add(stream);
  if (opts.signal) addAbortSignal(opts.signal, stream);
  return stream;
}
