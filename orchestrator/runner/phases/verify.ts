import { isSandboxProbe, runSandboxProbes } from '../../../restore-sandboxes/probes/sandbox-probes.js';
import type { ProbeConfig } from '../../core/config-types.js';
import type { ProbeResult } from '../../core/domain.js';
import { askExhaustion, unlessExhausted } from '../exhaustion.js';
import type { RunState } from '../run-state.js';

/** readiness: the restored system answers; the time since fetch began is the measured RTO. */
export async function awaitReadiness(s: RunState): Promise<void> {
  const { run, policy } = s;
  await s.clock.phase('readiness', async () => {
    try {
      await s.restorer.ready(s.ctx!);
    } catch (err) {
      throw await unlessExhausted(s, err);
    }
  });
  run.metrics.rtoMeasuredMs = Math.round(performance.now() - s.fetchStart!);
  if (policy.targets.rtoMs !== undefined) run.metrics.rtoMet = run.metrics.rtoMeasuredMs <= policy.targets.rtoMs;
}

/**
 * probes: the restorer's inspection of what was restored (empty databases, missing tables), its
 * own probes and the in-sandbox ones, recorded in the order the policy lists them.
 */
export async function runProbes(s: RunState): Promise<void> {
  const { run, policy, restorer, reasons } = s;
  const rctx = s.ctx!;
  await s.clock.phase('probes', async (mark) => {
    let inspection: Awaited<ReturnType<typeof restorer.inspect>>;
    let results: ProbeResult[];
    try {
      inspection = await restorer.inspect(rctx);
      run.restored = inspection.summary;
      reasons.push(...inspection.reasons);
      const own = await restorer.probe(rctx);
      const inSandbox = await runSandboxProbes(policy.probes, rctx.sandbox, s.signal);
      results = inConfigOrder(policy.probes, own, inSandbox);
    } catch (err) {
      throw await unlessExhausted(s, err);
    }
    run.probes.push(...results);
    for (const p of results.filter((r) => !r.pass)) {
      reasons.push({ code: 'probe_failed', message: `probe "${p.name}": expected ${p.expected}, got ${p.error ? `error: ${p.error}` : p.actual}` });
    }
    const failed = inspection.reasons.length + results.filter((r) => !r.pass).length;
    if (failed === 0) return;
    // Checks that failed because the sandbox ran out of memory or disk say nothing of the data.
    const why = s.signal.aborted ? undefined : await askExhaustion(s);
    if (why) {
      reasons.unshift({ code: 'sandbox_failed', message: `${why} (${failed} check(s) failed)` });
      mark('error', why);
    } else mark('fail', `${failed} check(s) failed`);
  });
}

/** The restorer's own probe results and the in-sandbox ones, back in the order the policy lists them. */
function inConfigOrder(probes: readonly ProbeConfig[], own: ProbeResult[], inSandbox: ProbeResult[]): ProbeResult[] {
  const ownQueue = [...own];
  const sandboxQueue = [...inSandbox];
  const ordered: ProbeResult[] = [];
  for (const p of probes) {
    const next = isSandboxProbe(p) ? sandboxQueue.shift() : ownQueue.shift();
    if (next) ordered.push(next);
  }
  return [...ordered, ...ownQueue, ...sandboxQueue];
}
