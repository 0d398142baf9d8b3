-- 0006: kind vm. runs.boot holds how the restored machine booted (domain.ts BootRecord); files kept
-- with a run's evidence (the boot screenshot) live in run_artifacts, written in the transaction
-- that finalizes the run. The record names each artifact's sha256, so the evidence chain seals
-- the bytes without carrying them.
-- Runs inside a transaction with search_path set to the store's schema (see migrate.ts).

ALTER TABLE runs ADD COLUMN boot jsonb NULL;

CREATE TABLE run_artifacts (
  run_id     uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  name       text        NOT NULL,
  media_type text        NOT NULL,
  sha256     text        NOT NULL,
  size       int         NOT NULL,
  bytes      bytea       NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, name)
);
