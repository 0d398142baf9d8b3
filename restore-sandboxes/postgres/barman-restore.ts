import type { Readable } from 'node:stream';
import { majorOf, parseBarmanInfo } from '../../orchestrator/core/barman-info.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { restoreTarget } from '../../orchestrator/core/config-types.js';
import type { RestoreContext } from '../restorer.js';
import { DATA_DIR, DATA_ROOT } from './cluster.js';
import { archivedSegments, physicalExec, postgresTime, replayToTarget, requireSameMajor, unpackInPlaceOfEmptyCluster, type PhysicalRestore, type PhysicalServer } from './physical-replay.js';

/**
 * Physical PostgreSQL backups kept by barman (the barman source): the stream is a tar of the
 * backup's folder (`base/<id>/backup.info` first, then its `data/`) and the archived WAL from the
 * backup's first segment on (`wals/...`, each file compressed as barman keeps it). In the sandbox
 * the data folder becomes the cluster's data directory, a restore_command of backproof's own
 * fetches (and decompresses) segments from the unpacked archive, and PostgreSQL replays to the
 * policy's target (physical-replay.ts); barman itself is not needed in the image.
 */

const STAGE = `${DATA_ROOT}/backproof-barman`;
const RESTORE_WAL = '/tmp/backproof-restore-wal.sh';
/** The folders of a PostgreSQL data directory that may be empty (so not in a stream of files). */
const PG_FOLDERS = [
  'pg_wal/archive_status', 'pg_commit_ts', 'pg_dynshmem', 'pg_logical/mappings', 'pg_logical/snapshots', 'pg_multixact/members',
  'pg_multixact/offsets', 'pg_notify', 'pg_replslot', 'pg_serial', 'pg_snapshots', 'pg_stat', 'pg_stat_tmp', 'pg_subtrans', 'pg_tblspc', 'pg_twophase', 'pg_xact',
];

export interface BarmanStream {
  id: string;
  major?: number;
}

/** Recognises the stream by its first tar member: `base/<id>/backup.info` with barman's keys. */
export function detectBarmanStream(head: Buffer): BarmanStream | undefined {
  if (head.length < 512 || head.subarray(257, 262).toString('latin1') !== 'ustar') return undefined;
  const nul = head.indexOf(0);
  const name = head.subarray(0, nul >= 0 && nul < 100 ? nul : 100).toString('utf8');
  const m = /^base\/([^/]+)\/backup\.info$/.exec(name);
  if (!m) return undefined;
  const size = parseInt(head.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim(), 8);
  if (!Number.isFinite(size)) return undefined;
  const info = parseBarmanInfo(m[1]!, head.subarray(512, 512 + Math.min(size, head.length - 512)).toString('utf8'));
  if (!info) return undefined;
  const major = majorOf(info.version);
  return { id: m[1]!, ...(major ? { major } : {}) };
}

export async function restoreBarman(ctx: RestoreContext<'postgres'>, stream: Readable, found: BarmanStream, server: PhysicalServer): Promise<PhysicalRestore> {
  const recovery = restoreTarget(ctx.policy.postgres.recovery);
  const exec = physicalExec(ctx);
  requireSameMajor(found.major, server, stream);
  await unpackInPlaceOfEmptyCluster(exec, server, stream, STAGE);
  const base = `${STAGE}/base/${found.id}`;
  const info = parseBarmanInfo(found.id, (await exec(['cat', `${base}/backup.info`], 'reading backup.info')).stdout);
  if (!info) throw new VerificationError('restore_failed', `backup.info of barman backup ${found.id} names no WAL range`);
  const dataFolder = await dataFolderOf(exec, base, found.id, info.tablespaces.map((t) => t.oid));
  await exec(['mv', dataFolder, DATA_DIR], 'moving the data folder into place');
  // The stream carries files, not empty folders: PostgreSQL's own are made again. pg_basebackup
  // and rsync copies carry no pid file; a data folder copied by hand might. Production's ALTER
  // SYSTEM settings (postgresql.auto.conf, read after backproof's configuration) are set aside,
  // as its postgresql.conf is: a restore_command or preloaded library there is not ours.
  await exec(
    ['sh', '-c', 'cd "$0" && mkdir -p "$@" && chmod 700 . && rm -f postmaster.pid postmaster.opts && { [ ! -f postgresql.auto.conf ] || mv postgresql.auto.conf postgresql.auto.conf.production; } && : > recovery.signal', DATA_DIR, ...PG_FOLDERS],
    'preparing the data folder',
  );
  // Tablespaces outside the data directory: barman keeps each in base/<id>/<oid>/; pg_tblspc's
  // link (not in the stream, which carries no links) is made again to point there.
  for (const t of info.tablespaces) {
    const dir = `${base}/${t.oid}`;
    const there = await exec(['test', '-d', dir], `looking for tablespace ${t.name}`, { ok: true });
    if (there.exitCode !== 0) throw new VerificationError('restore_failed', `barman backup ${found.id} lists tablespace ${t.name} (oid ${t.oid}, ${t.location}), but the backup holds no ${t.oid}/ folder for it: the backup is incomplete`);
    await exec(['ln', '-sfn', dir, `${DATA_DIR}/pg_tblspc/${t.oid}`], `linking tablespace ${t.name}`);
  }
  // A tar-format backup carries tablespace_map, from which PostgreSQL makes the links again at
  // the start of recovery: it names production's locations, so it is written with ours.
  if (info.tablespaces.length > 0) {
    const map = info.tablespaces.map((t) => `${t.oid} ${base}/${t.oid}\n`).join('');
    await exec(['sh', '-c', '[ ! -f "$0" ] || printf "%s" "$1" > "$0"', `${DATA_DIR}/tablespace_map`, map], 'rewriting tablespace_map');
  }
  // restore_command: the segment from the unpacked archive, decompressed by its magic bytes; a
  // segment not archived yet from what barman streamed (whole, else the .partial being written,
  // whose records end where streaming stopped: PostgreSQL ends recovery there).
  const script = [
    `f="${STAGE}/wals/$(printf %s "$1" | cut -c1-16)/$1"`,
    `[ -f "$f" ] || f="${STAGE}/streaming/$1"`,
    `[ -f "$f" ] || f="${STAGE}/streaming/$1.partial"`,
    '[ -f "$f" ] || exit 1',
    'case "$(head -c 3 "$f" | od -An -tx1 | tr -d " \\n")" in',
    '  1f8b*) gzip -dc "$f" > "$2" ;;',
    '  425a68) bzip2 -dc "$f" > "$2" ;;',
    '  *) cp "$f" "$2" ;;',
    'esac',
  ].join('\n');
  await exec(['sh', '-c', 'printf "%s\\n" "$1" > "$0" && chmod 700 "$0"', RESTORE_WAL, script], 'writing the restore command');
  const listing = (await exec(['find', `${STAGE}/wals`, `${STAGE}/streaming`, '-type', 'f'], 'listing the WAL archive', { ok: true })).stdout;
  const segments = [...new Map(archivedSegments(listing.replace(/\.partial$/gm, '')).map((s) => [s.name, s])).values()];
  // The driver streams a .partial only when its segment is not archived whole.
  const partial = listing
    .split('\n')
    .map((l) => l.trim().split('/').at(-1) ?? '')
    .filter((n) => /^[0-9A-F]{24}\.partial$/.test(n))
    .sort()
    .at(-1);
  const target =
    recovery === 'latest' ? [] : recovery === 'immediate' ? ["recovery_target = 'immediate'"] : [`recovery_target_time = '${postgresTime(recovery.time)}'`];
  const confLines = [`restore_command = 'sh ${RESTORE_WAL} %f %p'`, ...target, ...(target.length > 0 ? ["recovery_target_action = 'promote'"] : [])];
  const set = { label: found.id, type: 'full' as const, archiveStart: info.beginWal, archiveStop: info.endWal, stoppedAt: info.endTime, references: [] };
  const header: Record<string, string> = {
    tool: 'barman',
    backupId: found.id,
    backupStatus: info.status,
    backupStoppedAt: info.endTime.toISOString(),
  };
  if (info.tablespaces.length > 0) header.tablespaces = info.tablespaces.map((t) => `${t.name} (oid ${t.oid}, was ${t.location})`).join(', ');
  if (partial) header.walStreamed = `${partial}: the segment barman was streaming, not archived yet; replay reads it up to where streaming stopped`;
  return replayToTarget(ctx, server, set, segments, header, confLines);
}

/** pg_basebackup's tar format, as barman keeps it with `backup_compression`: `base.tar[.gz|.bz2|.zst]`, a tablespace's `<oid>.tar...`. */
const TAR_MEMBER = /^(base|\d+)\.tar(?:\.(gz|bz2|zst|lz4))?$/;
const TAR_FLAG: Record<string, string[]> = { '': [], gz: ['-z'], bz2: ['-j'], zst: ['--zstd'] };

/**
 * The backup's data folder: `data/` itself (barman's plain copy, rsync or pg_basebackup's plain
 * format), or, with `backup_compression`, `data/base.tar.gz` (or .bz2, .zst) unpacked beside it.
 */
async function dataFolderOf(exec: ReturnType<typeof physicalExec>, base: string, id: string, tablespaceOids: readonly number[]): Promise<string> {
  const plain = await exec(['test', '-f', `${base}/data/PG_VERSION`], 'looking for the data folder', { ok: true });
  if (plain.exitCode === 0) return `${base}/data`;
  const listing = await exec(['ls', '-1', `${base}/data`], 'listing the backup', { ok: true });
  const tars = listing.stdout.split('\n').map((l) => l.trim()).filter((n) => TAR_MEMBER.test(n));
  const baseTar = tars.find((n) => n.startsWith('base.'));
  if (!baseTar) throw new VerificationError('restore_failed', `barman backup ${id} has no data folder with PG_VERSION and no base.tar: the backup is incomplete`);
  const into = `${base}/pgdata`;
  await unpackTar(exec, id, base, baseTar, into);
  // A tablespace's tar (<oid>.tar.gz) goes where a plain backup keeps it: base/<id>/<oid>/.
  for (const name of tars.filter((n) => !n.startsWith('base.'))) {
    const oid = Number(TAR_MEMBER.exec(name)![1]);
    if (!tablespaceOids.includes(oid)) throw new VerificationError('restore_failed', `barman backup ${id} holds ${name}, a tablespace its backup.info does not list`);
    await unpackTar(exec, id, base, name, `${base}/${oid}`);
  }
  const version = await exec(['test', '-f', `${into}/PG_VERSION`], 'looking for PG_VERSION', { ok: true });
  if (version.exitCode !== 0) throw new VerificationError('restore_failed', `barman backup ${id}: ${baseTar} holds no PG_VERSION: it is not a PostgreSQL data directory`);
  return into;
}

/** Unpacks `data/<name>` (a pg_basebackup tar, compressed by its suffix) into `into`. */
async function unpackTar(exec: ReturnType<typeof physicalExec>, id: string, base: string, name: string, into: string): Promise<void> {
  const suffix = TAR_MEMBER.exec(name)![2] ?? '';
  const flag = TAR_FLAG[suffix];
  if (!flag) throw new VerificationError('unsupported_format', `barman backup ${id} is compressed with ${suffix} (${name}), which the sandbox image cannot unpack: use backup_compression gzip, bzip2 or zstd`);
  const unpacked = await exec(
    ['sh', '-c', 'd="$0" f="$1"; shift; mkdir -p "$d" && tar -x -f "$f" -C "$d" --no-same-owner --no-same-permissions "$@"', into, `${base}/data/${name}`, ...flag],
    `unpacking ${name}`,
    { ok: true },
  );
  if (unpacked.exitCode !== 0) {
    // tar's last words ("Error is not recoverable") say less than gzip's before them.
    const lines = unpacked.stderr.split('\n').map((l) => l.trim()).filter((l) => l && !/not recoverable|Child returned status/.test(l));
    const said = [...new Set(lines)].slice(-2).join('; ') || `exit ${unpacked.exitCode}`;
    throw new VerificationError('restore_failed', `barman backup ${id}: unpacking ${name} failed: ${said.slice(0, 300)}`);
  }
}
