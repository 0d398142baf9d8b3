-- 0011: dashboard browser sessions (orchestrator/web/session-store.ts). Logging in with a token
-- makes a session; the browser's cookie holds only the session's random id, never the token.
-- Only the sha256 of the id is stored, so the table never holds a usable cookie. A session is
-- ended by logout (its row deleted), by revoking its token (every row of the token deleted, in
-- the same transaction as the revocation), or by its expiry; expired rows are pruned at login.
-- Runs inside a transaction with search_path set to the store's schema (see migrate.ts).

CREATE TABLE sessions (
  -- Lower-case hex sha256 of the whole session id (prefix included).
  id_hash      text        PRIMARY KEY CHECK (id_hash ~ '^[0-9a-f]{64}$'),
  -- The token logged in with: the session sees exactly that token's scope.
  token_id     uuid        NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
  created_at   timestamptz NOT NULL,
  expires_at   timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL,
  CHECK (expires_at > created_at)
);

CREATE INDEX sessions_token_idx ON sessions (token_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
