-- 0013: retention coverage (domain.ts CoverageRecord). runs.coverage holds the plan a run of the
-- newest backup made (`plan`) or, on a coverage run of an older restore point, which point and why
-- (`point`). NULL for policies without `coverage:`; records without it read back (and hash) as before.
-- Incidents gain the `coverage` condition (an older point that does not restore, keyed by its key;
-- or too few points proven, key '').
-- The index serves each point's last verification (RunStore.pointProofs): a policy's verified
-- runs grouped by backup key, newest first.
-- Runs inside a transaction with search_path set to the store's schema (see migrate.ts).

ALTER TABLE runs ADD COLUMN coverage jsonb NULL;

CREATE INDEX runs_policy_point_idx ON runs (policy, (backup->>'key'), started_at DESC, id DESC)
  WHERE verdict IN ('pass', 'fail');

ALTER TABLE incidents DROP CONSTRAINT incidents_condition_check;
ALTER TABLE incidents ADD CONSTRAINT incidents_condition_check
  CHECK (condition IN ('fail', 'error', 'stale', 'missing', 'size_anomaly', 'rto_exceeded', 'overdue', 'delivery_failed', 'no_worker', 'coverage'));
