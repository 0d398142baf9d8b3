import schedule from 'node-schedule';
import type { StorageDriver } from '../../drivers/storage-driver.js';
import type { Restorer } from '../../restore-sandboxes/restorer.js';
import type { SandboxRuntime } from '../../restore-sandboxes/sandbox-runtime.js';
import { AlertEngine } from '../alerts/alert-engine.js';
import { channelsFromConfig, closeChannels, type RoutedChannel } from '../alerts/channels-from-config.js';
import { loadConfig } from '../config/load.js';
import type { PolicyConfig, ResolvedConfig } from '../core/config-types.js';
import type { RunRecord } from '../core/domain.js';
import { AlertStore } from '../evidence/alert-store.js';
import type { RunStore } from '../evidence/run-store.js';
import { formatAge } from '../core/format.js';
import type { Logger } from '../core/logger.js';
import { runWithCoverage } from '../runner/coverage-runs.js';
import { RunCancelled } from '../runner/run-policy.js';
import { describeSchedule, nextRunTimes, previousRunTime, scheduleKey } from '../scheduler/schedule.js';
import { buildStatus, type StatusReport } from '../../reports/status-report.js';
import { Liveness, processMemory, writeFileAtomic, type LivenessStatus } from './liveness.js';
import { RunQueue, type QueuedRun } from './run-queue.js';
import { mailMonthlyReports, scheduleReportMailing, type ReportMailing } from './report-mailer.js';
import { checkStorage } from './storage-check.js';
import { EvidenceUpkeep } from './evidence-upkeep.js';
import type { WebServer } from '../web/server.js';

/**
 * `backproof daemon`: verifies each policy on its schedule (node-schedule, with optional jitter),
 * within limits on concurrent runs overall and per client; catches up runs missed while it was
 * down (or, with `daemon.catchUp: false`, lets them raise `overdue`); evaluates alert conditions
 * after every run and every `daemon.checkEvery`; reloads its config on demand, keeping the old
 * one when the new one is invalid; stops in stages (drain with a deadline, then cancel).
 *
 * The daemon owns its store, channels, jobs, timers and liveness endpoint and releases them in
 * `stop()`, in reverse order of acquisition. Signals are wired by the CLI (daemon-command.ts).
 */
export interface DaemonOptions {
  configFile: string;
  config: ResolvedConfig;
  store: RunStore;
  runtime: SandboxRuntime;
  driverFor(policy: PolicyConfig): StorageDriver;
  restorerFor(policy: PolicyConfig): Restorer;
  /** Logs with the config's secrets redacted; reloads add the new file's secrets. */
  logger: Logger;
  /** Called after each run is finalized (tests, progress). */
  onRun?: (run: RunRecord) => void;
  /**
   * Where the daemon keeps the `backproof status` model up to date (after each run and check), so
   * status can be read while the daemon holds the embedded store. Default: none.
   */
  snapshotFile?: string;
  /** Runs found interrupted at start (their process died): alerted as errors once the daemon runs. */
  abortedRuns?: RunRecord[];
  /**
   * Cluster mode (`backproof scheduler`): due runs are handed to the job queue for workers
   * instead of run here; resolves with the finished run, then the coverage runs its worker ran
   * after it (undefined when there is none to wait for). The daemon's limits then hold across every worker, since only it dispatches.
   */
  dispatch?: (item: QueuedRun, signal: AbortSignal) => Promise<RunRecord[] | undefined>;
  /** Called at each check (every daemon.checkEvery), before the alert conditions (cluster: the dead-worker sweep). */
  onCheck?: (signal: AbortSignal) => Promise<void>;
}

/** What `snapshotFile` holds. */
export interface DaemonSnapshot {
  daemon: LivenessStatus;
  report: StatusReport;
}

type State = 'starting' | 'running' | 'stopping' | 'stopped';

/** How long alert deliveries still going at shutdown may take before they are cut off (and retried at the next start). */
const ALERT_DRAIN_MS = 30_000;
/** How long shutdown waits for a check under way once it is aborted. */
const CHECK_DRAIN_MS = 10_000;

export class Daemon {
  private config: ResolvedConfig;
  private logger: Logger;
  private readonly alerts: AlertStore;
  private readonly engine: AlertEngine;
  private readonly queue: RunQueue;
  private readonly liveness: Liveness;
  private channels = new Map<string, RoutedChannel>();
  private jobs: schedule.Job[] = [];
  private readonly jitterTimers = new Set<NodeJS.Timeout>();
  private checkTimer: NodeJS.Timeout | undefined;
  /** Checkpoints and witness publishing, in the background at the checks. */
  private readonly evidenceUpkeep: EvidenceUpkeep;
  private beatTimer: NodeJS.Timeout | undefined;
  private readonly pendingAlerts = new Set<Promise<void>>();
  private readonly alertController = new AbortController();
  private readonly checkController = new AbortController();
  private checking: Promise<void> | undefined;
  private state: State = 'starting';
  private stopping: Promise<void> | undefined;
  private readonly startedAt = new Date().toISOString();
  /** Port of the liveness endpoint, once started. */
  livenessPort: number | undefined;
  /** Port of the dashboard (daemon.web), once started. */
  webPort: number | undefined;
  private web: WebServer | undefined;

  constructor(private readonly opts: DaemonOptions) {
    this.config = opts.config;
    this.logger = opts.logger;
    this.alerts = new AlertStore(opts.store.executor, opts.store.schema);
    this.engine = new AlertEngine({
      alerts: this.alerts,
      runs: opts.store,
      logger: this.logger,
      checkStorage: (policy, now, signal) => checkStorage(policy, opts.driverFor, now, signal),
      busySince: (policy) => {
        const active = this.queue.runningRuns.find((a) => a.policy.name === policy) ?? this.queue.queuedRuns.find((q) => q.policy.name === policy);
        return active ? new Date(active.dueAt) : undefined;
      },
    });
    this.queue = new RunQueue(this.limits(), (item, signal) => this.execute(item, signal));
    const d = this.config.daemon;
    this.liveness = new Liveness({ ...d.liveness, staleAfterMs: 3 * this.beatEveryMs() });
    this.evidenceUpkeep = new EvidenceUpkeep(opts.store, () => this.logger);
  }

  get runningPolicies(): string[] {
    return this.queue.runningRuns.map((r) => r.policy.name);
  }

  get peak(): RunQueue['peak'] {
    return this.queue.peak;
  }

  /** Schedules every policy, catches up missed runs, starts the checks and the liveness beat. */
  async start(): Promise<void> {
    this.livenessPort = await this.liveness.start();
    const web = this.config.daemon.web;
    if (web) {
      // The dashboard's pages, API and report views load only when it is configured.
      const { startWebServer } = await import('../web/server.js');
      this.web = await startWebServer({ config: () => this.config, runs: this.opts.store, alerts: this.alerts, logger: this.logger, host: web.host, port: web.port });
      this.webPort = this.web.port;
    }
    this.configureAlerts(this.config);
    for (const run of this.opts.abortedRuns ?? []) {
      const policy = this.config.policies.find((p) => p.name === run.policy);
      if (policy) this.track(this.engine.afterRun(policy, run, this.alertController.signal));
    }
    this.scheduleAll();
    await this.catchUp();
    if (this.state !== 'starting') return; // stopped while starting
    this.state = 'running';
    this.beatTimer = setInterval(() => void this.beat(), this.beatEveryMs());
    this.checkTimer = setInterval(() => this.startCheck(), this.config.daemon.checkEveryMs);
    await this.beat();
    const scheduled = this.config.policies.filter((p) => p.schedule).length;
    this.logger.info(
      `daemon started (pid ${process.pid}): ${scheduled} of ${this.config.policies.length} policies scheduled, ${this.channels.size} alert channel(s), at most ${this.config.daemon.concurrency} run(s) at once, ${this.config.daemon.perClient} per client${this.livenessPort !== undefined ? `, liveness on http://${this.config.daemon.liveness.host}:${this.livenessPort}/healthz` : ''}${this.webPort !== undefined ? `, dashboard on http://${this.config.daemon.web!.host}:${this.webPort}/` : ''}`,
    );
    this.startCheck();
  }

  /**
   * Reads the config file again. An invalid file changes nothing (the reason is logged and the
   * result is false); a valid one replaces schedules, limits, channels and routing. Runs already
   * going finish under the config they started with. The evidence store and liveness settings
   * need a restart.
   */
  async reload(): Promise<boolean> {
    if (this.state !== 'running') return false;
    let next: ResolvedConfig;
    try {
      next = await loadConfig(this.opts.configFile);
    } catch (err) {
      this.logger.error(`config reload failed; still running on the previous config: ${(err as Error).message}`);
      return false;
    }
    if (this.state !== 'running') return false;
    this.logger = this.logger.withSecrets(next.secrets);
    const old = this.config;
    if (next.database.url !== old.database.url || next.database.schema !== old.database.schema) {
      this.logger.warn('config reload: the evidence store settings changed; they take effect at the next start');
    }
    for (const key of ['liveness', 'web'] as const) {
      if (JSON.stringify(next.daemon[key]) !== JSON.stringify(old.daemon[key])) {
        this.logger.warn(`config reload: daemon.${key} changed; it takes effect at the next start`);
      }
    }
    const { web: oldWeb, liveness: oldLiveness } = old.daemon;
    this.config = { ...next, database: old.database, daemon: { ...next.daemon, liveness: oldLiveness, ...(oldWeb ? { web: oldWeb } : {}) } };
    if (!oldWeb) delete this.config.daemon.web;
    const oldChannels = this.channels;
    this.configureAlerts(this.config);
    void Promise.allSettled([...this.pendingAlerts]).then(() => closeChannels(oldChannels));
    this.unscheduleAll();
    this.scheduleAll();
    this.queue.setLimits(this.limits());
    if (this.checkTimer) clearInterval(this.checkTimer);
    this.checkTimer = setInterval(() => this.startCheck(), this.config.daemon.checkEveryMs);
    await this.touchPolicies();
    this.logger.info(`config reloaded from ${this.opts.configFile}: ${this.config.policies.length} policies, ${this.channels.size} alert channel(s)`);
    await this.beat();
    return true;
  }

  /**
   * Stage one of shutdown: no new runs; running ones get `graceMs` (default daemon.shutdownGrace)
   * to finish, then they are cancelled (recorded `cancelled`, sandboxes removed). Resolves when
   * everything is released. Safe to call twice.
   */
  stop(graceMs: number = this.config.daemon.shutdownGraceMs): Promise<void> {
    this.stopping ??= this.stopNow(graceMs);
    return this.stopping;
  }

  /** Stage two: cancel running runs now (their sandboxes are still removed and the runs recorded). */
  cancelRuns(why: string): void {
    this.queue.cancelAll(new RunCancelled(why));
    this.alertController.abort(new RunCancelled(why));
  }

  private async stopNow(graceMs: number): Promise<void> {
    this.state = 'stopping';
    this.unscheduleAll();
    if (this.checkTimer) clearInterval(this.checkTimer);
    this.checkController.abort(new RunCancelled('shutting down'));
    // A check under way still reads the store: it ends (aborted) before the store may close. One
    // stuck in a listing that ignores the abort (a hung mount) is not waited for past the bound;
    // whatever it meets later is caught in startCheck.
    if (this.checking) {
      let bound: NodeJS.Timeout | undefined;
      const ended = await Promise.race([this.checking.then(() => true), new Promise<false>((resolve) => (bound = setTimeout(() => resolve(false), CHECK_DRAIN_MS)))]);
      clearTimeout(bound);
      if (!ended) this.logger.warn(`shutdown: the check under way did not end within ${formatAge(CHECK_DRAIN_MS)}; stopping without it`);
    }
    const dropped = this.queue.close();
    if (dropped.length > 0) this.logger.info(`shutdown: ${dropped.length} queued run(s) not started: ${dropped.map((d) => d.policy.name).join(', ')}`);
    await this.beat();
    const running = this.queue.runningRuns;
    if (running.length > 0) {
      this.logger.info(`shutdown: waiting up to ${formatAge(graceMs)} for ${running.length} running run(s): ${running.map((r) => r.policy.name).join(', ')} (signal again to cancel them now)`);
      if (!(await this.queue.idle(graceMs))) {
        this.logger.warn('shutdown: deadline passed; cancelling the running runs');
        this.cancelRuns('shutdown deadline passed');
        await this.queue.idle();
      }
    }
    const cutoff = setTimeout(() => this.alertController.abort(new RunCancelled('shutting down')), ALERT_DRAIN_MS);
    await Promise.allSettled([...this.pendingAlerts]);
    clearTimeout(cutoff);
    await this.snapshot();
    if (this.beatTimer) clearInterval(this.beatTimer);
    await closeChannels(this.channels);
    await this.web?.close();
    await this.liveness.stop();
    this.state = 'stopped';
    this.logger.info('daemon stopped');
  }

  // ---- scheduling -----------------------------------------------------------------------------

  private limits(): { concurrency: number; perClient: number } {
    return { concurrency: this.config.daemon.concurrency, perClient: this.config.daemon.perClient };
  }

  private beatEveryMs(): number {
    return Math.max(250, Math.min(this.config.daemon.checkEveryMs, 10_000));
  }

  private configureAlerts(config: ResolvedConfig): void {
    this.channels = channelsFromConfig(config.alerts, config.secrets, this.logger);
    this.engine.configure(config, this.channels, this.logger);
  }

  private scheduleAll(): void {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    // One node-schedule job per distinct (cron, time zone), firing every policy that shares it:
    // each job costs ~0.7 ms of cron arithmetic to schedule and again after every firing, and
    // 10,000 policies use a few hundred schedules at most.
    const groups = new Map<string, PolicyConfig[]>();
    for (const policy of this.config.policies) {
      const s = policy.schedule;
      if (!s) continue;
      const key = scheduleKey(s);
      const group = groups.get(key);
      if (group) group.push(policy);
      else groups.set(key, [policy]);
    }
    for (const group of groups.values()) {
      const s = group[0]!.schedule!;
      const job = schedule.scheduleJob({ rule: s.cron, tz: s.timezone }, (fireDate: Date) => {
        for (const policy of group) this.due(policy, fireDate);
      });
      // node-schedule answers null (not an exception) to a rule it cannot use; the schema checks rules, so this is a bug guard.
      if (!job) {
        this.logger.error(`cannot schedule ${group.map((p) => p.name).join(', ')}: node-schedule refused ${JSON.stringify(s.cron)} in ${s.timezone}`);
        continue;
      }
      this.jobs.push(job);
    }
    // Monthly client reports (report-mailer.ts): one job, cancelled and rescheduled with the policies'.
    const reports = scheduleReportMailing(this.config, this.logger, (month) => this.track(this.mailReports(month).then(() => undefined)));
    if (reports) this.jobs.push(reports);
  }

  /** Builds and mails every client's report of `month` (YYYY-MM) now; what the report schedule runs. */
  mailReports(month: string): Promise<ReportMailing[]> {
    return mailMonthlyReports({ config: this.config, runs: this.opts.store, alerts: this.alerts, channels: this.channels, logger: this.logger, signal: this.alertController.signal }, month).catch((err: unknown) => {
      this.logger.error(`monthly reports for ${month} failed: ${(err as Error).message}`);
      return [];
    });
  }

  private unscheduleAll(): void {
    for (const job of this.jobs) job.cancel();
    this.jobs = [];
    for (const t of this.jitterTimers) clearTimeout(t);
    this.jitterTimers.clear();
  }

  private due(policy: PolicyConfig, fireDate: Date): void {
    const jitter = policy.schedule?.jitterMs ?? 0;
    const enqueue = (): void => {
      const dueAt = (fireDate instanceof Date ? fireDate : new Date()).toISOString();
      if (!this.queue.enqueue({ policy, trigger: 'schedule', dueAt, slot: dueAt })) {
        this.logger.info(`${policy.name} is due but its previous run is still queued or running; skipped`, { policy: policy.name });
      }
    };
    if (jitter <= 0) return enqueue();
    const timer = setTimeout(() => {
      this.jitterTimers.delete(timer);
      enqueue();
    }, Math.floor(Math.random() * jitter));
    this.jitterTimers.add(timer);
  }

  private async touchPolicies(): Promise<void> {
    await this.alerts.touchPolicies(this.scheduledPolicies(), new Date().toISOString());
  }

  private scheduledPolicies(): Array<{ policy: string; client: string }> {
    return this.config.policies.filter((p) => p.schedule).map((p) => ({ policy: p.name, client: p.client }));
  }

  /** Policies whose last scheduled time passed without a run since they were first scheduled. */
  private async catchUp(): Promise<void> {
    const now = new Date();
    const states = await this.alerts.touchPolicies(this.scheduledPolicies(), now.toISOString());
    const latest = await this.opts.store.latestSummaryPerPolicy();
    for (const policy of this.config.policies) {
      const s = policy.schedule;
      const state = states.get(policy.name);
      if (!s || !state) continue;
      const due = previousRunTime(s, now, new Date(state.firstSeenAt));
      if (!due) continue;
      const last = latest.get(policy.name);
      if (last && Date.parse(last.startedAt) >= due.getTime()) continue;
      const missed = `${policy.name} missed its run of ${due.toISOString()} (${describeSchedule(s)}) while the daemon was down`;
      if (this.config.daemon.catchUp) {
        this.logger.info(`${missed}: catching up now`, { policy: policy.name });
        this.queue.enqueue({ policy, trigger: 'catch-up', dueAt: now.toISOString(), slot: due.toISOString() });
      } else {
        this.logger.warn(`${missed}; catch-up is off (daemon.catchUp: false): it is overdue after its grace of ${formatAge(s.graceMs)}`, { policy: policy.name });
      }
    }
  }

  private async execute(item: QueuedRun, signal: AbortSignal): Promise<void> {
    const policy = item.policy;
    this.logger.info(`verifying ${policy.name} (${item.trigger}, due ${item.dueAt})`, { policy: policy.name });
    const ended = (run: RunRecord): void => {
      this.logger.info(
        `${policy.name}${run.coverage?.point ? ` (coverage of ${run.coverage.point.key})` : ''}: ${run.status === 'cancelled' ? 'cancelled' : run.verdict}${run.reasons.length ? `: ${run.reasons.map((r) => r.code).join(', ')}` : ''} (run ${run.id})`,
        { policy: policy.name, runId: run.id },
      );
      this.track(this.engine.afterRun(policy, run, this.alertController.signal).then(() => this.snapshot()));
      this.opts.onRun?.(run);
      void this.beat();
    };
    try {
      if (this.opts.dispatch) {
        for (const run of (await this.opts.dispatch(item, signal)) ?? []) ended(run);
      } else {
        const deps = { store: this.opts.store, runtime: this.opts.runtime, driverFor: this.opts.driverFor, restorerFor: this.opts.restorerFor, logger: this.logger };
        await runWithCoverage(policy, deps, { signal, onRun: ended });
      }
    } catch (err) {
      // runPolicy records every run it starts; this is the store itself failing before or after.
      this.logger.error(`run of ${policy.name} could not be recorded: ${(err as Error).message}`, { policy: policy.name });
    }
  }

  /**
   * Cluster mode: for each scheduled policy, why no live worker may run it (absent: one may);
   * raises and resolves the `no_worker` alerts.
   */
  async placement(problems: ReadonlyMap<string, string>): Promise<void> {
    if (this.state !== 'running') return;
    for (const policy of this.config.policies) {
      if (!policy.schedule) continue;
      await this.engine.checkPlacement(policy, problems.get(policy.name), this.checkController.signal).catch((err: unknown) => this.logger.error(`placement alert of ${policy.name} failed: ${(err as Error).message}`));
    }
  }

  /** Alert work that shutdown waits for (up to ALERT_DRAIN_MS). */
  private track(work: Promise<void>): void {
    const tracked = work
      .catch((err: unknown) => this.logger.error(`alert work failed: ${(err as Error).message}`))
      .finally(() => this.pendingAlerts.delete(tracked));
    this.pendingAlerts.add(tracked);
  }

  /**
   * Starts a check unless one is under way. A failed check is logged, never a crash: an
   * unhandled rejection would end the process with exit 1 (a check that met the store closing
   * at shutdown did, before stop waited for it).
   */
  private startCheck(): void {
    if (this.checking || this.state !== 'running') return;
    this.checking = this.check()
      .catch((err: unknown) => {
        if (!this.checkController.signal.aborted) this.logger.error(`check failed: ${(err as Error).message}`);
      })
      .finally(() => {
        this.checking = undefined;
      });
  }

  private async check(): Promise<void> {
    if (this.state !== 'running') return;
    await this.opts.onCheck?.(this.checkController.signal).catch((err: unknown) => this.logger.error(`check failed: ${(err as Error).message}`));
    await this.engine.check(this.checkController.signal);
    // The embedded store's VACUUM (RunStore.maintain): after the check, when runs finished since.
    await this.opts.store.maintain().catch((err: unknown) => this.logger.warn(`evidence store maintenance failed: ${(err as Error).message}`));
    const upkeep = this.evidenceUpkeep.due(this.config.evidence, this.checkController.signal);
    if (upkeep) this.track(upkeep);
    await this.beat();
    await this.snapshot();
  }

  /** Rewrites the status snapshot; a failure is logged, never fatal. */
  private async snapshot(): Promise<void> {
    const file = this.opts.snapshotFile;
    if (!file || this.state === 'stopped') return;
    try {
      const report = await buildStatus(this.config, this.opts.store, this.alerts);
      const snap: DaemonSnapshot = { daemon: this.status(), report };
      await writeFileAtomic(file, JSON.stringify(snap, null, 2) + '\n');
    } catch (err) {
      this.logger.warn(`status snapshot not written: ${(err as Error).message}`);
    }
  }

  /** The liveness beat: the file and what /healthz answers. */
  status(): LivenessStatus {
    const now = new Date();
    // Policies share a few schedules: each one's next time is found and formatted once per beat
    // (10,000 policies: ~60 schedules, not 10,000 dates).
    const nextAt = new Map<string, string>();
    const nextRunOf = (s: NonNullable<PolicyConfig['schedule']>): string => {
      const key = scheduleKey(s);
      let at = nextAt.get(key);
      if (at === undefined) {
        at = nextRunTimes(s, now, 1)[0]?.toISOString() ?? '';
        nextAt.set(key, at);
      }
      return at;
    };
    return {
      status: this.state === 'running' ? 'ok' : this.state === 'starting' ? 'starting' : 'stopping',
      pid: process.pid,
      startedAt: this.startedAt,
      beatAt: now.toISOString(),
      config: this.opts.configFile,
      running: this.queue.runningRuns.map((r) => ({ policy: r.policy.name, startedAt: r.startedAt })),
      queued: this.queue.queuedRuns.length,
      nextRuns: this.config.policies
        .filter((p) => p.schedule)
        .map((p) => ({ policy: p.name, at: nextRunOf(p.schedule!) }))
        .filter((n) => n.at !== ''),
      memory: processMemory(this.opts.store.executor),
    };
  }

  private async beat(): Promise<void> {
    if (this.state === 'stopped') return;
    await this.liveness.beat(this.status());
  }
}
