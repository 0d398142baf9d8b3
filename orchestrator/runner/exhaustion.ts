import { FAIL_CODES } from '../core/domain.js';
import { VerificationError } from '../core/errors.js';
import type { RunState } from './run-state.js';
import { timeoutSignal } from '../core/timeout-signal.js';

/** How long the sandbox is given to say whether it ran out (two or three short execs). */
const ASK_TIMEOUT_MS = 15_000;

/**
 * A step in the sandbox failed (restore, readiness, probes). When the sandbox ran out of memory
 * or disk, that is what the run says: `error` `sandbox_failed` naming the limit and the fix, then
 * what the step said, because a tool stopped by the sandbox's limits says nothing about the
 * backup. Otherwise the step's failure stands, as do deadlines, cancels, a lost engine or storage.
 */
export async function unlessExhausted(s: RunState, err: unknown): Promise<unknown> {
  if (s.signal.aborted || !worthAsking(err)) return err;
  const why = await askExhaustion(s);
  if (!why) return err;
  return new VerificationError('sandbox_failed', `${why} (${(err as Error)?.message ?? String(err)})`, { cause: err });
}

/** The sandbox's own account of running out of memory or disk (sandbox-exhaustion.ts), if any. */
export async function askExhaustion(s: RunState): Promise<string | undefined> {
  const sandbox = s.sandbox;
  if (!sandbox?.exhaustion) return undefined;
  return sandbox.exhaustion(AbortSignal.any([s.signal, timeoutSignal(ASK_TIMEOUT_MS)])).catch(() => undefined);
}

function worthAsking(err: unknown): boolean {
  if (!(err instanceof VerificationError)) return true;
  return (FAIL_CODES as readonly string[]).includes(err.reason) || err.reason === 'sandbox_failed';
}
