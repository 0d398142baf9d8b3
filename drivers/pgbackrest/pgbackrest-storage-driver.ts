import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { ChildProcesses } from '../cli/child-processes.js';
import type { BackupDetails, BackupEntry, StorageCheck, StorageDriver, StorageUsage } from '../storage-driver.js';
import { PosixRepo, type RepoStorage } from './repo-storage.js';
import { S3Repo, type S3RepoOptions } from './s3-repo.js';
import { archiveIdOf, backupSets, databaseHistory, infoFromJson, isCiphertext, parseInfoFile, type BackupSet } from '../../orchestrator/core/pgbackrest-info.js';

export interface PgbackrestDriverOptions {
  /** pgBackRest's repo1-path: a folder on this machine, or, with `s3`, the path in the bucket. */
  repository: string;
  /** The repository is in this bucket (repo1-type=s3). */
  s3?: Omit<S3RepoOptions, 'path'>;
  stanza: string;
  /** The storage_check phase: `pgbackrest verify` of the repository; false: none. */
  check?: 'verify' | false;
  /** Default `pgbackrest` on PATH (only the check runs it). */
  binary?: string;
  /** A point-in-time restore's target: only sets that ended before it are listed. */
  endedBefore?: Date;
  /** An encrypted repository's passphrase: given to pgbackrest through its environment only. */
  cipherPass?: string;
}

/** A WAL segment file in the archive: 24 hex digits (timeline, log, segment), then `-<sha1>` and an optional compression suffix. */
const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{16})(?:-[0-9a-f]{40})?(?:\.(?:gz|bz2|lz4|zst|xz))?$/;

const MAX_PROBLEMS = 20;

/**
 * A pgBackRest repository on this machine (a posix repo1-path: a disk, a NAS mount) or in a bucket
 * (repo1-type=s3, read with the AWS SDK: s3-repo.ts): each backup set of a stanza is a backup; the
 * newest restores with the WAL archived after it.
 *
 * - Listing reads `backup/<stanza>/backup.info` itself (its `.copy` when the file is unreadable),
 *   so listing needs no pgBackRest on this host.
 * - A backup set is a folder of files, not one file: `open()` streams, as one tar, what a restore
 *   of that set needs and nothing else of the repository: `archive.info` first (the restorer
 *   recognises the stream by it and reads the PostgreSQL major there), `backup.info`, the set's
 *   folder and the folders of the sets it references (diff, incr), and the stanza's WAL archive
 *   for that database from the set's first segment on, with the timelines' history files. Every
 *   file is opened confined to the repository (a link out of it is `unsafe_source`; links inside
 *   it such as `latest` are not copied); the order is fixed, so the stream's sha256 is
 *   reproducible. pgBackRest itself checks every file against the set's manifest as it restores.
 * - `check()` runs `pgbackrest verify` (pgBackRest 2.33 or later) with a private lock and log
 *   folder; what it reports invalid or missing is a finding.
 * - An encrypted repository (its info files are ciphertext) is listed through `pgbackrest info
 *   --output=json`, the cipher pass in pgbackrest's environment only.
 */
export class PgbackrestStorageDriver implements StorageDriver {
  readonly name = 'pgbackrest';
  readonly location: string;
  declare readonly check?: (entry: BackupEntry, signal?: AbortSignal) => Promise<StorageCheck>;
  /** What reading a repository in a bucket cost (requests, bytes); absent for a folder. */
  declare readonly usage?: () => StorageUsage;

  private readonly repo: RepoStorage;
  private readonly stanza: string;
  private readonly binary: string;
  private readonly endedBefore?: Date;
  private info?: { sets: BackupSet[]; databases: Map<number, { version: string; systemId: string }> };
  private readonly cipherPass?: string;
  private children?: ChildProcesses;
  private scratch?: string;

  constructor(opts: PgbackrestDriverOptions) {
    this.stanza = opts.stanza;
    if (!/^[A-Za-z0-9_.-]+$/.test(this.stanza)) throw new VerificationError('source_unreachable', `pgBackRest stanza ${JSON.stringify(this.stanza)} is not a stanza name`);
    this.binary = opts.binary ?? 'pgbackrest';
    if (opts.endedBefore) this.endedBefore = opts.endedBefore;
    if (opts.cipherPass) this.cipherPass = opts.cipherPass;
    if (opts.s3) {
      const s3 = new S3Repo({ ...opts.s3, path: opts.repository });
      this.repo = s3;
      this.usage = () => s3.usage();
    } else {
      this.repo = new PosixRepo(path.resolve(opts.repository));
    }
    this.location = `pgBackRest repository ${this.repo.location}, stanza ${this.stanza}`;
    if (opts.check === 'verify') this.check = (entry, signal) => this.verify(entry, signal);
  }

  async *list(signal?: AbortSignal): AsyncIterable<BackupEntry> {
    const { sets } = await this.readInfo(signal);
    // Newest first: selection wants the newest, and a listing cut short by an abort has it.
    for (const set of [...sets].reverse()) {
      signal?.throwIfAborted();
      if (this.endedBefore && set.stoppedAt.getTime() >= this.endedBefore.getTime()) continue;
      const entry: BackupEntry = { key: set.label, size: set.repoBytes, modifiedAt: set.stoppedAt, takenAt: set.stoppedAt, version: set.label };
      if (set.error) entry.note = `pgBackRest recorded errors in backup ${set.label} (page checksums)`;
      yield entry;
    }
  }

  async details(entry: BackupEntry, signal?: AbortSignal): Promise<BackupDetails> {
    const set = await this.setOf(entry, signal);
    // The major from backup.info (decrypted by pgbackrest info for an encrypted repository, whose
    // stream the restorer cannot read before the sandbox exists): it picks the sandbox image.
    const major = Number.parseInt((await this.readInfo(signal)).databases.get(set.dbId)?.version ?? '', 10);
    const facts: Record<string, string> = {
      stanza: this.stanza,
      backupLabel: set.label,
      backupType: set.type,
      backupStartedAt: set.startedAt.toISOString(),
      backupStoppedAt: set.stoppedAt.toISOString(),
      walStart: set.archiveStart,
      walStop: set.archiveStop,
      databaseSize: String(set.databaseBytes),
      pgbackrestVersion: set.backrestVersion,
    };
    if (set.references.length > 0) facts.references = set.references.join(', ');
    if (Number.isFinite(major)) facts.postgresMajor = String(major);
    // pgBackRest keeps a sha1 of every file in the set's manifest and checks each as it restores.
    return { checksums: [], unverifiable: [], facts };
  }

  async open(entry: BackupEntry, signal?: AbortSignal): Promise<Readable> {
    const set = await this.setOf(entry, signal);
    return this.repo.tar(await this.filesOf(set, signal), signal);
  }

  async close(): Promise<void> {
    await this.children?.close();
    await this.repo.close();
    if (this.scratch) rmSync(this.scratch, { recursive: true, force: true });
  }

  /** The repository's paths, relative to its root, that a restore of `set` needs, in the stream's order. */
  private async filesOf(set: BackupSet, signal?: AbortSignal): Promise<string[]> {
    const { databases } = await this.readInfo(signal);
    const stanzaArchive = `archive/${this.stanza}`;
    const stanzaBackup = `backup/${this.stanza}`;
    const files = [`${stanzaArchive}/archive.info`];
    if (await this.repo.isFile(`${stanzaArchive}/archive.info.copy`, signal)) files.push(`${stanzaArchive}/archive.info.copy`);
    files.push(`${stanzaBackup}/backup.info`);
    if (await this.repo.isFile(`${stanzaBackup}/backup.info.copy`, signal)) files.push(`${stanzaBackup}/backup.info.copy`);
    for (const label of [...set.references, set.label]) files.push(...(await this.walk(`${stanzaBackup}/${label}`, signal)));
    const db = databases.get(set.dbId);
    if (db) {
      const archiveDir = `${stanzaArchive}/${archiveIdOf(db.version, set.dbId)}`;
      const startTimeline = set.archiveStart.slice(0, 8);
      const startSegment = set.archiveStart.slice(8, 24);
      for (const rel of await this.walk(archiveDir, signal)) {
        const base = path.posix.basename(rel);
        if (/^[0-9A-F]{8}\.history$/.test(base)) {
          files.push(rel);
          continue;
        }
        const m = SEGMENT.exec(base) ?? /^([0-9A-F]{8})([0-9A-F]{16})\.[0-9A-F]{8}\.backup$/.exec(base);
        if (m && m[1]! >= startTimeline && (m[1]! > startTimeline || m[2]! >= startSegment)) files.push(rel);
      }
    }
    return files;
  }

  /** Regular files under `rel`, sorted; links and other kinds are left out. */
  private walk(rel: string, signal?: AbortSignal): Promise<string[]> {
    return this.repo.filesUnder(rel, signal);
  }

  private async setOf(entry: BackupEntry, signal?: AbortSignal): Promise<BackupSet> {
    const set = (await this.readInfo(signal)).sets.find((s) => s.label === entry.key);
    if (!set) throw new VerificationError('source_changed', `pgBackRest backup ${entry.key} is no longer in ${this.location} (expired by retention?)`);
    return set;
  }

  /** backup.info, or its copy when the file itself is missing or unreadable. */
  private async readInfo(signal?: AbortSignal): Promise<{ sets: BackupSet[]; databases: Map<number, { version: string; systemId: string }> }> {
    if (this.info) return this.info;
    let lastError: unknown;
    for (const name of ['backup.info', 'backup.info.copy']) {
      signal?.throwIfAborted();
      const rel = `backup/${this.stanza}/${name}`;
      try {
        const text = await this.repo.readText(rel, signal);
        if (isCiphertext(text)) {
          this.info = await this.decryptedInfo(signal);
          return this.info;
        }
        const backup = parseInfoFile(text);
        if (!backup.has('backrest')) throw new VerificationError('repository_damaged', `${rel} in ${this.repo.location} is not a pgBackRest info file`);
        this.info = { sets: backupSets(backup), databases: databaseHistory(backup) };
        return this.info;
      } catch (err) {
        if (err instanceof VerificationError && (err.reason === 'unsafe_source' || err.reason === 'unsupported_format' || err.reason === 'source_denied')) throw err;
        lastError = err;
      }
    }
    if (lastError instanceof VerificationError) throw lastError;
    const code = (lastError as { code?: string }).code;
    if (code === 'ENOENT') {
      throw new VerificationError('source_unreachable', `${this.location}: no backup/${this.stanza}/backup.info; check source.repository (the repository's repo1-path) and source.stanza (pgbackrest info lists the stanzas)`);
    }
    throw this.repo.unreachable(lastError);
  }

  /**
   * pgbackrest with the repository's options (and the cipher's): the pass and a bucket's keys in
   * its environment only.
   */
  private async pgbackrest(command: string[], signal?: AbortSignal) {
    const repo = await this.repo.pgbackrestRepo(signal);
    this.scratch ??= mkdtempSync(path.join(os.tmpdir(), 'backproof-pgbackrest-'));
    this.children ??= new ChildProcesses({
      tool: 'pgbackrest',
      binary: this.binary,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: this.scratch, TZ: 'UTC', ...repo.env, ...(this.cipherPass ? { PGBACKREST_REPO1_CIPHER_PASS: this.cipherPass } : {}) },
      location: this.location,
      spawnFailure: (err) =>
        new VerificationError(
          'source_unreachable',
          `pgbackrest could not be started (${(err as { code?: string }).code === 'ENOENT' ? `${this.binary} is not installed on this host` : (err as Error).message}); install pgBackRest (Debian: apt install pgbackrest)${this.cipherPass ? '' : ' or set source.check: false'}`,
        ),
    });
    const args = [
      '--no-config',
      `--stanza=${this.stanza}`,
      ...repo.args,
      ...(this.cipherPass ? ['--repo1-cipher-type=aes-256-cbc'] : []),
      `--log-path=${this.scratch}`,
      '--log-level-file=off',
      '--log-level-console=warn',
      '--log-level-stderr=off',
      ...command,
    ];
    return this.children.run(args, signal);
  }

  /** An encrypted repository's sets, from `pgbackrest info --output=json` (which decrypts backup.info). */
  private async decryptedInfo(signal?: AbortSignal): Promise<{ sets: BackupSet[]; databases: Map<number, { version: string; systemId: string }> }> {
    if (!this.cipherPass) {
      throw new VerificationError('unsupported_format', `${this.location} is encrypted (repo1-cipher-type): set source.cipherPass to its passphrase, e.g. cipherPass: \${env:ACME_PGBACKREST_PASS}`);
    }
    const result = await this.pgbackrest(['--output=json', 'info'], signal);
    const info = infoFromJson(result.stdout, this.stanza);
    const said = `${result.stdout}\n${result.stderr}`.split(/\r?\n/).map((l) => l.replace(/^P\d+\s+/, '').trim()).filter(Boolean).at(-1) ?? '';
    if (!info || (info.sets.length === 0 && /cipher|decrypt|passphrase/i.test(said))) {
      if (/cipher|decrypt|passphrase|crypto/i.test(said)) throw new VerificationError('source_denied', `${this.location}: pgbackrest could not decrypt it with source.cipherPass (${said})`);
      throw new VerificationError('source_unreachable', `${this.location}: pgbackrest info could not read the stanza: ${said || `exit ${result.code ?? '?'}`}`);
    }
    return info;
  }

  private async verify(entry: BackupEntry, signal?: AbortSignal): Promise<StorageCheck> {
    const what = `pgbackrest verify (stanza ${this.stanza})`;
    const result = await this.pgbackrest(['--output=text', '--verbose', 'verify'], signal);
    const text = result.stdout.replace(/^P\d+\s+(WARN|ERROR|INFO):.*$/gm, '').trim();
    if (!/^stanza: /m.test(text)) {
      const said = `${result.stdout}\n${result.stderr}`.split(/\r?\n/).map((l) => l.replace(/^P\d+\s+/, '').trim()).filter(Boolean).at(-1);
      throw new VerificationError('source_unreachable', `${what} could not run: ${said ?? `exit ${result.code ?? '?'}`}`);
    }
    void entry;
    const problems = verifyProblems(text);
    const shown = problems.slice(0, MAX_PROBLEMS);
    if (problems.length > MAX_PROBLEMS) shown.push(`... and ${problems.length - MAX_PROBLEMS} more`);
    const counts = text.split('\n').filter((l) => /^\s*(archiveId|backup):/.test(l)).map((l) => l.trim());
    return { what, problems: shown, summary: `${problems.length === 0 ? 'no problems found' : 'pgbackrest verify found problems'}: ${counts.join('; ')}` };
  }
}

/**
 * What `pgbackrest verify --output=text --verbose` reports wrong: a status other than ok, and each
 * archive or backup whose files are missing or invalid. (pgBackRest 2.45 does not report a gap in
 * the WAL archive here; the restore finds it.)
 */
export function verifyProblems(text: string): string[] {
  const problems: string[] = [];
  let subject = '';
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    const status = /^status: (.+)$/.exec(line);
    if (status && status[1] !== 'ok') problems.push(`status: ${status[1]}`);
    const head = /^(archiveId: [^,]+|backup: [^,]+)(?:, status: ([^,]+))?/.exec(line);
    if (head) {
      subject = head[1]!;
      if (head[2] && head[2] !== 'valid') problems.push(`${subject}: ${head[2]}`);
      continue;
    }
    const counts = /^missing: (\d+), checksum invalid: (\d+), size invalid: (\d+), other: (\d+)/.exec(line);
    if (counts && counts.slice(1).some((n) => Number(n) > 0)) problems.push(`${subject}: ${line}`);
  }
  return problems;
}
