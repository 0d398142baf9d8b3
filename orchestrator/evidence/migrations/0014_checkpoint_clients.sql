-- 0014: per-client digests in checkpoints (orchestrator/evidence/chain.ts verifyClient). A checkpoint
-- also signs, for every client, how many links up to it are the client's and a running sha256 over
-- their seqs and hashes (chain-format.ts ClientDigests), so one client's monthly report checks its
-- own links against the digest instead of re-hashing every client's records of the month. Which
-- links are a client's is taken from the records the verification that made the checkpoint had
-- just re-hashed. NULL: a checkpoint made before this migration (signed as checkpoint v1); the
-- next checkpoint written walks the chain from seq 1 to compute the digests.
-- The index serves a client's links in seq order (a join from runs by client to the chain by
-- run_id), read from the index alone.
-- Runs inside a transaction with search_path set to the store's schema (see migrate.ts).

-- Canonical JSON {"<client>": {"digest": "<64 hex>", "links": <count>}, ...}, keys sorted, as
-- signed: the checkpoint's signature (checkpoint v2) covers the sha256 of this exact text.
ALTER TABLE evidence_checkpoints ADD COLUMN clients text NULL;
