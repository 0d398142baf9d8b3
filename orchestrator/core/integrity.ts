import { createHash, type Hash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { holdLent, passesPooled } from './chunk-pool.js';
import { HashThread } from './hash-thread.js';

/** Chunks a hashing thread may have queued before the tee waits for it (memory stays bounded). */
const THREAD_QUEUE = 8;

/**
 * The integrity tee: counts and hashes every byte read from storage on its way to the restorer,
 * so the one pass that restores is also the pass that checks. It passes each chunk on unchanged
 * and keeps none, so a pooled source stays pooled through it (see chunk-pool.ts). With `thread`
 * the hashing runs in a worker thread (hash-thread.ts), for large backups read from a pool.
 */
export class HashingCounter extends Transform {
  private readonly hash = createHash('sha256');
  private readonly md5Hash: Hash | undefined;
  private readonly thread: HashThread | undefined;
  bytes = 0;
  private digestHex: string | undefined;
  private md5Hex: string | undefined;

  /** `md5` also keeps an MD5 of the bytes, for providers whose checksum is one (an S3 ETag). */
  constructor(private readonly onProgress?: (bytes: number) => void, opts: { md5?: boolean; thread?: boolean } = {}) {
    super({ highWaterMark: 1024 * 1024 });
    this.md5Hash = opts.md5 ? createHash('md5') : undefined;
    this.thread = opts.thread ? new HashThread(opts.md5 ? ['sha256', 'md5'] : ['sha256']) : undefined;
  }

  /** Says this tee reads `source` (the caller pipes it in): a pooled source stays pooled through it. */
  from(source: Readable): this {
    passesPooled(source, this);
    return this;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.onProgress?.(this.bytes);
    const thread = this.thread;
    if (!thread) {
      this.hash.update(chunk);
      this.md5Hash?.update(chunk);
      return cb(null, chunk);
    }
    // The chunk goes on at once; its buffer is not reused before the thread has hashed it.
    const release = holdLent(chunk);
    const hashed = thread.update(chunk).finally(release);
    this.push(chunk);
    if (thread.pending < THREAD_QUEUE) {
      hashed.catch((err: Error) => this.destroy(err));
      cb();
    } else hashed.then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    if (!this.thread) {
      this.digestHex = this.hash.digest('hex');
      this.md5Hex = this.md5Hash?.digest('hex');
      return cb();
    }
    this.thread.digest().then((d) => {
      this.digestHex = d.sha256;
      this.md5Hex = d.md5;
      cb();
    }, cb);
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.thread?.terminate();
    cb(err);
  }

  /** The sha256 of everything that passed, once the stream has ended. */
  get sha256(): string | undefined {
    return this.digestHex;
  }

  /** The MD5 of everything that passed, once the stream has ended (when asked for). */
  get md5(): string | undefined {
    return this.md5Hex;
  }

  digest(algorithm: 'sha256' | 'md5'): string | undefined {
    return algorithm === 'sha256' ? this.digestHex : this.md5Hex;
  }
}

/**
 * Reads the first `n` bytes of a stream without losing them: returns them and a stream that
 * yields the whole content again. Backpressure and errors pass through; destroying the returned
 * stream destroys the source. The head is a copy; later chunks pass on unchanged, so a pooled
 * source stays pooled (see chunk-pool.ts).
 */
export async function peek(source: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const it = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const chunks: Buffer[] = [];
  let length = 0;
  let done = false;
  while (length < n) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    chunks.push(r.value);
    length += r.value.length;
  }
  const all = Buffer.concat(chunks);
  async function* replay(): AsyncGenerator<Buffer> {
    try {
      if (all.length > 0) yield all;
      if (done) return;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield r.value;
      }
    } finally {
      if (!done) source.destroy();
    }
  }
  const stream = Readable.from(replay(), { objectMode: false, highWaterMark: 1024 * 1024 });
  passesPooled(source, stream);
  return { head: all.subarray(0, n), stream };
}
