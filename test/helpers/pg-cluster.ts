import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * A throwaway PostgreSQL 15 server for tests, on loopback, trust auth, user `postgres`.
 * `initdb` in a temp dir, then `postgres` run directly as our child (as the `postgres` OS user
 * when we are root), stopped by SIGINT to that one pid. Also used to make fixture dumps:
 * `PG_BIN_DIR/pg_dump` with `cluster.url`.
 */
export interface PgCluster {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  socketDir: string;
  /** Runs SQL through psql (-X -A -t, ON_ERROR_STOP) against `db` (default postgres); returns stdout. */
  psql(sql: string, db?: string): Promise<string>;
  /** CREATE DATABASE name; returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server and removes its files; safe to call twice. */
  stop(): Promise<void>;
  /** Extras: the server's pid (our child), its data directory, and the URL of any database on it. */
  pid: number;
  dataDir: string;
  urlFor(db: string): string;
  /** Stops the server (fast shutdown: every connection is cut), waits `downMs`, starts it again on the same data and port. */
  restart(downMs?: number): Promise<void>;
}

export const PG_BIN_DIR = '/usr/lib/postgresql/15/bin';
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;
const run = promisify(execFile);

export async function startPgCluster(): Promise<PgCluster> {
  const owner = await postgresUser();
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-pg-'));
  try {
    const dataDir = path.join(base, 'data');
    const socketDir = path.join(base, 'sock');
    await fs.mkdir(socketDir);
    for (const dir of [base, socketDir]) {
      if (owner) await fs.chown(dir, owner.uid, owner.gid);
      await fs.chmod(dir, 0o700);
    }
    await runAs(owner, path.join(PG_BIN_DIR, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync'], base);

    let lastError: Error | undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      try {
        const server = await startServer(owner, dataDir, socketDir, port, base);
        return makeCluster(server, base, dataDir, socketDir, port, owner);
      } catch (err) {
        lastError = err as Error;
        if (!/could not bind|Address already in use/i.test(lastError.message)) break; // only a lost port race is retried
      }
    }
    throw lastError ?? new Error('postgres did not start');
  } catch (err) {
    await fs.rm(base, { recursive: true, force: true });
    throw err;
  }
}

interface Owner {
  uid: number;
  gid: number;
}

/** The postgres OS user when we are root (the server refuses to run as root), else ourselves. */
async function postgresUser(): Promise<Owner | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
  const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
  return { uid, gid };
}

function spawnOptions(owner: Owner | undefined, cwd: string): SpawnOptions {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' };
  if (owner) {
    env.HOME = cwd;
    env.USER = 'postgres';
    env.LOGNAME = 'postgres';
  }
  return { cwd, env, ...(owner ? { uid: owner.uid, gid: owner.gid } : {}) };
}

async function runAs(owner: Owner | undefined, cmd: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...spawnOptions(owner, cwd), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${path.basename(cmd)} exited ${code}: ${out.slice(-4000)}`))));
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

interface Server {
  child: ChildProcess;
  exited: Promise<void>;
  log(): string;
}

async function startServer(owner: Owner | undefined, dataDir: string, socketDir: string, port: number, cwd: string): Promise<Server> {
  const args = ['-D', dataDir, '-p', String(port), '-k', socketDir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'synchronous_commit=off'];
  const child = spawn(path.join(PG_BIN_DIR, 'postgres'), args, { ...spawnOptions(owner, cwd), stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (d: Buffer): void => {
    log = (log + d.toString()).slice(-16_384);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exitedFlag = false;
  const exited = new Promise<void>((resolve) => {
    child.on('exit', () => {
      exitedFlag = true;
      resolve();
    });
    child.on('error', (err) => {
      log += `\n${err.message}`;
      exitedFlag = true;
      resolve();
    });
  });
  const server: Server = { child, exited, log: () => log };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exitedFlag) throw new Error(`postgres exited during start: ${log.slice(-4000)}`);
    const ok = await run(path.join(PG_BIN_DIR, 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-t', '2']).then(
      () => true,
      () => false,
    );
    if (ok) return server;
    await new Promise((r) => setTimeout(r, 100));
  }
  await stopServer(server);
  throw new Error(`postgres did not accept connections within ${READY_TIMEOUT_MS} ms: ${log.slice(-4000)}`);
}

/** SIGINT (fast shutdown) to our child only; SIGQUIT then SIGKILL to the same pid if it hangs. */
async function stopServer(server: Server): Promise<void> {
  const { child } = server;
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const waitFor = (ms: number): Promise<boolean> =>
    Promise.race([server.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
  child.kill('SIGINT');
  if (await waitFor(STOP_TIMEOUT_MS)) return;
  child.kill('SIGQUIT');
  if (await waitFor(5_000)) return;
  child.kill('SIGKILL');
  await server.exited;
}

function makeCluster(first: Server, base: string, dataDir: string, socketDir: string, port: number, owner: Owner | undefined): PgCluster {
  let server = first;
  const urlFor = (db: string): string => `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(db)}`;
  // If the test process exits without stop(), do not leave a server running.
  const onExit = (): void => {
    if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGQUIT');
  };
  process.once('exit', onExit);
  let stopping: Promise<void> | undefined;

  const psql = (sql: string, db = 'postgres'): Promise<string> =>
    new Promise((resolve, reject) => {
      const child = spawn(
        path.join(PG_BIN_DIR, 'psql'),
        ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', db, '-f', '-'],
        { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PGCONNECT_TIMEOUT: '10' } },
      );
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`psql exited ${code}: ${err.trim()}`))));
      child.stdin.end(sql);
    });

  return {
    url: urlFor('postgres'),
    port,
    socketDir,
    pid: server.child.pid ?? 0,
    dataDir,
    urlFor,
    psql,
    async createDatabase(name: string): Promise<string> {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`createDatabase: ${JSON.stringify(name)} is not a plain identifier`);
      await psql(`CREATE DATABASE "${name}";`);
      return urlFor(name);
    },
    async restart(downMs = 0): Promise<void> {
      await stopServer(server);
      await new Promise((resolve) => setTimeout(resolve, downMs));
      server = await startServer(owner, dataDir, socketDir, port, base);
    },
    stop(): Promise<void> {
      stopping ??= (async () => {
        await stopServer(server);
        process.removeListener('exit', onExit);
        await fs.rm(base, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}
