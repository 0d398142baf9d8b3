-- 0004: API and dashboard tokens (orchestrator/web/token-store.ts). Only the sha256 of a token is
-- stored; the token itself is printed once by `backproof tokens create` and never kept.
-- Runs inside a transaction with search_path set to the store's schema (see migrate.ts), so names
-- here are unqualified. No BEGIN/COMMIT in migration files.

CREATE TABLE tokens (
  id           uuid        PRIMARY KEY,
  name         text        NOT NULL,
  -- admin: every client; client: only `client`'s policies, runs, reports and metrics.
  scope        text        NOT NULL CHECK (scope IN ('admin', 'client')),
  client       text        NULL,
  -- Lower-case hex sha256 of the whole token (prefix included).
  token_hash   text        NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  created_at   timestamptz NOT NULL,
  last_used_at timestamptz NULL,
  revoked_at   timestamptz NULL,
  CHECK ((scope = 'client') = (client IS NOT NULL))
);

-- A name names one live token; a revoked token's name may be given again.
CREATE UNIQUE INDEX tokens_live_name_uniq ON tokens (name) WHERE revoked_at IS NULL;
