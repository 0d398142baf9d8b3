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
  /**
   * A client's verification (`verifyClient`): the client's links up to the checkpoint, found by
   * the runs' client column, gave the digest the checkpoint signed for it.
   */
  clientDigest?: { client: string; links: number; checkpointSeq: number };
  /** The checkpoint this verification wrote at the head it reached. */
  checkpointWritten?: { seq: number; madeAt: string };
  /** Why no checkpoint was written though one was asked for (no signing key, a read-only database user). */
  checkpointNotWritten?: string;
}

/**
 * A signed statement: links 1..seq were verified intact at `madeAt`, and link seq's hash is `hash`;
 * with `clients` (checkpoints since migration 0014), also each client's links up to it, as
 * `clientsText` writes them.
 */
export interface ChainCheckpoint {
  seq: number;
  hash: string;
  madeAt: string;
  keyFingerprint: string;
  signature: string;
  /** The client digests' canonical JSON (`clientsText`), as signed; absent on checkpoints made before them. */
  clients?: string;
}

/**
 * The text a checkpoint's signature covers (UTF-8). v1 without client digests; v2 with them: the
 * sha256 of their canonical JSON text is signed too, so neither can be changed, added or removed
 * (a v2 checkpoint read without its digests is checked as v1 and fails).
 */
export function checkpointText(c: Pick<ChainCheckpoint, 'seq' | 'hash' | 'madeAt' | 'clients'>): string {
  if (c.clients === undefined) return `backproof evidence checkpoint v1\nlinks 1..${c.seq} verified at ${c.madeAt}\nhash of link ${c.seq}: ${c.hash}\n`;
  const sum = createHash('sha256').update(c.clients, 'utf8').digest('hex');
  return `backproof evidence checkpoint v2\nlinks 1..${c.seq} verified at ${c.madeAt}\nhash of link ${c.seq}: ${c.hash}\nclient digests sha256: ${sum}\n`;
}

/**
 * A client's links up to a checkpoint: how many, and a running sha256 over their seqs and hashes
 * in seq order, starting from CLIENT_DIGEST_START:
 *
 *   digest' = sha256hex(digest + seq + ':' + hash)       (UTF-8; seq in decimal)
 *
 * Which links are a client's is read from the records a verification has just re-hashed (the
 * `client` of each), never from the runs table alone. Extending a checkpoint's digests by the
 * links walked since gives the next checkpoint's.
 */
export interface ClientDigest {
  links: number;
  digest: string;
}
export const CLIENT_DIGEST_START = GENESIS_HASH;

export function clientDigestStep(digest: string, seq: number, hash: string): string {
  return createHash('sha256').update(`${digest}${seq}:${hash}`, 'utf8').digest('hex');
}

/** Every client's digest as it grows, link by link in seq order. */
export class ClientDigests {
  readonly byClient: Map<string, ClientDigest>;
  constructor(from?: Map<string, ClientDigest>) {
    this.byClient = new Map(from);
  }

  add(client: string, seq: number, hash: string): void {
    const d = this.byClient.get(client);
    this.byClient.set(client, { links: (d?.links ?? 0) + 1, digest: clientDigestStep(d?.digest ?? CLIENT_DIGEST_START, seq, hash) });
  }

  /** Canonical JSON `{"<client>":{"digest":"<hex>","links":<count>},...}`, keys sorted: what a checkpoint stores and signs. */
  text(): string {
    return clientsText(this.byClient);
  }
}

export function clientsText(byClient: Map<string, ClientDigest>): string {
  return canonicalJson(Object.fromEntries([...byClient].map(([client, d]) => [client, { links: d.links, digest: d.digest }])));
}

/** A checkpoint's client digests from their stored text: undefined when it is not exactly what `clientsText` writes. */
export function parseClients(text: string): Map<string, ClientDigest> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const out = new Map<string, ClientDigest>();
  for (const [client, v] of Object.entries(parsed as Record<string, unknown>)) {
    const d = v as Partial<ClientDigest> | null;
    if (d === null || typeof d !== 'object' || !Number.isSafeInteger(d.links) || (d.links ?? 0) < 1 || typeof d.digest !== 'string' || !/^[0-9a-f]{64}$/.test(d.digest)) return undefined;
    out.set(client, { links: d.links!, digest: d.digest });
  }
  return clientsText(out) === text ? out : undefined;
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
  checkpointClientsUnreadable: (seq: number) => `the client digests of the checkpoint at seq ${seq} are not what backproof writes (the checkpoint was forged)`,
  /** --full: the links walked up to a checkpoint do not give the client digests it signed. */
  checkpointClientsDiffer: (seq: number, madeAt: string, client: string, found: ClientDigest | undefined, signed: ClientDigest | undefined) =>
    `the client digests of the checkpoint at seq ${seq} (${madeAt}) do not match the links up to it: client ${JSON.stringify(client)} has ${found?.links ?? 0} link${found?.links === 1 ? '' : 's'}${
      found && signed && found.links === signed.links ? ' with other seqs or hashes' : ''
    }, the checkpoint signed ${signed?.links ?? 0} (it was forged with the installation's key)`,
  /** A client's verification: its links up to the checkpoint, found by the runs' client column, against the digest the checkpoint signed. */
  clientLinksDiffer: (client: string, seq: number, madeAt: string, found: ClientDigest | undefined, signed: ClientDigest | undefined) => {
    const n = found?.links ?? 0;
    const m = signed?.links ?? 0;
    const head = `the links of client ${JSON.stringify(client)} up to seq ${seq} do not match the digest the checkpoint of ${madeAt} signed: ${n} found, ${m} signed`;
    if (n < m) return `${head} (a run of this client was moved to another client, or deleted with or without its link)`;
    if (n > m) return `${head} (a run of another client was moved to this one, or a link inserted)`;
    return `${head}, other seqs or hashes (a link's hash was changed, or runs were moved between clients)`;
  },
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
