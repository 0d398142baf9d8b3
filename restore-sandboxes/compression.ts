import { spawn } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { VerificationError } from '../orchestrator/core/errors.js';
import { peek } from '../orchestrator/core/integrity.js';
import type { Sandbox } from './sandbox-runtime.js';

/** Compression is read from the bytes (magic numbers), never from the file name. */
export type Compression = 'none' | 'gzip' | 'zstd' | 'xz' | 'bzip2';

export function detectCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  return 'none';
}

/** Decompresses zstd, xz or bzip2 where untrusted bytes may be handled: inside the sandbox. */
export type Decompressor = (compression: Exclude<Compression, 'none' | 'gzip'>, input: Readable) => Readable;

/**
 * Peeks at the stream, and when it is compressed decompresses it on the way: gzip here (checking
 * every member's CRC and length: a truncated or damaged gzip is a `corrupt_compression` fail),
 * zstd/xz/bzip2 through `external` (the sandbox's own tools), which Node 20 cannot read.
 */
export async function decompress(input: Readable, external?: Decompressor): Promise<{ compression: Compression; stream: Readable }> {
  const { head, stream } = await peek(input, 8);
  const compression = detectCompression(head);
  if (compression === 'none') return { compression, stream };
  if (compression !== 'gzip') {
    if (external) return { compression, stream: external(compression, stream) };
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
  const out = Readable.from(relabel(), { objectMode: false, highWaterMark: 1024 * 1024 });
  // Readers see errors through their own listeners. A reader that stopped early destroys this
  // stream while zlib may still fail underneath; that late error has no one left to tell.
  out.on('error', () => undefined);
  return out;
}

/** The tools that decompress each format to stdout; the sandbox images carry all three. */
export const DECOMPRESS_ARGV: Record<Exclude<Compression, 'none' | 'gzip'>, string[]> = {
  zstd: ['zstd', '-d', '-c', '-q'],
  xz: ['xz', '-d', '-c', '-q'],
  bzip2: ['bzip2', '-d', '-c', '-q'],
};

/**
 * Runs the decompressor inside the sandbox: compressed bytes go in through exec's stdin, plain
 * bytes come back as a stream. The stream ends only once the tool has exited 0, so a truncated
 * or damaged stream is a `corrupt_compression` fail (with the tool's words), never a short but
 * clean-looking input to the restore tool.
 */
export function decompressInSandbox(
  sandbox: Pick<Sandbox, 'exec'>,
  compression: Exclude<Compression, 'none' | 'gzip'>,
  input: Readable,
  opts: { signal?: AbortSignal; user?: string } = {},
): Readable {
  const fromTool = new PassThrough({ highWaterMark: 1024 * 1024 });
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  fromTool.pipe(out, { end: false });
  // When the reader stops (the restore failed), the tool's output has nowhere to go: stop it.
  out.once('close', () => fromTool.destroy());
  sandbox.exec(DECOMPRESS_ARGV[compression], { stdin: input, stdout: fromTool, maxOutputBytes: 4096, ...opts }).then(
    (r) => {
      if (out.destroyed) return;
      if (r.exitCode === 0) {
        if (fromTool.readableEnded) out.end();
        else fromTool.once('end', () => out.end());
        return;
      }
      const words = r.stderr.trim().split('\n').slice(-2).join(' ').slice(0, 300);
      const what = /unexpected end|ends unexpectedly|premature|truncated|incomplete/i.test(words) ? 'truncated' : 'corrupt';
      out.destroy(new VerificationError('corrupt_compression', `${compression} stream is ${what}: ${words || `${compression} exited ${r.exitCode}`}`));
    },
    (err: unknown) => out.destroy(err as Error),
  );
  return out;
}

/**
 * The first bytes of a zstd/xz/bzip2 stream, decompressed by the host's tool when it has one
 * (for choosing the sandbox image before the sandbox exists); empty when it has not. Only
 * `head` goes in and at most `max` bytes come out, so a bomb cannot grow here.
 */
export async function decompressHeadOnHost(compression: Exclude<Compression, 'none' | 'gzip'>, head: Buffer, max = 64 * 1024): Promise<Buffer> {
  const [tool, ...args] = DECOMPRESS_ARGV[compression];
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const child = spawn(tool!, args, { stdio: ['pipe', 'pipe', 'ignore'] });
    const done = (): void => {
      child.kill('SIGKILL');
      resolve(Buffer.concat(chunks).subarray(0, max));
    };
    child.on('error', () => resolve(Buffer.alloc(0)));
    child.stdout.on('data', (c: Buffer) => {
      chunks.push(c);
      length += c.length;
      if (length >= max) done();
    });
    child.stdout.on('end', done);
    child.stdin.on('error', () => undefined); // the tool may stop reading a cut stream early
    child.stdin.end(head);
  });
}
