import pg from 'pg';
import { BackproofError } from '../core/errors.js';
import { sqlStateOf, type QueryFn, type SqlExecutor } from './executor.js';

/** PostgreSQL 13 brought `gen_random_uuid()` into core; older servers are refused. */
export const MIN_SERVER_VERSION_NUM = 130000;

export interface PgExecutorOptions {
  /** Connections kept by the pool. A backproof process needs very few. */
  maxConnections?: number;
  connectTimeoutMs?: number;
}

const CONNECTION_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

/** Opens a small pool on `url` and checks the server is PostgreSQL 13 or newer. */
export async function createPgExecutor(url: string, options: PgExecutorOptions = {}): Promise<SqlExecutor> {
  const target = describeTarget(url);
  const secret = passwordOf(url);
  const pool = new pg.Pool({
    connectionString: url,
    max: options.maxConnections ?? 4,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    idleTimeoutMillis: 30_000,
    application_name: 'backproof',
  });
  // An idle client losing its server must not crash the process; the next query reports it.
  pool.on('error', () => undefined);

  const wrap = (err: unknown): unknown => wrapConnectionError(err, target, secret);
  const executor = new PgExecutor(pool, wrap);
  try {
    const { rows } = await executor.query<{ server_version_num: string }>('SHOW server_version_num');
    const versionNum = Number(rows[0]?.server_version_num);
    if (!(versionNum >= MIN_SERVER_VERSION_NUM)) {
      throw new BackproofError(
        'store_too_old',
        `the evidence store at ${target} runs PostgreSQL ${formatVersion(versionNum)}; backproof needs 13 or newer: upgrade the server or point database.url at another one`,
      );
    }
  } catch (err) {
    await executor.close();
    throw wrapConnectionError(err, target, secret, true);
  }
  return executor;
}

class PgExecutor implements SqlExecutor {
  readonly kind = 'postgres' as const;
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly wrap: (err: unknown) => unknown,
  ) {}

  async query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }> {
    try {
      const result = await this.pool.query(text, values);
      return { rows: result.rows as R[] };
    } catch (err) {
      throw this.wrap(err);
    }
  }

  async exec(sqlText: string): Promise<void> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw this.wrap(err);
    }
    let broken = false;
    try {
      await client.query(sqlText);
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw this.wrap(err);
    } finally {
      client.release(broken);
    }
  }

  async transaction<T>(fn: (q: QueryFn) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw this.wrap(err);
    }
    let broken = false;
    const q: QueryFn = async <R>(text: string, values?: unknown[]) => {
      try {
        const result = await client.query(text, values);
        return { rows: result.rows as R[] };
      } catch (err) {
        throw this.wrap(err);
      }
    };
    try {
      await q('BEGIN');
      const value = await fn(q);
      await q('COMMIT');
      return value;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true; // a connection we cannot roll back never goes back to the pool
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}

/** `host:port/db` of a connection URL, never its user's password. */
export function describeTarget(url: string): string {
  try {
    const u = new URL(url);
    const socketHost = u.searchParams.get('host');
    const host = u.hostname || socketHost || 'localhost';
    const port = u.port || u.searchParams.get('port') || '5432';
    const db = decodeURIComponent(u.pathname.replace(/^\//, '')) || decodeURIComponent(u.username) || 'postgres';
    return `${host}:${port}/${db}`;
  } catch {
    return 'the server in database.url';
  }
}

function passwordOf(url: string): string | undefined {
  try {
    const u = new URL(url);
    const fromQuery = u.searchParams.get('password');
    const pw = u.password ? decodeURIComponent(u.password) : fromQuery;
    return pw || undefined;
  } catch {
    return undefined;
  }
}

function isConnectionError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  if (CONNECTION_ERRNOS.has(code)) return true;
  const state = sqlStateOf(err);
  // 08: connection exception, 28: invalid authorization, 3D000: no such database,
  // 57P01-03: server shutting down / cannot connect now.
  if (state && (state.startsWith('08') || state.startsWith('28') || state === '3D000' || /^57P0[123]$/.test(state))) {
    return true;
  }
  const message = typeof e?.message === 'string' ? e.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|connect ECONN|getaddrinfo/i.test(message);
}

function wrapConnectionError(err: unknown, target: string, secret: string | undefined, atStart = false): unknown {
  if (err instanceof BackproofError) return err;
  if (!atStart && !isConnectionError(err)) return err;
  const raw = err instanceof Error ? err.message : String(err);
  const leaked = secret !== undefined && raw.includes(secret);
  const detail = leaked ? raw.split(secret).join('***') : raw;
  return new BackproofError(
    'store_unreachable',
    `cannot reach the evidence store at ${target}: ${detail}; check database.url and that the server is running and accepts this user`,
    // A cause that quotes the password would carry it into logs: drop it then.
    leaked ? undefined : { cause: err },
  );
}

function formatVersion(num: number): string {
  if (!Number.isFinite(num)) return 'of unknown version';
  return num >= 100000 ? `${Math.floor(num / 10000)}.${num % 10000}` : `${Math.floor(num / 10000)}.${Math.floor(num / 100) % 100}`;
}
