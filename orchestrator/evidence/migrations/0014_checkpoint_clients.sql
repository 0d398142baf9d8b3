-- 0014: per-client digests in checkpoints (orchestrator/evidence/chain.ts verifyClient). A checkpoint
-- also signs, for every client, how many links up to it are the client's and a running sha256 over
-- their seqs and hashes (chain-format.ts ClientDigests), so one client's monthly report checks its
-- own links against the digest instead of re-hashing every client's records of the month. Which
-- links are a client's is taken from the records the verification that made the checkpoint had
-- just re-hashed. NULL: a checkpoint made before this migration (signed as checkpoint v1); the
-- next checkpoint written walks the chain from seq 1 to compute the digests.
-- No index: a client's links are read through runs_client_started_at_id_idx and the chain's
-- run_id key, one lookup per run (EXPLAIN on PostgreSQL 15 and PGlite).
-- Runs inside a transaction with search_path set to the store's schema (see migrate.ts).

-- Canonical JSON {"<client>": {"digest": "<64 hex>", "links": <count>}, ...}, keys sorted, as
-- signed: the checkpoint's signature (checkpoint v2) covers the sha256 of this exact text.
ALTER TABLE evidence_checkpoints ADD COLUMN clients text NULL;
