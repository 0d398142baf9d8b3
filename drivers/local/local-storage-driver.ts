import { createReadStream } from 'node:fs';
import { opendir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { DEFAULTS } from '../../orchestrator/defaults.js';
import { VerificationError } from '../../orchestrator/errors.js';
import type { BackupEntry, ExpectedChecksum, StorageDriver } from '../storage-driver.js';

/**
 * A folder on this machine (a NAS mount, a backup target disk). Lists it lazily with opendir,
 * optionally recursively; sidecar checksums come from `<name>.sha256` or `SHA256SUMS` beside the
 * file.
 */
export class LocalStorageDriver implements StorageDriver {
  readonly name = 'local';
  readonly location: string;
  private readonly recursive: boolean;
  private readonly listsByDir = new Map<string, Promise<Array<{ name: string; text: string }>>>();

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

  async expectedChecksum(entry: BackupEntry): Promise<ExpectedChecksum | undefined> {
    const file = this.resolveKey(entry.key);
    const base = path.basename(file);
    const sidecar = `${file}.sha256`;
    const own = await readOptional(sidecar);
    if (own !== undefined) {
      const hex = parseChecksumFile(own, base, true);
      if (!hex) {
        throw new VerificationError('sidecar_invalid', `sidecar ${path.basename(sidecar)} holds no sha256 for ${base}`);
      }
      return { algorithm: 'sha256', hex, source: `sidecar ${path.basename(sidecar)}` };
    }
    for (const { name, text } of await this.checksumLists(path.dirname(file))) {
      const hex = parseChecksumFile(text, base, false);
      if (hex) return { algorithm: 'sha256', hex, source: name };
    }
    return undefined;
  }

  /**
   * The `SHA256SUMS`-style files of a folder, read once per driver instance (a driver lives for
   * one run or one listing), however many backups in that folder are looked up.
   */
  private checksumLists(dir: string): Promise<Array<{ name: string; text: string }>> {
    let lists = this.listsByDir.get(dir);
    if (!lists) {
      lists = (async () => {
        const found = [];
        for (const name of ['SHA256SUMS', 'sha256sums', 'SHA256SUMS.txt']) {
          const text = await readOptional(path.join(dir, name));
          if (text !== undefined) found.push({ name, text });
        }
        return found;
      })();
      this.listsByDir.set(dir, lists);
    }
    return lists;
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

/**
 * Reads `sha256sum` output (`HEX  name` or `HEX *name`), the BSD/`--tag` form
 * (`SHA256 (name) = HEX`, also openssl's `SHA2-256(name)= HEX`) or a bare hex digest. A bare
 * digest, or one for standard input (`HEX  -` from `sha256sum < file`), is accepted only from a
 * file's own single-line sidecar.
 */
export function parseChecksumFile(text: string, name: string, allowBare: boolean): string | undefined {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  const records = lines.map((line) => {
    const gnu = /^([0-9a-fA-F]{64})(?:\s+\*?(.+))?$/.exec(line);
    if (gnu) return { hex: gnu[1]!.toLowerCase(), file: gnu[2]?.trim() };
    const bsd = /^SHA(?:2-)?256\s*\((.+)\)\s*=\s*([0-9a-fA-F]{64})$/i.exec(line);
    if (bsd) return { hex: bsd[2]!.toLowerCase(), file: bsd[1]!.trim() };
    return undefined;
  });
  for (const r of records) {
    if (r?.file !== undefined && r.file.split(/[\\/]/).pop() === name) return r.hex;
  }
  const only = records.length === 1 ? records[0] : undefined;
  if (allowBare && only && (only.file === undefined || only.file === '-' || only.file === 'stdin')) return only.hex;
  return undefined;
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    const info = await stat(file);
    if (!info.isFile() || info.size > 1024 * 1024) return undefined;
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
