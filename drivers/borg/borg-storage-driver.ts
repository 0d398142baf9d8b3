import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { ChildProcesses, redactAll } from '../cli/child-processes.js';
import type { BackupDetails, BackupEntry, StorageCheck, StorageDriver } from '../storage-driver.js';
import { type BorgArchive, type BorgItem, borgEnv, classifyFailure, DAMAGED, itemKind, parseArchives, parseBorgTime, parseItem, spawnFailure } from './borg-cli.js';

export type BorgCheck = 'repository' | 'archive' | 'verify-data';

export interface BorgDriverOptions {
  /** A local path or an ssh:// repository URL. */
  repository: string;
  /** Secret: given to the child only as BORG_PASSPHRASE, never in argv or in a message. Absent: an unencrypted repository. */
  passphrase?: string;
  /** Where the passphrase came from, e.g. `source.passphrase (${env:BORG_PW})`. */
  passphraseOrigin: string;
  /** The file inside each archive that is the backup, as borg stores it (no leading "/"), e.g. var/backups/shop.dump. */
  file: string;
  /** Only archives whose names match this glob (borg's --glob-archives), e.g. "db1-*". */
  archives?: string;
  /** The storage_check phase: `borg check` of the repository, of the chosen archive, or of its data; false: none. */
  check?: BorgCheck | false;
  /** How long borg waits for a lock held by a running backup before giving up, in seconds. */
  lockWaitSeconds?: number;
  /** Default `borg` on PATH. */
  binary?: string;
  /** Base environment, default process.env; every BORG_* variable in it is dropped. */
  env?: NodeJS.ProcessEnv;
}

const MAX_PROBLEMS = 20;
/** `borg list` per archive (the file's size) runs this many at a time. */
const ITEM_LOOKUPS_AT_ONCE = 4;

/**
 * One file inside the archives of a borg repository (borg 1.2): each archive is a backup.
 *
 * - Listing: `borg list --json` for the archives, then `borg list --json-lines ARCHIVE FILE` for
 *   the file's size and type in each (a few at a time); an archive without the file is listed
 *   with size 0 and a note, so selection says so instead of silently taking an older one.
 * - Reading: `borg extract --stdout`. borg authenticates (encrypted repositories) or hashes
 *   (unencrypted) every chunk as it reads it, so damaged data makes extract fail rather than
 *   print wrong bytes; there is no whole-file checksum to give the runner.
 * - Locks: borg 1.x takes a shared lock on the repository even to read (so it needs write access
 *   to the lock files), and waits `lockWaitSeconds` for a running backup's exclusive lock. A
 *   backup that starts while we read waits for us in turn (its own --lock-wait): schedule
 *   verification outside the backup window. `--bypass-lock` is never used: borg 1.2 then still
 *   writes index files when it finds an unfinished transaction.
 * - Every command runs with its own BORG_BASE_DIR (removed in close()), so nothing is written in
 *   the service user's home and no earlier answer or cache is trusted.
 */
export class BorgStorageDriver implements StorageDriver {
  readonly name = 'borg';
  readonly location: string;
  /** Present only when a check is configured. */
  declare readonly check?: (entry: BackupEntry, signal?: AbortSignal) => Promise<StorageCheck>;

  private readonly opts: BorgDriverOptions;
  private readonly file: string;
  private readonly secrets: string[];
  private readonly baseDir: string;
  private readonly children: ChildProcesses;
  private readonly listed = new Map<string, { archive: BorgArchive; item?: BorgItem }>();
  private version?: Promise<string | undefined>;

  constructor(opts: BorgDriverOptions) {
    this.opts = opts;
    this.file = path.posix.normalize(opts.file).replace(/^\/+/, '');
    this.secrets = opts.passphrase ? [opts.passphrase] : [];
    this.location = `borg repository ${opts.repository}, file ${this.file}`;
    const binary = opts.binary ?? 'borg';
    this.baseDir = mkdtempSync(path.join(os.tmpdir(), 'backproof-borg-'));
    this.children = new ChildProcesses({
      tool: 'borg',
      binary,
      env: borgEnv(opts.env ?? process.env, opts.passphrase, this.baseDir),
      location: this.location,
      spawnFailure: (err) => spawnFailure(binary, err),
    });
    const check = opts.check;
    if (check) this.check = (entry, signal) => this.runCheck(check, entry, signal);
  }

  /** Pids of the borg processes still running (diagnostics and tests). */
  get childPids(): number[] {
    return this.children.pids;
  }

  async *list(signal?: AbortSignal): AsyncIterable<BackupEntry> {
    const filter = this.opts.archives ? ['--glob-archives', this.opts.archives] : [];
    const archives = parseArchives(await this.ok(['list', '--json', ...this.lockArgs(), ...filter, this.opts.repository], signal), 'borg list');
    // Newest first: selection wants the newest, and a listing cut short by an abort has it.
    archives.sort((a, b) => b.start.localeCompare(a.start));
    for (let i = 0; i < archives.length; i += ITEM_LOOKUPS_AT_ONCE) {
      const batch = archives.slice(i, i + ITEM_LOOKUPS_AT_ONCE);
      const items = await Promise.all(batch.map((a) => this.lookUp(a, signal)));
      for (const [j, archive] of batch.entries()) {
        signal?.throwIfAborted();
        yield this.entryOf(archive, items[j]);
      }
    }
  }

  async details(entry: BackupEntry, signal?: AbortSignal): Promise<BackupDetails> {
    const name = archiveName(entry);
    let known = this.listed.get(name);
    if (!known) {
      const archive = parseArchives(await this.ok(['list', '--json', ...this.lockArgs(), '--glob-archives', name, this.opts.repository], signal), 'borg list').find((a) => a.name === name);
      if (!archive) throw new VerificationError('source_changed', `borg archive ${name} is no longer in ${this.opts.repository}`);
      this.entryOf(archive, await this.lookUp(archive, signal));
      known = this.listed.get(name)!;
    }
    const { archive, item } = known;
    const facts: Record<string, string> = { archive: archive.name, archiveId: archive.id, archiveTime: parseBorgTime(archive.start)?.toISOString() ?? archive.start };
    const mtime = item?.mtime ? parseBorgTime(item.mtime) : undefined;
    if (mtime) facts.fileModifiedAt = mtime.toISOString();
    const version = await this.borgVersion(signal);
    if (version) facts.borg = version;
    // borg authenticates or hashes every chunk while extracting; there is no whole-file checksum.
    return { checksums: [], unverifiable: [], facts };
  }

  async open(entry: BackupEntry, signal?: AbortSignal): Promise<Readable> {
    const name = archiveName(entry);
    const command = `borg extract --stdout ${name} ${this.file}`;
    return this.children.stream(['extract', '--stdout', ...this.lockArgs(), `${this.opts.repository}::${name}`, this.file], command, (stderr, code) => this.failure(command, stderr, code), signal);
  }

  async close(): Promise<void> {
    await this.children.close();
    rmSync(this.baseDir, { recursive: true, force: true });
  }

  private async runCheck(check: BorgCheck, entry: BackupEntry, signal?: AbortSignal): Promise<StorageCheck> {
    const name = archiveName(entry);
    const args =
      check === 'repository'
        ? ['--repository-only', this.opts.repository]
        : check === 'archive'
          ? ['--archives-only', `${this.opts.repository}::${name}`]
          : ['--verify-data', `${this.opts.repository}::${name}`];
    const what = check === 'repository' ? 'borg check --repository-only' : `borg check ${check === 'archive' ? '--archives-only' : '--verify-data'} ::${name}`;
    const result = await this.children.run(['check', ...this.lockArgs(), ...args], signal);
    if (result.code === 0) return { what, problems: [], summary: 'no problems found' };
    // Problems in the repository are the check's findings; anything else (wrong passphrase, no
    // repository, a lock) means the check could not run.
    const failure = this.failure(what, result.stderr, result.code);
    if (failure.reason !== DAMAGED) throw failure;
    const problems = checkProblems(result.stderr).map((p) => this.redact(p));
    const shown = problems.slice(0, MAX_PROBLEMS);
    if (problems.length > MAX_PROBLEMS) shown.push(`... and ${problems.length - MAX_PROBLEMS} more`);
    return { what, problems: shown, summary: 'borg check found errors' };
  }

  private entryOf(archive: BorgArchive, item: BorgItem | undefined): BackupEntry {
    const time = parseBorgTime(archive.start);
    if (!time) throw new VerificationError('source_unreachable', `borg archive ${archive.name} has an unreadable time ${JSON.stringify(archive.start)}`);
    this.listed.set(archive.name, { archive, item });
    const entry: BackupEntry = { key: `${archive.name}/${this.file}`, size: item?.type === '-' ? item.size : 0, modifiedAt: time, takenAt: time, version: archive.id };
    if (!item) entry.note = `archive ${archive.name} does not contain ${this.file}`;
    else if (item.type !== '-') entry.note = `${this.file} in archive ${archive.name} is a ${itemKind(item.type)}, not a file`;
    return entry;
  }

  /** The file's item in one archive, or undefined when the archive does not hold it. */
  private async lookUp(archive: BorgArchive, signal?: AbortSignal): Promise<BorgItem | undefined> {
    const stdout = await this.ok(['list', '--json-lines', ...this.lockArgs(), `${this.opts.repository}::${archive.name}`, this.file], signal);
    return parseItem(stdout, this.file);
  }

  private lockArgs(): string[] {
    return ['--lock-wait', String(this.opts.lockWaitSeconds ?? 10)];
  }

  /** Runs a read-only command; a non-zero exit is a classified failure. */
  private async ok(args: string[], signal?: AbortSignal): Promise<string> {
    const result = await this.children.run(args, signal);
    if (result.code !== 0) throw this.failure(`borg ${args[0]}`, result.stderr, result.code);
    return result.stdout;
  }

  private borgVersion(signal?: AbortSignal): Promise<string | undefined> {
    this.version ??= this.children.run(['--version'], signal).then(
      (r) => (r.code === 0 ? r.stdout.trim().split(/\r?\n/)[0] : undefined),
      () => undefined,
    );
    return this.version;
  }

  private failure(command: string, stderr: string, code: number | null): VerificationError {
    const ctx = { location: this.location, repository: this.opts.repository, passphraseOrigin: this.opts.passphraseOrigin, redact: (s: string) => this.redact(s) };
    return classifyFailure(ctx, command, stderr, `exit ${code ?? '?'}`);
  }

  private redact(text: string): string {
    return redactAll(text, this.secrets);
  }
}

/** The archive an entry names: the key's first part (archive names never hold "/"). */
function archiveName(entry: BackupEntry): string {
  const name = entry.key.split('/')[0] ?? '';
  if (!name) throw new VerificationError('source_unreachable', `backup ${entry.key} names no borg archive`);
  return name;
}

/** check's finding lines, without Python's traceback. */
function checkProblems(stderr: string): string[] {
  return stderr
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !/^(Traceback|File "|\^+$|Platform:|Linux:|Borg: |PID: |sys\.argv|SSH_ORIGINAL_COMMAND)/.test(l));
}
