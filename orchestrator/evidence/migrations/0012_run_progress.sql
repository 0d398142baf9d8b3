-- 0012: progress of a running run. While a run is `running` its row is updated as it goes (when a
-- phase starts or ends and when the backup is picked: run-store.ts recordProgress) with its phases
-- so far and the chosen backup; `progress_at` is when that last happened. A run found aborted (its
-- process or worker died) is sealed with what it had and `finished_at` = its last progress, not
-- the time it was found. Not part of the record (run-row.ts COLUMNS): the chain never hashes it.
-- Runs inside a transaction with search_path set to the store's schema (see migrate.ts).

ALTER TABLE runs ADD COLUMN progress_at timestamptz;
