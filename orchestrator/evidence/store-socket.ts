import { createHash, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import { DEFAULTS } from '../core/defaults.js';
import { BackproofError } from '../core/errors.js';
import type { QueryFn, SqlExecutor } from './executor.js';

/**
 * The embedded store shared through its holder. PGlite is one process's database, so the process
 * that opened it (the holder: the daemon, `serve`, or whichever command came first) listens on a
 * Unix socket named in its lock file, and every other backproof process on the host sends its
 * statements there instead of failing with `store_locked`. Such a process never loads PGlite: a
 * `runs list` or `status` beside the daemon costs what Node costs (bench/process-cost.ts).
 *
 * - The socket lives in the data dir (0700) when its path fits the 107-byte limit, else in a
 *   private 0700 directory under the system's temp dir; the socket itself is 0600. The first
 *   message must carry the token of the lock file (0600): only the data dir's owner can join.
 * - Frames: a 4-byte big-endian length and `v8.serialize` of one message (Dates, Buffers, bigints
 *   and jsonb values cross as they are).
 * - One connection runs plain statements, as many at once as the client sends (PGlite runs them
 *   one at a time). A transaction has a connection of its own: `begin`, statements, then `commit`
 *   or `rollback`. While it is open the holder's own statements wait, as they would for its own
 *   transaction, so a client silent for DEFAULTS.storeTxIdleMs, or gone, is rolled back.
 * - When the holder closes the store it stops taking connections and waits up to
 *   DEFAULTS.storeHostDrainMs for its clients to finish. A client cut off later fails the
 *   statements it had in flight (`store_unreachable`: a run's record goes to the journal, see
 *   RunStore.finalize) and reopens the store for the next ones, holding it itself if it is free.
 */

/** What a holder publishes in its lock file. */
export interface StoreSocketInfo {
  socket: string;
  token: string;
}

type Request =
  | { id: number; op: 'hello'; token: string; pid: number }
  | { id: number; op: 'query'; text: string; values: unknown[] }
  | { id: number; op: 'exec'; sql: string }
  | { id: number; op: 'begin' }
  | { id: number; op: 'commit' }
  | { id: number; op: 'rollback' };

/** `bye`: the holder is closing the store; what was not answered was not run. */
type Reply = { id: number; rows?: unknown[]; error?: WireError; bye?: true };

interface WireError {
  message: string;
  fields: Record<string, string | number | undefined>;
}

/** 256 MiB: a run's artifacts (screenshots, logs) are far smaller; anything larger is refused. */
const MAX_FRAME = 256 * 1024 * 1024;
/** Sockets paths longer than this do not fit `sockaddr_un` on Linux (108 bytes with the NUL). */
const MAX_SOCKET_PATH = 100;

function encode(message: Request | Reply): Buffer {
  const body = v8.serialize(message);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

/** Splits a stream of frames into messages; a frame over MAX_FRAME destroys the socket. */
function onFrames(socket: net.Socket, handle: (message: unknown) => void): void {
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 4) {
      const length = pending.readUInt32BE(0);
      if (length > MAX_FRAME) {
        socket.destroy(new Error(`a store socket frame of ${length} bytes is over the ${MAX_FRAME}-byte limit`));
        return;
      }
      if (pending.length < 4 + length) break;
      const body = pending.subarray(4, 4 + length);
      pending = pending.subarray(4 + length);
      let message: unknown;
      try {
        message = v8.deserialize(body);
      } catch (err) {
        socket.destroy(err as Error);
        return;
      }
      handle(message);
    }
  });
}

function toWire(err: unknown): WireError {
  const e = err as Error & Record<string, unknown>;
  const fields: WireError['fields'] = {};
  for (const [k, v] of Object.entries(e ?? {})) {
    if (typeof v === 'string' || typeof v === 'number') fields[k] = v;
  }
  return { message: e?.message ?? String(err), fields };
}

function fromWire(w: WireError): Error {
  const err = new Error(w.message);
  Object.assign(err, w.fields);
  return err;
}

/** Thrown inside the holder's transaction to roll it back when the client asks. */
class RollbackRequested extends Error {}

/** One client connection at the holder. */
interface Conn {
  socket: net.Socket;
  pid?: number;
  /** Statements in flight, plus one while a transaction is open. */
  busy: number;
  tx?: TxSession;
}

/** The holder's side: serves `executor` (the PGlite it opened) on a socket until `close()`. */
export class StoreHost {
  private readonly conns = new Set<Conn>();
  private stopping = false;
  private onIdle: (() => void) | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: net.Server,
    private readonly executor: SqlExecutor,
    readonly info: StoreSocketInfo,
    private readonly privateDir: string | undefined,
  ) {}

  /** Listens on `<root>/evidence.sock` (or a private temp dir when that path is too long). */
  static async start(executor: SqlExecutor, root: string, token: string): Promise<StoreHost> {
    let socketPath = path.join(root, 'evidence.sock');
    let privateDir: string | undefined;
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
      const tag = createHash('sha256').update(root).digest('hex').slice(0, 12);
      privateDir = await fs.mkdtemp(path.join(os.tmpdir(), `backproof-${tag}-`));
      socketPath = path.join(privateDir, 's');
    }
    // We hold the lock: a socket file left here belongs to a holder that died.
    await fs.rm(socketPath, { force: true });
    const server = net.createServer();
    const host = new StoreHost(server, executor, { socket: socketPath, token }, privateDir);
    server.on('connection', (socket) => host.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await fs.chmod(socketPath, 0o600);
    server.unref();
    return host;
  }

  private get busy(): number {
    let n = 0;
    for (const c of this.conns) n += c.busy;
    return n;
  }

  /**
   * Stops taking connections and statements; waits (up to `drainMs`) for the statements and
   * transactions in flight; then says goodbye on every connection, so that each client sends
   * what it asks next to whoever holds the store after this process. A client still busy at the
   * deadline is cut off.
   */
  close(drainMs: number = DEFAULTS.storeHostDrainMs, log: (line: string) => void = () => undefined): Promise<void> {
    this.closing ??= (async () => {
      this.stopping = true;
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      if (this.busy > 0) {
        const pids = [...new Set([...this.conns].filter((c) => c.busy).map((c) => c.pid))].join(', ');
        log(`waiting up to ${Math.round(drainMs / 1000)} s for backproof pid ${pids} to finish its statements on the evidence store`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, drainMs);
          timer.unref();
          this.onIdle = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      for (const c of this.conns) {
        if (c.busy) c.socket.destroy();
        else c.socket.end(encode({ id: 0, bye: true }));
      }
      const cut = setTimeout(() => {
        for (const c of this.conns) c.socket.destroy();
      }, 1_000);
      await closed;
      clearTimeout(cut);
      if (this.privateDir) await fs.rm(this.privateDir, { recursive: true, force: true });
    })();
    return this.closing;
  }

  private settle(conn: Conn): void {
    conn.busy--;
    if (this.stopping && this.busy === 0) this.onIdle?.();
  }

  private accept(socket: net.Socket): void {
    const conn: Conn = { socket, busy: 0 };
    this.conns.add(conn);
    let greeted = false;
    socket.on('close', () => {
      this.conns.delete(conn);
      // A client gone inside its transaction: roll it back now, not after the idle timeout.
      conn.tx?.push({ id: -1, op: 'rollback' });
    });
    socket.on('error', () => undefined);
    const send = (reply: Reply): void => {
      if (!socket.destroyed && socket.writable) socket.write(encode(reply));
    };
    onFrames(socket, (raw) => {
      const m = raw as Request;
      if (!greeted) {
        if (m.op !== 'hello' || !sameToken(m.token, this.info.token)) {
          socket.destroy();
          return;
        }
        greeted = true;
        conn.pid = m.pid;
        send({ id: m.id });
        return;
      }
      if (conn.tx) {
        conn.tx.push(m);
        return;
      }
      // Closing: not run, and not answered; the goodbye tells the client to ask elsewhere.
      if (this.stopping) return;
      conn.busy++;
      if (m.op === 'begin') {
        const tx = new TxSession(this.executor, send, () => socket.destroy());
        conn.tx = tx;
        void tx.run(m.id).finally(() => {
          conn.tx = undefined;
          this.settle(conn);
        });
        return;
      }
      void this.plain(m).then((reply) => {
        send(reply);
        this.settle(conn);
      });
    });
  }

  private async plain(m: Request): Promise<Reply> {
    try {
      if (m.op === 'query') return { id: m.id, rows: (await this.executor.query(m.text, m.values)).rows };
      if (m.op === 'exec') {
        await this.executor.exec(m.sql);
        return { id: m.id };
      }
      throw new Error(`'${m.op}' outside a transaction`);
    } catch (err) {
      return { id: m.id, error: toWire(err) };
    }
  }
}

function sameToken(given: unknown, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** One client transaction inside the holder's `executor.transaction`. */
class TxSession {
  private readonly inbox: Request[] = [];
  private wake: (() => void) | undefined;

  constructor(
    private readonly executor: SqlExecutor,
    private readonly send: (reply: Reply) => void,
    private readonly drop: () => void,
  ) {}

  push(m: Request): void {
    this.inbox.push(m);
    this.wake?.();
  }

  /** Waits for the client's next message; rolls back if it stays silent too long. */
  private async next(): Promise<Request> {
    for (;;) {
      const m = this.inbox.shift();
      if (m) return m;
      const idle = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(true), DEFAULTS.storeTxIdleMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve(false);
        };
      });
      this.wake = undefined;
      if (idle) {
        this.drop();
        throw new RollbackRequested('the client was silent inside its transaction');
      }
    }
  }

  async run(beginId: number): Promise<void> {
    let lastId = beginId;
    try {
      await this.executor.transaction(async (q: QueryFn) => {
        this.send({ id: beginId });
        for (;;) {
          const m = await this.next();
          lastId = m.id;
          if (m.op === 'commit') return;
          if (m.op === 'rollback') throw new RollbackRequested('rollback');
          if (m.op !== 'query') {
            this.send({ id: m.id, error: toWire(new Error(`'${m.op}' inside a transaction`)) });
            continue;
          }
          try {
            this.send({ id: m.id, rows: (await q(m.text, m.values)).rows });
          } catch (err) {
            this.send({ id: m.id, error: toWire(err) });
          }
        }
      });
      this.send({ id: lastId });
    } catch (err) {
      this.send(err instanceof RollbackRequested ? { id: lastId } : { id: lastId, error: toWire(err) });
    }
  }
}

/** A connection to the holder: requests by id, replies matched back. */
class Link {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private lost: Error | undefined;

  private constructor(
    private readonly socket: net.Socket,
    private readonly holderPid: number,
  ) {
    onFrames(socket, (raw) => {
      const reply = raw as Reply;
      if (reply.bye) {
        fail('closed the store', 'store_moved');
        return;
      }
      const w = this.waiting.get(reply.id);
      if (!w) return;
      this.waiting.delete(reply.id);
      w.resolve(reply);
    });
    const fail = (why: string, code: 'store_unreachable' | 'store_moved' = 'store_unreachable'): void => {
      this.lost ??= new BackproofError(code, `the backproof process holding the embedded evidence store (pid ${this.holderPid}) ${why}`);
      for (const w of this.waiting.values()) w.reject(this.lost);
      this.waiting.clear();
    };
    socket.on('error', (err) => fail(`cannot be reached: ${err.message}`));
    socket.on('close', () => fail('closed the connection'));
  }

  static async open(info: StoreSocketInfo, holderPid: number): Promise<Link> {
    const socket = net.createConnection(info.socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.removeAllListeners('error');
    const link = new Link(socket, holderPid);
    await link.call({ op: 'hello', token: info.token, pid: process.pid });
    return link;
  }

  get broken(): boolean {
    return this.lost !== undefined;
  }

  /** Lets the process exit while this link is idle. */
  idle(): void {
    if (this.waiting.size === 0) this.socket.unref();
  }

  async call(request: DistributiveOmit<Request, 'id'>): Promise<Reply> {
    if (this.lost) throw this.lost;
    const id = this.nextId++;
    this.socket.ref();
    try {
      const reply = await new Promise<Reply>((resolve, reject) => {
        this.waiting.set(id, { resolve, reject });
        this.socket.write(encode({ ...request, id } as Request));
      });
      if (reply.error) throw fromWire(reply.error);
      return reply;
    } finally {
      this.idle();
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * A client's executor: the holder's PGlite through its socket. `reopen` opens the store again
 * (as holder or client) after the holder has gone.
 */
export class SocketExecutor implements SqlExecutor {
  readonly kind = 'pglite' as const;
  private readonly spareTx: Link[] = [];
  private replacement: Promise<SqlExecutor> | undefined;
  private closed = false;
  /** The holder refused a new connection: it is closing, the next statements go elsewhere. */
  private moved = false;

  constructor(
    private link: Link,
    private readonly info: StoreSocketInfo,
    readonly holderPid: number,
    private readonly reopen: () => Promise<SqlExecutor>,
  ) {}

  static async connect(info: StoreSocketInfo, holderPid: number, reopen: () => Promise<SqlExecutor>): Promise<SocketExecutor> {
    const link = await Link.open(info, holderPid);
    link.idle();
    return new SocketExecutor(link, info, holderPid, reopen);
  }

  /** The executor to use: this link, or, once the holder is gone, the store opened again. */
  private async target(): Promise<Link | SqlExecutor> {
    if (this.closed) throw new BackproofError('store_closed', 'the evidence store is closed');
    if (!this.link.broken && !this.moved) return this.link;
    this.replacement ??= this.reopen().catch((err: unknown) => {
      this.replacement = undefined; // the next statement tries again
      throw err;
    });
    return this.replacement;
  }

  /**
   * Runs `viaLink` on the holder, or `direct` on the store opened again once the holder has gone.
   * A statement the holder said goodbye to was not run (see StoreHost.close): it goes again.
   */
  private async send<T>(viaLink: (link: Link) => Promise<T>, direct: (executor: SqlExecutor) => Promise<T>): Promise<T> {
    const t = await this.target();
    if (!(t instanceof Link)) return direct(t);
    try {
      return await viaLink(t);
    } catch (err) {
      if (!(err instanceof BackproofError && err.code === 'store_moved')) throw err;
      const next = await this.target();
      return next instanceof Link ? viaLink(next) : direct(next);
    }
  }

  query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }> {
    return this.send(
      async (link) => ({ rows: ((await link.call({ op: 'query', text, values: values ?? [] })).rows ?? []) as R[] }),
      (e) => e.query<R>(text, values),
    );
  }

  exec(sqlText: string): Promise<void> {
    return this.send(
      async (link) => {
        await link.call({ op: 'exec', sql: sqlText });
      },
      (e) => e.exec(sqlText),
    );
  }

  async transaction<T>(fn: (q: QueryFn) => Promise<T>): Promise<T> {
    const tx = await this.send<Link | SqlExecutor>(
      async () => {
        let link = this.spareTx.pop();
        while (link?.broken) link = this.spareTx.pop();
        link ??= await Link.open(this.info, this.holderPid).catch((err: Error) => {
          // The holder takes no new connections: it is closing the store.
          this.moved = true;
          throw new BackproofError('store_moved', `the backproof process holding the embedded evidence store (pid ${this.holderPid}) takes no connections: ${err.message}`);
        });
        await link.call({ op: 'begin' });
        return link;
      },
      async (e) => e,
    );
    if (!(tx instanceof Link)) return tx.transaction(fn);
    const q: QueryFn = async <R>(text: string, values?: unknown[]) => {
      const reply = await tx.call({ op: 'query', text, values: values ?? [] });
      return { rows: (reply.rows ?? []) as R[] };
    };
    let result: T;
    try {
      result = await fn(q);
    } catch (err) {
      await tx.call({ op: 'rollback' }).catch(() => undefined);
      if (!tx.broken) this.spareTx.push(tx);
      throw err;
    }
    await tx.call({ op: 'commit' });
    this.spareTx.push(tx);
    return result;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.link.close();
    for (const l of this.spareTx.splice(0)) l.close();
    if (this.replacement) await (await this.replacement.catch(() => undefined))?.close();
  }
}
