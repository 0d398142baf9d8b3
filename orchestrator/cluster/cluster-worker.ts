import { createHash, randomUUID } from 'node:crypto';
import type { ResolvedConfig } from '../core/config-types.js';
import { BackproofError } from '../core/errors.js';
import { runWithCoverage } from '../runner/coverage-runs.js';
import { RunCancelled } from '../runner/run-policy.js';
import type { ClusterNodeDeps } from './cluster-node.js';
import { queueFor, satisfies, type RunJob } from './slots.js';

/**
 * `backproof worker`: claims queued runs (exactly once, through the job queue) and runs them on
 * its Docker engine, at most `capacity` at once, only from the queues of policies whose
 * required labels it carries. It beats every `heartbeatMs`; a worker that stops beating is
 * presumed dead by the active scheduler, which aborts its runs and runs their slots once more.
 */
export interface ClusterWorkerOptions extends ClusterNodeDeps {
  capacity: number;
  labels: Record<string, string>;
  heartbeatMs?: number;
  pollMs?: number;
}

interface Running {
  job: RunJob;
  controller: AbortController;
  done: Promise<void>;
}

/** A worker beats this often unless told otherwise; the scheduler waits three of them before presuming it dead. */
export const DEFAULT_HEARTBEAT_MS = 5_000;

export class ClusterWorker {
  readonly id = randomUUID();
  private readonly running = new Map<string, Running>();
  private stopping = false;
  private beatTimer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly opts: ClusterWorkerOptions) {}

  /** The queues this worker takes runs from. */
  get queues(): string[] {
    return [...new Set(this.opts.config.policies.filter((p) => satisfies(this.opts.labels, p.requires)).map((p) => queueFor(p.requires)))].sort();
  }

  async start(): Promise<void> {
    const heartbeatMs = this.opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    await this.opts.registry.register({ id: this.id, labels: this.opts.labels, capacity: this.opts.capacity, heartbeatMs, docker: this.opts.runtime.endpoint, configHash: configHash(this.opts.config) });
    this.beatTimer = setInterval(() => void this.beat(), heartbeatMs);
    this.loop = this.claimLoop();
    const labels = Object.entries(this.opts.labels).map(([k, v]) => `${k}=${v}`).join(', ') || 'none';
    this.opts.logger.info(`worker ${this.id.slice(0, 8)} started (pid ${process.pid}): up to ${this.opts.capacity} run(s) at once on ${this.opts.runtime.endpoint}, labels ${labels}, queues ${this.queues.join(', ') || 'none'}`);
  }

  get runningRuns(): RunJob[] {
    return [...this.running.values()].map((r) => r.job);
  }

  /**
   * Stops claiming; running runs get `graceMs` to finish, then they are cancelled (recorded
   * `cancelled`, sandboxes removed). Safe to call twice.
   */
  async stop(graceMs = 0): Promise<void> {
    if (this.stopping) return this.loop;
    this.stopping = true;
    this.wake?.();
    await this.loop;
    const all = (): Promise<unknown> => Promise.allSettled([...this.running.values()].map((r) => r.done));
    const timer = setTimeout(() => this.cancelRuns('worker stopping: deadline passed'), graceMs);
    await all();
    clearTimeout(timer);
    if (this.beatTimer) clearInterval(this.beatTimer);
    await this.opts.registry.stopped(this.id).catch(() => undefined);
    this.opts.logger.info(`worker ${this.id.slice(0, 8)} stopped`);
  }

  cancelRuns(why: string): void {
    for (const r of this.running.values()) r.controller.abort(new RunCancelled(why));
  }

  private async beat(): Promise<void> {
    await this.opts.registry.beat(this.id, this.running.size).catch((err: unknown) => this.opts.logger.warn(`heartbeat not written: ${(err as Error).message}`));
  }

  private async claimLoop(): Promise<void> {
    const pollMs = this.opts.pollMs ?? 1_000;
    while (!this.stopping) {
      let claimed = false;
      for (const queue of this.queues) {
        if (this.stopping || this.running.size >= this.opts.capacity) break;
        try {
          const job = await this.opts.queue.claim(queue);
          if (job) {
            claimed = true;
            this.begin(queue, job.id, job.data);
          }
        } catch (err) {
          this.opts.logger.warn(`could not claim from ${queue}: ${(err as Error).message}`);
        }
      }
      if (!claimed || this.running.size >= this.opts.capacity) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, pollMs);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  }

  private begin(queue: string, jobId: string, job: RunJob): void {
    const controller = new AbortController();
    const done = this.execute(queue, jobId, job, controller.signal).finally(() => {
      this.running.delete(jobId);
      this.wake?.();
      void this.beat();
    });
    this.running.set(jobId, { job, controller, done });
    void this.beat();
  }

  private async execute(queue: string, jobId: string, job: RunJob, signal: AbortSignal): Promise<void> {
    const { logger } = this.opts;
    const policy = this.opts.config.policies.find((p) => p.name === job.policy);
    if (!policy) {
      logger.error(`job ${jobId}: no policy ${job.policy} in this worker's config ${this.opts.config.file}; every node must read the same config`);
      await this.opts.queue.fail(queue, jobId, { error: `unknown policy ${job.policy}` }).catch(() => undefined);
      return;
    }
    logger.info(`running ${policy.name} for ${job.slot} (attempt ${job.attempt}, run ${job.runId})`, { policy: policy.name, runId: job.runId });
    try {
      const deps = { store: this.opts.store, runtime: this.opts.runtime, driverFor: this.opts.driverFor, restorerFor: this.opts.restorerFor, logger };
      // The slot's run keeps the job's id (recorded once); its coverage runs follow in the same job.
      const [run, ...coverage] = await runWithCoverage(policy, deps, {
        signal,
        runId: job.runId,
        onRun: (r) =>
          logger.info(`${policy.name}${r.coverage?.point ? ` (coverage of ${r.coverage.point.key})` : ''}: ${r.status === 'cancelled' ? 'cancelled' : r.verdict}${r.reasons.length ? `: ${r.reasons.map((x) => x.code).join(', ')}` : ''} (run ${r.id})`, { policy: policy.name, runId: r.id }),
      });
      await this.opts.queue.complete(queue, jobId, { verdict: run!.verdict, status: run!.status, ...(coverage.length ? { coverageRuns: coverage.map((r) => ({ id: r.id, verdict: r.verdict })) } : {}) });
      this.opts.onRun?.(run!);
      for (const r of coverage) this.opts.onRun?.(r);
    } catch (err) {
      if (err instanceof BackproofError && err.code === 'run_exists') {
        // Another worker (or an earlier try of this job) recorded this slot's attempt: it is not run twice.
        logger.info(`run ${job.runId} of ${policy.name} is already recorded; not run again`, { policy: policy.name, runId: job.runId });
        await this.opts.queue.complete(queue, jobId, { duplicate: true }).catch(() => undefined);
        return;
      }
      logger.error(`run ${job.runId} of ${policy.name} could not be recorded: ${(err as Error).message}`, { policy: policy.name, runId: job.runId });
      await this.opts.queue.fail(queue, jobId, { error: (err as Error).message }).catch(() => undefined);
    }
  }
}

/** A digest of what every node must agree on: clients and policies as resolved. */
export function configHash(config: Pick<ResolvedConfig, 'clients' | 'policies'>): string {
  return createHash('sha256').update(JSON.stringify({ clients: config.clients, policies: config.policies })).digest('hex').slice(0, 16);
}
