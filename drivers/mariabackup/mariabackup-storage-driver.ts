import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { binlogsFrom, chainOf, parseBackupInfo, parseBinlogInfo, parseCheckpoints, type BackupInfo, type Checkpoints } from '../../orchestrator/core/mariabackup-info.js';
import { ConfinedFolder } from '../local/confined-file.js';
import { confinedMember, regularFilesUnder, tarOf } from '../local/folder-tar.js';
import type { BackupDetails, BackupEntry, StorageDriver } from '../storage-driver.js';

export interface MariabackupDriverOptions {
  /** The folder whose sub-folders are mariadb-backup target directories (full and incremental). */
  path: string;
  /** A folder of the server's archived binary logs, streamed after the chain from the backup's position on. */
  binlogs?: string;
  /** A point-in-time restore's target: only backups that ended before it are listed. */
  endedBefore?: Date;
}

interface Found {
  name: string;
  checkpoints: Checkpoints;
  info: BackupInfo;
  /** When the backup ended: the mtime of its xtrabackup_checkpoints, written last. */
  endedAt: Date;
  bytes: number;
  /** Why it may not be read (its checkpoints file is a link out of the folder). */
  unsafe?: string;
}

/** Where the binary logs go in the stream. */
const BINLOGS = 'binlogs';

/** A checkpoints or info file is a few hundred bytes; a larger one is not one. */
const MAX_META_BYTES = 64 * 1024;

/**
 * Physical MariaDB backups made by mariadb-backup (`--backup --target-dir=DIR`, incrementals with
 * `--incremental-basedir`), each a sub-folder of `path` holding `xtrabackup_checkpoints`.
 *
 * - Each such folder is one backup (key: its name), newest first by the time it ended (its
 *   checkpoints file's mtime); sub-folders without a readable checkpoints file are not backups.
 * - An incremental restores on top of its chain: its base is the backup whose to_lsn is its
 *   from_lsn, back to a full one. `open()` streams the chain's folders as one tar, oldest first,
 *   each folder's `xtrabackup_checkpoints` as its first file (the restorer recognises the stream by
 *   it, re-reads every LSN and applies the chain itself); a chain with a missing link streams what
 *   there is, and the restore fails naming the link.
 * - Every file is opened confined to `path` (links out of it are `unsafe_source`; links are never
 *   followed into the stream). mariadb-backup has no verify of its own: no `check()`.
 */
export class MariabackupStorageDriver implements StorageDriver {
  readonly name = 'mariabackup';
  readonly location: string;
  private readonly root: string;
  private readonly folder: ConfinedFolder;
  private readonly binlogs?: { root: string; folder: ConfinedFolder };
  private readonly endedBefore?: Date;
  private found?: Map<string, Found>;

  constructor(opts: MariabackupDriverOptions) {
    this.root = path.resolve(opts.path);
    this.location = `mariadb-backup folder ${this.root}`;
    this.folder = new ConfinedFolder(this.root);
    if (opts.binlogs) {
      const root = path.resolve(opts.binlogs);
      this.binlogs = { root, folder: new ConfinedFolder(root) };
    }
    if (opts.endedBefore) this.endedBefore = opts.endedBefore;
  }

  async *list(signal?: AbortSignal): AsyncIterable<BackupEntry> {
    const found = await this.scan(signal);
    for (const b of [...found.values()].sort((a, b) => b.endedAt.getTime() - a.endedAt.getTime() || (a.name < b.name ? 1 : -1))) {
      if (this.endedBefore && b.endedAt.getTime() >= this.endedBefore.getTime()) continue;
      yield { key: b.name, size: b.bytes, modifiedAt: b.endedAt, takenAt: b.endedAt, ...(b.unsafe ? { unsafe: b.unsafe } : {}) };
    }
  }

  async details(entry: BackupEntry, signal?: AbortSignal): Promise<BackupDetails> {
    const found = await this.scan(signal);
    const b = this.backupOf(found, entry);
    const { chain, missing } = chainOf(this.checkpointsOf(found), b.name);
    const facts: Record<string, string> = {
      backupType: b.checkpoints.backupType,
      fromLsn: String(b.checkpoints.fromLsn),
      toLsn: String(b.checkpoints.toLsn),
      chain: chain.join(' -> '),
    };
    if (missing) facts.missingLink = `no backup in the folder ends at LSN ${missing.fromLsn}, where ${missing.needs} starts`;
    if (b.info.serverVersion) facts.serverVersion = b.info.serverVersion;
    if (b.info.toolVersion) facts.toolVersion = b.info.toolVersion;
    if (b.info.endTime) facts.endTimeServerLocal = b.info.endTime;
    // InnoDB checks every page's checksum as mariadb-backup copies and prepares it.
    return { checksums: [], unverifiable: [], facts };
  }

  async open(entry: BackupEntry, signal?: AbortSignal): Promise<Readable> {
    const found = await this.scan(signal);
    const b = this.backupOf(found, entry);
    const { chain } = chainOf(this.checkpointsOf(found), b.name);
    const files: string[] = [];
    for (const name of chain) {
      files.push(`${name}/xtrabackup_checkpoints`);
      for (const rel of await this.filesIn(name, signal)) if (rel !== `${name}/xtrabackup_checkpoints`) files.push(rel);
    }
    // The binary logs from the newest backup's position on, as `binlogs/<name>`, after the chain.
    const logs = await this.binlogsAfter(b.name, signal);
    files.push(...logs.map((n) => `${BINLOGS}/${n}`));
    return tarOf(
      files,
      (rel) => {
        const fromLogs = rel.startsWith(`${BINLOGS}/`) && this.binlogs;
        const [folder, root, name] = fromLogs ? [this.binlogs.folder, this.binlogs.root, rel.slice(BINLOGS.length + 1)] : [this.folder, this.root, rel];
        return confinedMember(folder, path.join(root, name), rel);
      },
      signal,
    );
  }

  /**
   * The archived binary logs a restore of `name` replays: from the log its xtrabackup_binlog_info
   * names on, as many as follow in sequence (a gap is left for the restorer to name, with the
   * logs before it). None without a binlogs folder or a recorded position.
   */
  private async binlogsAfter(name: string, signal?: AbortSignal): Promise<string[]> {
    if (!this.binlogs) return [];
    const info = await this.readSmall(`${name}/xtrabackup_binlog_info`);
    const start = info && parseBinlogInfo(info.text);
    if (!start) return [];
    let entries;
    try {
      await this.binlogs.folder.realRoot();
      entries = await readdir(this.binlogs.root, { withFileTypes: true });
    } catch (err) {
      throw this.unreachable(err);
    }
    signal?.throwIfAborted();
    const names = entries.filter((e) => e.isFile()).map((e) => e.name);
    // Past a gap nothing can be replayed; the logs after it go along, so that the restore, which
    // trusts only what it reads, finds the gap itself and says how many logs lie beyond it.
    const { files, later } = binlogsFrom(start, names);
    return [...files, ...later];
  }

  async close(): Promise<void> {}

  private backupOf(found: Map<string, Found>, entry: BackupEntry): Found {
    const b = found.get(entry.key);
    if (!b) throw new VerificationError('source_changed', `backup ${entry.key} is no longer in ${this.location}`);
    return b;
  }

  private checkpointsOf(found: Map<string, Found>): Map<string, Checkpoints> {
    return new Map([...found].map(([name, b]) => [name, b.checkpoints]));
  }

  private async filesIn(name: string, signal?: AbortSignal): Promise<string[]> {
    try {
      return await regularFilesUnder(this.root, name, signal);
    } catch (err) {
      throw this.unreachable(err);
    }
  }

  /** Every sub-folder that is a mariadb-backup target directory. */
  private async scan(signal?: AbortSignal): Promise<Map<string, Found>> {
    if (this.found) return this.found;
    let entries;
    try {
      await this.folder.realRoot();
      entries = await readdir(this.root, { withFileTypes: true });
    } catch (err) {
      throw this.unreachable(err);
    }
    const found = new Map<string, Found>();
    for (const e of entries.filter((d) => d.isDirectory() && !d.name.startsWith('.')).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      signal?.throwIfAborted();
      let meta;
      try {
        meta = await this.readSmall(`${e.name}/xtrabackup_checkpoints`);
      } catch (err) {
        if (!(err instanceof VerificationError && err.reason === 'unsafe_source')) throw err;
        // Listed, so that picking it fails naming the link, as a folder source does.
        const { mtime } = await lstat(path.join(this.root, e.name));
        found.set(e.name, { name: e.name, checkpoints: { backupType: 'unknown', fromLsn: 0n, toLsn: 0n }, info: {}, endedAt: mtime, bytes: 0, unsafe: err.message });
        continue;
      }
      const checkpoints = meta && parseCheckpoints(meta.text);
      if (!meta || !checkpoints) continue;
      const info = parseBackupInfo((await this.readSmall(`${e.name}/xtrabackup_info`))?.text ?? '');
      let bytes = 0;
      for (const rel of await this.filesIn(e.name, signal)) bytes += (await lstat(path.join(this.root, rel))).size;
      found.set(e.name, { name: e.name, checkpoints, info, endedAt: meta.modifiedAt, bytes });
    }
    this.found = found;
    return found;
  }

  /** A small metadata file, confined; undefined when it is missing or too big to be one. */
  private async readSmall(rel: string): Promise<{ text: string; modifiedAt: Date } | undefined> {
    let opened;
    try {
      opened = await this.folder.open(path.join(this.root, rel), rel);
    } catch (err) {
      if (err instanceof VerificationError) throw err;
      const code = (err as { code?: string }).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw this.unreachable(err);
    }
    try {
      if (opened.size > MAX_META_BYTES) return undefined;
      return { text: await opened.handle.readFile('utf8'), modifiedAt: opened.modifiedAt };
    } finally {
      await opened.handle.close().catch(() => undefined);
    }
  }

  private unreachable(err: unknown): VerificationError {
    const code = (err as { code?: string }).code;
    if (code === 'EACCES' || code === 'EPERM') return new VerificationError('source_denied', `${this.location} cannot be read by this user (${code})`);
    if (code === 'ENOENT') return new VerificationError('source_unreachable', `${this.location} does not exist; check source.path`);
    return new VerificationError('source_unreachable', `${this.location} cannot be read: ${(err as Error).message}`);
  }
}
