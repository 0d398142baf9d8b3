import type PgBoss from 'pg-boss';
import { BackproofError } from '../core/errors.js';
import type { RunJob } from './slots.js';

/**
 * The cluster's job queue: pg-boss (10.x, the last major that runs on Node 20) in the evidence
 * PostgreSQL, in a schema of its own (`<store schema>_queue`). pg-boss gives what we need and do
 * not write ourselves: a claim is exactly-once (SELECT ... FOR UPDATE SKIP LOCKED), a job whose
 * worker died expires after `expireInSeconds` and is retried, job ids are unique (a second send
 * of one id is a no-op), and it keeps its own schema migrated.
 *
 * The queue owns its pool and closes it in `stop()`.
 */
export interface JobQueueOptions {
  url: string;
  /** The evidence store's schema; the queue lives in `<schema>_queue`. */
  schema: string;
  /** How often an idle `fetch` loop polls; pg-boss's own maintenance runs on its schedule. */
  pollIntervalMs?: number;
}

export class JobQueue {
  private readonly created = new Set<string>();

  private constructor(private readonly boss: PgBoss) {}

  static async open(opts: JobQueueOptions): Promise<JobQueue> {
    // Loaded when a cluster command needs it, not at every command's start.
    const { default: PgBossClass } = await import('pg-boss');
    const boss = new PgBossClass({
      connectionString: opts.url,
      schema: `${opts.schema}_queue`,
      application_name: 'backproof-queue',
      max: 4,
      // The scheduler is ours (leader lock, slots); pg-boss's cron is not used.
      schedule: false,
      supervise: true,
      migrate: true,
    });
    // An idle pool client losing its server must not crash the process; the next call reports it.
    boss.on('error', () => undefined);
    try {
      await boss.start();
    } catch (err) {
      await boss.stop({ graceful: false, wait: false }).catch(() => undefined);
      throw new BackproofError('queue_unavailable', `the job queue in ${opts.schema}_queue could not start: ${(err as Error).message}`, { cause: err });
    }
    return new JobQueue(boss);
  }

  private async ensure(queue: string): Promise<void> {
    if (this.created.has(queue)) return;
    if (!(await this.boss.getQueue(queue))) await this.boss.createQueue(queue, { name: queue, policy: 'standard' });
    this.created.add(queue);
  }

  /**
   * Enqueues one run; the job's id is the run's id, so a second send is refused by the queue.
   * `expireInSeconds`: after this long active without completion the job's worker is presumed
   * dead and pg-boss offers the job once more.
   */
  async send(queue: string, job: RunJob, expireInSeconds: number): Promise<boolean> {
    await this.ensure(queue);
    const id = await this.boss.send(queue, job as unknown as object, { id: job.runId, retryLimit: 1, retryDelay: 5, expireInSeconds });
    return id !== null;
  }

  /** Claims at most one job of `queue` (exactly once across all workers), or none. */
  async claim(queue: string): Promise<{ id: string; data: RunJob } | undefined> {
    await this.ensure(queue);
    const [job] = await this.boss.fetch<RunJob>(queue, { batchSize: 1 });
    return job ? { id: job.id, data: job.data } : undefined;
  }

  async complete(queue: string, id: string, output: object = {}): Promise<void> {
    await this.boss.complete(queue, id, output);
  }

  async fail(queue: string, id: string, output: object = {}): Promise<void> {
    await this.boss.fail(queue, id, output);
  }

  /** A job's state, archived jobs included; undefined when unknown. */
  async jobState(queue: string, id: string): Promise<string | undefined> {
    const job = await this.boss.getJobById(queue, id, { includeArchive: true });
    return job?.state;
  }

  /** Jobs waiting in `queue` (created or retry). */
  async waiting(queue: string): Promise<number> {
    await this.ensure(queue);
    return this.boss.getQueueSize(queue);
  }

  async stop(): Promise<void> {
    await this.boss.stop({ graceful: false, wait: true, close: true }).catch(() => undefined);
  }
}
