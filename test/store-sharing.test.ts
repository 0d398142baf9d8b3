import { spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { DEFAULTS } from '../orchestrator/core/defaults.js';
import type { SqlExecutor } from '../orchestrator/evidence/executor.js';
import { createPgliteExecutor } from '../orchestrator/evidence/pglite-executor.js';
import { SocketExecutor } from '../orchestrator/evidence/store-socket.js';
import { tempDir } from './helpers/harness.js';
import { startStoreHolder, type StoreHolder } from './helpers/store-holder.js';

// The embedded store shared by its holder (evidence/store-socket.ts): another backproof process
// on the host sends its statements through the holder's socket. The holder here is a real second
// process (test/helpers/store-holder.ts); this process is the client. The evidence and alert
// store conformance suites also run whole through a holder (backend `pglite-shared`).

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

interface Lock {
  pid: number;
  host: string;
  startedAt: string;
  socket?: string;
  token?: string;
}
const readLock = async (dir: string): Promise<Lock> => JSON.parse(await fs.readFile(path.join(dir, 'evidence.lock'), 'utf8')) as Lock;

const holders: StoreHolder[] = [];
const clients: SqlExecutor[] = [];
t.teardown(async () => {
  for (const c of clients) await c.close();
  for (const h of holders) await h.stop();
});
async function hold(dir: string): Promise<StoreHolder> {
  const h = await startStoreHolder(dir);
  holders.push(h);
  return h;
}
async function join(dir: string): Promise<SqlExecutor> {
  const c = await createPgliteExecutor(dir);
  clients.push(c);
  return c;
}

t.test("a client's statements run on the holder's store: types, errors and transactions as on PGlite itself", async (tt) => {
  const dir = await tempDir('share-basic');
  const holder = await hold(dir);
  const c = await join(dir);
  tt.ok(c instanceof SocketExecutor, 'the second process joins the holder');
  tt.equal(c.kind, 'pglite');
  tt.equal((c as SocketExecutor).holderPid, holder.pid);

  await c.exec('CREATE TABLE t (id int PRIMARY KEY, at timestamptz, b bytea, j jsonb, n bigint, s text)');
  const at = new Date('2026-11-29T10:11:12.345Z');
  const bytes = Buffer.from([0, 1, 2, 250, 255]);
  await c.query('INSERT INTO t VALUES ($1, $2, $3, $4::jsonb, $5, $6)', [1, at, bytes, JSON.stringify({ k: ['v', 2] }), '9007199254740993', "it's \"odd\" (ü)\n"]);
  const { rows } = await c.query<{ id: number; at: Date; b: Uint8Array; j: unknown; n: unknown; s: string }>('SELECT * FROM t');
  tt.equal(rows.length, 1);
  tt.ok(rows[0]!.at instanceof Date && rows[0]!.at.getTime() === at.getTime(), 'a timestamptz comes back a Date');
  tt.same(Buffer.from(rows[0]!.b), bytes, 'bytea comes back as bytes');
  tt.same(rows[0]!.j, { k: ['v', 2] }, 'jsonb comes back parsed');
  tt.equal(String(rows[0]!.n), '9007199254740993', 'bigint past 2^53 keeps every digit');
  tt.equal(rows[0]!.s, "it's \"odd\" (ü)\n");

  const dup = await c.query('INSERT INTO t (id) VALUES (1)').then(
    () => undefined,
    (err: unknown) => err as { code?: string; message?: string },
  );
  tt.equal(dup?.code, '23505', "a database error keeps its SQLSTATE (sqlStateOf reads it)");
  tt.match(dup?.message ?? '', /duplicate key/);

  const committed = await c.transaction(async (q) => {
    await q('INSERT INTO t (id) VALUES (2)');
    return (await q<{ n: number }>('SELECT count(*)::int AS n FROM t')).rows[0]!.n;
  });
  tt.equal(committed, 2, 'a transaction sees its own rows and returns its value');
  const boom = await c
    .transaction(async (q) => {
      await q('INSERT INTO t (id) VALUES (3)');
      throw new Error('changed my mind');
    })
    .catch((err: Error) => err.message);
  tt.equal(boom, 'changed my mind', "the transaction's own error comes back");
  const failed = await c
    .transaction(async (q) => {
      await q('INSERT INTO t (id) VALUES (4)');
      await q('INSERT INTO t (id) VALUES (1)');
    })
    .catch((err: { code?: string }) => err.code);
  tt.equal(failed, '23505', 'a statement that fails inside a transaction rolls it back');
  const ids = (await c.query<{ id: number }>('SELECT id FROM t ORDER BY id')).rows.map((r) => r.id);
  tt.same(ids, [1, 2], 'rolled-back rows are gone, committed ones stay');

  // Many transactions at once, from two clients: each is whole, none interleaves.
  const other = await join(dir);
  await c.exec('CREATE TABLE counter (n int NOT NULL); INSERT INTO counter VALUES (0)');
  await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      (i % 2 ? c : other).transaction(async (q) => {
        const n = (await q<{ n: number }>('SELECT n FROM counter')).rows[0]!.n;
        await q('UPDATE counter SET n = $1', [n + 1]);
      }),
    ),
  );
  tt.equal((await other.query<{ n: number }>('SELECT n FROM counter')).rows[0]?.n, 30, 'thirty read-then-write transactions, no lost update');
});

t.test('the socket is private: owner-only modes, and the lock\'s token is needed to be heard', async (tt) => {
  const dir = await tempDir('share-private');
  await hold(dir);
  const lock = await readLock(dir);
  tt.equal(lock.socket, path.join(dir, 'evidence.sock'), 'the socket is in the data dir');
  tt.match(lock.token ?? '', /^[0-9a-f]{48}$/, 'a random token');
  tt.equal((await fs.stat(lock.socket!)).mode & 0o777, 0o600, 'the socket is 0600');
  tt.equal((await fs.stat(path.join(dir, 'evidence.lock'))).mode & 0o777, 0o600, 'the lock (with the token) is 0600');
  const refused = await SocketExecutor.connect({ socket: lock.socket!, token: 'f'.repeat(48) }, lock.pid, () => Promise.reject(new Error('no reopen'))).then(
    () => 'connected',
    (err: { code?: string }) => err.code,
  );
  tt.equal(refused, 'store_unreachable', 'a wrong token is hung up on before any statement');
});

t.test('a holder that must hold the store itself (the daemon, serve) is refused while another holds it', async (tt) => {
  const dir = await tempDir('share-hold');
  const holder = await hold(dir);
  const err = await createPgliteExecutor(dir, { join: false }).then(
    () => undefined,
    (e: { code?: string; message?: string }) => e,
  );
  tt.equal(err?.code, 'store_locked');
  tt.match(err?.message ?? '', `pid ${holder.pid}`, 'naming the holder');
});

t.test('a lock without a socket (an older backproof holding the store) is store_locked at once', async (tt) => {
  const dir = await tempDir('share-old');
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)'], { stdio: 'ignore' });
  tt.teardown(() => {
    live.kill();
  });
  const old = new Date(Date.now() - DEFAULTS.storeJoinWaitMs - 60_000).toISOString();
  await fs.writeFile(path.join(dir, 'evidence.lock'), JSON.stringify({ pid: live.pid, host: os.hostname(), startedAt: old }), { mode: 0o600 });
  const started = Date.now();
  const err = await createPgliteExecutor(dir).then(
    () => undefined,
    (e: { code?: string; message?: string }) => e,
  );
  tt.equal(err?.code, 'store_locked');
  tt.match(err?.message ?? '', `pid ${live.pid}`);
  tt.ok(Date.now() - started < DEFAULTS.storeJoinWaitMs, 'without waiting for a socket that will never come');
});

t.test('a client killed inside its transaction is rolled back at once; the holder goes on', async (tt) => {
  const dir = await tempDir('share-killed');
  await hold(dir);
  const c = await join(dir);
  await c.exec('CREATE TABLE k (id int PRIMARY KEY)');
  const code = `
    const { createPgliteExecutor } = await import(${JSON.stringify(new URL('../orchestrator/evidence/pglite-executor.ts', import.meta.url).href)});
    const e = await createPgliteExecutor(${JSON.stringify(dir)});
    await e.transaction(async (q) => {
      await q('INSERT INTO k VALUES (999)');
      console.log('in-tx');
      await new Promise(() => {});
    });`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout.on('data', (b: Buffer) => b.toString().includes('in-tx') && resolve()));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  const started = Date.now();
  await c.query('INSERT INTO k VALUES (1)');
  tt.ok(Date.now() - started < DEFAULTS.storeTxIdleMs, 'the holder did not wait out the idle timeout');
  tt.same((await c.query<{ id: number }>('SELECT id FROM k ORDER BY id')).rows, [{ id: 1 }], "the dead client's row is gone");
});

t.test('the holder closing: a transaction in flight finishes; the next statement finds the store again, here', async (tt) => {
  const dir = await tempDir('share-handover');
  const holder = await hold(dir);
  const c = await join(dir);
  await c.exec('CREATE TABLE h (id int PRIMARY KEY)');
  let stopping: Promise<number | null> | undefined;
  await c.transaction(async (q) => {
    await q('INSERT INTO h VALUES (1)');
    stopping = holder.stop();
    // The holder waits for this transaction before it closes the store.
    await new Promise((r) => setTimeout(r, 500));
    await q('INSERT INTO h VALUES (2)');
  });
  tt.equal(await stopping, 0, 'the holder then closes the store and exits cleanly');
  tt.match(holder.stderr(), /waiting up to \d+ s for backproof pid \d+ to finish its statements/, 'it said whom it waited for');
  tt.same((await c.query<{ id: number }>('SELECT id FROM h ORDER BY id')).rows, [{ id: 1 }, { id: 2 }], 'the next statement reopens the store: nothing lost');
  const lock = await readLock(dir);
  tt.equal(lock.pid, process.pid, 'this process holds the store now');
  tt.ok(lock.socket && existsSync(lock.socket), 'and shares it in turn');
  await c.close();
  tt.notOk(existsSync(path.join(dir, 'evidence.lock')), 'closing the client releases the store it took over');
});

t.test("an idle client does not hold up the holder's close", async (tt) => {
  const dir = await tempDir('share-idle');
  const holder = await hold(dir);
  const c = await join(dir);
  await c.query('SELECT 1');
  tt.equal(await holder.stop(), 0);
  tt.notMatch(holder.stderr(), /waiting up to/, 'no wait for a client with nothing in flight');
  tt.same((await c.query<{ n: number }>('SELECT 1 AS n')).rows, [{ n: 1 }], 'the client carries on, holding the store itself');
});

t.test("a data dir whose socket path is too long for a Unix socket: the socket goes in a private temp dir", async (tt) => {
  const dir = path.join(await tempDir('share-long'), 'x'.repeat(100));
  const holder = await hold(dir);
  const lock = await readLock(dir);
  tt.ok(lock.socket?.startsWith(os.tmpdir()), `socket at ${lock.socket}`);
  tt.equal((await fs.stat(path.dirname(lock.socket!))).mode & 0o777, 0o700, 'in a 0700 directory');
  const c = await join(dir);
  tt.same((await c.query<{ n: number }>('SELECT 2 AS n')).rows, [{ n: 2 }]);
  await c.close();
  await holder.stop();
  tt.notOk(existsSync(path.dirname(lock.socket!)), 'removed when the holder closes');
});
