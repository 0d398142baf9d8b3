import type { Readable } from 'node:stream';
import type { PolicyConfig, PolicyOf, RestoreKind } from '../orchestrator/core/config-types.js';
import { DEFAULTS } from '../orchestrator/core/defaults.js';
import type { BootRecord, ProbeResult, Reason, RunArtifact } from '../orchestrator/core/domain.js';
import type { Logger } from '../orchestrator/core/logger.js';
import type { Sandbox, SandboxSpec } from './sandbox-runtime.js';

/**
 * The restorer seam: one implementation per backup kind. The runner drives the steps in order
 * and measures each; a restorer never touches the host beyond the sandbox it is given.
 * Steps throw VerificationError with a `fail` code when the backup is at fault and an `error`
 * code when the verification could not be done.
 */
/** A policy of kind K; for the seam in general (K: every kind), any policy. */
export type PolicyFor<K extends RestoreKind> = RestoreKind extends K ? PolicyConfig : PolicyOf<K>;

export interface RestoreContext<K extends RestoreKind = RestoreKind> {
  runId: string;
  policy: PolicyFor<K>;
  sandbox: Sandbox;
  logger: Logger;
  signal: AbortSignal;
  /** When the backup was taken (from its name or mtime): probes compare data freshness with it. */
  backupTime: Date;
  /** The backup's size as stored (compressed), e.g. for the expansion ratio of an archive. */
  backupSize: number;
  /**
   * An artifact kept by the policy's newest passing run (kind files: its file list, to compare
   * the restore with); undefined when there is none or no store to ask.
   */
  lastPassing?(artifact: string): Promise<{ runId: string; startedAt: string; bytes: Buffer } | undefined>;
  /**
   * Keeps an artifact with the run's record, as a yardstick for the policy's next runs (a
   * `baseline` one: stored only if the run passes, replacing the policy's older copy).
   */
  keep?(artifact: RunArtifact): void;
}

export interface ImageChoice {
  image: string;
  /** Why this one, for the evidence. */
  why: string;
}

export interface RestoreOutcome {
  format: string;
  compression: string;
  /** Facts read from the backup's own header. */
  header: Record<string, string>;
  /**
   * The newest data the restore holds when that is later than the backup's own time (a
   * point-in-time restore replays WAL archived after its base backup): RPO is measured from it.
   */
  dataAsOf?: Date;
}

export interface Inspection {
  /** Facts about the restored data (tables, rows, size), kept in evidence and trended in reports. */
  summary: Record<string, string | number>;
  /** Fail reasons found by the restorer's built-in checks (for example: restored, but empty). */
  reasons: Reason[];
}

/** A restorer of kind K receives policies of that kind only, with their kind's block required. */
export interface Restorer<K extends RestoreKind = RestoreKind> {
  readonly kind: K;
  /** The sandbox this kind needs, within the policy's limits; `image` overrides the default. */
  sandboxSpec(policy: PolicyFor<K>, runId: string, image?: string): SandboxSpec;
  /**
   * Optional: the image that suits this backup, from its first bytes (for example the
   * PostgreSQL major that wrote a dump), among the images the engine has. Only asked when the
   * policy pins no image.
   */
  selectImage?(head: Buffer, hasImage: (ref: string) => Promise<boolean>, facts?: Readonly<Record<string, string>>): Promise<ImageChoice>;
  /**
   * Brings up the empty target system inside the sandbox; returns its version and, optionally,
   * how it was brought up (for example from the image's initialised data directory, or by
   * initdb), which the runner keeps as the sandbox phase's detail.
   */
  prepare(ctx: RestoreContext<K>): Promise<{ serverVersion: string; detail?: string }>;
  /** Streams the backup (raw bytes as stored) into the target. */
  restore(ctx: RestoreContext<K>, input: Readable): Promise<RestoreOutcome>;
  /** Waits until the restored system answers. */
  ready(ctx: RestoreContext<K>): Promise<void>;
  inspect(ctx: RestoreContext<K>): Promise<Inspection>;
  probe(ctx: RestoreContext<K>): Promise<ProbeResult[]>;
  /** The target system's log tail, for evidence when something went wrong. */
  logTail(ctx: RestoreContext<K>): Promise<string>;
  /**
   * Optional: evidence beyond the summary, asked once at the end of every run, whatever its
   * outcome (kind vm: how the machine booted, and the last screenshot).
   */
  evidence?(): { boot?: BootRecord; artifacts: RunArtifact[] };
}

/** What every kind's sandbox takes from the policy: its limits, and /tmp as a size-limited tmpfs. */
export function sandboxLimits(policy: PolicyConfig): Pick<SandboxSpec, 'memoryBytes' | 'cpus' | 'pids' | 'shmBytes' | 'tmpfs'> {
  return {
    memoryBytes: policy.sandbox.memoryBytes,
    cpus: policy.sandbox.cpus,
    pids: policy.sandbox.pids,
    shmBytes: DEFAULTS.sandboxShmBytes,
    tmpfs: { '/tmp': policy.sandbox.tmpBytes },
  };
}

/**
 * A restored database with no tables, or only empty ones, is `empty_restore` unless the policy
 * allows it: the backup restores perfectly and holds nothing. `where` names the database
 * (`database "shop"`), `what` the backup (`the dump`).
 */
export function emptyDatabaseReasons(what: string, where: string, tables: number, rows: number, allowEmpty: boolean): Reason[] {
  if (allowEmpty) return [];
  if (tables === 0) return [{ code: 'empty_restore', message: `${what} restored, but ${where} holds no tables` }];
  if (rows === 0) return [{ code: 'empty_restore', message: `${what} restored ${tables} tables in ${where}, but every one of them is empty` }];
  return [];
}

/** The last `n` non-empty lines of a tool's output, on one line, for a reason's message. */
export function lastLines(text: string, n: number): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean).slice(-n).join(' | ');
  return lines.length > 400 ? `…${lines.slice(-399)}` : lines;
}
