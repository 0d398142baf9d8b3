import type { ResolvedConfig } from '../core/config-types.js';
import { quoteSchema } from '../evidence/migrate.js';
import type { RunStore } from '../evidence/run-store.js';
import type { Logger } from '../core/logger.js';
import type { SandboxRuntime } from '../../restore-sandboxes/sandbox-runtime.js';
import { configHash } from './cluster-worker.js';
import { enqueueAttempt, MAX_ATTEMPTS } from './dispatcher.js';
import type { JobQueue } from './job-queue.js';
import { satisfies } from './slots.js';
import type { WorkerRegistry } from './worker-registry.js';

/**
 * What the active scheduler does about dead workers, at every check:
 * 1. a run still `running` whose worker has not beaten for `staleWorkerS` is marked `aborted`
 *    (with the worker, host and phase of silence in the reason) and its sandbox removed if this
 *    node drives the same engine (else that worker's own reaper removes it when it comes back);
 * 2. a slot whose last attempt ended `aborted` gets one more attempt (MAX_ATTEMPTS);
 * 3. policies no live worker may run (no worker with their labels, or all dead) are reported,
 *    and so are live workers whose config differs from the scheduler's.
 */
export interface SweepOptions {
  config: () => ResolvedConfig;
  store: RunStore;
  queue: JobQueue;
  registry: WorkerRegistry;
  runtime: SandboxRuntime;
  logger: Logger;
  staleWorkerS: number;
}

export interface SweepResult {
  aborted: string[];
  retried: string[];
  /** Policies (with a schedule) that no live worker can take, and why. */
  unplaceable: Map<string, string>;
  /** Live workers whose config is not the scheduler's (`id on host`). */
  configDiffers: string[];
}

export async function sweep(opts: SweepOptions): Promise<SweepResult> {
  const result: SweepResult = { aborted: [], retried: [], unplaceable: new Map(), configDiffers: [] };
  for (const orphan of await opts.registry.orphanRuns(opts.staleWorkerS)) {
    const record = await opts.store.abortRun(
      orphan.runId,
      `worker ${orphan.workerId.slice(0, 8)} (pid ${orphan.pid} on ${orphan.host}) stopped sending heartbeats for over ${opts.staleWorkerS} s during this run; its sandbox is removed${orphan.attempt !== undefined && orphan.attempt < MAX_ATTEMPTS ? ' and the slot is run once more' : ''}`,
    );
    if (!record) continue;
    result.aborted.push(orphan.runId);
    opts.logger.warn(`run ${orphan.runId} of ${orphan.policy}: worker ${orphan.workerId.slice(0, 8)} on ${orphan.host} is silent; recorded as aborted`, { policy: orphan.policy, runId: orphan.runId });
    if (orphan.docker === opts.runtime.endpoint) {
      await opts.runtime
        .reap(async (owner) => owner.runId !== orphan.runId)
        .catch((err: unknown) => opts.logger.warn(`could not remove the sandbox of run ${orphan.runId}: ${(err as Error).message}`));
    }
  }

  const s = quoteSchema(opts.store.schema);
  const { rows } = await opts.store.executor.query<{ policy: string; slot: string; attempt: number }>(
    `SELECT s.policy, s.slot, s.attempt FROM ${s}.run_slots s JOIN ${s}.runs r ON r.id = s.run_id
      WHERE r.status = 'aborted' AND s.attempt < $1::int AND s.enqueued_at > now() - interval '2 days'
        AND NOT EXISTS (SELECT 1 FROM ${s}.run_slots n WHERE n.policy = s.policy AND n.slot = s.slot AND n.attempt > s.attempt)`,
    [MAX_ATTEMPTS],
  );
  const config = opts.config();
  for (const row of rows) {
    const policy = config.policies.find((p) => p.name === row.policy);
    if (!policy) continue;
    const slot = new Date(row.slot);
    result.retried.push(await enqueueAttempt(opts, policy, slot, Number(row.attempt) + 1));
  }

  const live = (await opts.registry.list(opts.staleWorkerS)).filter((w) => w.alive);
  const mine = configHash(config);
  result.configDiffers = live.filter((w) => w.configHash !== mine).map((w) => `${w.id.slice(0, 8)} on ${w.host}`);
  for (const policy of config.policies) {
    if (!policy.schedule) continue;
    if (live.some((w) => satisfies(w.labels, policy.requires))) continue;
    const wanted = Object.entries(policy.requires).map(([k, v]) => `${k}=${v}`).join(', ');
    const seen = live.map((w) => Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(',') || 'no labels');
    result.unplaceable.set(
      policy.name,
      live.length === 0 ? 'no worker is alive: every worker stopped or stopped beating' : `no live worker carries ${wanted} (the ${live.length} live worker(s) have: ${[...new Set(seen)].join('; ')})`,
    );
  }
  return result;
}
