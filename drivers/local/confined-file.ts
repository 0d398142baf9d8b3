import { constants } from 'node:fs';
import { open, readlink, realpath, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { VerificationError } from '../../orchestrator/core/errors.js';

/**
 * Opening host files on behalf of a backup folder that untrusted machines write. Whoever writes
 * the folder may leave a symlink (`shop.sql -> /root/.backproof/evidence-key.pem`), or swap a
 * directory for a link between our check and our open. A file is therefore opened only when:
 * - its real path (every link resolved) lies inside the folder's real path;
 * - the file actually opened, as the kernel names it (`/proc/self/fd/N`), lies there too, which
 *   closes the race between that check and the open;
 * - it is a regular file (a FIFO or device is never read; opened non-blocking, so a FIFO does
 *   not hang the open).
 * A link that stays inside the folder (`latest.dump -> shop-20261203.dump`) is followed.
 */
export class ConfinedFolder {
  private rootReal?: Promise<string>;

  constructor(readonly root: string) {}

  /** The folder's own real path: the configured path may itself be a link (a mount point's alias). */
  realRoot(): Promise<string> {
    this.rootReal ??= realpath(this.root).catch((err: unknown) => {
      this.rootReal = undefined; // not mounted yet: ask again next time
      throw err;
    });
    return this.rootReal;
  }

  /**
   * Where a path inside the folder really leads, or why it may not be read: undefined when it is
   * inside; otherwise the target outside (or `'unresolvable'` for a dangling link).
   */
  async escape(file: string): Promise<string | undefined> {
    const root = await this.realRoot();
    let real: string;
    try {
      real = await realpath(file);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return undefined; // gone: open() says so
      throw err;
    }
    return inside(root, real) ? undefined : real;
  }

  /** Opens `file` (a path inside the folder) for reading, or throws `unsafe_source` / the OS error. */
  async open(file: string, key: string): Promise<{ handle: FileHandle; size: number; modifiedAt: Date }> {
    const root = await this.realRoot();
    const real = await realpath(file); // ENOENT and EACCES surface as they are
    if (!inside(root, real)) throw unsafeSource(key, real, this.root);
    const handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
    try {
      const opened = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => real);
      if (!inside(root, opened)) throw unsafeSource(key, opened, this.root);
      const info = await handle.stat();
      if (!info.isFile()) throw new VerificationError('unsafe_source', `backup ${key} in ${this.root} is not a regular file (a FIFO, device or socket); backproof reads only regular files`);
      return { handle, size: info.size, modifiedAt: info.mtime };
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }
}

function inside(root: string, real: string): boolean {
  return real === root || real.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

function unsafeSource(key: string, target: string, root: string): VerificationError {
  return new VerificationError(
    'unsafe_source',
    `backup ${key} is a link to ${target}, outside the source folder ${root}: backproof never reads it; whoever writes the folder may be trying to read this host's files`,
  );
}
