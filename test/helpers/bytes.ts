import { createHash } from 'node:crypto';

/** Hex digest of bytes or text (UTF-8): sha256 unless another algorithm is named. */
export function digestHex(data: Uint8Array | string, algorithm = 'sha256'): string {
  return createHash(algorithm).update(data).digest('hex');
}

/** Hex sha256 of bytes or text (UTF-8). */
export function sha256(data: Uint8Array | string): string {
  return digestHex(data);
}

/** Every chunk of a stream, joined. */
export async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks);
}
