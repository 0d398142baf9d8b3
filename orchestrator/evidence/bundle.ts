import { createHash, createPublicKey } from 'node:crypto';
import { canonicalJson, linkHash, PROBLEMS, type ChainVerification } from './chain-format.js';
import { fingerprintOf, verifySignature } from './signing-key.js';

/**
 * An evidence bundle (`backproof evidence export`) and its offline check (`verifyBundle`, pure:
 * no database, no config). One JSON document:
 *
 * - `entries`: every link from the client's first sealed run of the period to its last, in seq
 *   order. The client's own: `{seq, prevHash, hash, runId, record}` with `record` the canonical
 *   JSON text that was hashed, so `hash = sha256hex(prevHash + record)` checks byte for byte.
 *   Other clients': `{seq, prevHash, hash}` only (content not disclosed). Each `prevHash` equals
 *   the previous entry's `hash`.
 * - `head`: the last entry's seq and hash with the installation's Ed25519 signature over the 64
 *   hex characters of that hash (every link is signed when sealed; this one is carried).
 * - `attestation`: a text naming the client, the period, the head and which seqs are the
 *   client's records, signed at export, so no record can be turned into an elided entry (or
 *   back) after export without breaking a signature.
 * - `keys`: the public keys (SPKI PEM) and fingerprints of those signatures.
 * - `artifacts` (only when there are any): the files the client's records name (a vm run's
 *   `boot.screenshot`), `{runId, name, mediaType, sha256, base64}`. The record seals the sha256,
 *   so each file is checked against its record: bytes, sha256 and media type; a file no record
 *   names, or a named file the bundle lacks, fails the bundle.
 */
export const BUNDLE_FORMAT = 'backproof-evidence-bundle/1';

export interface BundleRecordEntry {
  seq: number;
  prevHash: string;
  hash: string;
  runId: string;
  /** Canonical JSON of the run record, exactly the text hashed. */
  record: string;
}

export interface BundleElidedEntry {
  seq: number;
  prevHash: string;
  hash: string;
}

export type BundleEntry = BundleRecordEntry | BundleElidedEntry;

export interface BundleArtifact {
  runId: string;
  name: string;
  mediaType: string;
  /** The sha256 the run's sealed record names (BootRecord.screenshot.sha256). */
  sha256: string;
  /** The bytes, base64 (canonical: what Node's Buffer writes). */
  base64: string;
}

export interface EvidenceBundle {
  format: typeof BUNDLE_FORMAT;
  client: string;
  /** Runs started in [from, to), ISO. */
  from: string;
  to: string;
  exportedAt: string;
  entries: BundleEntry[];
  head: { seq: number; hash: string; signature: string; keyFingerprint: string };
  attestation: { text: string; signature: string; keyFingerprint: string };
  keys: Array<{ fingerprint: string; pem: string }>;
  /** Absent when the client's records name no file. */
  artifacts?: BundleArtifact[];
}

/** The files a record names, as `{runId, name, mediaType, sha256, bytes}` (today: a vm run's boot screenshot). */
export function artifactsNamedBy(record: unknown): Array<{ runId: string; name: string; mediaType: unknown; sha256: unknown; bytes: unknown }> {
  if (!isObject(record) || typeof record.id !== 'string' || !isObject(record.boot) || !isObject(record.boot.screenshot)) return [];
  const shot = record.boot.screenshot;
  return typeof shot.name === 'string' ? [{ runId: record.id, name: shot.name, mediaType: shot.mediaType, sha256: shot.sha256, bytes: shot.bytes }] : [];
}

/** The attestation text: one `key: value` per line, then one `record: <seq> <runId>` per record. */
export function attestationText(b: Pick<EvidenceBundle, 'client' | 'from' | 'to' | 'exportedAt' | 'entries'> & { head: { seq: number; hash: string } }): string {
  const lines = [BUNDLE_FORMAT, `client: ${JSON.stringify(b.client)}`, `from: ${b.from}`, `to: ${b.to}`, `exported-at: ${b.exportedAt}`, `head: ${b.head.seq} ${b.head.hash}`];
  for (const e of b.entries) if ('record' in e) lines.push(`record: ${e.seq} ${e.runId}`);
  return `${lines.join('\n')}\n`;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Checks a parsed bundle offline; names the first bad entry. */
export function verifyBundle(bundle: unknown): ChainVerification {
  const fail = (problem: string, seq: number | null = null, runId: string | null = null): ChainVerification => ({
    ok: false,
    checked: 0,
    firstBad: { seq, runId, problem },
  });
  if (!isObject(bundle) || bundle.format !== BUNDLE_FORMAT) return fail(`not a backproof evidence bundle (format is not ${BUNDLE_FORMAT})`);
  const b = bundle as Partial<EvidenceBundle> & Record<string, unknown>;
  if (typeof b.client !== 'string' || typeof b.from !== 'string' || typeof b.to !== 'string' || typeof b.exportedAt !== 'string') {
    return fail('the bundle lacks client, from, to or exportedAt');
  }
  if (!Array.isArray(b.entries) || b.entries.length === 0) return fail('the bundle has no entries');
  if (!isObject(b.head) || !isObject(b.attestation) || !Array.isArray(b.keys)) return fail('the bundle lacks head, attestation or keys');
  const base = { from: b.from, to: b.to };

  // Keys: each PEM must be an Ed25519 public key, written as this tool writes it, with its fingerprint.
  const keys = new Map<string, string>();
  for (const k of b.keys as unknown[]) {
    if (!isObject(k) || typeof k.fingerprint !== 'string' || typeof k.pem !== 'string') return fail('a key in the bundle lacks fingerprint or pem');
    let canonicalPem: string;
    let fingerprint: string;
    try {
      const key = createPublicKey(k.pem);
      canonicalPem = key.export({ type: 'spki', format: 'pem' }).toString();
      fingerprint = fingerprintOf(key);
    } catch {
      return fail(`key ${k.fingerprint} is not an Ed25519 public key`);
    }
    if (canonicalPem !== k.pem || fingerprint !== k.fingerprint) return fail(`key ${k.fingerprint} does not have that fingerprint (its PEM was changed)`);
    keys.set(fingerprint, k.pem);
  }

  let checked = 0;
  /** Files the client's records name, by `runId/name`, with the seq of the record. */
  const named = new Map<string, ReturnType<typeof artifactsNamedBy>[number] & { seq: number }>();
  const entries = b.entries as unknown[];
  let prev: { seq: number; hash: string } | undefined;
  for (const [i, raw] of entries.entries()) {
    if (!isObject(raw) || !Number.isSafeInteger(raw.seq) || typeof raw.prevHash !== 'string' || typeof raw.hash !== 'string') {
      return { ...fail(`entry ${i + 1} is not a link (seq, prevHash, hash)`, prev ? prev.seq + 1 : null), ...base };
    }
    const seq = raw.seq as number;
    const runId = typeof raw.runId === 'string' ? raw.runId : null;
    const bad = (problem: string): ChainVerification => ({ ...fail(problem, seq, runId), ...base, checked });
    if (prev && seq !== prev.seq + 1) return bad(seq > prev.seq + 1 ? PROBLEMS.gap(seq, prev.seq) : `entries out of order: seq ${seq} follows ${prev.seq}`);
    if (!HEX64.test(raw.prevHash) || !HEX64.test(raw.hash)) return bad('prevHash or hash is not 64 lower-case hex characters');
    if (prev && raw.prevHash !== prev.hash) return bad(PROBLEMS.prevMismatch(prev.seq));
    const hasRecord = 'record' in raw || 'runId' in raw;
    if ((i === 0 || i === entries.length - 1) && !hasRecord) return bad("the bundle must start and end with one of the client's records");
    if (hasRecord) {
      if (typeof raw.record !== 'string' || runId === null) return bad('a record entry lacks its record text or runId');
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw.record);
      } catch {
        return bad('the record text is not JSON (it was changed)');
      }
      if (!isObject(parsed) || canonicalJson(parsed) !== raw.record) return bad('the record text is not canonical JSON (it was changed)');
      if (parsed.id !== runId) return bad(`the record is run ${String(parsed.id)}, not ${runId}`);
      if (parsed.client !== b.client) return bad(`a record of client ${String(parsed.client)} in a bundle of client ${b.client}`);
      if (linkHash(raw.prevHash, raw.record) !== raw.hash) return bad(PROBLEMS.hashDiffers);
      for (const ref of artifactsNamedBy(parsed)) named.set(`${ref.runId}/${ref.name}`, { ...ref, seq });
      checked += 1;
    } else if (Object.keys(raw).length !== 3) {
      return bad('an elided entry carries more than seq, prevHash and hash');
    }
    prev = { seq, hash: raw.hash };
  }
  const last = entries.at(-1) as BundleRecordEntry;

  const h = b.head as Record<string, unknown>;
  const headFingerprint = typeof h.keyFingerprint === 'string' ? h.keyFingerprint : null;
  const headOf = (valid: boolean): ChainVerification['head'] => ({ seq: last.seq, hash: last.hash, signatureValid: valid, keyFingerprint: headFingerprint });
  const atHead = (problem: string, valid = false): ChainVerification => ({ ...fail(problem, last.seq, last.runId), ...base, checked, head: headOf(valid) });
  if (h.seq !== last.seq || h.hash !== last.hash) return atHead('the head is not the last entry');
  const headKey = headFingerprint === null ? undefined : keys.get(headFingerprint);
  if (!headKey) return atHead(`the head is signed by a key the bundle does not carry (${headFingerprint ?? 'none'})`);
  if (typeof h.signature !== 'string' || !verifySignature(headKey, last.hash, h.signature)) return atHead(PROBLEMS.badSignature.replace('link', 'head'));

  const a = b.attestation as Record<string, unknown>;
  const attKey = typeof a.keyFingerprint === 'string' ? keys.get(a.keyFingerprint) : undefined;
  if (typeof a.text !== 'string' || typeof a.signature !== 'string' || !attKey) return atHead('the attestation lacks its text, signature or a key the bundle carries', true);
  if (!verifySignature(attKey, a.text, a.signature)) return atHead('the attestation signature is invalid (the attestation was changed)', true);
  const expected = attestationText({ client: b.client, from: b.from, to: b.to, exportedAt: b.exportedAt, head: { seq: last.seq, hash: last.hash }, entries: entries as BundleEntry[] });
  if (a.text !== expected) {
    return atHead("the attestation does not match the bundle (the client's records, the period or the head were changed after export)", true);
  }
  const problem = artifactProblem(b.artifacts, named);
  if (problem) return { ...fail(problem.problem, problem.seq, problem.runId), ...base, checked, head: headOf(true) };
  return { ok: true, checked, ...base, head: headOf(true) };
}

const ARTIFACT_KEYS = 'base64,mediaType,name,runId,sha256';

/** The first artifact that does not match what its sealed record names, or a named one missing. */
function artifactProblem(
  list: unknown,
  named: Map<string, ReturnType<typeof artifactsNamedBy>[number] & { seq: number }>,
): { seq: number | null; runId: string | null; problem: string } | undefined {
  if (list !== undefined && !Array.isArray(list)) return { seq: null, runId: null, problem: 'artifacts is not a list' };
  const seen = new Set<string>();
  for (const [i, a] of ((list as unknown[] | undefined) ?? []).entries()) {
    if (!isObject(a) || Object.keys(a).sort().join(',') !== ARTIFACT_KEYS || Object.values(a).some((v) => typeof v !== 'string')) {
      return { seq: null, runId: null, problem: `artifact ${i + 1} is not {runId, name, mediaType, sha256, base64}` };
    }
    const { runId, name } = a as unknown as BundleArtifact;
    const key = `${runId}/${name}`;
    const ref = named.get(key);
    if (!ref) return { seq: null, runId, problem: `artifact ${name} of run ${runId} is not named by any of the client's records in the bundle` };
    const at = (problem: string): { seq: number; runId: string; problem: string } => ({ seq: ref.seq, runId, problem });
    if (seen.has(key)) return at(`artifact ${name} appears twice`);
    seen.add(key);
    const bytes = Buffer.from(a.base64 as string, 'base64');
    if (bytes.toString('base64') !== a.base64) return at(`artifact ${name} is not canonical base64 (it was changed)`);
    if (a.sha256 !== ref.sha256 || a.mediaType !== ref.mediaType) return at(`artifact ${name} does not carry the sha256 and media type its sealed record names (it was changed)`);
    if (createHash('sha256').update(bytes).digest('hex') !== ref.sha256 || (typeof ref.bytes === 'number' && ref.bytes !== bytes.length)) {
      return at(`the bytes of ${name} do not hash to the sha256 sealed in the run's record (the file was changed)`);
    }
  }
  for (const [key, ref] of named) {
    if (!seen.has(key)) return { seq: ref.seq, runId: ref.runId, problem: `the record names ${ref.name} (sha256 ${String(ref.sha256)}), which the bundle does not carry` };
  }
  return undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
