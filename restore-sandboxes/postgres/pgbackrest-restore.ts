import type { Readable } from 'node:stream';
import type { PostgresRecovery } from '../../orchestrator/core/config-types.js';
import type { Reason } from '../../orchestrator/core/domain.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { backupSets, parseInfoFile, type BackupSet } from '../../orchestrator/core/pgbackrest-info.js';
import { truncate } from '../bytes.js';
import type { RestoreContext } from '../restorer.js';
import { DATA_DIR, DATA_ROOT } from './cluster.js';

/**
 * Physical PostgreSQL backups made by pgBackRest, restored by pgBackRest itself inside the
 * sandbox and brought up by the sandbox's PostgreSQL replaying the archived WAL.
 *
 * The stream (drivers/pgbackrest) is a tar of the repository's part a restore needs; its first
 * member is the stanza's `archive.info`, which is how it is recognised here and where the
 * PostgreSQL major is read before the sandbox is chosen. In the sandbox: the tar is unpacked into
 * the run's volume, `pgbackrest restore` writes the backup set into the data directory (checking
 * every file against the set's manifest), and PostgreSQL starts on it with a configuration of
 * backproof's own (the production postgresql.conf, pg_hba.conf and preloaded libraries are not
 * used; archiving is off; no hot standby, so nothing is read before replay has ended), replays
 * the archived WAL to the target, and promotes.
 *
 * A gap in the WAL archive is found from the archive's own listing: PostgreSQL treats the first
 * missing segment as the end of the archive and promotes there without a word, and
 * `pgbackrest verify` (2.45) does not report it either; a missing segment before the newest one
 * archived is a `wal_gap` naming it, with what the replay reached.
 */

export const PGBACKREST_REPO = `${DATA_ROOT}/backproof-pgbackrest`;
const TABLESPACES = `${DATA_ROOT}/backproof-tablespaces`;
const CONF = '/tmp/backproof-postgresql.conf';
const HBA = '/tmp/backproof-pg_hba.conf';

export interface PgbackrestStream {
  stanza: string;
  /** The PostgreSQL major of the stanza's current database, from archive.info. */
  major?: number;
}

/** Recognises the driver's stream from its first tar member: the stanza's archive.info. */
export function detectPgbackrestStream(head: Buffer): PgbackrestStream | undefined {
  if (head.length < 512) return undefined;
  const name = cString(head.subarray(0, 100));
  const m = /^archive\/([A-Za-z0-9_.-]+)\/archive\.info$/.exec(name);
  if (!m) return undefined;
  const size = parseInt(cString(head.subarray(124, 136)).trim(), 8);
  if (!Number.isFinite(size)) return undefined;
  const body = head.subarray(512, 512 + Math.min(size, head.length - 512)).toString('utf8');
  if (!body.startsWith('[backrest]')) return undefined;
  const version = parseInfoFile(body).get('db')?.get('db-version');
  const major = typeof version === 'string' || typeof version === 'number' ? parseInt(String(version), 10) : NaN;
  return { stanza: m[1]!, ...(Number.isFinite(major) ? { major } : {}) };
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString('latin1');
}

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

interface Exec {
  (argv: string[], what: string, opts?: { stdin?: Readable; ok?: boolean }): Promise<{ exitCode: number; stdout: string; stderr: string }>;
}

/** Restores the stream into DATA_DIR and brings the cluster up at the policy's recovery target. */
export async function restorePgbackrest(
  ctx: RestoreContext<'postgres'>,
  stream: Readable,
  found: PgbackrestStream,
  server: { bin: string; major: number; socketDir: string; logFile: string; serverOptions: string },
): Promise<PhysicalRestore> {
  const { sandbox, signal } = ctx;
  const recovery = ctx.policy.postgres.recovery;
  const exec: Exec = async (argv, what, opts = {}) => {
    const r = await sandbox.exec(argv, { signal, user: 'postgres', ...(opts.stdin ? { stdin: opts.stdin } : {}) });
    if (r.exitCode !== 0 && !opts.ok) throw new VerificationError('sandbox_failed', `${what} failed in the sandbox (exit ${r.exitCode}): ${lastLines(r.stderr || r.stdout, 2)}`);
    return r;
  };
  if (found.major !== undefined && found.major !== server.major) {
    stream.destroy();
    throw new VerificationError(
      'unsupported_format',
      `the backup is of PostgreSQL ${found.major}; a physical backup restores only into the same major, and this sandbox runs ${server.major}: build backproof/postgres:${found.major} (backproof images build postgres:${found.major}) and leave sandbox.image unset, or set sandbox.image to a PostgreSQL ${found.major} image with pgBackRest`,
    );
  }
  const version = await exec(['pgbackrest', 'version'], 'pgbackrest', { ok: true }).catch(() => undefined);
  if (!version || version.exitCode !== 0) {
    stream.destroy();
    throw new VerificationError('sandbox_failed', `image ${sandbox.image} has no pgbackrest; rebuild it (backproof images build postgres:${server.major}) or set sandbox.image to a PostgreSQL image with pgBackRest`);
  }
  // The empty cluster prepare() started is replaced by the backup's.
  await exec([`${server.bin}/pg_ctl`, 'stop', '-D', DATA_DIR, '-m', 'immediate', '-w'], 'stopping the empty cluster', { ok: true });
  await exec(['rm', '-rf', DATA_DIR], 'removing the empty cluster');
  await exec(['mkdir', '-p', PGBACKREST_REPO], 'making the repository folder');
  const untar = await exec(['tar', '-x', '-f', '-', '-C', PGBACKREST_REPO, '--no-same-owner', '--no-same-permissions'], 'unpacking', { stdin: stream, ok: true });
  if (untar.exitCode !== 0) {
    const words = lastLines(untar.stderr, 2);
    if (/unexpected EOF|unexpected end/i.test(words)) throw new VerificationError('truncated_dump', `the repository stream ends early: ${words}`);
    throw new VerificationError('restore_failed', `unpacking the repository stream failed: ${words}`);
  }
  const stanzaBackup = `${PGBACKREST_REPO}/backup/${found.stanza}`;
  const info = await exec(['cat', `${stanzaBackup}/backup.info`], 'reading backup.info');
  const sets = backupSets(parseInfoFile(info.stdout));
  const manifests = await exec(['find', stanzaBackup, '-mindepth', '2', '-maxdepth', '2', '-name', 'backup.manifest'], 'listing the backup sets');
  const present = new Set(manifests.stdout.split('\n').map((l) => l.split('/').at(-2) ?? '').filter(Boolean));
  const set = sets.filter((s) => present.has(s.label)).at(-1);
  if (!set) throw new VerificationError('restore_failed', `the repository stream holds no backup set that backup.info lists (sets present: ${[...present].join(', ') || 'none'})`);
  const missingRefs = set.references.filter((r) => !present.has(r));
  if (missingRefs.length > 0) {
    throw new VerificationError('restore_failed', `backup ${set.label} (${set.type}) takes files from ${missingRefs.join(', ')}, which the repository does not hold: the chain is broken`);
  }
  const archived = await exec(['find', `${PGBACKREST_REPO}/archive/${found.stanza}`, '-type', 'f'], 'listing the WAL archive');
  const segments = archivedSegments(archived.stdout);

  const args = [
    '--no-config',
    `--stanza=${found.stanza}`,
    `--repo1-path=${PGBACKREST_REPO}`,
    `--pg1-path=${DATA_DIR}`,
    '--log-path=/tmp',
    '--lock-path=/tmp',
    '--log-level-file=off',
    '--log-level-console=warn',
    '--log-level-stderr=off',
    `--set=${set.label}`,
    '--archive-mode=off',
    `--tablespace-map-all=${TABLESPACES}`,
    ...(recovery === 'latest' ? [] : recovery === 'immediate' ? ['--type=immediate', '--target-action=promote'] : ['--type=time', `--target=${postgresTime(recovery.time)}`, '--target-action=promote']),
    'restore',
  ];
  const restored = await exec(['pgbackrest', ...args], 'pgbackrest restore', { ok: true });
  if (restored.exitCode !== 0) {
    throw new VerificationError('restore_failed', `pgbackrest restore of ${set.label} failed: ${lastLines(restored.stdout + restored.stderr, 2)}`);
  }
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
  // preloaded libraries; postgresql.auto.conf (pgBackRest's recovery settings) is overridden
  // on the command line where it matters.
  await exec(['sh', '-c', `: > ${CONF} && echo 'local all all trust' > ${HBA}`], 'writing the sandbox configuration');
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
    tool: version.stdout.trim(),
    stanza: found.stanza,
    backupLabel: set.label,
    backupType: set.type,
    backupStoppedAt: set.stoppedAt.toISOString(),
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
  const dataAsOf = commit && recovery !== 'immediate' ? new Date(commit) : undefined;
  return { header, summary, reasons, ...(dataAsOf ? { dataAsOf } : {}), databases: dbs.split(',').filter(Boolean) };
}

/** An ISO instant as recovery_target_time takes it: PostgreSQL rejects the "Z" of ISO 8601 there. */
function postgresTime(iso: string): string {
  return iso.replace('T', ' ').replace(/Z$/, '+00');
}

function describeRecovery(recovery: PostgresRecovery): string {
  if (recovery === 'latest') return 'latest: to the end of the WAL archive';
  if (recovery === 'immediate') return 'immediate: until the backup is consistent';
  return `time: to ${recovery.time}`;
}

/** Why the server stopped during recovery, from its log. */
function recoveryFailure(log: string, recovery: PostgresRecovery, gap: Segment | undefined, set: BackupSet): VerificationError {
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

interface Segment {
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

function lastLines(text: string, n: number): string {
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
