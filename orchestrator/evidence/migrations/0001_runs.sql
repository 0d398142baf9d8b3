-- 0001: the runs table, one row per verification run (orchestrator/domain.ts RunRecord).
-- Runs inside a transaction with search_path set to the store's schema (see migrate.ts), so names
-- here are unqualified. No BEGIN/COMMIT in migration files. The runner itself creates the schema
-- and schema_migrations(version int primary key, name text, applied_at timestamptz) before this.

CREATE TABLE runs (
  id                uuid        PRIMARY KEY,
  client            text        NOT NULL,
  policy            text        NOT NULL,
  kind              text        NOT NULL,
  status            text        NOT NULL CHECK (status IN ('running', 'finished', 'cancelled', 'aborted')),
  verdict           text        NULL CHECK (verdict IN ('pass', 'fail', 'error')),
  reasons           jsonb       NOT NULL DEFAULT '[]',
  started_at        timestamptz NOT NULL,
  finished_at       timestamptz NULL,
  duration_ms       bigint      NULL,
  host              text        NOT NULL,
  pid               int         NOT NULL,
  backproof_version text        NOT NULL,
  backup            jsonb       NULL,
  phases            jsonb       NOT NULL DEFAULT '[]',
  probes            jsonb       NOT NULL DEFAULT '[]',
  metrics           jsonb       NOT NULL DEFAULT '{}',
  sandbox           jsonb       NULL,
  restored          jsonb       NULL
);

CREATE INDEX runs_policy_started_at_idx ON runs (policy, started_at DESC);
CREATE INDEX runs_client_started_at_idx ON runs (client, started_at DESC);
CREATE INDEX runs_status_idx ON runs (status);
