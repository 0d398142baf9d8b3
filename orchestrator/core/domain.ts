/**
 * Domain types shared by every part of backproof.
 *
 * Glossary
 * - Client: a tenant, one of the MSP's customers. Owns policies.
 * - Policy: what to verify and how: a source (storage driver + location + selector), a kind
 *   (restorer), probes, targets (rpo, rto).
 * - Backup: one artifact in storage (a file, an object): key, size, modified time, checksums.
 * - Run: one verification of one backup under one policy. Phases: select, storage_check (the
 *   store's own integrity check, e.g. restic check), sandbox,
 *   fetch_restore (fetch + integrity + restore, streamed in one pass), readiness, probes,
 *   teardown; each with start/end time and outcome.
 * - Verdict: `pass` (restores and probes hold), `fail` (the backup is bad: the client's data is
 *   at risk), `error` (the verification itself could not run). A fail pages the client's owner,
 *   an error pages us: never conflate them.
 * - Status: where a run is in its life: `running`, `finished`, `cancelled` (a signal or a
 *   caller stopped it), `aborted` (the process died; marked by the next start).
 * - RPO measured: age of the newest backup when the run starts.
 * - RTO measured: time from the start of fetch until the restored system answers readiness.
 */

export type Verdict = 'pass' | 'fail' | 'error';
export type RunStatus = 'running' | 'finished' | 'cancelled' | 'aborted';

/** Stable reason codes. `fail` codes mean the backup is bad; `error` codes mean we could not tell. */
export const FAIL_CODES = [
  'no_backup',
  'empty_backup',
  'stale_backup',
  'missing_backup',
  'checksum_mismatch',
  'sidecar_invalid',
  'repository_damaged',
  'wal_gap',
  'corrupt_compression',
  'truncated_dump',
  'unrecognized_format',
  'restore_failed',
  'empty_restore',
  'unsafe_archive',
  'unsafe_source',
  'archive_limit',
  'ransomware_suspected',
  'size_anomaly',
  'probe_failed',
  'not_booted',
  'boot_inconclusive',
] as const;
export const ERROR_CODES = [
  'source_unreachable',
  'source_denied',
  'source_throttled',
  'source_changed',
  'source_archived',
  'docker_unreachable',
  'image_missing',
  'sandbox_failed',
  'unsupported_format',
  'timeout',
  'cancelled',
  'aborted',
  'internal',
] as const;
export type FailCode = (typeof FAIL_CODES)[number];
export type ErrorCode = (typeof ERROR_CODES)[number];
export type ReasonCode = FailCode | ErrorCode;

export interface Reason {
  code: ReasonCode;
  /** One line a person can act on. Never contains a secret. */
  message: string;
}

export type PhaseName = 'select' | 'storage_check' | 'sandbox' | 'fetch_restore' | 'readiness' | 'probes' | 'teardown';
/** The phases of a run in the order they run; a record lists each once, in this order. */
export const PHASE_ORDER: readonly PhaseName[] = ['select', 'storage_check', 'sandbox', 'fetch_restore', 'readiness', 'probes', 'teardown'];
/**
 * `unfinished`: the phase had started when the run was last heard of (a running run's progress, or
 * a run recorded `aborted` because its process or worker died during that phase).
 */
export type PhaseOutcome = 'ok' | 'fail' | 'error' | 'skipped' | 'unfinished';

export interface PhaseRecord {
  name: PhaseName;
  startedAt: string;
  endedAt: string;
  durationMs: number;
  outcome: PhaseOutcome;
  detail?: string;
}

export interface ProbeResult {
  name: string;
  type: string;
  expected: string;
  actual: string;
  pass: boolean;
  durationMs: number;
  error?: string;
}

export interface BackupRecord {
  driver: string;
  location: string;
  key: string;
  size: number;
  modifiedAt: string;
  /** When the backup was taken: from its name, its modification time or the store's metadata. */
  backupTime: string;
  timestampSource: 'name' | 'mtime' | 'metadata';
  ageMs: number;
  sha256?: string;
  bytesRead?: number;
  /** Every checksum the provider or a sidecar keeps, each checked against the bytes read. */
  checksums?: ChecksumRecord[];
  /** Provider checksums that exist but cannot be checked against the bytes, and why. */
  unverifiableChecksums?: string[];
  /** Facts the store keeps: version id, storage class, encryption, object lock, snapshot... */
  provider?: Record<string, string>;
  /** The store's own integrity check (restic check), when the driver has one. */
  storageCheck?: { what: string; summary: string; problems: string[] };
  format?: string;
  compression?: string;
  /** Facts read from the dump's own header (server version, dump time, database name). */
  header?: Record<string, string>;
}

export interface ChecksumRecord {
  algorithm: 'sha256' | 'md5';
  expected: string;
  source: string;
  verified: boolean;
}

export interface RunMetrics {
  rpoTargetMs?: number;
  rpoMeasuredMs?: number;
  rpoMet?: boolean;
  rtoTargetMs?: number;
  rtoMeasuredMs?: number;
  rtoMet?: boolean;
  fetchBytesPerSec?: number;
  /** What the run asked of a store that bills for it (S3), and with the source's prices what it cost. */
  storage?: StorageMetrics;
}

export interface StorageMetrics {
  requests: { list: number; head: number; get: number; restore: number };
  /** Bytes downloaded. */
  bytes: number;
  /** The backup's storage class, when the store names one. */
  storageClass?: string;
  /** A restore from an archive tier this run requested. */
  retrieval?: { bytes: number; storageClass: string; tier: string };
  /** The estimate from the source's `prices`, rounded to 6 decimals; `lines` say what each part cost. */
  cost?: { currency: string; amount: number; lines: string[] };
}

export interface SandboxRecord {
  runtime: string;
  image: string;
  /** Why this image, when backproof chose it from the backup rather than the policy pinning it. */
  imageChoice?: string;
  imageId?: string;
  containerId?: string;
  limits?: Record<string, string | number>;
  serverVersion?: string;
  logTail?: string;
}

/** The evidence record of one run. Stored as written; reports read it back. */
export interface RunRecord {
  id: string;
  client: string;
  policy: string;
  kind: string;
  status: RunStatus;
  verdict: Verdict | null;
  reasons: Reason[];
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  host: string;
  pid: number;
  backproofVersion: string;
  backup: BackupRecord | null;
  phases: PhaseRecord[];
  probes: ProbeResult[];
  metrics: RunMetrics;
  sandbox: SandboxRecord | null;
  restored: Record<string, string | number> | null;
  /** kind vm: how the restored machine booted. Absent for other kinds. */
  boot?: BootRecord;
  /** Retention coverage (policy `coverage:`): absent when the policy has none. */
  coverage?: CoverageRecord;
}

/**
 * Retention coverage. Besides the newest backup, a policy with `coverage:` restores some of its
 * older restore points (every backup its selector accepts) after each run, so that each one is
 * proven restorable at least once every `everyMs`.
 * - A run of the newest backup carries `plan`: the restore points it saw and which older ones it
 *   planned to restore next.
 * - A coverage run (one older point, restored like any backup) carries `point`. It is judged on
 *   what it restores only: its age is no rpo breach, its size no anomaly, and nothing of it
 *   becomes the policy's baseline; status, the board and alerts of the newest backup skip it.
 */
export interface CoverageRecord {
  plan?: CoveragePlan;
  point?: CoveragePoint;
}

export interface CoveragePlan {
  everyMs: number;
  /** Restore points the selector accepts (the newest included) when the run listed them. */
  points: number;
  /** Of them, those with a passing run within everyMs (the newest counts when this run passes). */
  proven: number;
  /** Target share of proven points (0..1); below it the `coverage` alert fires. Absent: no target. */
  target?: number;
  /** Points never verified, oldest first. */
  neverVerified: number;
  /** Older points to restore after this run, in order, and why each was chosen. */
  planned: Array<{ key: string; why: CoverageWhy }>;
  /** The client's storage budget this month when the plan was made; `exhausted`: nothing was planned for it. */
  budget?: { monthly: number; spent: number; currency: string; exhausted: boolean };
}

/** `never`: no run ever verified it; `oldest`: its last verification is older than everyMs; `sample`: random pick among the rest. */
export type CoverageWhy = 'never' | 'oldest' | 'sample';

export interface CoveragePoint {
  /** The restore point's key, as the store lists it. */
  key: string;
  why: CoverageWhy;
  everyMs: number;
  /** The run of the newest backup that planned it. */
  planRunId: string;
}

/**
 * How far a running run got, stored as it goes (RunStore.recordProgress): its phases so far (the
 * one under way last, `unfinished`), the backup once picked, its metrics, and when this was.
 */
export interface RunProgress {
  at: string;
  phases: PhaseRecord[];
  backup: BackupRecord | null;
  metrics: RunMetrics;
}

/** A file kept with a run's evidence (a screenshot); the record holds its sha256, so the chain seals it. */
export interface ArtifactRef {
  name: string;
  mediaType: string;
  sha256: string;
  bytes: number;
  width?: number;
  height?: number;
}

/** The bytes of an artifact, written with the run it belongs to. */
export interface RunArtifact {
  name: string;
  mediaType: string;
  bytes: Buffer;
  /**
   * A yardstick for the policy's next runs (kind files: its file list): stored only by a passing
   * run, and only the newest passing run's copy is kept (the policy's older ones are deleted).
   */
  baseline?: boolean;
}

/**
 * Boot verdicts of kind vm: `booted` (a login prompt or logon screen), `not_booted` (a named
 * failure, QEMU exited, or the machine stalled), `inconclusive` (still changing at the timeout).
 */
export type BootVerdict = 'booted' | 'not_booted' | 'inconclusive';
export type BootMilestoneName = 'firmware' | 'bootloader' | 'kernel' | 'init' | 'login';

export interface BootMilestone {
  name: BootMilestoneName;
  /** Since QEMU started. */
  atMs: number;
  source: 'screen' | 'serial' | 'qemu';
  /** The text that marked it. */
  text: string;
}

export interface BootRecord {
  verdict: BootVerdict;
  /** What decided the verdict, one line. */
  reason: string;
  /** not_booted: which failure (no_bootable_device, uefi_shell, grub_rescue, kernel_panic, root_not_found, emergency_shell, windows_stop, qemu_exited, stalled, or a policy pattern's name); with `inconclusive`, `accel_fault`: the accelerator stopped the guest (the run is an error). */
  failure?: string;
  /** QEMU start until the verdict. */
  bootMs: number;
  accel: 'kvm' | 'tcg';
  /** Why this accelerator (the policy, no /dev/kvm, or a KVM slower than emulation here). */
  accelWhy?: string;
  firmware: 'bios' | 'uefi';
  /** Why this firmware (the partition table, or the policy). */
  firmwareWhy: string;
  machine: 'pc' | 'q35';
  bus: string;
  diskFormat: string;
  virtualSize: number;
  partitionTable: 'mbr' | 'gpt' | 'none';
  qemuVersion: string;
  milestones: BootMilestone[];
  screenshots: number;
  /** The last screenshot (PNG), kept as an artifact. */
  screenshot?: ArtifactRef;
  /** The last screen's text, and how it was read. */
  screenText?: string;
  screenTextSource?: 'vga-text' | 'ocr';
  serialTail?: string;
  /** The disk image's sha256 read again after the boot equals the one streamed from storage. */
  diskUnchanged?: boolean;
  /**
   * Every accelerator tried, in order, when there was more than the one that decided: with
   * `accel: auto`, a KVM that failed (in the probe or during the boot) and the TCG retry whose
   * outcome is the verdict; under TCG, a boot whose guest kernel panicked in its timer check (slow
   * emulation, not the disk) and the boot again. Absent when one accelerator ran and did not fail.
   */
  attempts?: BootAttempt[];
}

/** One accelerator's try at a boot (BootRecord.attempts). */
export interface BootAttempt {
  accel: 'kvm' | 'tcg';
  /** `probe`: the accelerator probe's boot sector; `boot`: the restored image. */
  stage: 'probe' | 'boot';
  /** `accel_fault`: the accelerator failed (not the guest); else the boot's verdict. */
  outcome: 'accel_fault' | BootVerdict;
  /** QEMU's own words for a fault (its stderr lines, or its QMP run state), or the verdict's reason. */
  said: string;
  startedAt: string;
  durationMs: number;
}

/** Verdict from a set of reasons: any error reason makes an `error`, else any fail a `fail`. */
export function verdictOf(reasons: readonly Reason[]): Verdict {
  if (reasons.some((r) => (ERROR_CODES as readonly string[]).includes(r.code))) return 'error';
  if (reasons.length > 0) return 'fail';
  return 'pass';
}
