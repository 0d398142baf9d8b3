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

/** `length` bytes that look random but are the same on every run: sha256 in counter mode over `seed`. */
export function seededBytes(length: number, seed: string): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 0; blocks.length * 32 < length; i++) blocks.push(createHash('sha256').update(`${seed}:${i}`).digest());
  return Buffer.concat(blocks).subarray(0, length);
}
