import type { Readable } from 'node:stream';
import { describeTime, restoreTarget, type RecoveryTarget } from '../../orchestrator/core/config-types.js';
import type { Reason } from '../../orchestrator/core/domain.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
import type { BackupSet } from '../../orchestrator/core/pgbackrest-info.js';
import { truncate } from '../bytes.js';
import type { RestoreContext } from '../restorer.js';
import type { ExecResult } from '../sandbox-runtime.js';
import { DATA_DIR } from './cluster.js';

/**
 * The second half of a physical PostgreSQL restore, whatever tool made the backup (pgBackRest,
 * barman): the base backup is in DATA_DIR and the archived WAL unpacked in the sandbox. WAL gaps
 * are found from the archive's listing before replay (PostgreSQL treats the first missing segment
 * as the end of the archive and promotes there without a word); then PostgreSQL starts with a
 * configuration of backproof's own (the production postgresql.conf, pg_hba.conf and preloaded
 * libraries are not used; archiving off; no hot standby, so nothing is read before replay has
 * ended), replays to the policy's recovery target and promotes; what it reached is recorded.
 */

const CONF = '/tmp/backproof-postgresql.conf';
const HBA = '/tmp/backproof-pg_hba.conf';

/** What the restore reached, for the evidence, the probes and the RPO. */
export interface PhysicalRestore {
  header: Record<string, string>;
  /** Facts about the replay, kept with the restored data's summary. */
  summary: Record<string, string>;
  /** Fail reasons found after a replay that still came up (a gap after the backup's own WAL). */
  reasons: Reason[];
  /** The last replayed commit: RPO is measured from it. */
  dataAsOf?: Date;
  /** Databases of the restored cluster that accept connections (templates left out). */
  databases: string[];
}

export interface PhysicalServer {
  bin: string;
  major: number;
  socketDir: string;
  logFile: string;
  serverOptions: string;
}

/** A command as the postgres user in the run's sandbox; a non-zero exit is `sandbox_failed` naming `what`, unless `ok`. */
export type PhysicalExec = (argv: string[], what: string, opts?: { stdin?: Readable; ok?: boolean }) => Promise<ExecResult>;

export function physicalExec(ctx: RestoreContext<'postgres'>, env?: Record<string, string>): PhysicalExec {
  const { sandbox, signal } = ctx;
  return async (argv, what, opts = {}) => {
    const r = await sandbox.exec(argv, { signal, user: 'postgres', ...(env ? { env } : {}), ...(opts.stdin ? { stdin: opts.stdin } : {}) });
    if (r.exitCode !== 0 && !opts.ok) throw new VerificationError('sandbox_failed', `${what} failed in the sandbox (exit ${r.exitCode}): ${lastLines(r.stderr || r.stdout, 2)}`);
    return r;
  };
}

/** A physical backup restores only into its own major: another is `unsupported_format`, naming the image to use. */
export function requireSameMajor(backupMajor: number | undefined, server: PhysicalServer, stream: Readable, imageAlso = ''): void {
  if (backupMajor === undefined || backupMajor === server.major) return;
  stream.destroy();
  throw new VerificationError(
    'unsupported_format',
    `the backup is of PostgreSQL ${backupMajor}; a physical backup restores only into the same major, and this sandbox runs ${server.major}: build backproof/postgres:${backupMajor} (backproof images build postgres:${backupMajor}) and leave sandbox.image unset, or set sandbox.image to a PostgreSQL ${backupMajor} image${imageAlso}`,
  );
}

/** Stops and removes the empty cluster prepare() started, and unpacks the stream (a tar) into `stage`. */
export async function unpackInPlaceOfEmptyCluster(exec: PhysicalExec, server: PhysicalServer, stream: Readable, stage: string): Promise<void> {
  await exec([`${server.bin}/pg_ctl`, 'stop', '-D', DATA_DIR, '-m', 'immediate', '-w'], 'stopping the empty cluster', { ok: true });
  await exec(['rm', '-rf', DATA_DIR], 'removing the empty cluster');
  await exec(['mkdir', '-p', stage], 'making the folder the backup is unpacked in');
  const untar = await exec(['tar', '-x', '-f', '-', '-C', stage, '--no-same-owner', '--no-same-permissions'], 'unpacking', { stdin: stream, ok: true });
  if (untar.exitCode !== 0) {
    const words = lastLines(untar.stderr, 2);
    if (/unexpected EOF|unexpected end/i.test(words)) throw new VerificationError('truncated_dump', `the backup stream ends early: ${words}`);
    throw new VerificationError('restore_failed', `unpacking the backup stream failed: ${words}`);
  }
}

/** The backup as the replay needs it: its label, type, WAL range, stop time, the sets it builds on. */
export type ReplayedBackup = Pick<BackupSet, 'label' | 'type' | 'archiveStart' | 'archiveStop' | 'stoppedAt' | 'references'>;

/**
 * Checks the archive for gaps, starts PostgreSQL on DATA_DIR and waits for the replay to end.
 * `ownHeader`: the tool's facts for the evidence; `confLines`: recovery settings of the caller's
 * (barman's restore_command and target), written into backproof's configuration file; `env`:
 * what the server's restore_command needs (an encrypted repository's passphrase).
 */
export async function replayToTarget(
  ctx: RestoreContext<'postgres'>,
  server: PhysicalServer,
  set: ReplayedBackup,
  segments: Segment[],
  ownHeader: Record<string, string>,
  confLines: string[] = [],
  env?: Record<string, string>,
): Promise<PhysicalRestore> {
  const { sandbox, signal } = ctx;
  const recovery = restoreTarget(ctx.policy.postgres.recovery);
  // `env` reaches the server (its restore_command runs with it) and nothing else.
  const exec = physicalExec(ctx, env);
  const control = await exec([`${server.bin}/pg_controldata`, DATA_DIR], 'pg_controldata');
  const segmentBytes = Number(/Bytes per WAL segment:\s*(\d+)/.exec(control.stdout)?.[1] ?? 16 * 1024 * 1024);
  const gap = firstGap(set, segments, segmentBytes);
  if (gap && gap.segno <= segnoOf(set.archiveStop, segmentBytes)) {
    throw new VerificationError(
      'wal_gap',
      `WAL segment ${gap.name} is missing from the archive, and backup ${set.label} needs it to be consistent (its WAL runs ${set.archiveStart} to ${set.archiveStop}): the backup cannot be restored`,
    );
  }

  // backproof's own configuration: nothing of production's postgresql.conf, pg_hba.conf or
  // preloaded libraries (postgresql.auto.conf, where pgBackRest writes its recovery settings, is
  // read after it; what matters is set on the command line); `confLines`: the caller's recovery
  // settings.
  await exec(['sh', '-c', 'printf "%s\\n" "$@" > $0', CONF, ...confLines], 'writing the sandbox configuration');
  await exec(['sh', '-c', `echo 'local all all trust' > ${HBA}`], 'writing the sandbox configuration');
  const options = [
    server.serverOptions,
    `-c config_file=${CONF}`,
    `-c hba_file=${HBA}`,
    `-c ident_file=${HBA}`,
    '-c archive_mode=off',
    '-c hot_standby=off',
    "-c shared_preload_libraries=''",
    '-c shared_buffers=128MB',
    '-c max_connections=100',
    '-c logging_collector=off',
    '-c port=5432',
  ].join(' ');
  const started = Date.now();
  // pg_ctl without -w still fails when the postmaster dies at once (recovery that cannot reach
  // its target ends in a FATAL within a second): the log says why, as for a later stop.
  const start = await exec([`${server.bin}/pg_ctl`, 'start', '-D', DATA_DIR, '-l', server.logFile, '-o', options], 'starting PostgreSQL on the restored backup', { ok: true });
  if (start.exitCode !== 0) {
    const log = await sandbox.exec(['tail', '-c', '6000', server.logFile], { signal, user: 'postgres' });
    if (!/FATAL|PANIC/.test(log.stdout)) throw new VerificationError('sandbox_failed', `starting PostgreSQL on the restored backup failed (exit ${start.exitCode}): ${lastLines(start.stderr || start.stdout, 2)}`);
    throw recoveryFailure(log.stdout, recovery, gap, set);
  }
  const deadline = started + ctx.policy.postgres.recoveryTimeoutMs;
  const psql = (sql: string) => sandbox.exec([`${server.bin}/psql`, '-X', '-A', '-t', '-q', '-h', server.socketDir, '-U', 'postgres', '-d', 'postgres', '-c', sql], { signal, user: 'postgres' });
  for (;;) {
    signal.throwIfAborted();
    const r = await psql('SELECT pg_is_in_recovery()');
    if (r.exitCode === 0 && r.stdout.trim() === 'f') break;
    const alive = await sandbox.exec([`${server.bin}/pg_ctl`, 'status', '-D', DATA_DIR], { signal, user: 'postgres' });
    if (alive.exitCode !== 0) {
      const log = await sandbox.exec(['tail', '-c', '6000', server.logFile], { signal, user: 'postgres' });
      throw recoveryFailure(log.stdout, recovery, gap, set);
    }
    if (Date.now() > deadline) {
      throw new VerificationError('timeout', `WAL replay did not end within ${Math.round(ctx.policy.postgres.recoveryTimeoutMs / 1000)} s (postgres.recoveryTimeout); the last answer: ${lastLines(r.stderr || r.stdout, 1)}`);
    }
    await new Promise((res) => setTimeout(res, 500));
  }
  const facts = await psql(
    "SELECT pg_last_wal_replay_lsn(), coalesce(to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), ''), (SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datallowconn AND NOT datistemplate)",
  );
  if (facts.exitCode !== 0) throw new VerificationError('sandbox_failed', `reading the replay's end failed: ${lastLines(facts.stderr, 1)}`);
  const [lsn = '', commit = '', dbs = ''] = facts.stdout.trim().split('|');
  const log = await sandbox.exec(['tail', '-c', '20000', server.logFile], { signal, user: 'postgres' });
  const stopLine = /recovery stopping (?:before|after) [^\n]*/.exec(log.stdout)?.[0];
  const endSegment = lsn ? segmentName(set.archiveStart.slice(0, 8), segnoOfLsn(lsn, segmentBytes), segmentBytes) : '';

  const header: Record<string, string> = {
    ...ownHeader,
    recovery: describeRecovery(recovery),
    walArchived: segments.length > 0 ? `${segments[0]!.name} to ${segments.at(-1)!.name} (${segments.length} segments)` : 'none',
  };
  if (set.references.length > 0) header.references = set.references.join(', ');
  const summary: Record<string, string> = { recoveredToLsn: lsn, walReplayedThrough: endSegment };
  if (commit) summary.lastReplayedCommit = commit;
  if (stopLine) summary.recoveryStopped = truncate(stopLine, 200);
  summary.replaySeconds = ((Date.now() - started) / 1000).toFixed(1);
  const reasons: Reason[] = [];
  if (gap && recovery === 'latest') {
    const newest = segments.filter((s) => s.timeline === gap.timeline).at(-1)!;
    reasons.push({
      code: 'wal_gap',
      message: `WAL segment ${gap.name} is missing from the archive: replay stopped at ${lsn}${commit ? ` (last commit ${commit})` : ''}, and ${Number(newest.segno - gap.segno)} later segment(s), up to ${newest.name}, cannot be replayed`,
    });
  }
  // A sampled time restores older data on purpose: the RPO stays the newest backup's age.
  const dataAsOf = commit && recovery !== 'immediate' && !(typeof recovery === 'object' && recovery.sampled) ? new Date(commit) : undefined;
  return { header, summary, reasons, ...(dataAsOf ? { dataAsOf } : {}), databases: dbs.split(',').filter(Boolean) };
}

/** An ISO instant as recovery_target_time takes it: PostgreSQL rejects the "Z" of ISO 8601 there. */
export function postgresTime(iso: string): string {
  return iso.replace('T', ' ').replace(/Z$/, '+00');
}

function describeRecovery(recovery: RecoveryTarget): string {
  if (recovery === 'latest') return 'latest: to the end of the WAL archive';
  if (recovery === 'immediate') return 'immediate: until the backup is consistent';
  return describeTime(recovery);
}

/** Why the server stopped during recovery, from its log. */
function recoveryFailure(log: string, recovery: RecoveryTarget, gap: Segment | undefined, set: ReplayedBackup): VerificationError {
  const fatal = [...log.matchAll(/(?:FATAL|PANIC):\s+([^\n]*)/g)].map((m) => m[1]!).at(-1) ?? lastLines(log, 1);
  if (/recovery ended before configured recovery target was reached/.test(log)) {
    if (gap) return new VerificationError('wal_gap', `WAL segment ${gap.name} is missing from the archive: replay stopped there, before the recovery target ${describeRecovery(recovery)}`);
    return new VerificationError('restore_failed', `the WAL archive ends before the recovery target (${describeRecovery(recovery)}): the newest archived WAL does not reach it`);
  }
  if (/requested recovery stop point is before consistent recovery point/.test(log)) {
    return new VerificationError('restore_failed', `the recovery target (${describeRecovery(recovery)}) is before backup ${set.label} became consistent (${set.stoppedAt.toISOString()})`);
  }
  if (/could not locate required checkpoint record|WAL ends before end of online backup|invalid checkpoint record/.test(log)) {
    return new VerificationError('wal_gap', `PostgreSQL could not replay the WAL backup ${set.label} needs (${set.archiveStart} to ${set.archiveStop}): ${truncate(fatal, 200)}`);
  }
  if (/out of memory|could not (fork|map)|No space left/i.test(log)) return new VerificationError('sandbox_failed', `PostgreSQL stopped during WAL replay: ${truncate(fatal, 200)}`);
  return new VerificationError('restore_failed', `PostgreSQL stopped during WAL replay of ${set.label}: ${truncate(fatal, 300)}`);
}

export interface Segment {
  name: string;
  timeline: string;
  segno: bigint;
}

/** Archived WAL segments (`<24 hex>-<sha1>[.gz|...]`) from a `find` listing, in order. */
export function archivedSegments(listing: string, segmentBytes = 16 * 1024 * 1024): Segment[] {
  const out: Segment[] = [];
  for (const line of listing.split('\n')) {
    const base = line.trim().split('/').at(-1) ?? '';
    const m = /^([0-9A-F]{8})([0-9A-F]{16})(?:-[0-9a-f]{40})?(?:\.(?:gz|bz2|lz4|zst|xz))?$/.exec(base);
    if (!m) continue;
    const name = `${m[1]}${m[2]}`;
    out.push({ name, timeline: m[1]!, segno: segnoOf(name, segmentBytes) });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The first segment missing on the backup's timeline between its first segment and the newest
 * archived one (segments are recomputed with the cluster's segment size).
 */
export function firstGap(set: Pick<BackupSet, 'archiveStart'>, segments: Segment[], segmentBytes: number): Segment | undefined {
  const timeline = set.archiveStart.slice(0, 8);
  const start = segnoOf(set.archiveStart, segmentBytes);
  const have = new Set(segments.filter((s) => s.timeline === timeline).map((s) => segnoOf(s.name, segmentBytes)));
  let newest = -1n;
  for (const n of have) if (n > newest) newest = n;
  for (let n = start; n <= newest; n++) if (!have.has(n)) return { name: segmentName(timeline, n, segmentBytes), timeline, segno: n };
  return undefined;
}

/** A segment name's number: log id x segments per log id + segment. */
export function segnoOf(name: string, segmentBytes: number): bigint {
  const perLog = 0x100000000n / BigInt(segmentBytes);
  return BigInt(`0x${name.slice(8, 16)}`) * perLog + BigInt(`0x${name.slice(16, 24)}`);
}

export function segnoOfLsn(lsn: string, segmentBytes: number): bigint {
  const [hi = '0', lo = '0'] = lsn.split('/');
  return ((BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`)) / BigInt(segmentBytes);
}

export function segmentName(timeline: string, segno: bigint, segmentBytes: number): string {
  const perLog = 0x100000000n / BigInt(segmentBytes);
  const hex = (n: bigint) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${timeline}${hex(segno / perLog)}${hex(segno % perLog)}`;
}

export function lastLines(text: string, n: number): string {
  return truncate(
    text
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .slice(-n)
      .join(' | '),
    400,
  );
}
