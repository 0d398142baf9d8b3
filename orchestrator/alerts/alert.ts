import { ERROR_CODES, FAIL_CODES, type PhaseName, type PhaseOutcome, type ReasonCode, type RunRecord, type Verdict } from '../core/domain.js';
import { formatAge, formatSeconds } from '../core/format.js';

/**
 * What an alert channel is handed: one notification about one policy, already decided on by the
 * alert evaluation (which conditions fire, deduplication, reminders). Channels only render and
 * deliver it.
 *
 * Glossary
 * - Condition: why the alert exists. `fail` (the backup is bad: the client's data is at risk),
 *   `error` (the verification could not run: our problem), `stale` (no new backup within the
 *   RPO), `missing` (an expected backup is absent), `size_anomaly`, `rto_exceeded` (the restore
 *   took longer than its target), `overdue` (backproof itself has not verified the policy on
 *   time), `delivery_failed` (another alert could not be delivered), `coverage` (an older
 *   restore point does not restore, keyed by its key; or too few points are proven, key ''),
 *   `recovery` (a condition ended).
 * - State: `firing` (first notice), `reminder` (still true after the reminder interval),
 *   `resolved` (over; a `recovery` alert is always `resolved`).
 * - Id: stable for one incident: the firing, its reminders and its resolution share it, so
 *   receivers can thread and deduplicate. Channels derive idempotency keys from
 *   `id` + `state` + `occurredAt`, so a retried delivery is recognisable as the same one.
 */

export const ALERT_CONDITIONS = ['fail', 'error', 'recovery', 'stale', 'missing', 'size_anomaly', 'rto_exceeded', 'overdue', 'delivery_failed', 'no_worker', 'coverage'] as const;
export type AlertCondition = (typeof ALERT_CONDITIONS)[number];
export type AlertState = 'firing' | 'reminder' | 'resolved';

export interface AlertReason {
  /** A reason code from domain.ts; other strings are accepted and get a generic next step. */
  code: ReasonCode | (string & {});
  message: string;
}

export interface AlertPhase {
  name: PhaseName | (string & {});
  durationMs: number;
  outcome: PhaseOutcome;
}

export interface AlertRun {
  id: string;
  verdict: Verdict | null;
  startedAt: string;
  durationMs: number | null;
  phases: AlertPhase[];
  backup?: { key: string; size: number; backupTime: string; ageMs: number };
  metrics: { rpoMeasuredMs?: number; rpoTargetMs?: number; rtoMeasuredMs?: number; rtoTargetMs?: number };
}

export interface Alert {
  id: string;
  condition: AlertCondition;
  state: AlertState;
  client: { name: string; displayName: string };
  policy: string;
  kind: string;
  /** When the condition was observed (ISO 8601). */
  occurredAt: string;
  /** One line. */
  summary: string;
  reasons: AlertReason[];
  /** The run the alert is about, when there is one (`overdue` and `delivery_failed` may have none). */
  run?: AlertRun;
  /**
   * `stale`: when the newest backup was taken; `overdue`: when backproof last verified the
   * policy; `missing`: the last backup seen. Falls back to the run's backup time.
   */
  since?: string;
  /** What to do next, one action a line; `nextStepsFor` computes them. */
  nextSteps: string[];
}

/** The input of `createAlert`: an alert whose next steps are computed unless given. */
export type AlertInput = Omit<Alert, 'nextSteps'> & { nextSteps?: string[] };

export function createAlert(input: AlertInput): Alert {
  return { ...input, nextSteps: input.nextSteps ?? nextStepsFor(input) };
}

/** The part of a run record an alert carries. */
export function alertRunOf(record: RunRecord): AlertRun {
  const { rpoMeasuredMs, rpoTargetMs, rtoMeasuredMs, rtoTargetMs } = record.metrics;
  return {
    id: record.id,
    verdict: record.verdict,
    startedAt: record.startedAt,
    durationMs: record.durationMs,
    phases: record.phases.map((p) => ({ name: p.name, durationMs: p.durationMs, outcome: p.outcome })),
    ...(record.backup
      ? { backup: { key: record.backup.key, size: record.backup.size, backupTime: record.backup.backupTime, ageMs: record.backup.ageMs } }
      : {}),
    metrics: dropUndefined({ rpoMeasuredMs, rpoTargetMs, rtoMeasuredMs, rtoTargetMs }),
  };
}

/** True when the alert says something ended (a `recovery`, or any condition `resolved`). */
export function isResolved(alert: Pick<Alert, 'condition' | 'state'>): boolean {
  return alert.state === 'resolved' || alert.condition === 'recovery';
}

// ---------------------------------------------------------------------------------------------
// Next steps

interface StepContext {
  policy: string;
  runId: string | undefined;
}

const show = (c: StepContext): string => (c.runId ? `backproof runs show ${c.runId}` : `backproof runs list --policy ${c.policy}`);

/** One next step per reason code; the Record type makes the compiler demand every code. */
const REASON_STEPS: Record<ReasonCode, (c: StepContext) => string> = {
  // fail: the backup is bad
  no_backup: (c) => `no backup matches the policy's selector: check that the backup job runs and writes where the policy looks (backproof backups list --policy ${c.policy})`,
  empty_backup: () => 'the backup is empty: check the backup job\'s log and the free space where it writes; run the backup again',
  stale_backup: () => 'the newest backup is older than the RPO target: check the backup job\'s schedule and its last runs',
  missing_backup: () => 'an expected backup is missing: check whether the backup job ran at its scheduled time and finished',
  checksum_mismatch: () => 'the backup\'s bytes differ from its checksum: check the backup job and storage; run the backup again',
  sidecar_invalid: () => 'the .sha256 sidecar holds no checksum for the file: check how the backup job writes its sidecar',
  repository_damaged: () =>
    'the backup repository is damaged: run its full check (restic check --read-data; borg check --verify-data), repair it (restic repair index / snapshots; borg check --repair on a copy) and take a fresh backup',
  wal_gap: () =>
    'a WAL segment is missing from the archive, so the database cannot be recovered past it: check archive_command and the archiver (pg_stat_archiver), push the segment if the server still has it (pgbackrest archive-push), and take a new full backup',
  corrupt_compression: () => 'the compressed backup is damaged or cut short: check that the backup job and the upload finished; run the backup again',
  truncated_dump: () => 'the dump ends early: the backup job was probably interrupted or ran out of space; check its log and run the backup again',
  unrecognized_format: () => 'the file is not what the policy\'s kind restores: check the policy\'s kind and the backup job\'s output format',
  restore_failed: (c) => `the restore tool stopped on an error: read the error and the log tail (${show(c)}), then fix the backup job or the sandbox image`,
  empty_restore: () => 'the backup restored without data: check that the backup job dumps the right database or folder',
  unsafe_archive: () => 'the backup tries to act beyond restoring its data (an unsafe archive entry: traversal, absolute path, device; or a dump running shell or psql commands, COPY ... PROGRAM, server files, ALTER SYSTEM): find out what wrote it; treat that machine as compromised; do not restore it on a real system',
  unsafe_source: () => 'the newest backup is a link (or a special file) that leads outside the backup folder: find out which machine wrote it and what it points to; treat that machine as compromised',
  archive_limit: () => 'the archive expands beyond the configured limits: inspect it; if it is legitimate raise files.maxBytes, maxEntries or maxRatio',
  ransomware_suspected: (c) =>
    `the files changed since the last passing run as ransomware leaves them (renamed, rewritten or replaced by random-looking bytes): look at the examples (${show(c)}) and the source machine now; isolate it if they are encrypted, and keep the last good backups from being pruned`,
  size_anomaly: () => 'the backup is much smaller than usual: check that the backup job did not skip data; compare it with earlier backups',
  probe_failed: (c) => `a probe did not hold: compare its expected and actual values (${show(c)}) and check the source system's data`,
  not_booted: (c) => `the restored machine did not boot: look at its last screenshot and serial log (${show(c)}); check the backup job's disk image (boot sector, file systems, the bootloader's root device)`,
  boot_inconclusive: (c) => `the restored machine was still busy when the boot timeout ended: look at its last screenshot (${show(c)}); raise vm.bootTimeout if it is only slow, or add its logon screen to vm.bootedPatterns`,
  // error: the verification could not run
  source_unreachable: () => 'backproof could not reach the storage: check that the bucket, folder or repository exists and that the verification host can reach it',
  source_denied: () => 'the storage refused backproof\'s credentials: check that the credential named in the reason exists and may read the backups',
  source_throttled: () => 'the storage kept throttling backproof: the next run retries; if it repeats, spread the schedules or raise the store\'s limits',
  source_archived: () =>
    'the backup is in an archive tier (GLACIER, DEEP_ARCHIVE) and cannot be read until restored: set archiveRetrieval on the source so backproof requests it, or restore it yourself; a later run verifies the readable copy',
  source_changed: () => 'the backup changed while it was read: make sure the backup job writes new files instead of overwriting in place; the next run retries',
  docker_unreachable: () => 'start the Docker engine on the verification host',
  image_missing: () => 'build the sandbox image on the verification host (backproof images build ...)',
  sandbox_failed: () => 'the sandbox could not start or its server died: check Docker on the verification host; if it was killed, raise sandbox.memory',
  unsupported_format: () => 'the sandbox cannot restore this backup (e.g. a dump from a newer server): set sandbox.image to a matching image',
  timeout: () => 'the run exceeded sandbox.timeout: raise the timeout or check the verification host\'s load',
  cancelled: () => 'the run was cancelled before it finished: nothing is known about the backup yet; the next scheduled run verifies it',
  aborted: () => 'the verification process died during the run: check the verification host (memory, restarts, the daemon\'s log)',
  internal: (c) => `backproof hit an internal error: report it with the run's evidence (${show(c)})`,
};

const KNOWN_CODES: ReadonlySet<string> = new Set<string>([...FAIL_CODES, ...ERROR_CODES]);

/** Reason codes whose step the condition's own step already says. */
const COVERED_BY: Partial<Record<AlertCondition, readonly string[]>> = {
  stale: ['stale_backup'],
  missing: ['missing_backup'],
  size_anomaly: ['size_anomaly'],
  coverage: ['coverage_below_target'],
};

/** What to do next: a step for the condition, then one per distinct reason code. */
export function nextStepsFor(alert: Omit<Alert, 'nextSteps' | 'id'>): string[] {
  if (isResolved(alert)) return ['no action'];
  const c: StepContext = { policy: alert.policy, runId: alert.run?.id };
  const since = alert.since ?? alert.run?.backup?.backupTime;
  const steps: string[] = [];
  switch (alert.condition) {
    case 'stale':
      steps.push(`the backup job has not produced a backup since ${since ? formatInstant(since) : 'the last one backproof saw'}: check it`);
      break;
    case 'overdue':
      steps.push(`backproof itself has not verified ${alert.policy} since ${since ? formatInstant(since) : 'it started'}: check the daemon (is it running, is its queue stuck)`);
      break;
    case 'missing':
      steps.push(REASON_STEPS.missing_backup(c));
      break;
    case 'size_anomaly':
      steps.push(REASON_STEPS.size_anomaly(c));
      break;
    case 'rto_exceeded': {
      const m = alert.run?.metrics;
      const took = m?.rtoMeasuredMs !== undefined ? formatSeconds(m.rtoMeasuredMs) : 'longer';
      const target = m?.rtoTargetMs !== undefined ? formatAge(m.rtoTargetMs) : 'its target';
      steps.push(`restoring took ${took} against a target of ${target}: check the verification host's load and the backup's growth, or revise targets.rto`);
      break;
    }
    case 'no_worker':
      steps.push('no live worker carries the labels this policy requires, or they all stopped beating: start backproof worker with those labels (backproof status lists the workers), or change the policy\'s requires');
      break;
    case 'delivery_failed':
      steps.push('backproof could not deliver an alert: check that channel\'s settings (address, URL, credentials) and that its server is reachable from the verification host');
      break;
    case 'coverage':
      steps.push(
        !alert.reasons.some((r) => r.code === 'coverage_below_target') && alert.run?.backup
          ? `an older restore point the client keeps (${alert.run.backup.key}) did not restore: read why (${show(c)}); it cannot be relied on, so take a fresh backup of that period if one can still be made, or tell the client`
          : `too few of the restore points the client keeps were proven restorable recently: raise coverage.points (or per), or lengthen coverage.every (backproof coverage --policy ${alert.policy})`,
      );
      break;
    case 'fail':
    case 'error':
    case 'recovery':
      break;
  }
  const covered = COVERED_BY[alert.condition] ?? [];
  for (const code of new Set(alert.reasons.map((r) => r.code))) {
    if (covered.includes(code)) continue;
    steps.push(KNOWN_CODES.has(code) ? REASON_STEPS[code as ReasonCode](c) : `${code}: read the run's evidence (${show(c)}) and act on its message`);
  }
  if (steps.length === 0) {
    steps.push(
      alert.condition === 'error'
        ? `the verification could not run: read the run's evidence (${show(c)}) and check the verification host`
        : `read the run's evidence (${show(c)})`,
    );
  }
  return [...new Set(steps)];
}

/** `2026-11-27 02:00 UTC` from an ISO time (the string itself when it does not parse). */
export function formatInstant(iso: string): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  return new Date(t).toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
