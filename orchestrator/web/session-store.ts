import { createHash, randomBytes } from 'node:crypto';
import type { QueryFn, SqlExecutor } from '../evidence/executor.js';
import { quoteSchema } from '../evidence/migrate.js';
import { BackproofError } from '../core/errors.js';
import type { TokenScope } from './token-store.js';

/**
 * Browser sessions of the dashboard (migration 0011). Logging in with a token makes a session:
 * `bps_` and 32 random bytes in base64url, the only thing the cookie holds. Only its sha256 is
 * stored, beside the token's id, so neither the table nor the cookie holds a usable token. A
 * session sees exactly its token's scope and ends at its expiry, at logout, or when its token is
 * revoked (TokenStore.revoke deletes the token's sessions in the same transaction, and a lookup
 * also requires the token to be live). Runs over the executor of a RunStore; the caller owns it.
 */
export interface SessionInfo {
  tokenId: string;
  tokenName: string;
  scope: TokenScope;
  createdAt: string;
  expiresAt: string;
  lastSeenAt: string;
}

export const SESSION_PREFIX = 'bps_';
const SESSION_BYTES = 32;
const SESSION_FORMAT = /^bps_[A-Za-z0-9_-]{43}$/;
/** last_seen_at is written at most this often per session, not on every request. */
const LAST_SEEN_RESOLUTION_MS = 60_000;

type Row = Record<string, unknown>;

/** Lower-case hex sha256 of a session id, as stored. */
export function hashSessionId(id: string): string {
  return createHash('sha256').update(id, 'utf8').digest('hex');
}

/** Whether `text` has the shape of a session id (says nothing about its validity). */
export function looksLikeSessionId(text: string): boolean {
  return SESSION_FORMAT.test(text);
}

export class SessionStore {
  private readonly sessions: string;
  private readonly tokens: string;

  constructor(
    readonly executor: SqlExecutor,
    readonly schema: string,
  ) {
    const q = quoteSchema(schema);
    this.sessions = `${q}.sessions`;
    this.tokens = `${q}.tokens`;
  }

  /**
   * A new session for the live token `tokenId`, ending `lifetimeMs` after `now`; the id is in the
   * result only, never stored. Prunes expired sessions first (one indexed DELETE).
   */
  async create(opts: { tokenId: string; lifetimeMs: number; now?: Date }): Promise<{ id: string; info: SessionInfo }> {
    if (!Number.isInteger(opts.lifetimeMs) || opts.lifetimeMs < 1000) {
      throw new BackproofError('session_lifetime_invalid', `a session lifetime must be a whole number of milliseconds, at least 1000; got ${opts.lifetimeMs}`);
    }
    const now = opts.now ?? new Date();
    await this.prune(now);
    const id = SESSION_PREFIX + randomBytes(SESSION_BYTES).toString('base64url');
    const createdAt = now.toISOString();
    const expiresAt = new Date(now.getTime() + opts.lifetimeMs).toISOString();
    // Only a live token gets a session: the INSERT selects it, so a token revoked meanwhile inserts nothing.
    const { rows } = await this.executor.query<Row>(
      `INSERT INTO ${this.sessions} (id_hash, token_id, created_at, expires_at, last_seen_at)
       SELECT $1, t.id, $3::timestamptz, $4::timestamptz, $3::timestamptz FROM ${this.tokens} t WHERE t.id = $2::uuid AND t.revoked_at IS NULL
       RETURNING token_id`,
      [hashSessionId(id), opts.tokenId, createdAt, expiresAt],
    );
    if (!rows[0]) throw new BackproofError('token_not_found', `no live token with the id ${opts.tokenId}: it was revoked`);
    const info = await this.lookup(id, now);
    if (!info) throw new BackproofError('session_lost', 'the new session could not be read back');
    return { id, info };
  }

  /**
   * The live session `presented` names, with its token's name and scope, or null: unknown,
   * malformed, expired at `now`, ended by logout, or its token revoked. Records when it was last
   * seen (at a minute's resolution).
   */
  async authenticate(presented: string, now: Date = new Date()): Promise<SessionInfo | null> {
    const info = await this.lookup(presented, now);
    if (info && now.getTime() - Date.parse(info.lastSeenAt) >= LAST_SEEN_RESOLUTION_MS) {
      await this.executor.query(`UPDATE ${this.sessions} SET last_seen_at = $2::timestamptz WHERE id_hash = $1`, [hashSessionId(presented), now.toISOString()]);
      info.lastSeenAt = now.toISOString();
    }
    return info;
  }

  /** Ends the session `presented` names (logout); says whether there was one. */
  async end(presented: string): Promise<boolean> {
    if (!looksLikeSessionId(presented)) return false;
    const { rows } = await this.executor.query<Row>(`DELETE FROM ${this.sessions} WHERE id_hash = $1 RETURNING token_id`, [hashSessionId(presented)]);
    return rows.length > 0;
  }

  /** Ends every session of a token (its revocation); returns how many. Pass `q` to run inside a transaction. */
  async endAllOf(tokenId: string, q?: QueryFn): Promise<number> {
    const run: QueryFn = q ?? ((text, values) => this.executor.query(text, values));
    const { rows } = await run<Row>(`DELETE FROM ${this.sessions} WHERE token_id = $1::uuid RETURNING token_id`, [tokenId]);
    return rows.length;
  }

  /** Deletes sessions expired at `now`; returns how many. */
  async prune(now: Date = new Date()): Promise<number> {
    const { rows } = await this.executor.query<Row>(`DELETE FROM ${this.sessions} WHERE expires_at <= $1::timestamptz RETURNING token_id`, [now.toISOString()]);
    return rows.length;
  }

  /** Live sessions of a token, oldest first (tests, diagnostics). */
  async listOf(tokenId: string, now: Date = new Date()): Promise<Array<Omit<SessionInfo, 'tokenName' | 'scope'>>> {
    const { rows } = await this.executor.query<Row>(
      `SELECT created_at, expires_at, last_seen_at FROM ${this.sessions} WHERE token_id = $1::uuid AND expires_at > $2::timestamptz ORDER BY created_at`,
      [tokenId, now.toISOString()],
    );
    return rows.map((r) => ({ tokenId, createdAt: iso(r.created_at), expiresAt: iso(r.expires_at), lastSeenAt: iso(r.last_seen_at) }));
  }

  private async lookup(presented: string, now: Date): Promise<SessionInfo | null> {
    if (!looksLikeSessionId(presented)) return null;
    // The id is looked up by its sha256: a guess's timing says nothing about how close it came.
    const { rows } = await this.executor.query<Row>(
      `SELECT s.token_id, s.created_at, s.expires_at, s.last_seen_at, t.name, t.scope, t.client
       FROM ${this.sessions} s JOIN ${this.tokens} t ON t.id = s.token_id
       WHERE s.id_hash = $1 AND s.expires_at > $2::timestamptz AND t.revoked_at IS NULL`,
      [hashSessionId(presented), now.toISOString()],
    );
    const r = rows[0];
    if (!r) return null;
    const scope: TokenScope = String(r.scope) === 'admin' ? { kind: 'admin' } : { kind: 'client', client: String(r.client) };
    return { tokenId: String(r.token_id), tokenName: String(r.name), scope, createdAt: iso(r.created_at), expiresAt: iso(r.expires_at), lastSeenAt: iso(r.last_seen_at) };
  }
}

function iso(v: unknown): string {
  return (v instanceof Date ? v : new Date(String(v))).toISOString();
}
