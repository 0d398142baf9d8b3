import { createHash } from 'node:crypto';

/**
 * What a chain link is and how its hash is computed, shared by the database side (chain.ts) and
 * the offline bundle check (bundle.ts). chain.ts re-exports all of it.
 */
export const GENESIS_HASH = '0'.repeat(64);

export interface ChainLink {
  seq: number;
  runId: string;
  prevHash: string;
  hash: string;
  signature: string | null;
  keyFingerprint: string | null;
}

export interface ChainVerification {
  ok: boolean;
  /** Links whose record was recomputed (a bundle: records of the client). */
  checked: number;
  from?: string;
  to?: string;
  /** The first problem met walking in seq order; `seq` null for a run with no link at all. */
  firstBad?: { seq: number | null; runId: string | null; problem: string };
  /** The newest link checked (the chain's head when nothing limited the walk). */
  head?: { seq: number; hash: string; signatureValid: boolean; keyFingerprint: string | null };
  /** Every link was walked again (--full), checkpoints notwithstanding. */
  full?: boolean;
  /**
   * The signed checkpoint this verification relied on: links 1..seq were found intact when it was
   * made. Without a period they were not walked again; with one, the period's records were
   * re-hashed up to it and their signatures taken as checked then.
   */
  checkpoint?: { seq: number; madeAt: string; keyFingerprint: string };
  /** The checkpoint this verification wrote at the head it reached. */
  checkpointWritten?: { seq: number; madeAt: string };
  /** Why no checkpoint was written though one was asked for (no signing key, a read-only database user). */
  checkpointNotWritten?: string;
}

/** A signed statement: links 1..seq were verified intact at `madeAt`, and link seq's hash is `hash`. */
export interface ChainCheckpoint {
  seq: number;
  hash: string;
  madeAt: string;
  keyFingerprint: string;
  signature: string;
}

/** The text a checkpoint's signature covers (UTF-8). */
export function checkpointText(c: Pick<ChainCheckpoint, 'seq' | 'hash' | 'madeAt'>): string {
  return `backproof evidence checkpoint v1\nlinks 1..${c.seq} verified at ${c.madeAt}\nhash of link ${c.seq}: ${c.hash}\n`;
}

export const PROBLEMS = {
  hashDiffers: 'record changed after it was sealed (hash differs)',
  unlinked: 'a finalized run without a chain link (inserted outside backproof)',
  unsigned: 'link not signed',
  badSignature: 'signature invalid (the link was forged or altered)',
  gap: (seq: number, prev: number) => `link missing: seq ${seq} follows ${prev} (a record was deleted)`,
  startsLate: (seq: number) => `link missing: the chain starts at seq ${seq}, not 1 (records were deleted)`,
  prevMismatch: (prev: number) => `prev_hash does not match the hash of seq ${prev} (records reordered or inserted)`,
  unknownKey: (fp: string) => `signed by an unknown key ${fp}`,
  checkpointForged: (seq: number) => `the checkpoint at seq ${seq} does not verify (its signature is invalid or its key unknown: it was forged or altered)`,
  checkpointDiffers: (seq: number, madeAt: string) => `link ${seq} differs from the checkpoint of ${madeAt} (the chain was rewritten after it was verified)`,
  checkpointLinkGone: (seq: number, madeAt: string) => `link ${seq} is gone, though the checkpoint of ${madeAt} vouches for it (records were deleted)`,
} as const;

/** `"key":` for keys seen before: records repeat the same few dozen keys, link after link. */
const keyTexts = new Map<string, string>();
const KEY_TEXTS_MAX = 10_000;

/**
 * Canonical JSON: object keys sorted (UTF-16 code units) at every level, no whitespace, scalars as
 * JSON.stringify writes them; `undefined` members are left out as JSON.stringify does. For the
 * values a record holds (strings, finite numbers, booleans, null, arrays, plain objects) this is
 * RFC 8785 (JCS). Plain loops and appends: every link of a chain walk goes through here.
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonical JSON has no ${value}`);
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          const v: unknown = value[i];
          if (i > 0) out += ',';
          out += v === undefined ? 'null' : canonicalJson(v);
        }
        return `${out}]`;
      }
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) throw new TypeError(`canonical JSON takes plain objects, not ${(value as object).constructor?.name ?? 'this object'}`);
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj).sort();
      let out = '{';
      let first = true;
      for (const k of keys) {
        const v = obj[k];
        if (v === undefined) continue;
        let keyText = keyTexts.get(k);
        if (keyText === undefined) {
          keyText = `${JSON.stringify(k)}:`;
          if (keyTexts.size < KEY_TEXTS_MAX) keyTexts.set(k, keyText);
        }
        if (!first) out += ',';
        first = false;
        out += keyText + canonicalJson(v);
      }
      return `${out}}`;
    }
    default:
      throw new TypeError(`canonical JSON has no ${typeof value}`);
  }
}

/** sha256 hex of the UTF-8 text `prevHash + canonical`. */
export function linkHash(prevHash: string, canonical: string): string {
  return createHash('sha256').update(prevHash + canonical, 'utf8').digest('hex');
}
