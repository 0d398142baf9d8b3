/**
 * barman's `base/<backup id>/backup.info`: `key=value` lines, values in Python's repr (quoted
 * strings, None). Read on the host by the barman driver and again, from the streamed bytes, by
 * the restorer in the sandbox.
 */
export interface BarmanBackup {
  id: string;
  /** DONE, WAITING_FOR_WALS, FAILED, STARTED, EMPTY... */
  status: string;
  beginWal: string;
  endWal: string;
  beginTime: Date;
  endTime: Date;
  /** PostgreSQL's server_version_num (150018). */
  version: number;
  bytes: number;
  /** barman's backup_compression (None: a plain data directory). */
  compression?: string;
  error?: string;
  mode?: string;
  /** Tablespaces outside the data directory: kept by barman in `base/<id>/<oid>/`. */
  tablespaces: Array<{ name: string; oid: number; location: string }>;
}

export function parseBarmanInfo(id: string, text: string): BarmanBackup | undefined {
  const kv = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    let value = line.slice(eq + 1).trim();
    if (/^'.*'$/.test(value)) value = value.slice(1, -1);
    kv.set(line.slice(0, eq).trim(), value);
  }
  const beginWal = kv.get('begin_wal');
  const endWal = kv.get('end_wal');
  const wal = /^[0-9A-F]{24}$/;
  if (!beginWal || !wal.test(beginWal) || !endWal || !wal.test(endWal)) return undefined;
  const time = (key: string): Date => new Date((kv.get(key) ?? '').replace(' ', 'T'));
  const beginTime = time('begin_time');
  const endTime = time('end_time');
  if (!Number.isFinite(endTime.getTime())) return undefined;
  const optional = (key: string): string | undefined => {
    const v = kv.get(key);
    return v && v !== 'None' ? v.slice(0, 300) : undefined;
  };
  const out: BarmanBackup = {
    id,
    status: kv.get('status') ?? 'UNKNOWN',
    beginWal,
    endWal,
    beginTime: Number.isFinite(beginTime.getTime()) ? beginTime : endTime,
    endTime,
    version: Number(kv.get('version') ?? 0),
    bytes: Number(kv.get('size') ?? 0) || 0,
    tablespaces: parseTablespaces(kv.get('tablespaces') ?? ''),
  };
  const compression = optional('compression');
  if (compression) out.compression = compression;
  const error = optional('error');
  if (error) out.error = error;
  const mode = optional('mode');
  if (mode) out.mode = mode;
  return out;
}

/** `[('fast', 16385, '/srv/tblspc'), ...]` (Python's repr of barman's list); None: none. */
function parseTablespaces(value: string): BarmanBackup['tablespaces'] {
  const out: BarmanBackup['tablespaces'] = [];
  for (const m of value.matchAll(/\(\s*'((?:[^'\\]|\\.)*)'\s*,\s*(\d+)\s*,\s*'((?:[^'\\]|\\.)*)'\s*\)/g)) {
    out.push({ name: m[1]!.slice(0, 200), oid: Number(m[2]), location: m[3]!.slice(0, 500) });
    if (out.length >= 1000) break;
  }
  return out;
}

/** The PostgreSQL major of a server_version_num (150018 -> 15). */
export function majorOf(versionNum: number): number | undefined {
  return Number.isFinite(versionNum) && versionNum >= 100000 ? Math.floor(versionNum / 10000) : undefined;
}

/** Backups barman itself would restore: complete, or complete and waiting for their last WAL. */
export function isRestorable(b: BarmanBackup): boolean {
  return b.status === 'DONE' || b.status === 'WAITING_FOR_WALS';
}
