-- 0010: signed checkpoints of the evidence chain (orchestrator/evidence/chain.ts). After a walk
-- found links 1..seq intact (every hash recomputed, every signature checked), backproof signs
-- "links 1..seq verified at made_at, link seq has hash H" with the installation's key. A later
-- `evidence verify` walks only the links after the newest checkpoint (--full walks them all), and
-- a period's verification (a monthly report) re-hashes its records up to the next checkpoint
-- instead of checking every link's signature again.
-- Runs inside a transaction with search_path set to the store's schema (see migrate.ts).

CREATE TABLE evidence_checkpoints (
  seq             bigint PRIMARY KEY CHECK (seq >= 1),
  hash            text   NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
  -- ISO time as signed (the text the signature covers, byte for byte).
  made_at         text   NOT NULL,
  key_fingerprint text   NOT NULL,
  -- Base64 Ed25519 signature over checkpointText(seq, hash, made_at) (chain-format.ts).
  signature       text   NOT NULL
);
