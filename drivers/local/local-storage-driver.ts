import { createReadStream } from 'node:fs';
import { opendir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { DEFAULTS } from '../../orchestrator/defaults.js';
import { VerificationError } from '../../orchestrator/errors.js';
import { SIDECAR_MAX_BYTES, SidecarChecksums } from '../sidecars.js';
import type { BackupDetails, BackupEntry, StorageDriver } from '../storage-driver.js';

/**
 * A folder on this machine (a NAS mount, a backup target disk). Lists it lazily with opendir,
 * optionally recursively; sidecar checksums come from `<name>.sha256` or `SHA256SUMS` beside the
 * file.
 */
export class LocalStorageDriver implements StorageDriver {
  readonly name = 'local';
  readonly location: string;
  private readonly recursive: boolean;
  /** Sidecar lists are read once per folder per driver instance (one run or one listing). */
  private readonly sidecars = new SidecarChecksums((key) => readOptional(path.join(this.location, key)));

  constructor(opts: { path: string; recursive?: boolean }) {
    this.location = path.resolve(opts.path);
    this.recursive = opts.recursive ?? false;
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
      let info;
      try {
        info = await stat(path.join(this.location, key));
      } catch {
        continue; // removed while listing, or a dangling link
      }
      if (!info.isFile()) continue;
      yield { key, size: info.size, modifiedAt: info.mtime };
    }
  }

  async open(entry: BackupEntry, signal?: AbortSignal): Promise<Readable> {
    const file = this.resolveKey(entry.key);
    try {
      await stat(file);
    } catch (err) {
      throw unreachable(file, err);
    }
    return createReadStream(file, { highWaterMark: DEFAULTS.readChunkBytes, signal });
  }

  async details(entry: BackupEntry): Promise<BackupDetails> {
    this.resolveKey(entry.key); // refuses keys that leave the folder
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
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    const info = await stat(file);
    if (!info.isFile() || info.size > SIDECAR_MAX_BYTES) return undefined;
    return await readFile(file, 'utf8');
  } catch {
    return undefined;
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
