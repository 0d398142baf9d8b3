import type { PolicyConfig } from '../core/config-types.js';
import type { RunRecord } from '../core/domain.js';
import { runPolicy, type RunDeps, type RunOptions } from './run-policy.js';

/**
 * A policy's run with its retention coverage: the newest backup first, then each older restore
 * point its plan chose (coverage-plan.ts), one coverage run each, in the plan's order. Each run is
 * recorded on its own; `onRun` hears of each as it ends. No coverage runs follow a run that could
 * not verify (`error`: the engine or the storage is likely down too) or was cancelled; a run whose
 * newest backup is bad (`fail`) is followed by them: older points matter most then.
 */
export async function runWithCoverage(
  policy: PolicyConfig,
  deps: RunDeps,
  opts: Omit<RunOptions, 'point'> & { coverage?: boolean; onRun?: (run: RunRecord) => void } = {},
): Promise<RunRecord[]> {
  const { coverage = true, onRun, ...runOpts } = opts;
  const newest = await runPolicy(policy, deps, runOpts);
  onRun?.(newest);
  const runs = [newest];
  const plan = newest.coverage?.plan;
  if (!coverage || !plan || newest.status !== 'finished' || newest.verdict === 'error') return runs;
  for (const planned of plan.planned) {
    if (opts.signal?.aborted) break;
    const run = await runPolicy(policy, deps, { ...(opts.signal ? { signal: opts.signal } : {}), point: { key: planned.key, why: planned.why, everyMs: plan.everyMs, planRunId: newest.id } });
    onRun?.(run);
    runs.push(run);
  }
  return runs;
}
