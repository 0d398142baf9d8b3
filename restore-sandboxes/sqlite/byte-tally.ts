import { Transform, type TransformCallback } from 'node:stream';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { formatBytes } from '../../orchestrator/core/format.js';

/**
 * Passes bytes through unchanged while counting them and keeping the last few: how long the
 * restored file is, how a dump ends. Past `maxBytes` it stops the stream with a fail: a
 * decompression bomb must not fill the engine's disk.
 */
export class ByteTally extends Transform {
  bytes = 0;
  private last = Buffer.alloc(0);

  constructor(private readonly opts: { tailBytes?: number; maxBytes?: number } = {}) {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.opts.maxBytes !== undefined && this.bytes > this.opts.maxBytes) {
      cb(new VerificationError('restore_failed', `the backup expands to more than ${formatBytes(this.opts.maxBytes)}, the most backproof restores of this kind: a decompression bomb or a far larger database than expected`));
      return;
    }
    const keep = this.opts.tailBytes ?? 0;
    if (keep > 0) {
      this.last = chunk.length >= keep ? Buffer.from(chunk.subarray(chunk.length - keep)) : Buffer.concat([this.last, chunk]).subarray(-keep);
    }
    cb(null, chunk);
  }

  /** The last `tailBytes` bytes seen, as text. */
  tail(): string {
    return this.last.toString('utf8');
  }
}
