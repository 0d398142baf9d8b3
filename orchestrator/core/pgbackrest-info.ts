/**
 * pgBackRest's info files (`backup.info`, `archive.info`, and their `.copy` twins): INI sections
 * whose values are JSON. Read here without pgBackRest, so a host needs no pgBackRest to list a
 * repository, and so the restorer can read the copy it receives before anything runs.
 */
export type InfoFile = Map<string, Map<string, unknown>>;

/** Sections and their keys; a value that is not JSON is kept as its text. */
export function parseInfoFile(text: string): InfoFile {
  const sections: InfoFile = new Map();
  let current: Map<string, unknown> | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const section = /^\[([^\]]+)\]$/.exec(line);
    if (section) {
      const name = section[1]!;
      current = sections.get(name) ?? new Map<string, unknown>();
      sections.set(name, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq <= 0) continue;
    const value = line.slice(eq + 1);
    let parsed: unknown = value;
    try {
      parsed = JSON.parse(value);
    } catch {
      // a bare word: keep the text
    }
    current.set(line.slice(0, eq), parsed);
  }
  return sections;
}

/** One backup set as backup.info describes it. */
export interface BackupSet {
  label: string;
  type: 'full' | 'diff' | 'incr';
  /** Older sets this one takes unchanged files from (diff and incr). */
  references: string[];
  prior?: string;
  /** First and last WAL segment the backup needs to be consistent. */
  archiveStart: string;
  archiveStop: string;
  lsnStart?: string;
  lsnStop?: string;
  startedAt: Date;
  stoppedAt: Date;
  /** The database's size, and this set's size in the repository (with what it references). */
  databaseBytes: number;
  repoBytes: number;
  dbId: number;
  backrestVersion: string;
  /** true: pgBackRest recorded an error in the backup (page checksums). */
  error: boolean;
}

/** The backup sets of a backup.info, oldest first; sets it cannot read are skipped. */
export function backupSets(info: InfoFile): BackupSet[] {
  const sets: BackupSet[] = [];
  for (const [label, value] of info.get('backup:current') ?? []) {
    if (typeof value !== 'object' || value === null) continue;
    const v = value as Record<string, unknown>;
    const type = v['backup-type'];
    const start = Number(v['backup-timestamp-start']);
    const stop = Number(v['backup-timestamp-stop']);
    if ((type !== 'full' && type !== 'diff' && type !== 'incr') || !Number.isFinite(start) || !Number.isFinite(stop)) continue;
    sets.push({
      label,
      type,
      references: Array.isArray(v['backup-reference']) ? v['backup-reference'].filter((r): r is string => typeof r === 'string') : [],
      ...(typeof v['backup-prior'] === 'string' ? { prior: v['backup-prior'] } : {}),
      archiveStart: String(v['backup-archive-start'] ?? ''),
      archiveStop: String(v['backup-archive-stop'] ?? ''),
      ...(typeof v['backup-lsn-start'] === 'string' ? { lsnStart: v['backup-lsn-start'] } : {}),
      ...(typeof v['backup-lsn-stop'] === 'string' ? { lsnStop: v['backup-lsn-stop'] } : {}),
      startedAt: new Date(start * 1000),
      stoppedAt: new Date(stop * 1000),
      databaseBytes: Number(v['backup-info-size'] ?? 0),
      repoBytes: Number(v['backup-info-repo-size'] ?? 0),
      dbId: Number(v['db-id'] ?? 0),
      backrestVersion: String(v['backrest-version'] ?? ''),
      error: v['backup-error'] === true,
    });
  }
  return sets.sort((a, b) => a.label.localeCompare(b.label));
}

/** The PostgreSQL major and system id of every db-id in an info file's history. */
export function databaseHistory(info: InfoFile): Map<number, { version: string; systemId: string }> {
  const out = new Map<number, { version: string; systemId: string }>();
  for (const [id, value] of info.get('db:history') ?? []) {
    if (typeof value !== 'object' || value === null) continue;
    const v = value as Record<string, unknown>;
    // backup.info names the system id db-system-id; archive.info (historically) db-id.
    const systemId = v['db-system-id'] ?? v['db-id'];
    out.set(Number(id), { version: String(v['db-version'] ?? ''), systemId: String(systemId ?? '') });
  }
  return out;
}

/** The archive folder of a db-id: `<major>-<db-id>`, e.g. `15-1`. */
export function archiveIdOf(version: string, dbId: number): string {
  return `${version}-${dbId}`;
}

/**
 * The sets and database history of one stanza from what `pgbackrest info --output=json` printed
 * (undefined when that is not its JSON): how an encrypted repository is read (its info files are
 * ciphertext; pgBackRest decrypts them).
 */
export function infoFromJson(text: string, stanza: string): { sets: BackupSet[]; databases: Map<number, { version: string; systemId: string }> } | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(json)) return undefined;
  const entry = json.find((e) => typeof e === 'object' && e !== null && (e as { name?: unknown }).name === stanza) as Record<string, unknown> | undefined;
  if (!entry) return undefined;
  const databases = new Map<number, { version: string; systemId: string }>();
  for (const db of Array.isArray(entry.db) ? entry.db : []) {
    const d = db as Record<string, unknown>;
    databases.set(Number(d.id), { version: String(d.version ?? ''), systemId: String(d['system-id'] ?? '') });
  }
  const sets: BackupSet[] = [];
  for (const b of Array.isArray(entry.backup) ? entry.backup : []) {
    const v = b as Record<string, Record<string, unknown> | unknown>;
    const field = (o: unknown, k: string): unknown => (typeof o === 'object' && o !== null ? (o as Record<string, unknown>)[k] : undefined);
    const type = v.type;
    const start = Number(field(v.timestamp, 'start'));
    const stop = Number(field(v.timestamp, 'stop'));
    if ((type !== 'full' && type !== 'diff' && type !== 'incr') || typeof v.label !== 'string' || !Number.isFinite(start) || !Number.isFinite(stop)) continue;
    const lsnStart = field(v.lsn, 'start');
    const lsnStop = field(v.lsn, 'stop');
    sets.push({
      label: v.label,
      type,
      references: Array.isArray(v.reference) ? v.reference.filter((r): r is string => typeof r === 'string') : [],
      ...(typeof v.prior === 'string' ? { prior: v.prior } : {}),
      archiveStart: String(field(v.archive, 'start') ?? ''),
      archiveStop: String(field(v.archive, 'stop') ?? ''),
      ...(typeof lsnStart === 'string' ? { lsnStart } : {}),
      ...(typeof lsnStop === 'string' ? { lsnStop } : {}),
      startedAt: new Date(start * 1000),
      stoppedAt: new Date(stop * 1000),
      databaseBytes: Number(field(v.info, 'size') ?? 0),
      repoBytes: Number(field(field(v.info, 'repository'), 'size') ?? 0),
      dbId: Number(field(v.database, 'id') ?? 0),
      backrestVersion: String(field(v.backrest, 'version') ?? ''),
      error: v.error === true,
    });
  }
  return { sets: sets.sort((a, b) => a.label.localeCompare(b.label)), databases };
}

/** pgBackRest's encrypted files begin with OpenSSL's salt header. */
export function isCiphertext(bytes: string | Buffer): boolean {
  return (typeof bytes === 'string' ? bytes : bytes.toString('latin1')).startsWith('Salted__');
}
