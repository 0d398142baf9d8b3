import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { isRestorable, majorOf, parseBarmanInfo, type BarmanBackup } from '../../orchestrator/core/barman-info.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { ConfinedFolder } from '../local/confined-file.js';
import { regularFilesUnder, tarOfFiles } from '../local/folder-tar.js';
import type { BackupDetails, BackupEntry, StorageCheck, StorageDriver } from '../storage-driver.js';

export interface BarmanDriverOptions {
  /** One barman server's folder: `<barman_home>/<server>`, holding base/ and wals/. */
  path: string;
  /** The storage_check phase: the WAL files each backup needs are all archived; false: none. */
  check?: 'wals' | false;
  /** A point-in-time restore's target: only backups that ended before it are listed. */
  endedBefore?: Date;
}

/** A WAL segment as barman keeps it: `wals/<timeline+log>/<24 hex>` (compressed or not, no suffix). */
const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{16})$/;
const MAX_INFO_BYTES = 1024 * 1024;

/**
 * A barman server's backups on this machine (`backup_method = postgres` or `rsync`, the WAL
 * archived by barman): each backup of `base/` that barman itself would restore (status DONE or
 * WAITING_FOR_WALS) is a backup, newest first by when it ended.
 *
 * - `open()` streams, as one tar, the backup's `backup.info` first (the restorer recognises the
 *   stream by it and reads the PostgreSQL version there), its `data/` folder, and the archived WAL
 *   from the backup's first segment on, with the timelines' history files, then what of the WAL
 *   streamed into `streaming/` is not archived yet (whole segments, and the `.partial` one being
 *   written). Every file is opened confined to the folder; links are never followed into the
 *   stream.
 * - `check()` is barman's `check-backup` done read-only (barman's own command records its result
 *   in the backup's backup.info and takes locks in the folder, and backproof never writes to a
 *   backup): every WAL segment from the backup's begin_wal to its end_wal must be archived.
 */
export class BarmanStorageDriver implements StorageDriver {
  readonly name = 'barman';
  readonly location: string;
  declare readonly check?: (entry: BackupEntry, signal?: AbortSignal) => Promise<StorageCheck>;
  private readonly root: string;
  private readonly folder: ConfinedFolder;
  private readonly endedBefore?: Date;
  private backups?: BarmanBackup[];

  constructor(opts: BarmanDriverOptions) {
    this.root = path.resolve(opts.path);
    this.location = `barman server folder ${this.root}`;
    this.folder = new ConfinedFolder(this.root);
    if (opts.endedBefore) this.endedBefore = opts.endedBefore;
    if ((opts.check ?? 'wals') === 'wals') this.check = (entry, signal) => this.checkWals(entry, signal);
  }

  async *list(signal?: AbortSignal): AsyncIterable<BackupEntry> {
    for (const b of [...(await this.scan(signal))].reverse()) {
      if (this.endedBefore && b.endTime.getTime() >= this.endedBefore.getTime()) continue;
      yield { key: b.id, size: b.bytes, modifiedAt: b.endTime, takenAt: b.endTime, version: b.id };
    }
  }

  async details(entry: BackupEntry, signal?: AbortSignal): Promise<BackupDetails> {
    const b = await this.backupOf(entry, signal);
    const facts: Record<string, string> = {
      backupId: b.id,
      status: b.status,
      backupStartedAt: b.beginTime.toISOString(),
      backupStoppedAt: b.endTime.toISOString(),
      walStart: b.beginWal,
      walStop: b.endWal,
    };
    const major = majorOf(b.version);
    if (major) facts.postgresMajor = String(major);
    if (b.mode) facts.mode = b.mode;
    return { checksums: [], unverifiable: [], facts };
  }

  async open(entry: BackupEntry, signal?: AbortSignal): Promise<Readable> {
    const b = await this.backupOf(entry, signal);
    const files = [`base/${b.id}/backup.info`];
    for (const rel of await this.walk(`base/${b.id}`, signal)) if (rel !== files[0]) files.push(rel);
    const archived = new Set<string>();
    for (const rel of await this.wals(signal)) {
      const base = path.posix.basename(rel);
      if (/^[0-9A-F]{8}\.history$/.test(base) || (SEGMENT.test(base) && sameOrLater(base, b.beginWal))) {
        files.push(rel);
        archived.add(base);
      }
    }
    // WAL streamed by barman's receive-wal (streaming_archiver) and not archived yet: the newest
    // changes are in the segment being written, `<segment>.partial`, and in whole segments that
    // barman cron has not moved into wals/ yet.
    for (const rel of await this.walk('streaming', signal)) {
      const base = path.posix.basename(rel);
      const name = base.replace(/\.partial$/, '');
      if (path.posix.dirname(rel) === 'streaming' && SEGMENT.test(name) && sameOrLater(name, b.beginWal) && !archived.has(name)) files.push(rel);
    }
    return tarOfFiles(this.folder, this.root, files, signal);
  }

  async close(): Promise<void> {}

  private async checkWals(entry: BackupEntry, signal?: AbortSignal): Promise<StorageCheck> {
    const b = await this.backupOf(entry, signal);
    const have = new Set((await this.wals(signal)).map((rel) => path.posix.basename(rel)));
    const problems: string[] = [];
    // barman names segments of 16 MiB; other segment sizes are rare and checked at replay.
    for (const name of segmentsBetween(b.beginWal, b.endWal)) if (!have.has(name)) problems.push(`WAL segment ${name} of backup ${b.id} is not archived in wals/`);
    const what = `the WAL backup ${b.id} needs (barman check-backup, read-only)`;
    return { what, problems: problems.slice(0, 20), summary: problems.length === 0 ? `${b.beginWal} to ${b.endWal} archived` : `${problems.length} WAL segment(s) missing` };
  }

  private async wals(signal?: AbortSignal): Promise<string[]> {
    return this.walk('wals', signal);
  }

  private async walk(rel: string, signal?: AbortSignal): Promise<string[]> {
    try {
      return await regularFilesUnder(this.root, rel, signal);
    } catch (err) {
      throw this.unreachable(err);
    }
  }

  private async backupOf(entry: BackupEntry, signal?: AbortSignal): Promise<BarmanBackup> {
    const b = (await this.scan(signal)).find((x) => x.id === entry.key);
    if (!b) throw new VerificationError('source_changed', `barman backup ${entry.key} is no longer in ${this.location} (removed by retention?)`);
    return b;
  }

  /** The restorable backups, oldest first. */
  private async scan(signal?: AbortSignal): Promise<BarmanBackup[]> {
    if (this.backups) return this.backups;
    let ids: string[];
    try {
      await this.folder.realRoot();
      ids = (await readdir(path.join(this.root, 'base'), { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') {
        throw new VerificationError('source_unreachable', `${this.location} has no base/ folder: source.path must be one barman server's folder (<barman_home>/<server>, as barman show-server lists it)`);
      }
      throw this.unreachable(err);
    }
    const out: BarmanBackup[] = [];
    for (const id of ids.sort()) {
      signal?.throwIfAborted();
      const rel = `base/${id}/backup.info`;
      let text: string;
      try {
        const { handle, size } = await this.folder.open(path.join(this.root, rel), rel);
        try {
          if (size > MAX_INFO_BYTES) continue;
          text = await handle.readFile('utf8');
        } finally {
          await handle.close().catch(() => undefined);
        }
      } catch (err) {
        if (err instanceof VerificationError) throw err;
        if ((err as { code?: string }).code === 'ENOENT') continue;
        throw this.unreachable(err);
      }
      const b = parseBarmanInfo(id, text);
      if (b && isRestorable(b)) out.push(b);
    }
    this.backups = out.sort((a, b) => a.endTime.getTime() - b.endTime.getTime());
    return this.backups;
  }

  private unreachable(err: unknown): VerificationError {
    const code = (err as { code?: string }).code;
    if (code === 'EACCES' || code === 'EPERM') return new VerificationError('source_denied', `${this.location} cannot be read by this user (${code})`);
    return new VerificationError('source_unreachable', `${this.location} cannot be read: ${(err as Error).message}`);
  }
}

/** `name` is on `start`'s timeline or a later one, and not before it on the same timeline. */
function sameOrLater(name: string, start: string): boolean {
  const tl = name.slice(0, 8);
  const startTl = start.slice(0, 8);
  return tl > startTl || (tl === startTl && name.slice(8) >= start.slice(8));
}

/** 16 MiB segments from `start` to `end` inclusive, on `start`'s timeline. */
export function segmentsBetween(start: string, end: string): string[] {
  const tl = start.slice(0, 8);
  const num = (n: string) => BigInt(`0x${n.slice(8, 16)}`) * 256n + BigInt(`0x${n.slice(16, 24)}`);
  const out: string[] = [];
  const hex = (n: bigint) => n.toString(16).toUpperCase().padStart(8, '0');
  for (let n = num(start); n <= num(end) && out.length < 100_000; n++) out.push(`${tl}${hex(n / 256n)}${hex(n % 256n)}`);
  return out;
}
