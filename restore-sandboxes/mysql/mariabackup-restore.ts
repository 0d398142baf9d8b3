import type { Readable } from 'node:stream';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { describeTime, type RecoveryTarget } from '../../orchestrator/core/config-types.js';
import { binlogsFrom, chainOf, parseBackupInfo, parseBinlogInfo, parseCheckpoints, seriesOf, type BackupInfo, type Checkpoints } from '../../orchestrator/core/mariabackup-info.js';
import { truncate } from '../bytes.js';
import type { Sandbox } from '../sandbox-runtime.js';

/**
 * Physical MariaDB backups, from either of two streams:
 * - the mariabackup source's: a tar of mariadb-backup target directories, a full backup and the
 *   incrementals on top of it, each beginning with its `xtrabackup_checkpoints`;
 * - one backup as `mariadb-backup --backup --stream=xbstream` writes it (a `.xb` file, often
 *   compressed: `| gzip > shop.xb.gz`), from any driver: unpacked with the image's `mbstream -x`.
 * In the sandbox they are unpacked into the run's volume, the chain is
 * worked out again from the LSNs in the bytes (never from names), prepared in order with the
 * image's mariadb-backup (`--prepare`, then `--prepare --incremental-dir` for each incremental),
 * and a server is started on the prepared directory, with backproof's own options.
 */

/** Recognises the stream by its first tar member: `<dir>/xtrabackup_checkpoints`, starting `backup_type`. */
export function detectMariabackupStream(head: Buffer): { first: string } | undefined {
  if (head.length < 512 + 16) return undefined;
  if (head.subarray(257, 262).toString('latin1') !== 'ustar') return undefined;
  const nul = head.indexOf(0, 0);
  const name = head.subarray(0, nul >= 0 && nul < 100 ? nul : 100).toString('utf8');
  if (!/^[^/]+\/xtrabackup_checkpoints$/.test(name)) return undefined;
  if (!/^\s*backup_type\s*=/.test(head.subarray(512, 512 + 64).toString('latin1'))) return undefined;
  return { first: name.split('/')[0]! };
}

/** An xbstream (mbstream) archive: every chunk starts with this magic. */
export function isXbstream(head: Buffer): boolean {
  return head.subarray(0, 8).toString('latin1') === 'XBSTCK01';
}

export interface MariabackupServer {
  sandbox: Sandbox;
  signal: AbortSignal;
  user: string;
  /** The run's volume (the empty server's data directory, stopped before the backup is unpacked). */
  dataDir: string;
  socket: string;
  logFile: string;
  /** The sandbox server's own version: the backup must be of the same MariaDB series. */
  serverVersion: string;
  /** mariadbd's options for a data directory. */
  options: (dataDir: string) => string[];
  /** Memory for mariadb-backup --prepare. */
  prepareMemoryMb: number;
  /** The account later connections use; made again in the restored server. */
  account: string;
  /** The client's options for the empty server (to stop it): --no-defaults first, the account, the socket. */
  connection: string[];
  readinessTimeoutMs: number;
  /** How far shipped binary logs are replayed (mysql.recovery). */
  recovery: RecoveryTarget;
}

export interface PhysicalMysqlRestore {
  header: Record<string, string>;
  /** Databases of the restored server (system ones left out). */
  databases: string[];
  /** The last replayed commit, when binary logs were replayed: RPO is measured from it. */
  dataAsOf?: Date;
}

const SYSTEM = new Set(['mysql', 'sys', 'information_schema', 'performance_schema']);

export async function restoreMariabackup(stream: Readable, s: MariabackupServer, format: 'tar' | 'xbstream' = 'tar'): Promise<PhysicalMysqlRestore> {
  const { sandbox, signal, user } = s;
  const exec = (argv: string[], opts: { stdin?: Readable } = {}) => sandbox.exec(argv, { signal, user, maxOutputBytes: 256 * 1024, ...opts });
  const stage = `${s.dataDir}/.backproof-mariabackup`;

  // The empty server made by prepare() gives way to the backup's.
  const down = await exec(['mariadb-admin', ...s.connection, 'shutdown']);
  if (down.exitCode !== 0) {
    stream.destroy();
    throw new VerificationError('sandbox_failed', `stopping the sandbox's empty MariaDB failed: ${lastLine(down.stderr)}`);
  }
  // One xbstream is one backup: it goes in a directory of its own, as the tar's would.
  const into = format === 'xbstream' ? `${stage}/backup` : stage;
  const made = await exec(['mkdir', '-p', into]);
  if (made.exitCode !== 0) throw new VerificationError('sandbox_failed', `making ${into} failed: ${lastLine(made.stderr)}`);
  const unpack =
    format === 'xbstream'
      ? await exec(['mbstream', '-x', '-C', into], { stdin: stream })
      : await exec(['tar', '-x', '-f', '-', '-C', stage, '--no-same-owner', '--no-same-permissions'], { stdin: stream });
  if (unpack.exitCode !== 0) {
    const tool = format === 'xbstream' ? 'mbstream -x' : 'tar';
    throw new VerificationError('restore_failed', `unpacking the backup (${tool}) failed: ${lastLine(unpack.stderr) || `exit ${unpack.exitCode}`}`);
  }

  // Each directory's checkpoints and info, as the bytes say.
  const listing = await exec([
    'sh',
    '-c',
    'cd "$1" && for d in */; do d=${d%/}; printf "@@dir %s\\n" "$d"; cat "$d/xtrabackup_checkpoints" 2>/dev/null; printf "@@info\\n"; head -c 65536 "$d/xtrabackup_info" 2>/dev/null; done',
    'sh',
    stage,
  ]);
  const backups = new Map<string, Checkpoints>();
  const infos = new Map<string, BackupInfo>();
  for (const part of listing.stdout.split(/^@@dir /m).slice(1)) {
    const [first, ...rest] = part.split('\n');
    const [checkpoints = '', info = ''] = rest.join('\n').split(/^@@info$/m);
    const c = parseCheckpoints(checkpoints);
    if (!first || !c) continue;
    backups.set(first, c);
    infos.set(first, parseBackupInfo(info));
  }
  if (backups.size === 0) throw new VerificationError('restore_failed', 'the stream holds no mariadb-backup directory with a readable xtrabackup_checkpoints');
  // The backup asked for is the one the chain ends at: the highest LSN reached.
  const chosen = [...backups].sort(([an, a], [bn, b]) => (a.toLsn === b.toLsn ? (an < bn ? 1 : -1) : a.toLsn < b.toLsn ? 1 : -1))[0]![0];
  const { chain, missing } = chainOf(backups, chosen);
  if (missing && format === 'xbstream') {
    throw new VerificationError(
      'restore_failed',
      `the xbstream holds an incremental backup starting at LSN ${missing.fromLsn}, and its base (a backup ending at that LSN) is not in it: an incremental restores only on its base; verify the full backup, or keep the chain as target directories (source driver mariabackup)`,
    );
  }
  if (missing) {
    const others = [...backups].filter(([n]) => n !== missing.needs).map(([n, c]) => `${n} ends at ${c.toLsn}`);
    throw new VerificationError(
      'restore_failed',
      `incremental backup ${missing.needs} starts at LSN ${missing.fromLsn}, and no backup ends there (${others.length > 0 ? others.join(', ') : 'there is no other backup'}): its base is missing, so the chain is broken`,
    );
  }
  const full = chain[0]!;
  const fullInfo = infos.get(full) ?? {};
  const compressed = chain.map((n) => [n, infos.get(n)?.compressed] as const).find(([, c]) => c !== undefined && c !== 'N');
  if (compressed) {
    throw new VerificationError('unsupported_format', `backup ${compressed[0]} was made with mariadb-backup --compress (qpress), which backproof does not unpack; back up without --compress (compress the stream instead)`);
  }
  const wanted = seriesOf(fullInfo.serverVersion ?? '');
  const have = seriesOf(s.serverVersion);
  if (wanted && have && wanted !== have) {
    throw new VerificationError(
      'unsupported_format',
      `the backup is of MariaDB ${fullInfo.serverVersion}; mariadb-backup prepares only backups of its own series, and this sandbox runs ${s.serverVersion}: set sandbox.image to a MariaDB ${wanted} image with mariadb-backup`,
    );
  }

  const target = `${stage}/${full}`;
  const prepare = async (extra: string[], what: string): Promise<void> => {
    const r = await exec(['mariadb-backup', '--no-defaults', '--prepare', `--target-dir=${target}`, `--use-memory=${s.prepareMemoryMb}M`, ...extra]);
    if (r.exitCode !== 0) {
      const said = `${r.stderr}\n${r.stdout}`.split('\n').filter((l) => /error|fail|corrupt|mismatch/i.test(l)).at(-1) ?? lastLine(r.stderr);
      throw new VerificationError('restore_failed', `mariadb-backup --prepare of ${what} failed (exit ${r.exitCode}): ${truncate(said.trim(), 300)}`);
    }
  };
  await prepare([], full);
  for (const inc of chain.slice(1)) await prepare([`--incremental-dir=${stage}/${inc}`], `incremental ${inc}`);

  // The restored server, without its grant tables at first: its accounts are the client's, so
  // backproof's own account is made in it (after FLUSH PRIVILEGES turns the grants back on).
  const start = await exec(['start-stop-daemon', '--start', '--background', '--exec', '/usr/sbin/mariadbd', '--', ...s.options(target), '--skip-grant-tables']);
  if (start.exitCode !== 0) throw new VerificationError('sandbox_failed', `starting MariaDB on the prepared backup failed: ${lastLine(start.stderr)}`);
  const root = ['mariadb', '--no-defaults', '--user=root', `--socket=${s.socket}`, '-N', '-B'];
  const deadline = Date.now() + s.readinessTimeoutMs;
  for (;;) {
    const r = await exec([...root, '-e', 'SELECT 1']);
    if (r.exitCode === 0) break;
    const log = (await exec(['tail', '-c', '8000', s.logFile])).stdout;
    if (/\[ERROR\] Aborting/.test(log) || Date.now() > deadline) {
      const why = log.split('\n').find((l) => l.includes('[ERROR]')) ?? lastLine(log);
      throw new VerificationError('restore_failed', `MariaDB did not start on the prepared backup ${chosen}: ${truncate(why.trim(), 300) || 'no log'}`);
    }
    await new Promise((res) => setTimeout(res, 200));
  }
  const grant = await exec([
    ...root,
    '-e',
    `FLUSH PRIVILEGES; CREATE USER IF NOT EXISTS '${s.account}'@'localhost'; GRANT ALL PRIVILEGES ON *.* TO '${s.account}'@'localhost' WITH GRANT OPTION; SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1`,
  ]);
  if (grant.exitCode !== 0) throw new VerificationError('restore_failed', `the restored server's grant tables could not be used: ${lastLine(grant.stderr)}`);
  const replay = await replayBinlogs(exec, s, stage, chosen);
  // Databases as the replay left them (it may have made some).
  const schemata = replay.replayed ? await exec([...root.slice(0, 1), ...s.connection, '-N', '-B', '-e', 'SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1']) : grant;
  const databases = schemata.stdout.split('\n').map((l) => l.trim()).filter((d) => d && !SYSTEM.has(d.toLowerCase()));

  const top = backups.get(chosen)!;
  const header: Record<string, string> = {
    tool: `mariadb-backup ${fullInfo.toolVersion ?? ''}`.trim(),
    backup: chosen,
    backupType: top.backupType,
    chain: chain.join(' -> '),
    lsn: `${backups.get(full)!.fromLsn} to ${top.toLsn}`,
  };
  if (fullInfo.serverVersion) header.backupServerVersion = fullInfo.serverVersion;
  const endTime = infos.get(chosen)?.endTime;
  if (endTime) header.backupEndTimeServerLocal = endTime;
  Object.assign(header, replay.header);
  return { header, databases, ...(replay.dataAsOf ? { dataAsOf: replay.dataAsOf } : {}) };
}

/**
 * Replays the binary logs the stream carries (`binlogs/`, from the backup's position on) into the
 * restored server, as backproof's account, up to `recovery`: every log in sequence (a missing one
 * is `wal_gap`, naming it), `mariadb-binlog --start-position` from xtrabackup_binlog_info, then
 * `--stop-datetime` for a time target (in UTC). The last replayed commit (an Xid event's time) is
 * recorded, and the RPO measured from it.
 */
async function replayBinlogs(
  exec: (argv: string[], opts?: { stdin?: Readable }) => Promise<{ exitCode: number; stdout: string; stderr: string }>,
  s: MariabackupServer,
  stage: string,
  chosen: string,
): Promise<{ header: Record<string, string>; replayed: boolean; dataAsOf?: Date }> {
  const listing = await exec(['sh', '-c', '[ -d "$0" ] && ls -1 "$0" || true', `${stage}/binlogs`]);
  const names = listing.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  if (names.length === 0) return { header: {}, replayed: false };
  const info = parseBinlogInfo((await exec(['sh', '-c', 'head -c 4096 "$0" 2>/dev/null || true', `${stage}/${chosen}/xtrabackup_binlog_info`])).stdout);
  if (!info) return { header: { binlogs: `not replayed: backup ${chosen} records no binary log position (xtrabackup_binlog_info; binary logging was off when it was taken)` }, replayed: false };
  if (s.recovery === 'immediate') return { header: { binlogs: 'not replayed (mysql.recovery: immediate)', binlogStart: `${info.file}:${info.position}` }, replayed: false };
  const { files, missing, later } = binlogsFrom(info, names);
  if (missing) {
    const replayable = files.length > 0 ? `; ${files.length} log(s) before it could be replayed` : '';
    throw new VerificationError('wal_gap', `binary log ${missing} is missing from the archive (the backup starts at ${info.file}:${info.position}${replayable}, ${later.length} log(s) lie beyond the gap): the changes after the backup cannot all be replayed`);
  }
  const stop = typeof s.recovery === 'object' ? [`--stop-datetime=${s.recovery.time.replace('T', ' ').replace(/(\.\d+)?Z$/, '')}`] : [];
  const binlog = ['mariadb-binlog', '--no-defaults', `--start-position=${info.position}`, ...stop, ...files];
  // One pass over the logs: mariadb-binlog's output goes to the server and, through tee, to a grep
  // that keeps the last Xid event (the last commit replayed, its time in UTC) in a file under /tmp,
  // printed once the replay succeeded. bash for pipefail: a log mariadb-binlog cannot read fails
  // the replay, as a statement the server refuses does (the grep is outside the pipeline's status).
  const script = [
    'set -o pipefail; dir=$1; n=$2; shift 2; cd "$dir" || exit; out=$(mktemp) || exit',
    'exec 3> >(grep -E "^#[0-9]{6} +[0-9]{1,2}:[0-9]{2}:[0-9]{2} .*Xid = " | tail -n 1 > "$out"); xid=$!',
    'TZ=UTC "${@:1:$n}" 3>&- | tee /dev/fd/3 | mariadb "${@:$((n+1))}" 3>&- > /dev/null; rc=$?',
    'exec 3>&-; wait "$xid"; [ "$rc" -ne 0 ] || cat "$out"; rm -f "$out"; exit "$rc"',
  ].join('\n');
  const replayed = await exec(['bash', '-c', script, 'bash', `${stage}/binlogs`, String(binlog.length), ...binlog, ...s.connection]);
  if (replayed.exitCode !== 0) {
    throw new VerificationError('restore_failed', `replaying the binary logs (${files[0]} to ${files.at(-1)}) failed: ${lastLine(replayed.stderr) || `exit ${replayed.exitCode}`}`);
  }
  const m = /^#(\d\d)(\d\d)(\d\d) +(\d{1,2}):(\d\d):(\d\d)/.exec(replayed.stdout.trim());
  const commit = m ? new Date(Date.UTC(2000 + Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]))) : undefined;
  const header: Record<string, string> = {
    binlogStart: `${info.file}:${info.position}${info.gtid ? ` (GTID ${info.gtid})` : ''}`,
    binlogsReplayed: files.length === 1 ? files[0]! : `${files.length} logs, ${files[0]} to ${files.at(-1)}`,
    binlogRecovery: typeof s.recovery === 'object' ? describeTime(s.recovery) : 'latest: to the end of the last binary log',
  };
  if (commit) header.lastReplayedCommit = commit.toISOString();
  // A sampled time restores older data on purpose: the RPO stays the newest backup's age.
  const fresh = commit && !(typeof s.recovery === 'object' && s.recovery.sampled);
  return { header, replayed: true, ...(fresh ? { dataAsOf: commit } : {}) };
}

function lastLine(text: string): string {
  return truncate(text.trim().split('\n').filter(Boolean).at(-1) ?? '', 300);
}
