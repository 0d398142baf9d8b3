import type { PolicyConfig } from '../core/config-types.js';
import type { QueuedRun } from '../daemon/run-queue.js';
import type { RunRecord } from '../core/domain.js';
import { quoteSchema } from '../evidence/migrate.js';
import type { RunStore } from '../evidence/run-store.js';
import type { Logger } from '../core/logger.js';
import type { JobQueue } from './job-queue.js';
import { queueFor, slotRunId, type RunJob } from './slots.js';
import type { WorkerRegistry } from './worker-registry.js';

/**
 * The scheduler's side of a queued run: the daemon's due run becomes a job for the workers, and
 * the dispatcher waits for its record. A slot's first attempt has the run id
 * `slotRunId(policy, slot, 1)`; if its worker dies, the sweep (sweep.ts) marks it aborted and
 * enqueues attempt 2, and the dispatcher waits for that one instead.
 */
export interface DispatcherOptions {
  store: RunStore;
  queue: JobQueue;
  registry: WorkerRegistry;
  logger: Logger;
  /** How often the run's record is looked at while waiting. */
  pollMs?: number;
}

export class Dispatcher {
  constructor(private readonly opts: DispatcherOptions) {}

  /**
   * The slot's run, then the coverage runs its worker ran after it in the same job (retention
   * coverage): those are read once the job is over, so the scheduler alerts on them too.
   */
  async dispatch(item: QueuedRun, signal: AbortSignal): Promise<RunRecord[] | undefined> {
    const slot = new Date(item.slot ?? item.dueAt);
    await enqueueAttempt(this.opts, item.policy, slot, 1);
    const run = await this.waitForSlot(item.policy, slot, signal);
    if (!run) return undefined;
    return [run, ...(await this.coverageRunsOf(item.policy, run, signal))];
  }

  private async coverageRunsOf(policy: PolicyConfig, run: RunRecord, signal: AbortSignal): Promise<RunRecord[]> {
    if (!run.coverage?.plan?.planned.length || run.status !== 'finished' || run.verdict === 'error') return [];
    const pollMs = this.opts.pollMs ?? 1_000;
    const queue = queueFor(policy.requires);
    while (!signal.aborted) {
      const state = await this.opts.queue.jobState(queue, run.id);
      if (state !== 'active' && state !== 'created' && state !== 'retry') break;
      await sleep(pollMs, signal);
    }
    const s = quoteSchema(this.opts.store.schema);
    const { rows } = await this.opts.store.executor.query<{ id: string }>(
      `SELECT id FROM ${s}.runs WHERE policy = $1 AND coverage->'point'->>'planRunId' = $2 AND status <> 'running' ORDER BY started_at, id`,
      [policy.name, run.id],
    );
    const runs: RunRecord[] = [];
    for (const r of rows) {
      const found = await this.opts.store.get(String(r.id));
      if (found) runs.push(found);
    }
    return runs;
  }

  /** The slot's final run: finished or cancelled, or aborted on its last attempt. */
  private async waitForSlot(policy: PolicyConfig, slot: Date, signal: AbortSignal): Promise<RunRecord | undefined> {
    const pollMs = this.opts.pollMs ?? 1_000;
    const s = quoteSchema(this.opts.store.schema);
    while (!signal.aborted) {
      const { rows } = await this.opts.store.executor.query<{ run_id: string; attempt: number; queue: string }>(
        `SELECT run_id, attempt, queue FROM ${s}.run_slots WHERE policy = $1 AND slot = $2::timestamptz ORDER BY attempt DESC LIMIT 1`,
        [policy.name, slot.toISOString()],
      );
      const latest = rows[0];
      if (latest) {
        const run = await this.opts.store.get(latest.run_id);
        if (run && run.status !== 'running' && (run.status !== 'aborted' || Number(latest.attempt) >= MAX_ATTEMPTS)) return run;
        if (!run && (await this.opts.queue.jobState(latest.queue, latest.run_id)) === 'failed') {
          this.opts.logger.error(`${policy.name}: the job for ${slot.toISOString()} failed without a run record (see the worker's log: is the policy in its config?)`, { policy: policy.name });
          return undefined;
        }
      }
      await sleep(pollMs, signal);
    }
    return undefined;
  }
}

/** A slot is tried at most this often: once, and once more if its worker died. */
export const MAX_ATTEMPTS = 2;

/** Enqueues one attempt at a slot, once: the run id is the job id, and the slot row is written after the job. */
export async function enqueueAttempt(opts: Pick<DispatcherOptions, 'queue' | 'registry' | 'logger'>, policy: PolicyConfig, slot: Date, attempt: number): Promise<string> {
  const runId = slotRunId(policy.name, slot, attempt);
  const queue = queueFor(policy.requires);
  const job: RunJob = { runId, policy: policy.name, client: policy.client, slot: slot.toISOString(), attempt };
  // Active longer than the run's own hard timeout plus a margin: its worker is presumed dead.
  const expireInSeconds = Math.ceil(policy.sandbox.timeoutMs / 1000) + 300;
  const sent = await opts.queue.send(queue, job, expireInSeconds);
  await opts.registry.claimSlot(runId, policy.name, slot, attempt, queue);
  if (sent) opts.logger.info(`${policy.name}: queued ${slot.toISOString()} (attempt ${attempt}) on ${queue} as run ${runId}`, { policy: policy.name, runId });
  return runId;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
