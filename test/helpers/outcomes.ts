import tarStream from 'tar-stream';
import { VerificationError } from '../../orchestrator/core/errors.js';

/** Every item of an async iterable (a driver's listing), in order. */
export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const e of it) out.push(e);
  return out;
}

/** The VerificationError `p` rejects with; any other outcome fails the test. */
export async function verificationErrorOf(p: Promise<unknown>): Promise<VerificationError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof VerificationError) return err;
    throw err;
  }
  throw new Error('expected a VerificationError');
}

/** The member names of a tar stream, in order (a folder-backup driver's `open()`). */
export async function tarMemberNames(stream: NodeJS.ReadableStream): Promise<string[]> {
  const extract = tarStream.extract();
  const names: string[] = [];
  extract.on('entry', (header, body, next) => {
    names.push(header.name);
    body.on('end', next);
    body.resume();
  });
  const done = new Promise((resolve, reject) => {
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  stream.pipe(extract);
  await done;
  return names;
}
