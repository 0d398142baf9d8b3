import { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { VerificationError } from '../orchestrator/errors.js';
import { peek } from '../orchestrator/runner/integrity.js';

/** Compression is read from the bytes (magic numbers), never from the file name. */
export type Compression = 'none' | 'gzip' | 'zstd' | 'xz' | 'bzip2';

export function detectCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  return 'none';
}

/**
 * Peeks at the stream, and when it is gzip'd decompresses it on the way (checking every
 * member's CRC and length: a truncated or damaged gzip is a `corrupt_compression` fail).
 */
export async function decompress(input: Readable): Promise<{ compression: Compression; stream: Readable }> {
  const { head, stream } = await peek(input, 8);
  const compression = detectCompression(head);
  if (compression === 'none') return { compression, stream };
  if (compression !== 'gzip') {
    throw new VerificationError('unsupported_format', `${compression}-compressed backups are not supported by this restorer yet`);
  }
  const gunzip = createGunzip({ chunkSize: 256 * 1024 });
  const out = pipeline(stream, gunzip, () => undefined);
  return { compression, stream: wrapErrors(out) };
}

function wrapErrors(stream: Readable): Readable {
  async function* relabel(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of stream) yield chunk as Buffer;
    } catch (err) {
      if (err instanceof VerificationError) throw err;
      // Only zlib's own errors (codes Z_*) say the compressed bytes are bad; anything else (a
      // storage read failing) passes through unchanged.
      const code = (err as { code?: string }).code ?? '';
      if (code.startsWith('Z_')) {
        const what = /unexpected end of file/.test((err as Error).message) ? 'truncated' : 'corrupt';
        throw new VerificationError('corrupt_compression', `gzip stream is ${what}: ${(err as Error).message}`, { cause: err });
      }
      throw err;
    }
  }
  return Readable.from(relabel(), { objectMode: false, highWaterMark: 1024 * 1024 });
}
