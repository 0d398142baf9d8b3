import { Daemon } from '../daemon/daemon.js';
import type { ClusterNodeDeps } from './cluster-node.js';
import { Dispatcher } from './dispatcher.js';
import { SessionLock } from './session-lock.js';
import { sweep } from './sweep.js';

/**
 * `backproof scheduler`: safe to start on every node; exactly one is active. Each one tries a
 * PostgreSQL advisory lock every `takeoverMs`; the holder runs the daemon (schedules, catch-up,
 * alert checks, monthly reports, dashboard if configured) with its runs dispatched to the job
 * queue instead of run locally, and sweeps dead workers at each check. The lock lives on its
 * own connection: when the active scheduler dies, PostgreSQL drops the connection and the lock
 * with it, and a standby takes over at its next try. If the lock's connection is lost, the
 * active scheduler steps down at once (its daemon stops; queued jobs stay for the next one).
 */
export interface ClusterSchedulerOptions extends ClusterNodeDeps {
  url: string;
  configFile: string;
  takeoverMs?: number;
  staleWorkerS?: number;
  snapshotFile?: string;
}

export class ClusterScheduler {
  private lock: SessionLock | undefined;
  private daemon: Daemon | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private transition: Promise<void> = Promise.resolve();
  private lastUnplaceable = '';
  private lastDiffers = '';

  constructor(private readonly opts: ClusterSchedulerOptions) {}

  get active(): boolean {
    return this.daemon !== undefined;
  }

  /** Starts trying for the lock; resolves after the first try. */
  async start(): Promise<void> {
    await this.tryLead();
    this.timer = setInterval(() => void this.tryLead(), this.opts.takeoverMs ?? 10_000);
  }

  /** Runs `step` after the transitions before it; a failed one is logged and never blocks the next. */
  private serial(what: string, step: () => Promise<void>): Promise<void> {
    this.transition = this.transition.then(step).catch((err: unknown) => this.opts.logger.error(`scheduler: ${what} failed: ${(err as Error).message}`));
    return this.transition;
  }

  private tryLead(): Promise<void> {
    return this.serial('becoming the active scheduler', async () => {
      if (this.stopped || this.lock) return;
      let lock: SessionLock | undefined;
      try {
        lock = await SessionLock.tryAcquire(this.opts.url, `scheduler:${this.opts.store.schema}`);
      } catch (err) {
        this.opts.logger.warn(`scheduler: cannot reach the database for the leader lock: ${(err as Error).message}`);
        return;
      }
      if (!lock) return;
      this.lock = lock;
      lock.onLost((err) => {
        this.opts.logger.error(`scheduler: lost the leader lock (${err.message}); stepping down`);
        void this.stepDown();
      });
      this.opts.logger.info(`scheduler (pid ${process.pid}) is now the active one`);
      const dispatcher = new Dispatcher({ store: this.opts.store, queue: this.opts.queue, registry: this.opts.registry, logger: this.opts.logger });
      const daemon = new Daemon({
        configFile: this.opts.configFile,
        config: this.opts.config,
        store: this.opts.store,
        runtime: this.opts.runtime,
        driverFor: this.opts.driverFor,
        restorerFor: this.opts.restorerFor,
        logger: this.opts.logger,
        ...(this.opts.snapshotFile ? { snapshotFile: this.opts.snapshotFile } : {}),
        ...(this.opts.onRun ? { onRun: this.opts.onRun } : {}),
        dispatch: (item, signal) => dispatcher.dispatch(item, signal),
        onCheck: () => this.sweepOnce(),
      });
      this.daemon = daemon;
      try {
        await daemon.start();
      } catch (err) {
        // Not leading half-started: release the lock for a standby (or this node's next try).
        this.daemon = undefined;
        await daemon.stop(0).catch(() => undefined);
        await lock.release();
        this.lock = undefined;
        throw err;
      }
    });
  }

  /** One sweep for dead workers (also run at every daemon check). */
  async sweepOnce(): Promise<void> {
    const result = await sweep({
      config: () => this.opts.config,
      store: this.opts.store,
      queue: this.opts.queue,
      registry: this.opts.registry,
      runtime: this.opts.runtime,
      logger: this.opts.logger,
      staleWorkerS: this.opts.staleWorkerS ?? 30,
    });
    const differs = result.configDiffers.join(', ');
    if (differs !== this.lastDiffers && differs) this.opts.logger.warn(`worker(s) ${differs} run a config that differs from this scheduler's (${this.opts.configFile}): every node must read the same config`);
    this.lastDiffers = differs;
    await this.daemon?.placement(result.unplaceable);
    const unplaceable = [...result.unplaceable.keys()].join(', ');
    if (unplaceable !== this.lastUnplaceable) {
      if (unplaceable) this.opts.logger.error(`no live worker can run ${unplaceable}: start a worker with the labels these policies require`);
      else if (this.lastUnplaceable) this.opts.logger.info('every scheduled policy has a live worker again');
      this.lastUnplaceable = unplaceable;
    }
  }

  private stepDown(): Promise<void> {
    return this.serial('stepping down', async () => {
      const daemon = this.daemon;
      this.daemon = undefined;
      try {
        if (daemon) {
          daemon.cancelRuns('the scheduler stepped down');
          await daemon.stop(0);
        }
      } finally {
        await this.lock?.release();
        this.lock = undefined;
      }
    });
  }

  /** Stops trying, steps down if active (waiting runs stay queued for the next scheduler). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.stepDown();
  }
}
