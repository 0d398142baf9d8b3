import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { BackproofError } from '../errors.js';
import type { QueryFn, SqlExecutor } from './executor.js';

/**
 * Embedded PostgreSQL (PGlite, WASM) in `<dataDir>/evidence`. PGlite is one process's database:
 * `<dataDir>/evidence.lock` holds `{pid, host, startedAt}` of the process that has it open. A lock
 * held by a live process makes the open fail with `store_locked`; a lock left by a process that
 * died is taken over.
 */
export interface LockInfo {
  pid: number;
  host: string;
  startedAt: string;
}

/** Lock files held by this process, so a second open in the same process is refused too. */
const heldHere = new Set<string>();

export async function createPgliteExecutor(dataDir: string): Promise<SqlExecutor> {
  const root = path.resolve(dataDir);
  await fs.mkdir(root, { recursive: true });
  const lockPath = path.join(root, 'evidence.lock');
  const lockText = await acquireLock(lockPath);
  try {
    const db = await PGlite.create({ dataDir: path.join(root, 'evidence') });
    return new PgliteExecutor(db, lockPath, lockText);
  } catch (err) {
    await releaseLock(lockPath, lockText);
    throw new BackproofError('store_unreachable', `cannot open the embedded evidence store in ${path.join(root, 'evidence')}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

class PgliteExecutor implements SqlExecutor {
  readonly kind = 'pglite' as const;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly db: PGlite,
    private readonly lockPath: string,
    private readonly lockText: string,
  ) {}

  async query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }> {
    const result = await this.db.query<R>(text, values ?? []);
    return { rows: result.rows };
  }

  async exec(sqlText: string): Promise<void> {
    try {
      await this.db.exec(sqlText);
    } catch (err) {
      // Leave no aborted transaction behind on the one connection there is.
      await this.db.exec('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  /** PGlite's own transaction: it holds the one connection, so other queries wait for it. */
  async transaction<T>(fn: (q: QueryFn) => Promise<T>): Promise<T> {
    return this.db.transaction(async (tx) => {
      const q: QueryFn = async <R>(text: string, values?: unknown[]) => {
        const result = await tx.query<R>(text, values ?? []);
        return { rows: result.rows };
      };
      return fn(q);
    });
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.db.close();
      } finally {
        await releaseLock(this.lockPath, this.lockText);
      }
    })();
    return this.closing;
  }
}

/** Is `pid` a live process on this host? EPERM means it exists but belongs to someone else. */
export function isPidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function acquireLock(lockPath: string): Promise<string> {
  if (heldHere.has(lockPath)) {
    throw lockedError(lockPath, { pid: process.pid, host: os.hostname(), startedAt: '' }, true);
  }
  const mine: LockInfo = { pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString() };
  const text = `${JSON.stringify(mine)}\n`;
  // Write the whole file aside, then link it into place: link() is atomic and fails if the lock
  // exists, so no reader ever sees a half-written lock.
  const tmp = `${lockPath}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await fs.writeFile(tmp, text, { mode: 0o644 });
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await fs.link(tmp, lockPath);
        heldHere.add(lockPath);
        return text;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      await takeOverIfStale(lockPath);
    }
    throw new BackproofError('store_locked', `could not take the lock ${lockPath}: other processes keep taking it; try again`);
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/** Moves a stale lock out of the way; throws `store_locked` if its holder is alive. */
async function takeOverIfStale(lockPath: string): Promise<void> {
  let text: string;
  try {
    text = await fs.readFile(lockPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // released meanwhile
    throw err;
  }
  const holder = parseLock(text);
  if (holder && holder.host !== os.hostname()) throw lockedError(lockPath, holder, false);
  // Our own pid in a lock we do not hold is a pid reused after a restart: stale.
  if (holder && holder.pid !== process.pid && isPidAlive(holder.pid)) throw lockedError(lockPath, holder, false);
  // Stale (or unreadable). Rename it aside, then check we moved the same stale lock and not one a
  // concurrent process has just written; if not, put that one back and report it as held.
  const aside = `${lockPath}.stale.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    await fs.rename(lockPath, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const moved = await fs.readFile(aside, 'utf8').catch(() => '');
  if (moved !== text) {
    await fs.link(aside, lockPath).catch(() => undefined);
    await fs.rm(aside, { force: true });
    const fresh = parseLock(moved);
    if (fresh) throw lockedError(lockPath, fresh, false);
    return;
  }
  await fs.rm(aside, { force: true });
}

async function releaseLock(lockPath: string, lockText: string): Promise<void> {
  heldHere.delete(lockPath);
  const current = await fs.readFile(lockPath, 'utf8').catch(() => undefined);
  if (current === lockText) await fs.rm(lockPath, { force: true });
}

function parseLock(text: string): LockInfo | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockInfo>;
    if (typeof v.pid === 'number' && typeof v.host === 'string') {
      return { pid: v.pid, host: v.host, startedAt: typeof v.startedAt === 'string' ? v.startedAt : '' };
    }
  } catch {
    // fall through
  }
  return undefined;
}

function lockedError(lockPath: string, holder: LockInfo, sameProcess: boolean): BackproofError {
  const fix =
    'wait for it to finish, or, to run several backproof processes at once, use PostgreSQL: set database.url';
  if (sameProcess) {
    return new BackproofError('store_locked', `the embedded evidence store (${lockPath}) is already open in this process (pid ${holder.pid}); close it first, or ${fix}`);
  }
  if (holder.host !== os.hostname()) {
    return new BackproofError(
      'store_locked',
      `the embedded evidence store is locked by pid ${holder.pid} on host ${holder.host} since ${holder.startedAt} (${lockPath}); ${fix}; if that process is gone, delete the lock file`,
    );
  }
  return new BackproofError(
    'store_locked',
    `the embedded evidence store is in use by backproof pid ${holder.pid} since ${holder.startedAt} (${lockPath}); ${fix}`,
  );
}
