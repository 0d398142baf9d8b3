import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { ConfinedFolder } from '../local/confined-file.js';
import { regularFilesUnder, tarOfFiles } from '../local/folder-tar.js';

/**
 * Where a pgBackRest repository's files are: a folder on this machine (repo1-type posix, cifs) or
 * a bucket (repo1-type s3, s3-repo.ts). pgBackRest lays the files out the same way in both
 * (`backup/<stanza>/...`, `archive/<stanza>/...` under repo1-path), so the driver reads either
 * through this, by paths relative to repo1-path.
 */
export interface RepoStorage {
  /** For messages: the folder, or s3://bucket/path at the endpoint. */
  readonly location: string;
  /** A small file's text (an info file). A file that is not there throws an error with code ENOENT. */
  readText(rel: string, signal?: AbortSignal): Promise<string>;
  /** Regular files under `rel`, sorted; none when it is missing. */
  filesUnder(rel: string, signal?: AbortSignal): Promise<string[]>;
  isFile(rel: string, signal?: AbortSignal): Promise<boolean>;
  /** A tar of `files`, in that order (see tarOfFiles). */
  tar(files: readonly string[], signal?: AbortSignal): Readable;
  /** pgbackrest's options and environment that name this repository (for verify and info). */
  pgbackrestRepo(signal?: AbortSignal): Promise<{ args: string[]; env: Record<string, string> }>;
  /** Turns an error of this storage into a reason (denied, unreachable). */
  unreachable(err: unknown): VerificationError;
  close(): Promise<void>;
}

/** A repository in a folder of this machine; every file opened confined to it. */
export class PosixRepo implements RepoStorage {
  readonly location: string;
  private readonly folder: ConfinedFolder;

  constructor(private readonly root: string) {
    this.location = root;
    this.folder = new ConfinedFolder(root);
  }

  async readText(rel: string): Promise<string> {
    await this.folder.realRoot();
    const { handle } = await this.folder.open(path.join(this.root, rel), rel);
    try {
      return await handle.readFile('utf8');
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  async filesUnder(rel: string, signal?: AbortSignal): Promise<string[]> {
    try {
      return await regularFilesUnder(this.root, rel, signal);
    } catch (err) {
      throw this.unreachable(err);
    }
  }

  async isFile(rel: string): Promise<boolean> {
    try {
      const entries = await readdir(path.join(this.root, path.posix.dirname(rel)), { withFileTypes: true });
      return entries.some((e) => e.name === path.posix.basename(rel) && e.isFile());
    } catch {
      return false;
    }
  }

  tar(files: readonly string[], signal?: AbortSignal): Readable {
    return tarOfFiles(this.folder, this.root, files, signal);
  }

  async pgbackrestRepo(): Promise<{ args: string[]; env: Record<string, string> }> {
    return { args: [`--repo1-path=${this.root}`], env: {} };
  }

  unreachable(err: unknown): VerificationError {
    if (err instanceof VerificationError) return err;
    const code = (err as { code?: string }).code;
    if (code === 'EACCES' || code === 'EPERM') return new VerificationError('source_denied', `pgBackRest repository ${this.root} cannot be read by this user (${code})`);
    return new VerificationError('source_unreachable', `pgBackRest repository ${this.root} cannot be read: ${(err as Error).message}`);
  }

  async close(): Promise<void> {
    // Nothing held open between calls.
  }
}
