import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, constants as fsc, lstatSync, promises as fs, readdirSync, type Dirent } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import type { PGlite } from '@electric-sql/pglite';
import { DEFAULTS } from '../core/defaults.js';
import { BackproofError } from '../core/errors.js';
import type { QueryFn, SqlExecutor } from './executor.js';
import { SocketExecutor, StoreHost, type StoreSocketInfo } from './store-socket.js';
import { seedFromTemplate } from './store-template.js';

/**
 * Embedded PostgreSQL (PGlite, WASM) in `<dataDir>/evidence`. PGlite is one process's database:
 * `<dataDir>/evidence.lock` holds `{pid, host, startedAt}` of the process that has it open. A lock
 * held by a live process makes the open fail with `store_locked`; a lock left by a process that
 * died is taken over. A holder shares the store through a socket named in its lock (see
 * store-socket.ts): another backproof process on the host joins it instead of failing.
 *
 * The data dir is private to its owner: the directory and every directory in it 0700, every file
 * 0600 (PGlite writes most of its files 0666 whatever the umask, pg_control and WAL included, so
 * another local user could truncate pg_control and break every later command). See
 * `enforcePrivateDataDir`.
 */
export interface LockInfo extends Partial<StoreSocketInfo> {
  pid: number;
  host: string;
  startedAt: string;
}

/** Lock files held by this process, so a second open in the same process is refused too. */
const heldHere = new Set<string>();

/**
 * How the embedded store runs, for a process that starts, reads and exits in well under a second:
 * - V8 compiles PGlite's 9 MB of WASM lazily (a function when it first runs) and with its
 *   baseline compiler only (Liftoff). With the defaults V8 compiles every function up front and
 *   recompiles hot ones with TurboFan on background threads: ~60 MB more peak RSS and, on two
 *   cores, ~0.4 s more per open, for queries that take milliseconds here. The flags are
 *   process-wide and affect only WASM; they are set before PGlite compiles its module.
 * - shared_buffers small (DEFAULTS.embeddedSharedBuffers): PostgreSQL zeroes its buffer pool at
 *   start, so the 128MB default is ~130 MB of RSS and ~130 ms per command.
 * Measured by bench/process-cost.ts.
 */
let wasmTierSet = false;
function startParams(PGlite: { defaultStartParams: string[] }): string[] {
  if (!wasmTierSet) {
    v8.setFlagsFromString('--liftoff-only --wasm-lazy-compilation');
    wasmTierSet = true;
  }
  return [...PGlite.defaultStartParams, '-c', `shared_buffers=${DEFAULTS.embeddedSharedBuffers}`];
}

export interface PgliteOptions {
  /** A new store starts as a copy of the pre-built template (store-template.ts) unless false. */
  template?: boolean;
  /**
   * When another backproof process on this host holds the store, use it through that process
   * (default true). Long-lived processes (the daemon, `serve`) pass false: they must hold the
   * store themselves, since a client loses it when its holder exits.
   */
  join?: boolean;
}

/**
 * Opens (or creates) the embedded store in `<dataDir>/evidence` and shares it on a socket; or,
 * when another backproof process holds it, joins that one (`join`).
 */
export async function createPgliteExecutor(dataDir: string, opts: PgliteOptions = {}): Promise<SqlExecutor> {
  const root = path.resolve(dataDir);
  await fs.mkdir(root, { recursive: true, mode: PRIVATE_DIR_MODE });
  // Before anything is read or written: a data dir others could write to is fixed or refused.
  // What is inside a private one is tightened by the walk after PGlite starts (and at close) in
  // the process that opens the store; a process that joins its holder leaves it to the holder.
  // Nobody else can reach it meanwhile; one walk fewer at open (~1,100 lstat calls, 25-50 ms here).
  const loosened = await enforcePrivateDataDir(root, { inside: false });
  // Only the directory itself says whether others could get in: inside a 0700 directory a file
  // left 0644 (by PGlite, or another backproof command) is tightened without a word.
  const rootWas = loosened.find((c) => c.path === root);
  if (rootWas) warnLoosened(root, rootWas.mode, loosened.length);
  const lockPath = path.join(root, 'evidence.lock');
  const lock = await acquireOrJoin(lockPath, opts.join !== false, () => createPgliteExecutor(dataDir, opts));
  if (lock instanceof SocketExecutor) return lock;
  let lockText = lock;
  let db: PGlite | undefined;
  try {
    const evidenceDir = path.join(root, 'evidence');
    if (opts.template !== false && !existsSync(evidenceDir)) {
      // A damaged template costs the time of initdb, not the store.
      await seedFromTemplate(evidenceDir).catch((err: unknown) => {
        process.emitWarning(`the pre-built evidence store template could not be used (${(err as Error).message}); creating the store with initdb`, {
          type: 'BackproofWarning',
          code: 'store_template_unusable',
        });
      });
    }
    // Loaded here, not at import: a process that joins another's store never loads PGlite.
    const { PGlite } = await import('@electric-sql/pglite');
    db = await PGlite.create({ dataDir: evidenceDir, startParams: startParams(PGlite) });
    // PGlite (in WASM, through Emscripten's NODEFS) ignores the process umask: tighten what it wrote.
    await enforcePrivateDataDir(root);
    const executor = new PgliteExecutor(db, root, lockPath, lockText);
    lockText = await executor.share();
    return executor;
  } catch (err) {
    await db?.close().catch(() => undefined);
    await releaseLock(lockPath, lockText);
    if (err instanceof BackproofError) throw err;
    throw new BackproofError('store_unreachable', `cannot open the embedded evidence store in ${path.join(root, 'evidence')}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

class PgliteExecutor implements SqlExecutor {
  readonly kind = 'pglite' as const;
  private closing: Promise<void> | undefined;
  private host: StoreHost | undefined;
  /** Settles when the last call made so far has (see inTurn). */
  private turn: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly db: PGlite,
    private readonly root: string,
    private readonly lockPath: string,
    private lockText: string,
  ) {}

  /**
   * Serves the store on a socket and names it in the lock file (rewritten whole, then renamed into
   * place). Without a socket (a file system that refuses one) the store is this process's alone,
   * as before sharing existed. Returns the lock's text now.
   */
  async share(): Promise<string> {
    const token = randomBytes(24).toString('hex');
    try {
      this.host = await StoreHost.start(this, this.root, token);
      const info = { ...(parseLock(this.lockText) ?? { pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString() }), ...this.host.info };
      const text = `${JSON.stringify(info)}\n`;
      const tmp = `${this.lockPath}.${process.pid}.${randomBytes(4).toString('hex')}`;
      await fs.writeFile(tmp, text, { mode: PRIVATE_FILE_MODE });
      await fs.rename(tmp, this.lockPath);
      this.lockText = text;
    } catch (err) {
      await this.host?.close(0);
      this.host = undefined;
      process.emitWarning(`the embedded evidence store is not shared with other backproof processes (${(err as Error).message}); they will find it locked while this one runs`, {
        type: 'BackproofWarning',
        code: 'store_not_shared',
      });
    }
    return this.lockText;
  }

  memoryBytes(): number {
    return this.db.Module.wasmMemory.buffer.byteLength;
  }

  query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }> {
    return this.inTurn(async () => {
      const result = await this.db.query<R>(text, values ?? []);
      return { rows: result.rows };
    });
  }

  exec(sqlText: string): Promise<void> {
    return this.inTurn(async () => {
      try {
        await this.db.exec(sqlText);
      } catch (err) {
        // Leave no aborted transaction behind on the one connection there is (a script's BEGIN
        // before the statement that failed), before the next caller's statement runs.
        await this.db.exec('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  }

  /** PGlite's own transaction: it holds the one connection, so other queries wait for it. */
  transaction<T>(fn: (q: QueryFn) => Promise<T>): Promise<T> {
    return this.inTurn(() =>
      this.db.transaction(async (tx) => {
        const q: QueryFn = async <R>(text: string, values?: unknown[]) => {
          const result = await tx.query<R>(text, values ?? []);
          return { rows: result.rows };
        };
        return fn(q);
      }),
    );
  }

  /**
   * Runs `fn` when every call made before it has finished, as PGlite runs them anyway (one
   * connection, one statement or transaction at a time). What PGlite does not do: keep a failed
   * exec and its ROLLBACK together; a call already waiting on PGlite would run between the two,
   * inside the failed script's aborted transaction.
   */
  private inTurn<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.turn.then(fn);
    this.turn = run.catch(() => undefined);
    return run;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        // Other processes using the store finish their statements first.
        await this.host?.close(DEFAULTS.storeHostDrainMs, (line) => process.stderr.write(`${line}\n`));
        await this.db.close();
        // Files PGlite made while open (WAL segments, new relations) get owner-only modes too.
        await enforcePrivateDataDir(this.root);
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

/**
 * Takes the lock (returns its text), or joins the live holder's store through its socket. A
 * holder that is still opening the store (its lock is younger than DEFAULTS.storeJoinWaitMs and
 * names no socket yet), or closing it, is waited for, up to DEFAULTS.storeJoinWaitMs.
 */
async function acquireOrJoin(lockPath: string, join: boolean, reopen: () => Promise<SqlExecutor>): Promise<string | SocketExecutor> {
  const deadline = Date.now() + DEFAULTS.storeJoinWaitMs;
  for (;;) {
    try {
      return await acquireLock(lockPath);
    } catch (err) {
      if (!join || !(err instanceof BackproofError && err.code === 'store_locked') || heldHere.has(lockPath)) throw err;
      const holder = parseLock(await fs.readFile(lockPath, 'utf8').catch(() => ''));
      if (!holder) continue; // released meanwhile: take it
      if (holder.host !== os.hostname()) throw err;
      if (holder.socket && holder.token) {
        try {
          return await SocketExecutor.connect({ socket: holder.socket, token: holder.token }, holder.pid, reopen);
        } catch {
          // Refused: the holder is closing the store (or died just now). Wait for the lock.
        }
      } else if (!(Date.now() - Date.parse(holder.startedAt) < DEFAULTS.storeJoinWaitMs)) {
        throw err; // a holder that does not share (an older backproof, or sharing failed)
      }
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
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
  await fs.writeFile(tmp, text, { mode: PRIVATE_FILE_MODE });
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
      return {
        pid: v.pid,
        host: v.host,
        startedAt: typeof v.startedAt === 'string' ? v.startedAt : '',
        ...(typeof v.socket === 'string' && typeof v.token === 'string' ? { socket: v.socket, token: v.token } : {}),
      };
    }
  } catch {
    // fall through
  }
  return undefined;
}

function lockedError(lockPath: string, holder: LockInfo, sameProcess: boolean): BackproofError {
  const fix =
    'other commands use the store through its holder, but the daemon and serve must hold it themselves: wait for that process to finish, or, to run several of them at once, use PostgreSQL: set database.url';
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

/** Owner-only modes for the data dir and everything in it. */
const PRIVATE_DIR_MODE = 0o700;
const PRIVATE_FILE_MODE = 0o600;
const GROUP_OTHER_BITS = 0o077;

/**
 * Makes `root` and everything under it private to its owner: group and other permission bits are
 * cleared (directories end 0700, PGlite's 0666 files 0600). Returns what it changed, with the
 * mode each had.
 *
 * The data dir itself decides whether anyone else can get in (a 0700 directory cannot be
 * traversed by others); the modes inside still matter for hard links made while it was open.
 * - The directory, owned by this process's user and open to others: fixed, and the caller warns
 *   (a data dir made by an older backproof). Refusing would strand every existing installation
 *   for a problem we can repair ourselves; the owner could chmod it anyway.
 * - The directory, owned by another user and open to others: refused with `data_dir_insecure`.
 *   We cannot (or, as root, should not) change another user's directory, and evidence that
 *   someone else controls is not ours to vouch for.
 * - Inside: our own entries are tightened; another user's are left as they are (not ours to
 *   change, e.g. a log `sudo backproof images build` wrote; nobody reaches them through a
 *   private directory).
 *
 * Each entry is opened with O_NOFOLLOW and changed through its descriptor, so a symlink planted in
 * a loose directory is never followed (symlinks are left alone: their mode means nothing). The
 * root is fixed first, so from then on no other user can reach the entries below it.
 */
export async function enforcePrivateDataDir(root: string, opts: { inside?: boolean } = {}): Promise<{ path: string; mode: number }[]> {
  const uid = process.getuid?.();
  if (uid === undefined) return []; // Windows: no POSIX modes
  const top = await fs.lstat(root).catch(() => undefined);
  // The usual case, a data dir of ours that only we can enter: nobody else can plant a link in
  // it, so a plain walk by path (lstat, chmod where needed) is safe and ~10x cheaper than opening
  // every entry (1,000 files: ~25 ms against ~250 ms at every open and close). `inside: false`
  // leaves even that walk to a later call (see createPgliteExecutor).
  if (top?.isDirectory() && top.uid === uid && (top.mode & GROUP_OTHER_BITS) === 0) return opts.inside === false ? [] : tightenInside(root, uid);
  const changed: { path: string; mode: number }[] = [];
  const judge = (p: string, st: { uid: number; mode: number }): 'ok' | 'fix' | 'foreign' => {
    if ((st.mode & GROUP_OTHER_BITS) === 0) return 'ok';
    if (st.uid === uid) return 'fix';
    if (p === root) throw insecureError(root, st.uid, st.mode, uid);
    return 'foreign';
  };
  const visit = async (p: string): Promise<void> => {
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(p, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ELOOP' || code === 'ENOENT') return; // a symlink, or removed meanwhile
      const st = code === 'EACCES' ? await fs.lstat(p) : undefined;
      if (st && st.uid !== uid) {
        judge(p, st); // another user's entry we may not read: refused if it is the data dir, else left alone
        return;
      }
      throw new BackproofError('data_dir_unreadable', `cannot check the permissions of ${p} in the backproof data dir: ${(err as Error).message}; fix: chmod -R u+rwX ${root}`, {
        cause: err,
      });
    }
    let isDir: boolean;
    try {
      const st = await fh.stat();
      isDir = st.isDirectory();
      if (judge(p, st) === 'fix') {
        await fh.chmod(st.mode & 0o700);
        changed.push({ path: p, mode: st.mode & 0o777 });
      }
    } finally {
      await fh.close();
    }
    if (!isDir) return;
    for (const name of await fs.readdir(p)) await visit(path.join(p, name));
  };
  await visit(root);
  return changed;
}

/**
 * Below a private directory of ours: every entry of ours made owner-only; links and others'
 * entries left alone. Synchronous on purpose: ~1,000 lstat calls take ~10 ms this way, against
 * ~70 ms through promises, at every open and close.
 */
function tightenInside(dir: string, uid: number, changed: { path: string; mode: number }[] = []): { path: string; mode: number }[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return changed;
  }
  for (const entry of entries) {
    if (entry.isSymbolicLink()) continue;
    const p = path.join(dir, entry.name);
    let st;
    try {
      st = lstatSync(p);
      if (st.uid === uid && (st.mode & GROUP_OTHER_BITS) !== 0) {
        chmodSync(p, st.mode & 0o700);
        changed.push({ path: p, mode: st.mode & 0o777 });
      }
    } catch {
      continue; // removed meanwhile
    }
    if (st.isDirectory()) tightenInside(p, uid, changed);
  }
  return changed;
}

function insecureError(root: string, owner: number, mode: number, uid: number): BackproofError {
  const octal = (mode & 0o777).toString(8).padStart(3, '0');
  return new BackproofError(
    'data_dir_insecure',
    `the backproof data dir ${root} is owned by uid ${owner} (not ${uid}, who runs backproof) and accessible to other users (mode ${octal}); ` +
      `refusing to use evidence another user controls. Fix: run backproof as uid ${owner}, or take the data dir over: chown -R ${uid} ${root} && chmod -R go-rwx ${root}; or choose another data dir (--data-dir)`,
  );
}

/** A data dir found open to others at open: said on stderr (a process warning with a stable code). */
function warnLoosened(root: string, mode: number, count: number): void {
  process.emitWarning(
    `the backproof data dir ${root} was accessible to other local users (mode ${mode.toString(8).padStart(3, '0')}); ` +
      `made it and everything in it private to its owner (directories 0700, files 0600; ${count} path(s) changed). ` +
      `If other users on this host are not trusted, check the evidence: backproof evidence verify`,
    { type: 'BackproofWarning', code: 'data_dir_permissions_fixed' },
  );
}
