import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tarStream from 'tar-stream';
import type { ConfinedFolder } from './confined-file.js';

/**
 * Backups that are folders of files, not one file (a pgBackRest set with its WAL, a
 * mariadb-backup target directory): what a restore needs, streamed as one tar.
 */

/** Regular files under `rel` (relative to `root`, `/`-separated), sorted; links and other kinds left out; nothing when `rel` is missing. */
export async function regularFilesUnder(root: string, rel: string, signal?: AbortSignal): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await readdir(path.join(root, rel), { withFileTypes: true });
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return out;
    throw err;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    signal?.throwIfAborted();
    const child = rel === '' ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) out.push(...(await regularFilesUnder(root, child, signal)));
    else if (e.isFile()) out.push(child);
  }
  return out;
}

/** One file of a tar being written: its bytes, size and time; `done` runs once they are read (or failed). */
export interface TarMember {
  stream: Readable;
  size: number;
  modifiedAt: Date;
  done?: () => Promise<void>;
}

/**
 * A tar of `files`, in that order, each opened by `open` when its turn comes (one at a time, so
 * memory stays bounded), mode 0600; an open or read error ends the stream with it.
 */
export function tarOf(files: readonly string[], open: (rel: string) => Promise<TarMember>, signal?: AbortSignal): Readable {
  const pack = tarStream.pack();
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  const fail = (err: unknown): void => {
    out.destroy(err instanceof Error ? err : new Error(String(err)));
  };
  pack.on('error', fail);
  pack.pipe(out);
  void (async () => {
    for (const rel of files) {
      signal?.throwIfAborted();
      const member = await open(rel);
      try {
        const sink = pack.entry({ name: rel, size: member.size, mode: 0o600, mtime: member.modifiedAt, type: 'file' });
        await pipeline(member.stream, sink);
      } finally {
        await member.done?.();
      }
    }
    pack.finalize();
  })().catch(fail);
  return out;
}

/**
 * A tar of `files` (relative to the folder's root), in that order, each opened confined to the
 * folder (a link out of it, or a file swapped for one, is `unsafe_source`). The order and contents
 * fix the bytes, so the stream's sha256 is reproducible.
 */
export function tarOfFiles(folder: ConfinedFolder, root: string, files: readonly string[], signal?: AbortSignal): Readable {
  return tarOf(files, (rel) => confinedMember(folder, path.join(root, rel), rel), signal);
}

/**
 * `file` (a path inside the folder) as a tar member named `rel` in messages, opened confined to
 * the folder (a link out of it is `unsafe_source`); its handle is closed once it is read.
 */
export async function confinedMember(folder: ConfinedFolder, file: string, rel: string): Promise<TarMember> {
  const { handle, size, modifiedAt } = await folder.open(file, rel);
  return { stream: handle.createReadStream({ autoClose: false }), size, modifiedAt, done: () => handle.close().catch(() => undefined) };
}
