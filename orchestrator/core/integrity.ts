import { createHash, type Hash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { passesPooled } from './chunk-pool.js';

/**
 * The integrity tee: counts and hashes every byte read from storage on its way to the restorer,
 * so the one pass that restores is also the pass that checks. It passes each chunk on unchanged
 * and keeps none, so a pooled source stays pooled through it (see chunk-pool.ts).
 */
export class HashingCounter extends Transform {
  private readonly hash = createHash('sha256');
  private readonly md5Hash: Hash | undefined;
  bytes = 0;
  private digestHex: string | undefined;
  private md5Hex: string | undefined;

  /** `md5` also keeps an MD5 of the bytes, for providers whose checksum is one (an S3 ETag). */
  constructor(private readonly onProgress?: (bytes: number) => void, opts: { md5?: boolean } = {}) {
    super({ highWaterMark: 1024 * 1024 });
    this.md5Hash = opts.md5 ? createHash('md5') : undefined;
  }

  /** Says this tee reads `source` (the caller pipes it in): a pooled source stays pooled through it. */
  from(source: Readable): this {
    passesPooled(source, this);
    return this;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.md5Hash?.update(chunk);
    this.bytes += chunk.length;
    this.onProgress?.(this.bytes);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.digestHex = this.hash.digest('hex');
    this.md5Hex = this.md5Hash?.digest('hex');
    cb();
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
