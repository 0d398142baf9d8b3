-- 0003: the evidence chain (orchestrator/evidence/chain.ts). Every finalized run (finished,
-- cancelled, aborted) gets one link: hash = sha256(prev_hash || canonical JSON of the run record),
-- signed with the installation's Ed25519 key. Runs still `running` have no link.
-- Runs inside a transaction with search_path set to the store's schema (see migrate.ts), so names
-- here are unqualified. No BEGIN/COMMIT in migration files.

-- One row per sealed run, seq 1, 2, 3, ... in the order they were sealed. No foreign key to runs:
-- a link outlives a deleted run row, so verification can name what was deleted.
CREATE TABLE evidence_chain (
  seq             bigint      PRIMARY KEY CHECK (seq >= 1),
  run_id          uuid        NOT NULL UNIQUE,
  -- Lower-case hex sha256 of the previous link (64 zeros before seq 1).
  prev_hash       text        NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
  hash            text        NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
  -- Base64 Ed25519 signature over the 64 ASCII characters of `hash`, and the signing key's
  -- fingerprint (SHA256:<base64 of sha256 of the raw public key>). NULL: sealed without a key.
  signature       text        NULL,
  key_fingerprint text        NULL,
  -- When the link was appended (clock_timestamp() under the head lock: grows with seq).
  sealed_at       timestamptz NOT NULL
);

-- The newest link, one row. Appending locks it (SELECT ... FOR UPDATE), so concurrent writers
-- on one PostgreSQL append one at a time; verification compares it with the newest link.
CREATE TABLE evidence_chain_head (
  id   int    PRIMARY KEY CHECK (id = 1),
  seq  bigint NOT NULL,
  hash text   NOT NULL
);
INSERT INTO evidence_chain_head (id, seq, hash) VALUES (1, 0, repeat('0', 64));

-- Every public key that signed a link, so verification checks signatures of past keys too.
CREATE TABLE evidence_keys (
  fingerprint    text        PRIMARY KEY,
  public_key_pem text        NOT NULL,
  first_used_at  timestamptz NOT NULL
);

-- Runs finalized before this migration: the next open of the store seals them (oldest first)
-- and empties this table.
CREATE TABLE evidence_unsealed (
  run_id uuid PRIMARY KEY
);
INSERT INTO evidence_unsealed (run_id) SELECT id FROM runs WHERE status <> 'running';
