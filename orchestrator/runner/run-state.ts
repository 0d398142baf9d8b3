import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Readable } from 'node:stream';
import type { Candidate } from '../../drivers/selection.js';
import type { BackupDetails, StorageDriver } from '../../drivers/storage-driver.js';
import type { Restorer, RestoreContext } from '../../restore-sandboxes/restorer.js';
import type { Sandbox, SandboxRuntime } from '../../restore-sandboxes/sandbox-runtime.js';
import type { PolicyConfig } from '../core/config-types.js';
import type { CoveragePoint, PhaseName, PhaseRecord, Reason, RunArtifact, RunProgress, RunRecord } from '../core/domain.js';
import type { HashingCounter } from '../core/integrity.js';
import type { Logger } from '../core/logger.js';
import { BACKPROOF_VERSION } from '../version.js';
import { phaseGateFromEnv, type GatePoint } from './fault-gate.js';
import { PhaseClock, type ProgressSink } from './phase-clock.js';
import { cleanProgress } from './record-hygiene.js';
import { timeoutSignal } from '../core/timeout-signal.js';

/** What a run needs; the runner owns none of it (the caller opens and closes). */
export interface RunDeps {
  store: {
    recordStart(run: RunRecord): Promise<void>;
    /** `artifacts`: files kept with the run (a boot screenshot), stored with it. */
    finalize(run: RunRecord, artifacts?: readonly RunArtifact[]): Promise<void>;
    /**
     * Stores how far the running run got (RunStore.recordProgress), so a run whose process dies is
     * recorded with what it had done. Optional; a failure only costs a warning.
     */
    recordProgress?(id: string, progress: RunProgress): Promise<void>;
    /** Backup sizes of the policy's latest passing runs, newest first; without it there is no size check. */
    passingBackupSizes?(policy: string, limit: number): Promise<number[]>;
    /** An artifact of the policy's newest passing run that kept it; without it nothing is compared with the last run. */
    lastPassingArtifact?(policy: string, name: string): Promise<{ runId: string; startedAt: string; bytes: Buffer } | null>;
    /** Each restore point's last verification (retention coverage); without it a run plans no coverage runs. */
    pointProofs?(policy: string): Promise<ReadonlyMap<string, { verdict: 'pass' | 'fail'; at: string; passedAt?: string }>>;
    /** Coverage runs of the policy started since a time (a per-day or per-week budget). */
    coverageRunsSince?(policy: string, sinceIso: string): Promise<number>;
    /** The estimated storage cost of the client's runs started since a time, in a currency (a monthly budget). */
    clientSpend?(client: string, sinceIso: string, currency: string): Promise<number>;
  };
  runtime: SandboxRuntime;
  driverFor(policy: PolicyConfig): StorageDriver;
  restorerFor(policy: PolicyConfig): Restorer;
  logger: Logger;
  now?: () => Date;
  /** Called as bytes stream from storage into the sandbox. */
  onProgress?: (progress: { runId: string; phase: PhaseName; bytes: number; totalBytes?: number }) => void;
}

export interface Digests {
  digest(algorithm: 'sha256' | 'md5'): string | undefined;
}

/**
 * One run as its phases see it: the record being written, what the run was given, and what each
 * phase leaves for the next. A phase reads what earlier phases set; fields are unset until then.
 */
export interface RunState {
  /** The policy; select replaces it with a copy whose `recovery: sampled` is the time it drew. */
  policy: PolicyConfig;
  /** A coverage run: the older restore point it restores instead of the newest. */
  readonly point?: CoveragePoint;
  readonly deps: RunDeps;
  readonly run: RunRecord;
  readonly log: Logger;
  readonly now: () => Date;
  readonly started: Date;
  /** The caller's signal joined with the run's hard timeout. */
  readonly signal: AbortSignal;
  readonly timeout: AbortSignal;
  readonly clock: PhaseClock;
  /** Why the run is not a pass, in the order found; the verdict follows from them. */
  readonly reasons: Reason[];
  readonly driver: StorageDriver;
  readonly restorer: Restorer;
  /** select: the backup chosen and what its store says of it. */
  picked?: Candidate;
  /** select, with coverage: whether the newest point already had a pass within `every` (else this run's pass proves it). */
  newestProven?: boolean;
  details?: BackupDetails;
  /** sandbox: the backup opened once through the hashing tee, its first bytes peeked. */
  raw?: Readable;
  hasher?: HashingCounter;
  backupStream?: { head: Buffer; stream: Readable };
  /** The storage's own read failure, kept apart from what the restore tool says of it. */
  readError?: Error;
  /** Progress is reported only once the restore reads (the peek is not progress). */
  streaming: boolean;
  sandbox?: Sandbox;
  ctx?: RestoreContext;
  /** Artifacts the restore kept for the policy's next runs (RestoreContext.keep), stored with the record. */
  readonly kept: RunArtifact[];
  /** fetch_restore: the digests of every byte of the backup. */
  digests?: Digests;
  fetchStart?: number;
  /** Tells the store how far the run got (phases so far, the backup); see ProgressWriter. */
  readonly progress: ProgressWriter;
  /** The fault-injection seam (fault-gate.ts): holds the run at a point while a test injects a fault; a no-op outside tests. */
  readonly gate: (point: GatePoint) => Promise<void>;
}

/** Opens the run's record (every run that starts is recorded before anything else happens). */
export interface RunOptions {
  signal?: AbortSignal;
  runId?: string;
  /** Restore this older restore point (a coverage run) instead of the newest backup. */
  point?: CoveragePoint;
}

export async function startRun(policy: PolicyConfig, deps: RunDeps, opts: RunOptions): Promise<RunState> {
  const now = deps.now ?? (() => new Date());
  const started = now();
  const run: RunRecord = {
    // A queued run comes with its id (one per scheduled slot), so the store records it once.
    id: opts.runId ?? randomUUID(),
    client: policy.client,
    policy: policy.name,
    kind: policy.kind,
    status: 'running',
    verdict: null,
    reasons: [],
    startedAt: started.toISOString(),
    finishedAt: null,
    durationMs: null,
    host: os.hostname(),
    pid: process.pid,
    backproofVersion: BACKPROOF_VERSION,
    backup: null,
    phases: [],
    probes: [],
    // A coverage run's age is no rpo figure: an older point is old by design.
    metrics: opts.point ? { rtoTargetMs: policy.targets.rtoMs } : { rpoTargetMs: policy.targets.rpoMs, rtoTargetMs: policy.targets.rtoMs },
    sandbox: null,
    restored: null,
    ...(opts.point ? { coverage: { point: opts.point } } : {}),
  };
  await deps.store.recordStart(run);
  const timeout = timeoutSignal(policy.sandbox.timeoutMs);
  const log = deps.logger.child({ runId: run.id, client: policy.client, policy: policy.name });
  const progress = new ProgressWriter(run, now, deps.store.recordProgress?.bind(deps.store), {
    // What is stored may be sealed as it is (an aborted run): no secret enters it either.
    clean: (p) => cleanProgress(p, policy, (text) => deps.logger.redact(text)),
    warn: (err) => log.warn(`could not store the run's progress (${err.message}); the run goes on, but if its process dies its record keeps less`),
  });
  const phaseGate = phaseGateFromEnv();
  // Held only once what the store knows of the run is written (a run killed there is sealed with it).
  const gate = async (point: GatePoint): Promise<void> => {
    if (!phaseGate) return;
    await progress.flushed();
    await phaseGate(point, run.id);
  };
  return {
    policy,
    ...(opts.point ? { point: opts.point } : {}),
    deps,
    run,
    gate,
    now,
    started,
    log,
    timeout,
    signal: opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout,
    clock: new PhaseClock(run, now, progress.push, phaseGate ? gate : undefined),
    progress,
    reasons: [],
    driver: deps.driverFor(policy),
    restorer: deps.restorerFor(policy),
    kept: [],
    streaming: false,
  };
}

/**
 * Only the storage's own failures: a stream destroyed because its reader went away ends with
 * "premature close", which says nothing about the storage.
 */
export function isReadFailure(err: Error | null | undefined): err is Error {
  return Boolean(err) && !['ERR_STREAM_PREMATURE_CLOSE', 'ABORT_ERR', 'ERR_STREAM_DESTROYED'].includes((err as { code?: string }).code ?? '');
}

/**
 * Writes a running run's progress to the store without holding the run up: one write at a time,
 * in order; a snapshot taken while one is in flight replaces any older one still waiting (each
 * carries everything so far). A failed write logs a warning (once per failure) and the run goes on.
 */
export class ProgressWriter {
  private pending: RunProgress | undefined;
  private inflight: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly run: RunRecord,
    private readonly now: () => Date,
    private readonly write: ((id: string, progress: RunProgress) => Promise<void>) | undefined,
    private readonly hooks: { clean: (progress: RunProgress) => void; warn: (err: Error) => void },
  ) {}

  /**
   * Snapshots the run; `current`: the phase under way, listed last as `unfinished`. The progress
   * time is `at` (a phase's end), else the start of `current`, else now.
   */
  push: ProgressSink = (current?: PhaseRecord, at?: string) => {
    if (!this.write || this.stopped) return;
    try {
      const phases = current ? [...this.run.phases, current] : this.run.phases;
      const snapshot: RunProgress = structuredClone({ at: at ?? current?.startedAt ?? this.now().toISOString(), phases, backup: this.run.backup, metrics: this.run.metrics });
      this.hooks.clean(snapshot);
      this.pending = snapshot;
    } catch (err) {
      this.hooks.warn(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.inflight ??= this.drain();
  };

  /** Waits until every snapshot pushed so far is written (or its write failed). */
  async flushed(): Promise<void> {
    while (this.inflight) await this.inflight;
  }

  /** Drops what has not been sent and waits for the write in flight (before the run is finalized). */
  async settle(): Promise<void> {
    this.stopped = true;
    this.pending = undefined;
    await this.inflight;
  }

  private async drain(): Promise<void> {
    while (this.pending && this.write) {
      const next = this.pending;
      this.pending = undefined;
      try {
        await this.write(this.run.id, next);
      } catch (err) {
        this.hooks.warn(err instanceof Error ? err : new Error(String(err)));
      }
    }
    this.inflight = undefined;
  }
}
