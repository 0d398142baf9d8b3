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
 * A stage that reads a chunk's bytes later (a hashing thread) holds it (`holdLent`) until done.
 */
class ChunkPool {
  private readonly free: Buffer[] = [];

  constructor(
    readonly chunkBytes: number,
    private readonly keep: number,
  ) {}

  /** A free buffer, or a new one; in shared memory, so a hashing thread reads it without a copy. */
  take(): Buffer {
    return this.free.pop() ?? Buffer.from(new SharedArrayBuffer(this.chunkBytes));
  }

  put(buf: Buffer): void {
    if (this.free.length < this.keep) this.free.push(buf);
  }
}

/** Each lent chunk: the pool, the whole buffer it views, and who still needs it (the sink at first). */
interface Loan {
  pool: ChunkPool;
  buf: Buffer;
  holds: number;
}
const lent = new WeakMap<Buffer, Loan>();
/** Streams whose chunks may be lent ones, with one reader: see the rules above. */
const pooled = new WeakSet<Readable>();

/** Whether `stream` is a pooled source or a stage that passes its chunks on (see the rules above). */
export function isPooled(stream: Readable): boolean {
  return pooled.has(stream);
}

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
  release(loan);
}

/**
 * Keeps a lent chunk's buffer from reuse until the returned function is called (once), even
 * after the sink gave it back; undefined for a chunk that is not lent.
 */
export function holdLent(chunk: Buffer): (() => void) | undefined {
  const loan = lent.get(chunk);
  if (!loan) return undefined;
  loan.holds++;
  let done = false;
  return () => {
    if (done) return;
    done = true;
    release(loan);
  };
}

function release(loan: Loan): void {
  if (--loan.holds === 0) loan.pool.put(loan.buf);
}

/**
 * A file read as a stream of chunks from a pool (at most `keep` buffers kept for reuse). The
 * handle is closed when the stream ends or is destroyed; `signal` destroys it.
 */
export function pooledFileStream(handle: FileHandle, opts: { chunkBytes: number; keep?: number; signal?: AbortSignal }): Readable {
  const pool = new ChunkPool(opts.chunkBytes, opts.keep ?? 8);
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
          lent.set(chunk, { pool, buf, holds: 1 });
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
