import { createHash } from 'node:crypto';
import path from 'node:path';
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import type { FilesKindConfig } from '../../orchestrator/core/config-types.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { formatBytes } from '../../orchestrator/core/format.js';
import { judgeContent, SNIFF_BYTES } from './content-sniff.js';

/**
 * The safe-extraction rules for file archives, applied to the tar stream on its way into the
 * sandbox. Every entry is read here first and re-written into a new tar stream that holds only
 * what passed: regular files, directories, hard links to files already in it, and symbolic links
 * that stay inside the root, written last so that nothing is ever extracted through one.
 * What the sandbox's tar extracts is therefore exactly what was checked.
 *
 * Rules (a break is an `unsafe_archive` fail naming the entry): no absolute paths, no `..`, no
 * links leaving the root, no device files or named pipes, no entry written through a symlink.
 * Limits (an `archive_limit` fail): expanded bytes, entries, and the ratio of expanded bytes to
 * the backup's stored size (a decompression bomb), counted as the bytes flow, so a bomb is
 * stopped after at most one chunk past the limit and is never written out whole.
 *
 * While the bytes pass, each file is hashed (sha256) and its first 64 KiB judged (random-looking
 * content, content-sniff.ts); small files the probes need (manifests) are kept whole.
 */
export interface ArchiveEntry {
  /** Normalized path relative to the root, without a leading ./ or trailing /. */
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'hardlink';
  size: number;
  /** Hex sha256 of a regular file's content. */
  sha256?: string;
  mtime?: Date;
  /** Whether the content looks random, judged from the first 64 KiB (undefined: under 256 bytes, not judged). */
  looksRandom?: boolean;
  /** The content is an archive wrapping what it holds (content-sniff.ts ContentJudgement.container). */
  container?: 'encrypted' | 'archive';
  linkTarget?: string;
}

export interface ArchiveIndex {
  entries: Map<string, ArchiveEntry>;
  files: number;
  directories: number;
  symlinks: number;
  hardlinks: number;
  bytes: number;
  /** Content of the files `keep` asked for. */
  kept: Map<string, Buffer>;
}

export interface GuardOptions {
  limits: Pick<FilesKindConfig, 'maxBytes' | 'maxEntries' | 'maxRatio' | 'ratioFloorBytes'>;
  /** The backup's size as stored (compressed), for the ratio. */
  storedBytes: number;
  /** Which files' whole content to keep (small manifests), by normalized path. */
  keep?: (entryPath: string, size: number) => boolean;
}

/** Kept files larger than this are not kept (a manifest is small). */
export const KEEP_MAX_BYTES = 16 * 1024 * 1024;

const DEVICE_TYPES: Record<string, string> = {
  'character-device': 'a character device',
  'block-device': 'a block device',
  fifo: 'a named pipe',
};

export function guardArchive(input: Readable, opts: GuardOptions): { output: Readable; index: Promise<ArchiveIndex> } {
  const extract = tarStream.extract();
  const pack = tarStream.pack();
  const index: ArchiveIndex = { entries: new Map(), files: 0, directories: 0, symlinks: 0, hardlinks: 0, bytes: 0, kept: new Map() };
  const deferredLinks: Array<{ header: tarStream.Headers; entry: ArchiveEntry }> = [];
  const { limits } = opts;
  let entryCount = 0;
  // Errors are seen where the streams are read (the loop below, the output's reader); these
  // keep an error raised between two reads from being an uncaught 'error' event.
  extract.on('error', () => undefined);
  pack.on('error', () => undefined);

  const fail = (code: 'unsafe_archive' | 'archive_limit' | 'truncated_dump', message: string): never => {
    throw new VerificationError(code, message);
  };

  const countBytes = (n: number, name: string): void => {
    index.bytes += n;
    if (index.bytes > limits.maxBytes) {
      fail('archive_limit', `the archive expands beyond files.maxBytes (${formatBytes(limits.maxBytes)}) at entry "${name}"; raise files.maxBytes if that is expected`);
    }
    if (index.bytes > limits.ratioFloorBytes && index.bytes > limits.maxRatio * opts.storedBytes) {
      fail(
        'archive_limit',
        `the archive expands more than ${limits.maxRatio} times its stored size (${formatBytes(opts.storedBytes)} -> over ${formatBytes(index.bytes)}) at entry "${name}": a decompression bomb, or raise files.maxRatio`,
      );
    }
  };

  /** Resolves when the output can take more, or is gone (its reader stopped). */
  function drained(sink: NodeJS.EventEmitter): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        sink.off('drain', done);
        sink.off('close', done);
        pack.off('close', done);
        resolve();
      };
      sink.on('drain', done);
      sink.on('close', done);
      pack.on('close', done);
    });
  }

  /** The stream's last 1 KiB: a whole tar ends with two zero blocks (its end-of-archive marker). */
  let tail = Buffer.alloc(0);
  async function feed(): Promise<void> {
    try {
      for await (const chunk of input) {
        const bytes = chunk as Buffer;
        tail = Buffer.concat([tail, bytes.subarray(-1024)]).subarray(-1024);
        if (!extract.write(bytes)) {
          await new Promise<void>((resolve) => {
            const done = (): void => {
              extract.off('drain', done);
              extract.off('close', done);
              resolve();
            };
            extract.on('drain', done);
            extract.on('close', done);
          });
        }
        if (extract.destroyed) return;
      }
      extract.end();
    } catch (err) {
      extract.destroy(err as Error);
    }
  }

  async function check(): Promise<ArchiveIndex> {
    void feed();
    try {
      for await (const item of extract) {
        const header = item.header;
        const raw = header.name;
        entryCount++;
        if (entryCount > limits.maxEntries) {
          fail('archive_limit', `the archive has more than files.maxEntries (${limits.maxEntries}) entries; entry "${raw}" is one too many; raise files.maxEntries if that is expected`);
        }
        // tar-stream gives no type for typeflags it does not know: a GNU incremental dump's
        // directory listing ('D', named with a trailing slash) is a directory; the rest (GNU
        // sparse files, volume labels, multi-volume parts) are not extracted here.
        const type = header.type ?? (raw.endsWith('/') ? 'directory' : undefined);
        if (!type || isPaxSparse(header)) {
          throw new VerificationError(
            'unsupported_format',
            `entry "${raw}" is ${type ? 'a sparse file (GNU.sparse in its pax header)' : 'of a tar entry type backproof does not extract (a GNU sparse file, a volume label or a multi-volume part)'}; archive without --sparse/--multi-volume to verify it`,
          );
        }
        if (type === 'directory' && raw.split('/').every((p) => p === '' || p === '.') && !raw.startsWith('/')) {
          item.resume(); // the root itself ("./"), as `tar -C dir .` writes it
          continue;
        }
        const name = safePath(raw, 'entry');
        if (DEVICE_TYPES[type]) fail('unsafe_archive', `entry "${raw}" is ${DEVICE_TYPES[type]}: archives may not create device files or pipes`);
        throughSymlink(name, raw);
        if (type === 'directory') {
          item.resume();
          setEntry({ path: name, type: 'directory', size: 0, mtime: header.mtime });
          index.directories++;
          put({ name: `${name}/`, type: 'directory', mode: 0o755, mtime: header.mtime });
          continue;
        }
        if (type === 'symlink') {
          item.resume();
          const target = header.linkname ?? '';
          symlinkStaysInside(name, target, raw);
          const entry: ArchiveEntry = { path: name, type: 'symlink', size: 0, linkTarget: target, mtime: header.mtime };
          setEntry(entry);
          index.symlinks++;
          deferredLinks.push({ header: { name, type: 'symlink', linkname: target, mode: 0o777, mtime: header.mtime }, entry });
          continue;
        }
        if (type === 'link') {
          item.resume();
          const target = safePath(header.linkname ?? '', `hard link "${raw}" to`);
          if (index.entries.get(target)?.type !== 'file') {
            fail('unsafe_archive', `entry "${raw}" is a hard link to "${header.linkname}", which is not a file earlier in the archive`);
          }
          const of = index.entries.get(target)!;
          setEntry({ ...of, path: name, type: 'hardlink', linkTarget: target });
          index.hardlinks++;
          put({ name, type: 'link', linkname: target, mode: 0o644, mtime: header.mtime });
          continue;
        }
        if (type !== 'file' && type !== 'contiguous-file') {
          fail('unsafe_archive', `entry "${raw}" has an entry type backproof does not extract (${type})`);
        }
        await copyFile(item, header, name);
      }
      if (tail.length < 1024 || tail.some((b) => b !== 0)) {
        fail('truncated_dump', `the tar archive ends without its end-of-archive marker (two zero blocks) after ${entryCount} entries: it was cut short`);
      }
      // Every path is known now: a symlink may not sit where another entry was written through
      // it, and each is resolved through the others.
      for (const { header, entry } of deferredLinks) {
        const prefix = `${entry.path}/`;
        for (const other of index.entries.keys()) {
          if (other.startsWith(prefix)) fail('unsafe_archive', `entry "${other}" would be written through the symlink "${entry.path}"`);
        }
        resolveInside(entry.path, new Set());
        put(header);
      }
      pack.finalize();
      return index;
    } catch (err) {
      const wrapped = err instanceof VerificationError ? err : tarError(err);
      pack.destroy(wrapped);
      extract.destroy();
      input.destroy();
      throw wrapped;
    }
  }

  /** Adds an entry to the output; its stream is destroyed with the pack when the guard fails, and that error is seen there. */
  function put(header: tarStream.Headers): ReturnType<typeof pack.entry> {
    const sink = pack.entry(header);
    sink.on('error', () => undefined);
    return sink;
  }

  function setEntry(entry: ArchiveEntry): void {
    index.entries.set(entry.path, entry);
  }

  async function copyFile(item: AsyncIterable<Buffer> & { resume(): void }, header: tarStream.Headers, name: string): Promise<void> {
    const size = header.size ?? 0;
    const hash = createHash('sha256');
    const head: Buffer[] = [];
    let headBytes = 0;
    const keep = opts.keep?.(name, size) && size <= KEEP_MAX_BYTES;
    const kept: Buffer[] = [];
    const sink = put({ name, type: 'file', size, mode: 0o644, mtime: header.mtime });
    for await (const chunk of item) {
      countBytes(chunk.length, name);
      hash.update(chunk);
      if (headBytes < SNIFF_BYTES) {
        head.push(chunk.subarray(0, SNIFF_BYTES - headBytes));
        headBytes += Math.min(chunk.length, SNIFF_BYTES - headBytes);
      }
      if (keep) kept.push(chunk);
      if (!sink.write(chunk)) await drained(sink);
      if (pack.destroyed) throw new Error('the extraction in the sandbox stopped reading the archive');
    }
    await new Promise<void>((resolve, reject) => sink.end((err?: Error | null) => (err ? reject(err) : resolve())));
    if (keep) index.kept.set(name, Buffer.concat(kept));
    // A later copy of the same path replaces the earlier one on extraction.
    if (index.entries.get(name)?.type !== 'file') index.files++;
    const judged = judgeContent(Buffer.concat(head), size);
    setEntry({ path: name, type: 'file', size, sha256: hash.digest('hex'), mtime: header.mtime, looksRandom: judged?.looksRandom, ...(judged?.container ? { container: judged.container } : {}) });
  }

  /** A path component that is a symlink already seen: writing below it would follow it. */
  function throughSymlink(name: string, raw: string): void {
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      if (index.entries.get(prefix)?.type === 'symlink') fail('unsafe_archive', `entry "${raw}" would be written through the symlink "${prefix}"`);
    }
  }

  function symlinkStaysInside(name: string, target: string, raw: string): void {
    if (target === '' || target.includes('\0')) fail('unsafe_archive', `entry "${raw}" is a symlink with an empty or invalid target`);
    if (target.startsWith('/')) fail('unsafe_archive', `entry "${raw}" is a symlink to the absolute path "${target}", outside the archive`);
    const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(name), target));
    if (resolved === '..' || resolved.startsWith('../')) fail('unsafe_archive', `entry "${raw}" is a symlink to "${target}", which leaves the archive root`);
  }

  /** Follows a symlink through the archive's other symlinks; it must end inside the root. */
  function resolveInside(linkPath: string, seen: Set<string>): string {
    if (seen.has(linkPath)) fail('unsafe_archive', `symlink "${linkPath}" is part of a loop`);
    seen.add(linkPath);
    const link = index.entries.get(linkPath)!;
    let current = path.posix.dirname(linkPath) === '.' ? [] : path.posix.dirname(linkPath).split('/');
    for (const part of link.linkTarget!.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') {
        if (current.length === 0) fail('unsafe_archive', `symlink "${linkPath}" -> "${link.linkTarget}" leaves the archive root (through other links)`);
        current.pop();
        continue;
      }
      current.push(part);
      const here = current.join('/');
      if (index.entries.get(here)?.type === 'symlink') current = resolveInside(here, seen).split('/').filter(Boolean);
    }
    return current.join('/');
  }

  function safePath(raw: string, what: string): string {
    if (raw.includes('\0')) fail('unsafe_archive', `${what} "${raw.replace(/\0/g, '\\0')}" has a NUL byte in its name`);
    if (raw.startsWith('/') || /^[A-Za-z]:[\\/]/.test(raw) || raw.startsWith('\\')) fail('unsafe_archive', `${what} "${raw}" has an absolute path`);
    const parts = raw.split(/[\\/]+/).filter((p) => p !== '' && p !== '.');
    if (parts.includes('..')) fail('unsafe_archive', `${what} "${raw}" leaves the archive root (a path with "..")`);
    if (parts.length === 0) fail('unsafe_archive', `${what} "${raw}" has an empty name`);
    return raw.split('/').filter((p) => p !== '' && p !== '.').join('/');
  }

  const output = Readable.from(pack, { objectMode: false, highWaterMark: 1024 * 1024 });
  let checked = false;
  // The reader going away (the extraction failed, the run was cancelled) stops the guard too.
  output.once('close', () => {
    if (checked) return;
    const stopped = new Error('the extraction in the sandbox stopped reading the archive');
    pack.destroy(stopped);
    extract.destroy(stopped);
    input.destroy();
  });
  const result = check().finally(() => {
    checked = true;
  });
  return { output, index: result };
}

function isPaxSparse(header: tarStream.Headers): boolean {
  const pax = (header as { pax?: Record<string, string> }).pax ?? {};
  return Object.keys(pax).some((k) => k.startsWith('GNU.sparse.'));
}

/** tar-stream's own complaints mean the archive's structure is broken. */
function tarError(err: unknown): Error {
  const e = err as Error;
  const message = e?.message ?? String(err);
  if (/unexpected end/i.test(message)) return new VerificationError('truncated_dump', `the tar archive ends in the middle of an entry: it was cut short (${message})`, { cause: err });
  if (/invalid tar header|checksum/i.test(message)) return new VerificationError('restore_failed', `the tar archive is corrupt: ${message}`, { cause: err });
  return e;
}
