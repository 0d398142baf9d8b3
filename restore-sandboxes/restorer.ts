import type { Readable } from 'node:stream';
import type { PolicyConfig } from '../orchestrator/config/types.js';
import type { ProbeResult, Reason } from '../orchestrator/domain.js';
import type { Logger } from '../orchestrator/logger.js';
import type { Sandbox, SandboxSpec } from './sandbox-runtime.js';

/**
 * The restorer seam: one implementation per backup kind. The runner drives the steps in order
 * and measures each; a restorer never touches the host beyond the sandbox it is given.
 * Steps throw VerificationError with a `fail` code when the backup is at fault and an `error`
 * code when the verification could not be done.
 */
export interface RestoreContext {
  runId: string;
  policy: PolicyConfig;
  sandbox: Sandbox;
  logger: Logger;
  signal: AbortSignal;
  /** When the backup was taken (from its name or mtime): probes compare data freshness with it. */
  backupTime: Date;
  /** The backup's size as stored (compressed), e.g. for the expansion ratio of an archive. */
  backupSize: number;
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
}

export interface Inspection {
  /** Facts about the restored data (tables, rows, size), kept in evidence and trended in reports. */
  summary: Record<string, string | number>;
  /** Fail reasons found by the restorer's built-in checks (for example: restored, but empty). */
  reasons: Reason[];
}

export interface Restorer {
  readonly kind: string;
  /** The sandbox this kind needs, within the policy's limits; `image` overrides the default. */
  sandboxSpec(policy: PolicyConfig, runId: string, image?: string): SandboxSpec;
  /**
   * Optional: the image that suits this backup, from its first bytes (for example the
   * PostgreSQL major that wrote a dump), among the images the engine has. Only asked when the
   * policy pins no image.
   */
  selectImage?(head: Buffer, hasImage: (ref: string) => Promise<boolean>): Promise<ImageChoice>;
  /** Brings up the empty target system inside the sandbox; returns its version. */
  prepare(ctx: RestoreContext): Promise<{ serverVersion: string }>;
  /** Streams the backup (raw bytes as stored) into the target. */
  restore(ctx: RestoreContext, input: Readable): Promise<RestoreOutcome>;
  /** Waits until the restored system answers. */
  ready(ctx: RestoreContext): Promise<void>;
  inspect(ctx: RestoreContext): Promise<Inspection>;
  probe(ctx: RestoreContext): Promise<ProbeResult[]>;
  /** The target system's log tail, for evidence when something went wrong. */
  logTail(ctx: RestoreContext): Promise<string>;
}
