-- 0002: alerting state (orchestrator/evidence/alert-store.ts): incidents, deliveries, policy_state.
-- Runs inside a transaction with search_path set to the store's schema (see migrate.ts), so names
-- here are unqualified. No BEGIN/COMMIT in migration files.

-- One row per episode of an alert condition of a policy: opened when the condition starts, resolved
-- when it ends. At most one open incident per (policy, condition, key).
CREATE TABLE incidents (
  id               uuid        PRIMARY KEY,
  client           text        NOT NULL,
  policy           text        NOT NULL,
  condition        text        NOT NULL CHECK (condition IN ('fail', 'error', 'stale', 'missing', 'size_anomaly', 'rto_exceeded', 'overdue', 'delivery_failed')),
  -- Tells apart several incidents of one condition (e.g. the channel of a delivery_failed).
  "key"            text        NOT NULL DEFAULT '',
  opened_at        timestamptz NOT NULL,
  resolved_at      timestamptz NULL,
  last_notified_at timestamptz NULL,
  -- Notifications sent for it: the firing plus reminders.
  notifications    int         NOT NULL DEFAULT 0,
  summary          text        NOT NULL,
  reasons          jsonb       NOT NULL DEFAULT '[]',
  -- The latest run that confirmed the condition.
  run_id           uuid        NULL,
  since            timestamptz NULL,
  resolved_run_id  uuid        NULL
);

CREATE UNIQUE INDEX incidents_open_uniq ON incidents (policy, condition, "key") WHERE resolved_at IS NULL;
CREATE INDEX incidents_policy_opened_at_idx ON incidents (policy, opened_at DESC);
CREATE INDEX incidents_client_opened_at_idx ON incidents (client, opened_at DESC);

-- One row per delivery of an alert or a heartbeat to one channel (all its retry rounds).
CREATE TABLE deliveries (
  id            uuid        PRIMARY KEY,
  incident_id   uuid        NULL REFERENCES incidents (id) ON DELETE SET NULL,
  kind          text        NOT NULL CHECK (kind IN ('alert', 'heartbeat')),
  client        text        NOT NULL,
  policy        text        NOT NULL,
  channel       text        NOT NULL,
  condition     text        NULL,
  -- An alert's state (firing, reminder, resolved); no CHECK, the code's types decide.
  state         text        NULL,
  run_id        uuid        NULL,
  ok            boolean     NOT NULL,
  -- Attempts over all rounds.
  attempts      int         NOT NULL,
  rounds        int         NOT NULL DEFAULT 1,
  error         text        NULL,
  detail        text        NULL,
  -- When the first attempt started, and when the last round ended.
  created_at    timestamptz NOT NULL,
  "at"          timestamptz NOT NULL,
  duration_ms   bigint      NOT NULL,
  retry_pending boolean     NOT NULL DEFAULT false,
  -- The alert object delivered (no secrets by construction), so a failed delivery can be retried.
  payload       jsonb       NULL
);

CREATE INDEX deliveries_policy_created_at_idx ON deliveries (policy, created_at DESC);
CREATE INDEX deliveries_client_created_at_idx ON deliveries (client, created_at DESC);
CREATE INDEX deliveries_incident_idx ON deliveries (incident_id);
CREATE INDEX deliveries_retry_pending_idx ON deliveries (created_at) WHERE retry_pending;

-- Per policy, what the daemon keeps between runs.
CREATE TABLE policy_state (
  policy             text        PRIMARY KEY,
  client             text        NOT NULL,
  -- When the daemon first scheduled the policy.
  first_seen_at      timestamptz NOT NULL,
  newest_backup_at   timestamptz NULL,
  newest_backup_key  text        NULL,
  newest_backup_size bigint      NULL,
  -- The last storage check between runs, and its error when it failed.
  checked_at         timestamptz NULL,
  check_error        text        NULL
);
