import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { sqlStateOf, type SqlExecutor } from '../evidence/executor.js';
import { quoteSchema } from '../evidence/migrate.js';
import { BackproofError } from '../core/errors.js';
import { SessionStore } from './session-store.js';

/**
 * Tokens of the dashboard, the JSON API and /metrics (migration 0004). A token is `bpt_` and 32
 * random bytes in base64url; only its sha256 is stored, so the table never holds a usable token.
 * Runs over the executor of a RunStore (`new TokenStore(store.executor, store.schema)`); the
 * caller owns and closes it.
 */
export type TokenScope = { kind: 'admin' } | { kind: 'client'; client: string };

export interface TokenInfo {
  id: string;
  name: string;
  scope: TokenScope;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export const TOKEN_PREFIX = 'bpt_';
const TOKEN_BYTES = 32;
const TOKEN_FORMAT = /^bpt_[A-Za-z0-9_-]{43}$/;
const NAME_FORMAT = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
/** last_used_at is written at most this often per token, not on every request. */
const LAST_USED_RESOLUTION_MS = 60_000;

const COLUMNS = 'id, name, scope, client, created_at, last_used_at, revoked_at';
type Row = Record<string, unknown>;

/** Lower-case hex sha256 of a token, as stored. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Whether `text` has the shape of a backproof token (says nothing about its validity). */
export function looksLikeToken(text: string): boolean {
  return TOKEN_FORMAT.test(text);
}

export class TokenStore {
  private readonly table: string;

  constructor(
    readonly executor: SqlExecutor,
    readonly schema: string,
  ) {
    this.table = `${quoteSchema(schema)}.tokens`;
  }

  /** Makes a token; the plaintext is in the result only, never stored. Default name: admin-XXXXXXXX or CLIENT-XXXXXXXX. */
  async create(opts: { scope: TokenScope; name?: string; now?: Date }): Promise<{ token: string; info: TokenInfo }> {
    const id = randomUUID();
    const name = opts.name ?? `${opts.scope.kind === 'admin' ? 'admin' : opts.scope.client}-${id.slice(0, 8)}`;
    if (!NAME_FORMAT.test(name)) {
      throw new BackproofError('token_name_invalid', `token name ${JSON.stringify(name)} is not valid: use 1-64 letters, digits, ".", "_", "@" and "-", starting with a letter or digit`);
    }
    const token = TOKEN_PREFIX + randomBytes(TOKEN_BYTES).toString('base64url');
    const createdAt = (opts.now ?? new Date()).toISOString();
    try {
      await this.executor.query(
        `INSERT INTO ${this.table} (id, name, scope, client, token_hash, created_at) VALUES ($1::uuid, $2, $3, $4, $5, $6::timestamptz)`,
        [id, name, opts.scope.kind, opts.scope.kind === 'client' ? opts.scope.client : null, hashToken(token), createdAt],
      );
    } catch (err) {
      if (sqlStateOf(err) === '23505') {
        throw new BackproofError('token_name_taken', `a live token is already named ${JSON.stringify(name)}: choose another --name, or revoke that one first`, { cause: err });
      }
      throw err;
    }
    return { token, info: { id, name, scope: opts.scope, createdAt, lastUsedAt: null, revokedAt: null } };
  }

  /** Tokens oldest first; revoked ones only with `includeRevoked`. */
  async list(opts: { includeRevoked?: boolean } = {}): Promise<TokenInfo[]> {
    const { rows } = await this.executor.query<Row>(
      `SELECT ${COLUMNS} FROM ${this.table} ${opts.includeRevoked ? '' : 'WHERE revoked_at IS NULL'} ORDER BY created_at, name`,
    );
    return rows.map(toInfo);
  }

  /**
   * Revokes the live token with this id (or unique id prefix of 8+ characters) or name, and ends
   * every dashboard session logged in with it; returns it, or throws `token_not_found`.
   */
  async revoke(idOrName: string, now: Date = new Date()): Promise<TokenInfo> {
    const key = idOrName.trim();
    const live = await this.list();
    const byName = live.filter((t) => t.name === key);
    const byId = /^[0-9a-f-]{8,36}$/i.test(key) ? live.filter((t) => t.id.startsWith(key.toLowerCase())) : [];
    const matches = byName.length > 0 ? byName : byId;
    if (matches.length > 1) {
      throw new BackproofError('token_ambiguous', `${JSON.stringify(key)} matches ${matches.length} tokens (${matches.map((t) => t.id).join(', ')}): give the whole id`);
    }
    const target = matches[0];
    if (!target) throw new BackproofError('token_not_found', `no live token with the id or name ${JSON.stringify(key)}; see backproof tokens list`);
    // The token and every browser session logged in with it end together, in one transaction.
    const sessions = new SessionStore(this.executor, this.schema);
    const row = await this.executor.transaction(async (q) => {
      const { rows } = await q<Row>(`UPDATE ${this.table} SET revoked_at = $2::timestamptz WHERE id = $1::uuid AND revoked_at IS NULL RETURNING ${COLUMNS}`, [
        target.id,
        now.toISOString(),
      ]);
      if (rows[0]) await sessions.endAllOf(target.id, q);
      return rows[0];
    });
    if (!row) throw new BackproofError('token_not_found', `token ${target.id} was revoked meanwhile`);
    return toInfo(row);
  }

  /**
   * The live token `presented` is, or null. The presented token's sha256 is compared with every
   * live token's in constant time (no early exit), so timing says nothing about how close a guess
   * came. Records when the token was last used (at a minute's resolution).
   */
  async authenticate(presented: string, now: Date = new Date()): Promise<TokenInfo | null> {
    if (!looksLikeToken(presented)) return null;
    const wanted = Buffer.from(hashToken(presented), 'hex');
    const { rows } = await this.executor.query<Row>(`SELECT ${COLUMNS}, token_hash FROM ${this.table} WHERE revoked_at IS NULL`);
    let found: Row | undefined;
    for (const row of rows) {
      const stored = Buffer.from(String(row.token_hash), 'hex');
      if (stored.length === wanted.length && timingSafeEqual(stored, wanted) && !found) found = row;
    }
    if (!found) return null;
    const info = toInfo(found);
    if (!info.lastUsedAt || now.getTime() - Date.parse(info.lastUsedAt) >= LAST_USED_RESOLUTION_MS) {
      await this.executor.query(`UPDATE ${this.table} SET last_used_at = $2::timestamptz WHERE id = $1::uuid`, [info.id, now.toISOString()]);
      info.lastUsedAt = now.toISOString();
    }
    return info;
  }
}

export function describeScope(scope: TokenScope): string {
  return scope.kind === 'admin' ? 'admin' : `client:${scope.client}`;
}

function toInfo(r: Row): TokenInfo {
  const scope: TokenScope = String(r.scope) === 'admin' ? { kind: 'admin' } : { kind: 'client', client: String(r.client) };
  return {
    id: String(r.id),
    name: String(r.name),
    scope,
    createdAt: iso(r.created_at) ?? '',
    lastUsedAt: iso(r.last_used_at),
    revokedAt: iso(r.revoked_at),
  };
}

function iso(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  return (v instanceof Date ? v : new Date(String(v))).toISOString();
}
