-- 0009: reading evidence back stays fast with years of runs (100,000 runs: `runs list`, `status`,
-- the board). Every list reads newest first with the id as tie-break (ORDER BY started_at DESC,
-- id DESC): with that whole order in an index, LIMIT stops after a few rows instead of sorting
-- every run, and each policy's newest run is one index probe.
-- Runs inside a transaction with search_path set to the store's schema (see migrate.ts).

CREATE INDEX runs_started_at_id_idx ON runs (started_at DESC, id DESC);
CREATE INDEX runs_policy_started_at_id_idx ON runs (policy, started_at DESC, id DESC);
CREATE INDEX runs_client_started_at_id_idx ON runs (client, started_at DESC, id DESC);
-- Covered by the two above.
DROP INDEX runs_policy_started_at_idx;
DROP INDEX runs_client_started_at_idx;
