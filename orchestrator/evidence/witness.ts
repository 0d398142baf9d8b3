import { BackproofError } from '../core/errors.js';
import { checkpointText, type ChainCheckpoint } from './chain-format.js';
import type { EvidenceChain } from './chain.js';
import { fingerprintOf, verifySignature } from './signing-key.js';

/**
 * The evidence witness: the signed head of the chain, published outside the store where the
 * store's administrator cannot change it (an S3 bucket with Object Lock in compliance mode).
 *
 * A published head says "links 1..seq were found intact at madeAt, and link seq's hash is hash",
 * signed with the installation's key (the text of a checkpoint: chain-format.ts checkpointText).
 * `evidence verify --witness` reads every published head back and compares: a head whose seq is
 * beyond the stored chain's end means links were deleted (truncated); a head whose hash differs
 * from the stored link's means the chain was rewritten after it was published, even when every
 * stored link and checkpoint was consistently re-signed with the key.
 */
export const WITNESS_FORMAT = 'backproof-witness-head/1';

export interface WitnessHead extends ChainCheckpoint {
  format: typeof WITNESS_FORMAT;
  /** SPKI PEM of the key that signed, so the head verifies on its own. */
  publicKeyPem: string;
}

/** Where heads are published and read back. The target owns its connection and closes it. */
export interface WitnessTarget {
  /** For messages: s3://bucket/prefix at endpoint. */
  readonly location: string;
  /** Writes the head once (and locks it); `created` false when that head was published before. */
  publish(head: WitnessHead, signal?: AbortSignal): Promise<{ key: string; created: boolean; lockedUntil?: string }>;
  /** Every published object, oldest seq first: its text, or why it could not be read. */
  read(signal?: AbortSignal): AsyncIterable<{ key: string; text?: string; unreadable?: string }>;
  close(): Promise<void>;
}

/** The object key of a head: its seq zero-padded (listing order is seq order) and its hash. */
export function headKey(prefix: string, head: Pick<WitnessHead, 'seq' | 'hash'>): string {
  return `${prefix}heads/${String(head.seq).padStart(15, '0')}-${head.hash.slice(0, 16)}.json`;
}

/** A head's JSON text, stable key order. */
export function headText(head: WitnessHead): string {
  const { format, seq, hash, madeAt, keyFingerprint, publicKeyPem, signature } = head;
  return `${JSON.stringify({ format, seq, hash, madeAt, keyFingerprint, publicKeyPem, signature }, null, 2)}\n`;
}

/** Parses and checks one published head on its own: format, fields, key fingerprint, signature. */
export function parseHead(text: string): { head: WitnessHead } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { problem: 'not JSON: not a head backproof published' };
  }
  const h = value as Partial<WitnessHead> | null;
  if (!h || typeof h !== 'object' || h.format !== WITNESS_FORMAT) return { problem: `not a ${WITNESS_FORMAT} object` };
  if (!Number.isSafeInteger(h.seq) || (h.seq ?? 0) < 1 || typeof h.hash !== 'string' || !/^[0-9a-f]{64}$/.test(h.hash)) return { problem: 'its seq or hash is malformed' };
  if (typeof h.madeAt !== 'string' || Number.isNaN(Date.parse(h.madeAt)) || typeof h.signature !== 'string' || typeof h.publicKeyPem !== 'string' || typeof h.keyFingerprint !== 'string') {
    return { problem: 'a field is missing or malformed' };
  }
  let fingerprint: string;
  try {
    fingerprint = fingerprintOf(h.publicKeyPem);
  } catch {
    return { problem: 'its public key is not an Ed25519 key' };
  }
  if (fingerprint !== h.keyFingerprint) return { problem: `its key fingerprint ${h.keyFingerprint} is not the fingerprint of its public key (${fingerprint})` };
  if (!verifySignature(h.publicKeyPem, checkpointText({ seq: h.seq!, hash: h.hash, madeAt: h.madeAt }), h.signature)) return { problem: 'its signature is invalid' };
  return { head: h as WitnessHead };
}

export interface WitnessCheck {
  ok: boolean;
  location: string;
  /** Published heads read and found well-formed and signed. */
  heads: number;
  newest?: { seq: number; madeAt: string; key: string };
  /** Where the store's chain ends (0: no link). */
  storeHeadSeq: number;
  problems: Array<{ key: string; seq?: number; problem: string }>;
}

/**
 * Compares the stored chain with every published head. Problems: an object that is not a valid
 * signed head, a head signed by a key the store does not know, a head beyond the stored chain's
 * end (links deleted), a head whose hash differs from the stored link's (chain rewritten).
 */
export async function checkWitness(chain: EvidenceChain, target: WitnessTarget, signal?: AbortSignal): Promise<WitnessCheck> {
  const problems: WitnessCheck['problems'] = [];
  const heads: Array<{ key: string; head: WitnessHead }> = [];
  for await (const object of target.read(signal)) {
    if (object.text === undefined) {
      problems.push({ key: object.key, problem: `unreadable: ${object.unreadable ?? 'no content'}` });
      continue;
    }
    const parsed = parseHead(object.text);
    if ('problem' in parsed) problems.push({ key: object.key, problem: parsed.problem });
    else heads.push({ key: object.key, head: parsed.head });
  }
  const known = new Set((await chain.publicKeys()).map((k) => k.fingerprint));
  const { hashes, headSeq } = await chain.hashesAt(heads.map((h) => h.head.seq));
  for (const { key, head } of heads) {
    const at = { key, seq: head.seq };
    if (!known.has(head.keyFingerprint)) problems.push({ ...at, problem: `signed by ${head.keyFingerprint}, a key the store has no record of (its keys were replaced, or the head is not this installation's)` });
    if (head.seq > headSeq) {
      problems.push({ ...at, problem: `link ${head.seq} was published at ${head.madeAt}, but the stored chain ends at ${headSeq === 0 ? 'nothing' : `seq ${headSeq}`}: records were deleted after it was published` });
    } else {
      const stored = hashes.get(head.seq);
      if (stored === undefined) problems.push({ ...at, problem: `link ${head.seq} was published at ${head.madeAt}, but the store has no link ${head.seq}` });
      else if (stored !== head.hash) problems.push({ ...at, problem: `link ${head.seq}'s hash differs from the one published at ${head.madeAt}: the chain was rewritten after it was published` });
    }
  }
  const newest = heads.reduce<{ key: string; head: WitnessHead } | undefined>((a, b) => (!a || b.head.seq > a.head.seq ? b : a), undefined);
  return {
    ok: problems.length === 0,
    location: target.location,
    heads: heads.length,
    ...(newest ? { newest: { seq: newest.head.seq, madeAt: newest.head.madeAt, key: newest.key } } : {}),
    storeHeadSeq: headSeq,
    problems,
  };
}

export type PublishOutcome =
  | { published: true; seq: number; hash: string; key: string; created: boolean; lockedUntil?: string; location: string }
  | { published: false; why: string; location: string };

/**
 * Verifies the chain (from the last checkpoint, writing a new one at the head) and publishes its
 * head when it is intact; a chain that does not verify is never published as good.
 */
export async function publishHead(chain: EvidenceChain, target: WitnessTarget, signal?: AbortSignal): Promise<PublishOutcome> {
  const location = target.location;
  const verified = await chain.verify({ writeCheckpoint: true, ...(signal ? { signal } : {}) });
  if (!verified.ok) {
    const bad = verified.firstBad;
    return { published: false, location, why: `the chain does not verify${bad ? ` (${bad.seq !== null ? `seq ${bad.seq}` : `run ${bad.runId ?? '?'}`}: ${bad.problem})` : ''}; run backproof evidence verify --full` };
  }
  if (!verified.head) return { published: false, location, why: 'nothing sealed yet' };
  const statement = await chain.signStatement(verified.head);
  const head: WitnessHead = { format: WITNESS_FORMAT, ...statement };
  try {
    const out = await target.publish(head, signal);
    return { published: true, seq: head.seq, hash: head.hash, location, ...out };
  } catch (err) {
    if (err instanceof BackproofError) throw err;
    throw new BackproofError('witness_failed', `publishing the chain head to ${location} failed: ${(err as Error).message}`, { cause: err });
  }
}
