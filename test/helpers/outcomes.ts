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
