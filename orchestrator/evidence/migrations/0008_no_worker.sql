-- 0008: cluster mode's placement alert: `no_worker` incidents (no live worker may run a policy).
-- Runs inside a transaction with search_path set to the store's schema (see migrate.ts).

ALTER TABLE incidents DROP CONSTRAINT incidents_condition_check;
ALTER TABLE incidents ADD CONSTRAINT incidents_condition_check
  CHECK (condition IN ('fail', 'error', 'stale', 'missing', 'size_anomaly', 'rto_exceeded', 'overdue', 'delivery_failed', 'no_worker'));
