/**
 * What a mariadb-backup target directory says about itself: `xtrabackup_checkpoints` (the backup's
 * type and log sequence numbers, which chain incrementals to their base) and `xtrabackup_info`
 * (versions and times). Read on the host by the mariabackup driver (listing) and again, from the
 * streamed bytes, by the restorer in the sandbox (the chain it applies): the restorer trusts only
 * what it reads itself.
 */

export interface Checkpoints {
  /** `full-backuped`, `incremental`, or after a prepare `full-prepared` / `log-applied`. */
  backupType: string;
  fromLsn: bigint;
  toLsn: bigint;
}

export interface BackupInfo {
  toolVersion?: string;
  serverVersion?: string;
  /** As written: the server's local time, without a zone. */
  startTime?: string;
  endTime?: string;
  /** `--compress` (qpress) backups say `compressed = compressed`. */
  compressed?: string;
}

/** `key = value` lines. */
function keyValues(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([a-z_]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** The checkpoints file, or undefined when it is not one (no type or no LSNs). */
export function parseCheckpoints(text: string): Checkpoints | undefined {
  const kv = keyValues(text);
  const backupType = kv.get('backup_type');
  const from = kv.get('from_lsn');
  const to = kv.get('to_lsn');
  if (!backupType || !from || !to || !/^\d+$/.test(from) || !/^\d+$/.test(to)) return undefined;
  return { backupType, fromLsn: BigInt(from), toLsn: BigInt(to) };
}

export function parseBackupInfo(text: string): BackupInfo {
  const kv = keyValues(text);
  const info: BackupInfo = {};
  const take = (key: string, as: keyof BackupInfo): void => {
    const v = kv.get(key);
    if (v) info[as] = v.slice(0, 200);
  };
  take('tool_version', 'toolVersion');
  take('server_version', 'serverVersion');
  take('start_time', 'startTime');
  take('end_time', 'endTime');
  take('compressed', 'compressed');
  return info;
}

export function isFull(c: Checkpoints): boolean {
  return c.backupType !== 'incremental' && c.fromLsn === 0n;
}

/**
 * The chain that restores `name`: its full backup, then each incremental whose from_lsn is the
 * previous one's to_lsn, ending at `name`. When a link is missing, `missing` says which LSN no
 * backup ends at, and `chain` holds what was found from `name` back.
 */
export function chainOf(backups: ReadonlyMap<string, Checkpoints>, name: string): { chain: string[]; missing?: { needs: string; fromLsn: bigint } } {
  const chain: string[] = [];
  let current = name;
  const seen = new Set<string>();
  for (;;) {
    const c = backups.get(current);
    if (!c || seen.has(current)) return { chain: chain.reverse(), missing: { needs: current, fromLsn: c?.fromLsn ?? 0n } };
    seen.add(current);
    chain.push(current);
    if (isFull(c)) return { chain: chain.reverse() };
    // The base: a backup that ends where this one starts (the newest such, if several do).
    const base = [...backups].filter(([n, b]) => n !== current && !seen.has(n) && b.toLsn === c.fromLsn).sort(([a], [b]) => (a < b ? 1 : -1))[0];
    if (!base) return { chain: chain.reverse(), missing: { needs: current, fromLsn: c.fromLsn } };
    current = base[0];
  }
}

/** MariaDB's major.minor from a version string (`10.11.6-MariaDB-0+deb12u1-log` -> `10.11`). */
export function seriesOf(version: string): string | undefined {
  return /^(\d+\.\d+)\./.exec(version.trim())?.[1];
}

/** Where the backup left off in the server's binary log: `xtrabackup_binlog_info` ("mariadb-bin.000003\t385\t0-1-2"). */
export interface BinlogPosition {
  file: string;
  position: number;
  gtid?: string;
}

/** A binary log's name: a base, a dot and a sequence number of 6+ digits (`mariadb-bin.000042`). */
const BINLOG_NAME = /^([A-Za-z0-9_.-]+)\.(\d{6,})$/;

export function parseBinlogInfo(text: string): BinlogPosition | undefined {
  const [file, position, gtid] = text.trim().split(/\s+/);
  if (!file || !BINLOG_NAME.test(file) || !position || !/^\d+$/.test(position)) return undefined;
  return { file, position: Number(position), ...(gtid ? { gtid: gtid.slice(0, 200) } : {}) };
}

/**
 * The binary logs to replay after a backup at `start`, among `names` (a folder's files): those of
 * the same base from the start file on, in order. `missing` names the first gap in their sequence
 * (the start file itself when it is absent), so that a replay never silently skips a log; `later`
 * are the logs beyond that gap, which cannot be replayed.
 */
export function binlogsFrom(start: BinlogPosition, names: readonly string[]): { files: string[]; missing?: string; later: string[] } {
  const [, base, digits] = BINLOG_NAME.exec(start.file)!;
  const from = Number(digits);
  const numbered = names
    .map((n) => BINLOG_NAME.exec(n))
    .filter((m): m is RegExpExecArray => m !== null && m[1] === base && Number(m[2]) >= from)
    .map((m) => ({ name: m[0], n: Number(m[2]) }))
    .sort((a, b) => a.n - b.n);
  let expect = from;
  for (const f of numbered) {
    if (f.n !== expect) break;
    expect++;
  }
  const files = numbered.filter((f) => f.n < expect).map((f) => f.name);
  const later = numbered.filter((f) => f.n > expect).map((f) => f.name);
  if (files.length === numbered.length && files.length > 0) return { files, later: [] };
  return { files, missing: `${base}.${String(expect).padStart(digits!.length, '0')}`, later };
}
