-- 0007: cluster mode (backproof scheduler + backproof worker on one PostgreSQL). The job queue
-- itself is pg-boss, in a schema of its own (<schema>_queue); these tables are backproof's:
-- - workers: each worker process, its labels and capacity, and its heartbeat; a worker whose
--   heartbeat is older than the stale limit (and three of its own heartbeat intervals) is dead, and its running runs are aborted by the
--   active scheduler and run again once.
-- - run_slots: one row per run the scheduler enqueued: the policy's scheduled slot and the
--   attempt. The run's id is derived from (policy, slot, attempt), so whatever the number of
--   schedulers, workers, retries or restarts, a slot is recorded in `runs` at most once per attempt.
-- Runs inside a transaction with search_path set to the store's schema (see migrate.ts).

CREATE TABLE workers (
  id           uuid        PRIMARY KEY,
  host         text        NOT NULL,
  pid          int         NOT NULL,
  labels       jsonb       NOT NULL DEFAULT '{}',
  capacity     int         NOT NULL CHECK (capacity >= 1),
  heartbeat_ms int         NOT NULL CHECK (heartbeat_ms >= 1),
  running      int         NOT NULL DEFAULT 0,
  docker       text        NOT NULL,
  config_hash  text        NOT NULL,
  started_at   timestamptz NOT NULL,
  heartbeat_at timestamptz NOT NULL,
  stopped_at   timestamptz NULL
);
CREATE INDEX workers_host_pid ON workers (host, pid);

CREATE TABLE run_slots (
  run_id      uuid        PRIMARY KEY,
  policy      text        NOT NULL,
  slot        timestamptz NOT NULL,
  attempt     int         NOT NULL CHECK (attempt >= 1),
  queue       text        NOT NULL,
  enqueued_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (policy, slot, attempt)
);
