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
} as const;

/**
 * Canonical JSON: object keys sorted (UTF-16 code units) at every level, no whitespace, scalars as
 * JSON.stringify writes them; `undefined` members are left out as JSON.stringify does. For the
 * values a record holds (strings, finite numbers, booleans, null, arrays, plain objects) this is
 * RFC 8785 (JCS).
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonical JSON has no ${value}`);
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v: unknown) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) throw new TypeError(`canonical JSON takes plain objects, not ${(value as object).constructor?.name ?? 'this object'}`);
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
    }
    default:
      throw new TypeError(`canonical JSON has no ${typeof value}`);
  }
}

/** sha256 hex of the UTF-8 text `prevHash + canonical`. */
export function linkHash(prevHash: string, canonical: string): string {
  return createHash('sha256').update(prevHash + canonical, 'utf8').digest('hex');
}
