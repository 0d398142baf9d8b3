import { lstat, opendir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pooledFileStream } from '../../orchestrator/core/chunk-pool.js';
import { DEFAULTS } from '../../orchestrator/core/defaults.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { SIDECAR_MAX_BYTES, SidecarChecksums } from '../sidecars.js';
import { unsafeEntry, type BackupDetails, type BackupEntry, type StorageDriver } from '../storage-driver.js';
import { ConfinedFolder } from './confined-file.js';

/**
 * A folder on this machine (a NAS mount, a backup target disk). Lists it lazily with opendir,
 * optionally recursively; sidecar checksums come from `<name>.sha256` or `SHA256SUMS` beside the
 * file. Client machines write the folder, so nothing outside it is ever read: a link that
 * leaves it is listed with `unsafe` (a run that picks it fails with `unsafe_source`), and every
 * open is confined to the folder (confined-file.ts).
 */
export class LocalStorageDriver implements StorageDriver {
  readonly name = 'local';
  readonly location: string;
  private readonly recursive: boolean;
  /** Sidecar lists are read once per folder per driver instance (one run or one listing). */
  private readonly sidecars = new SidecarChecksums((key) => this.readSidecar(key));
  private readonly folder: ConfinedFolder;

  constructor(opts: { path: string; recursive?: boolean }) {
    this.location = path.resolve(opts.path);
    this.recursive = opts.recursive ?? false;
    this.folder = new ConfinedFolder(this.location);
  }

  async *list(signal?: AbortSignal): AsyncIterable<BackupEntry> {
    try {
      const info = await stat(this.location);
      if (!info.isDirectory()) {
        throw new VerificationError('source_unreachable', `source ${this.location} is not a folder`);
      }
    } catch (err) {
      if (err instanceof VerificationError) throw err;
      throw unreachable(this.location, err);
    }
    yield* this.walk('', signal);
  }

  private async *walk(rel: string, signal?: AbortSignal): AsyncIterable<BackupEntry> {
    const dirPath = path.join(this.location, rel);
    let dir;
    try {
      dir = await opendir(dirPath, { bufferSize: 256 });
    } catch (err) {
      throw unreachable(dirPath, err);
    }
    for await (const dirent of dir) {
      signal?.throwIfAborted();
      const key = rel ? `${rel}/${dirent.name}` : dirent.name;
      if (dirent.isDirectory()) {
        if (this.recursive) yield* this.walk(key, signal);
        continue;
      }
      if (!dirent.isFile() && !dirent.isSymbolicLink()) continue;
      const full = path.join(this.location, key);
      let info;
      try {
        if (dirent.isSymbolicLink()) {
          const target = await this.folder.escape(full);
          // A linked folder is never walked, wherever it leads; a linked file outside is unsafe.
          if (target !== undefined && (await stat(full)).isFile()) {
            // Listed by the link's own size and time, so nothing about the target is learnt.
            const own = await lstat(full);
            yield { key, size: own.size, modifiedAt: own.mtime, unsafe: `a link to ${target}, outside the source folder ${this.location}` };
            continue;
          }
        }
        info = await stat(full);
      } catch {
        continue; // removed while listing, or a dangling link
      }
      if (!info.isFile()) continue;
      yield { key, size: info.size, modifiedAt: info.mtime };
    }
  }

  async open(entry: BackupEntry, signal?: AbortSignal): Promise<Readable> {
    const file = this.resolveKey(entry.key);
    let opened;
    try {
      opened = await this.folder.open(file, entry.key);
    } catch (err) {
      if (err instanceof VerificationError) throw err;
      throw unreachable(file, err);
    }
    return pooledFileStream(opened.handle, { chunkBytes: DEFAULTS.readChunkBytes, ...(signal ? { signal } : {}) });
  }

  async details(entry: BackupEntry): Promise<BackupDetails> {
    this.resolveKey(entry.key); // refuses keys that leave the folder
    if (entry.unsafe) throw unsafeEntry(entry);
    const sidecar = await this.sidecars.find(entry.key);
    return { checksums: sidecar ? [sidecar] : [], unverifiable: [], facts: {} };
  }

  async close(): Promise<void> {
    // Nothing held open between calls.
  }

  private resolveKey(key: string): string {
    const file = path.resolve(this.location, key);
    if (!file.startsWith(this.location + path.sep)) {
      throw new VerificationError('source_unreachable', `backup key ${key} leaves the source folder`);
    }
    return file;
  }

  /** A sidecar's text, undefined when absent or too large; one that leads outside the folder is `unsafe_source`. */
  private async readSidecar(key: string): Promise<string | undefined> {
    let opened;
    try {
      opened = await this.folder.open(this.resolveKey(key), key);
    } catch (err) {
      if (err instanceof VerificationError) throw err;
      return undefined;
    }
    try {
      return opened.size > SIDECAR_MAX_BYTES ? undefined : await opened.handle.readFile('utf8');
    } finally {
      await opened.handle.close();
    }
  }
}

function unreachable(where: string, err: unknown): VerificationError {
  const code = (err as { code?: string }).code;
  const why =
    code === 'ENOENT' ? 'does not exist' : code === 'EACCES' || code === 'EPERM' ? 'is not readable (permission denied)' : `cannot be read (${code ?? String(err)})`;
  return new VerificationError('source_unreachable', `source folder ${where} ${why}; check the path and that the share is mounted`, {
    cause: err,
  });
}
