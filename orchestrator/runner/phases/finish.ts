import type { SandboxRuntime } from '../../../restore-sandboxes/sandbox-runtime.js';
import { DEFAULTS } from '../../core/defaults.js';
import { verdictOf, type Reason } from '../../core/domain.js';
import { VerificationError } from '../../core/errors.js';
import { formatAge } from '../../core/format.js';
import { cleanRecord } from '../record-hygiene.js';
import type { RunState } from '../run-state.js';
import { storageMetrics } from '../storage-cost.js';
import { checkIntegrity } from './fetch-restore.js';
import { timeoutSignal } from '../../core/timeout-signal.js';

/**
 * Why a phase threw, as the run's reason: a deadline or a cancel, the backup's fault (`fail`),
 * the engine gone away, or ours (`error`). Checksums are still checked against what was read.
 */
export async function recordFailure(s: RunState, err: unknown): Promise<void> {
  let reason = reasonFor(err, s.signal, s.timeout, s.policy.sandbox.timeoutMs);
  if (reason.code === 'internal' || reason.code === 'sandbox_failed') {
    // An engine that went away mid-run shows up as a broken stream or a failed API call.
    if (await engineWentAway(s.deps.runtime)) {
      reason = {
        code: 'docker_unreachable',
        message: `the Docker engine at ${s.deps.runtime.endpoint} stopped answering during the run (${(err as Error)?.message ?? err}); start it and run again`,
      };
    }
  }
  s.reasons.push(reason);
  if (s.digests) checkIntegrity(s.run, s.digests, s.reasons);
}

/**
 * teardown and the record's end, on every path: the log tail of a run that did not pass, the
 * sandbox removed, the driver closed, the verdict from the reasons, secrets scrubbed, finalized.
 */
export async function finishRun(s: RunState): Promise<void> {
  const { run, reasons, restorer, deps } = s;
  s.backupStream?.stream.destroy(); // a no-op once the restore read it to the end
  await s.clock
    .phase('teardown', async () => {
      const sandbox = s.sandbox;
      if (!sandbox) return;
      if (reasons.length > 0 && s.ctx && run.sandbox) {
        // Given up at the deadline even when the restorer ignores the signal: a hung engine must not hold the run.
        const tailSignal = timeoutSignal(DEFAULTS.logTailTimeoutMs);
        const givenUp = new Promise<string>((resolve) => tailSignal.addEventListener('abort', () => resolve(''), { once: true }));
        run.sandbox.logTail = await Promise.race([restorer.logTail({ ...s.ctx, signal: tailSignal }).catch(() => ''), givenUp]);
      }
      await sandbox.remove();
    })
    .catch((err: unknown) => {
      reasons.push({ code: 'sandbox_failed', message: `could not remove the sandbox: ${(err as Error).message}; the reaper removes it at the next start` });
    });
  // What the run asked of a store that bills for it, and what that cost (the source's prices).
  const usage = s.driver.usage?.();
  if (usage) run.metrics.storage = storageMetrics(usage, run.backup?.provider?.storageClass, s.policy.source.driver === 's3' ? s.policy.source.prices : undefined);
  await s.driver.close().catch(() => undefined);
  // What the restorer kept beyond the summary (kind vm: the boot record and its screenshot).
  const kept = restorer.evidence?.();
  if (kept?.boot) run.boot = kept.boot;
  s.clock.skipRemaining();
  const ended = s.now();
  run.reasons = dedupe(reasons);
  run.verdict = verdictOf(run.reasons);
  run.status = run.reasons.some((r) => r.code === 'cancelled') ? 'cancelled' : 'finished';
  run.finishedAt = ended.toISOString();
  // The plan counted the points proven before this run; a pass proves the newest one too.
  const plan = run.coverage?.plan;
  if (plan && run.verdict === 'pass' && s.newestProven === false) plan.proven++;
  run.durationMs = ended.getTime() - s.started.getTime();
  // A store may echo a request's headers in its errors and a restore tool may quote what it
  // read: no secret of the policy or the config enters the record, wherever it appears.
  cleanRecord(run, s.policy, (text) => deps.logger.redact(text));
  await s.gate('record');
  await s.progress.settle();
  await deps.store.finalize(run, [...(kept?.artifacts ?? []), ...s.kept]);
  s.log.info(`run ${run.status}: ${run.verdict}${run.reasons[0] ? ` (${run.reasons[0].code})` : ''}`);
}

/**
 * Whether the engine stopped answering. One that is shutting down kills the containers first and
 * still answers for a moment, so it is asked a few times over ENGINE_GONE_WINDOW_MS before it
 * counts as up (a run that failed for its own reasons pays that wait once).
 */
async function engineWentAway(runtime: SandboxRuntime): Promise<boolean> {
  const deadline = Date.now() + ENGINE_GONE_WINDOW_MS;
  for (;;) {
    const down = await runtime.ping(timeoutSignal(5_000)).then(
      () => false,
      () => true,
    );
    if (down) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

const ENGINE_GONE_WINDOW_MS = 3_000;

function reasonFor(err: unknown, signal: AbortSignal, timeout: AbortSignal, timeoutMs: number): Reason {
  if (signal.aborted) {
    if (timeout.aborted) return { code: 'timeout', message: `the run exceeded its hard timeout of ${formatAge(timeoutMs)} (sandbox.timeout)` };
    return { code: 'cancelled', message: `cancelled: ${signal.reason instanceof Error ? signal.reason.message : 'stopped by a signal'}` };
  }
  if (err instanceof VerificationError) return { code: err.reason, message: err.message };
  const e = err as Error;
  return { code: 'internal', message: `backproof failed: ${e?.message ?? String(err)}` };
}

function dedupe(reasons: Reason[]): Reason[] {
  const seen = new Set<string>();
  return reasons.filter((r) => {
    const key = `${r.code}:${r.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
