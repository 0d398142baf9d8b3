import { createHash, createPublicKey, verify as verifyEd25519, type KeyObject } from 'node:crypto';
import type { RunRecord } from '../core/domain.js';
import { BackproofError } from '../core/errors.js';
import { artifactsNamedBy, attestationText, BUNDLE_FORMAT, type BundleArtifact, type BundleEntry, type EvidenceBundle } from './bundle.js';
import { canonicalJson, checkpointText, ClientDigests, clientDigestStep, CLIENT_DIGEST_START, GENESIS_HASH, linkHash, parseClients, PROBLEMS, type ChainCheckpoint, type ChainLink, type ChainVerification, type ClientDigest } from './chain-format.js';
import type { QueryFn, SqlExecutor } from './executor.js';
import { quoteSchema } from './migrate.js';
import { recordJsonSql, recordOfJson, type Row } from './run-row.js';
import { fingerprintOf, type EvidenceSigner, type SignerSource } from './signing-key.js';

export { BUNDLE_FORMAT, verifyBundle, type BundleArtifact, type BundleEntry, type EvidenceBundle } from './bundle.js';
export { canonicalJson, checkpointText, ClientDigests, clientDigestStep, CLIENT_DIGEST_START, GENESIS_HASH, linkHash, PROBLEMS, type ChainCheckpoint, type ChainLink, type ChainVerification, type ClientDigest } from './chain-format.js';

/**
 * The evidence chain: every finalized run (finished, cancelled, aborted) is sealed once, in the
 * same transaction that finalizes it, as link `seq` (1, 2, 3, ...) of one chain per store schema:
 *
 *   hash = sha256hex(prevHash + canonicalJson(record))
 *
 * where `record` is the RunRecord exactly as the store reads it back (run-row.ts `toRecord`),
 * `prevHash` the previous link's hash (64 zeros before seq 1), and the text hashed is UTF-8.
 * Each link's hash is signed (Ed25519, base64, over its 64 hex characters) by the installation's
 * key (signing-key.ts). Links live in `evidence_chain`, the newest in `evidence_chain_head`, which
 * appending locks, so concurrent writers on one PostgreSQL append one at a time.
 *
 * `verify` recomputes links from the runs table and names the first bad one; `exportBundle`
 * writes what `verifyBundle` (bundle.ts) checks offline. A verification that found the chain
 * intact to its head may leave a signed checkpoint there (`evidence_checkpoints`), so the next
 * one walks only the links sealed since (`full` walks them all again).
 */
/**
 * Seals `record` as the next link, inside the caller's transaction: locks the head row, inserts
 * the link (and the signer's public key, once), moves the head. The record must be the one the
 * transaction just wrote, as the store reads it back.
 */
export async function appendLink(q: QueryFn, schema: string, record: RunRecord, signer: EvidenceSigner | undefined): Promise<ChainLink> {
  const s = quoteSchema(schema);
  const { rows } = await q<{ seq: string | number; hash: string }>(`SELECT seq, hash FROM ${s}.evidence_chain_head WHERE id = 1 FOR UPDATE`);
  const head = rows[0];
  if (!head) {
    throw new BackproofError(
      'evidence_chain_broken',
      `the evidence chain's head row is missing from ${schema}.evidence_chain_head: the store was changed outside backproof; run backproof evidence verify`,
    );
  }
  const seq = Number(head.seq) + 1;
  const prevHash = head.hash;
  const hash = linkHash(prevHash, canonicalJson(record));
  const signature = signer ? signer.sign(hash) : null;
  const keyFingerprint = signer ? signer.fingerprint : null;
  if (signer) {
    await q(`INSERT INTO ${s}.evidence_keys (fingerprint, public_key_pem, first_used_at) VALUES ($1, $2, clock_timestamp()) ON CONFLICT (fingerprint) DO NOTHING`, [
      signer.fingerprint,
      signer.publicKeyPem,
    ]);
  }
  await q(
    `INSERT INTO ${s}.evidence_chain (seq, run_id, prev_hash, hash, signature, key_fingerprint, sealed_at)
     VALUES ($1::bigint, $2::uuid, $3, $4, $5, $6, clock_timestamp())`,
    [seq, record.id, prevHash, hash, signature, keyFingerprint],
  );
  await q(`UPDATE ${s}.evidence_chain_head SET seq = $1::bigint, hash = $2 WHERE id = 1`, [seq, hash]);
  return { seq, runId: record.id, prevHash, hash, signature, keyFingerprint };
}

/** A link as walked, with the record its run row reads back as (null: the row is gone). */
interface WalkedLink extends ChainLink {
  record: RunRecord | null;
}
type Bad = NonNullable<ChainVerification['firstBad']>;
interface WalkResult {
  checked: number;
  firstBad?: Bad;
  /** The newest link walked, or the anchor when none was. */
  last?: ChainLink;
}
interface WalkOptions {
  onLink?: (link: WalkedLink) => void;
  /** The link before `first`, already trusted: `first`'s prev_hash must be its hash. */
  anchor?: ChainLink;
  /**
   * A checkpoint: links up to it were found signed when it was made, so their signatures are not
   * checked again, except the walk's last link's; the checkpoint's own link must have its hash.
   * Sound because the walk recomputes every hash it passes: a change anywhere in the walk changes
   * the last link's hash, whose signature then fails (or breaks the chain to the checkpoint).
   */
  vouched?: ChainCheckpoint;
  /** Checked between batches: an aborted walk throws. */
  signal?: AbortSignal;
}
const signalOf = (opts: { signal?: AbortSignal }): { signal?: AbortSignal } => (opts.signal ? { signal: opts.signal } : {});
/** A checkpoint found trustworthy, with its link as stored now (and its client digests, when it has them); or the problem with it. */
type CheckpointFound = { checkpoint: ChainCheckpoint; link: ChainLink; clients?: Map<string, ClientDigest> } | { bad: Bad };

const WALK_BATCH = 500;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class EvidenceChain {
  private readonly s: string;
  private signerPromise: Promise<EvidenceSigner> | undefined;

  /** `signer` is needed only by `exportBundle` (which signs the bundle's attestation). */
  constructor(
    private readonly executor: SqlExecutor,
    schema: string,
    private readonly signer?: SignerSource,
  ) {
    this.s = quoteSchema(schema);
  }

  /** The links of these runs, by run id (runs with no link are absent). */
  async links(runIds: string[]): Promise<Map<string, ChainLink>> {
    const ids = [...new Set(runIds.map((id) => id.toLowerCase()))].filter((id) => UUID.test(id));
    if (ids.length === 0) return new Map();
    const { rows } = await this.executor.query<Row>(
      `SELECT seq, run_id, prev_hash, hash, signature, key_fingerprint FROM ${this.s}.evidence_chain WHERE run_id = ANY($1::uuid[])`,
      [ids],
    );
    return new Map(rows.map((r) => [String(r.run_id), linkOf(r)]));
  }

  /** The hash of the link at each of these seqs (absent: no such link), and the newest seq (0: none). */
  async hashesAt(seqs: number[]): Promise<{ hashes: Map<number, string>; headSeq: number }> {
    const wanted = [...new Set(seqs.filter((n) => Number.isSafeInteger(n) && n > 0))];
    const { rows } = wanted.length
      ? await this.executor.query<{ seq: string; hash: string }>(`SELECT seq, hash FROM ${this.s}.evidence_chain WHERE seq = ANY($1::bigint[])`, [wanted])
      : { rows: [] };
    const head = await this.executor.query<{ seq: string | null }>(`SELECT max(seq) AS seq FROM ${this.s}.evidence_chain`);
    return { hashes: new Map(rows.map((r) => [Number(r.seq), String(r.hash)])), headSeq: Number(head.rows[0]?.seq ?? 0) };
  }

  /** A signed statement that links 1..seq were found intact now and link seq's hash is `hash` (checkpointText). */
  async signStatement(link: { seq: number; hash: string }): Promise<ChainCheckpoint & { publicKeyPem: string }> {
    const signer = await this.getSigner();
    const madeAt = new Date().toISOString();
    return { seq: link.seq, hash: link.hash, madeAt, keyFingerprint: signer.fingerprint, publicKeyPem: signer.publicKeyPem, signature: signer.sign(checkpointText({ seq: link.seq, hash: link.hash, madeAt })) };
  }

  /** Every public key that has signed links: fingerprint and SPKI PEM. */
  async publicKeys(): Promise<Array<{ fingerprint: string; pem: string }>> {
    const { rows } = await this.executor.query<{ fingerprint: string; public_key_pem: string }>(
      `SELECT fingerprint, public_key_pem FROM ${this.s}.evidence_keys ORDER BY first_used_at, fingerprint`,
    );
    return rows.map((r) => ({ fingerprint: r.fingerprint, pem: r.public_key_pem }));
  }

  /**
   * Walks the chain in seq order and names the first bad link: a record that no longer hashes to
   * its link, a missing link (gap), a prev_hash that does not chain (reorder, insertion), a
   * missing or invalid signature, a finalized run with no link, a checkpoint that does not verify
   * or no longer matches its link.
   *
   * Without a period it starts after the newest checkpoint (links before it were found intact
   * when it was made), unless `full`, which walks from seq 1 and checks every checkpoint too.
   * `from`/`to` (ISO; `to` exclusive) limit it to runs started in that period: the walk then
   * covers their links, every link between them, the last link sealed before `from` and the next
   * link after them, every record re-hashed; of the links the newest checkpoint vouches for, only
   * the last one walked has its signature checked again (see WalkOptions.vouched). A record
   * deleted with its link outside that walk is found by a verify without a period.
   * `writeCheckpoint`: when the walk reached the head intact, sign a checkpoint there, with every
   * client's digest (chain-format.ts ClientDigests): the newest checkpoint's extended by the links
   * walked since; when it has none (made before them), the walk starts at seq 1 instead, so the
   * digests signed come from records re-hashed now. `full` recomputes the digests too and checks
   * every checkpoint's against them.
   */
  async verify(opts: { from?: string; to?: string; full?: boolean; writeCheckpoint?: boolean; signal?: AbortSignal } = {}): Promise<ChainVerification> {
    const from = opts.from === undefined ? undefined : isoOf(opts.from, 'from');
    const to = opts.to === undefined ? undefined : isoOf(opts.to, 'to');
    const ranged = from !== undefined || to !== undefined;
    const full = opts.full === true;
    const base: ChainVerification = { ok: true, checked: 0, ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}), ...(full ? { full } : {}) };
    const keys = await this.keyRing();

    let first = 1;
    let last = Number.MAX_SAFE_INTEGER;
    let found: CheckpointFound | undefined;
    if (ranged) {
      const span = await this.spanOfRuns(undefined, from, to);
      if (span) {
        first = from === undefined ? 1 : span.min - 1;
        if (from !== undefined) {
          const { rows } = await this.executor.query<{ seq: string | null }>(`SELECT max(seq) AS seq FROM ${this.s}.evidence_chain WHERE sealed_at < $1::timestamptz`, [from]);
          first = Math.min(first, rows[0]?.seq === null || rows[0]?.seq === undefined ? 0 : Number(rows[0].seq));
        }
        first = Math.max(1, first);
        // Through the first link after the period's last one, wherever it is: a deleted link shows as a gap.
        const { rows } = await this.executor.query<{ seq: string | null }>(`SELECT min(seq) AS seq FROM ${this.s}.evidence_chain WHERE seq > $1::bigint`, [span.max]);
        last = rows[0]?.seq === null || rows[0]?.seq === undefined ? span.max : Number(rows[0].seq);
      } else {
        last = 0; // nothing sealed in the period: only look for unlinked runs
      }
    }
    if (!full) found = await this.newestCheckpoint(keys);
    if (found && 'bad' in found) return { ...base, ok: false, firstBad: found.bad };

    // Client digests, when this walk is to sign them (or, --full, to check the checkpoints' against).
    const wantDigests = !ranged && (full || opts.writeCheckpoint === true);
    let digests: ClientDigests | undefined;
    let fromGenesis = false;
    const signedDigests = full && wantDigests ? await this.digestCheckpoints() : [];
    let digestBad: Bad | undefined;
    const onLink = (link: WalkedLink): void => {
      if (!digests || !link.record) return;
      digests.add(link.record.client, link.seq, link.hash);
      const due = signedDigests[0];
      if (due && due.seq === link.seq) {
        signedDigests.shift();
        digestBad ??= digestsDiffer(due, digests.byClient);
      }
    };

    let walk: WalkResult;
    let relied = found;
    if (found && !ranged && wantDigests && !found.clients) {
      // The newest checkpoint has no client digests (made before them): walk from seq 1 once, so
      // the digests signed come from records re-hashed now. Its link vouches for the signatures.
      digests = new ClientDigests();
      fromGenesis = true;
      relied = undefined;
      walk = await this.walk(1, last, keys, { vouched: found.checkpoint, onLink, ...signalOf(opts) });
    } else if (found && !ranged) {
      // Links 1..seq were intact when the checkpoint was made: walk only what was sealed since.
      if (wantDigests) digests = new ClientDigests(found.clients);
      walk = await this.walk(found.checkpoint.seq + 1, last, keys, { anchor: found.link, onLink, ...signalOf(opts) });
    } else if (found && last >= first) {
      walk = await this.walk(first, last, keys, { vouched: found.checkpoint, ...signalOf(opts) });
    } else {
      if (wantDigests) {
        digests = new ClientDigests();
        fromGenesis = true;
      }
      walk = last >= first ? await this.walk(first, last, keys, { onLink, ...signalOf(opts) }) : { checked: 0 };
    }
    found = relied;
    const result: ChainVerification = { ...base, checked: walk.checked };
    if (found) result.checkpoint = { seq: found.checkpoint.seq, madeAt: found.checkpoint.madeAt, keyFingerprint: found.checkpoint.keyFingerprint };
    if (walk.last) {
      result.head = { seq: walk.last.seq, hash: walk.last.hash, signatureValid: signatureValid(walk.last, keys), keyFingerprint: walk.last.keyFingerprint };
    }
    const bad =
      walk.firstBad ??
      (await this.headProblem(walk.last, ranged)) ??
      (full && walk.last ? await this.checkpointProblem(keys, walk.last.seq) : undefined) ??
      digestBad ??
      (await this.unlinkedRun(from, to));
    if (bad) {
      result.ok = false;
      result.firstBad = bad;
    } else if (opts.writeCheckpoint && !ranged && digests && walk.last && (fromGenesis || walk.last.seq > (found && 'checkpoint' in found ? found.checkpoint.seq : 0))) {
      try {
        const written = await this.writeCheckpoint(walk.last, digests.text());
        if (written) result.checkpointWritten = written;
      } catch (err) {
        result.checkpointNotWritten = (err as Error).message; // the chain is intact all the same
      }
    }
    return result;
  }

  /**
   * One client's runs started in [from, to) verified, as its monthly report needs, without
   * re-hashing every other client's records of the period. Relies on the newest checkpoint, which
   * must verify and whose link must still have its hash (else that is the problem); with no
   * checkpoint, or one made before client digests, it is `verify({ from, to })`.
   *
   * With the checkpoint at seq N:
   * - the client's links up to N, found by the runs' `client` column in one query, must give the
   *   count and digest the checkpoint signed for the client (chain-format.ts ClientDigests): a run
   *   moved to or from another client, a run or link deleted, a link's hash changed all change it;
   * - the client's records in the period (started or sealed in it; with the client's link before
   *   the first and after the last) up to N are re-hashed: sha256(prev_hash + record) must be the
   *   link's hash, which the digest binds;
   * - every link after N is walked as `verify()` walks them (every record re-hashed, every
   *   signature checked, the chain head compared);
   * - no finalized run of the client started in the period is without a link.
   * A problem found that way is named by the period's walk when it finds one (a moved record shows
   * as a record whose hash differs); else by what differs.
   */
  async verifyClient(opts: { client: string; from: string; to: string; signal?: AbortSignal }): Promise<ChainVerification> {
    const from = isoOf(opts.from, 'from');
    const to = isoOf(opts.to, 'to');
    const { client } = opts;
    const keys = await this.keyRing();
    const found = await this.newestCheckpoint(keys);
    if (found && 'bad' in found) return { ok: false, checked: 0, from, to, firstBad: found.bad };
    if (!found?.clients) return this.verify({ from, to, ...signalOf(opts) });
    const { checkpoint } = found;
    const n = checkpoint.seq;

    // The client's links, seq order: the digest up to N, and where its runs of the period are.
    // Each run's link by its run_id (OFFSET 0 keeps it a lookup per run: joined, the planner reads
    // the whole chain to hash-join a big client's few thousand links).
    const { rows } = await this.executor.query<{ seq: string; hash: string; in_period: boolean }>(
      `SELECT c.seq, c.hash,
              (r.started_at >= $2::timestamptz AND r.started_at < $3::timestamptz) OR (c.sealed_at >= $2::timestamptz AND c.sealed_at < $3::timestamptz) AS in_period
         FROM ${this.s}.runs r CROSS JOIN LATERAL (SELECT seq, hash, sealed_at FROM ${this.s}.evidence_chain WHERE run_id = r.id OFFSET 0) c
        WHERE r.client = $1 ORDER BY c.seq`,
      [client, from, to],
    );
    let digest: ClientDigest | undefined;
    let firstIn = -1;
    let lastIn = -1;
    rows.forEach((row, i) => {
      const seq = Number(row.seq);
      if (seq <= n) digest = { links: (digest?.links ?? 0) + 1, digest: clientDigestStep(digest?.digest ?? CLIENT_DIGEST_START, seq, String(row.hash)) };
      if (row.in_period === true) {
        if (firstIn < 0) firstIn = i;
        lastIn = i;
      }
    });
    const signed = found.clients.get(client);
    const digestBad: Bad | undefined =
      digest?.links !== signed?.links || digest?.digest !== signed?.digest
        ? { seq: null, runId: null, problem: PROBLEMS.clientLinksDiffer(client, n, checkpoint.madeAt, digest, signed) }
        : undefined;

    // The client's records to re-hash (those up to N; the walk below re-hashes the rest): its
    // links from the one before the first of the period to the one after the last, where "of the
    // period" is a run started in it or a link sealed in it (a record moved out of the period by
    // its start time is still re-hashed, even the client's only one).
    let checked = 0;
    let rehashBad: Bad | undefined;
    if (firstIn >= 0) {
      const lo = Number(rows[Math.max(0, firstIn - 1)]!.seq);
      const hi = Math.min(Number(rows[Math.min(rows.length - 1, lastIn + 1)]!.seq), n);
      const seqs = rows.map((r) => Number(r.seq)).filter((seq) => seq >= lo && seq <= hi);
      if (seqs.length > 0) {
        const { rows: records } = await this.executor.query<Row>(
          `SELECT c.seq, c.run_id, c.prev_hash, c.hash, ${recordJsonSql('r')} AS record
             FROM ${this.s}.evidence_chain c JOIN ${this.s}.runs r ON r.id = c.run_id
            WHERE c.seq = ANY($2::bigint[]) AND r.client = $1 ORDER BY c.seq`,
          [client, seqs],
        );
        for (const row of records) {
          opts.signal?.throwIfAborted();
          const record = recordOfJson(String(row.record));
          const link = linkOf(row);
          if (record.status === 'running' || linkHash(link.prevHash, canonicalJson(record)) !== link.hash) {
            rehashBad = { seq: link.seq, runId: link.runId, problem: PROBLEMS.hashDiffers };
            break;
          }
          checked += 1;
        }
      }
    }

    // Everything sealed since the checkpoint, as the incremental verify walks it.
    const walk = await this.walk(n + 1, Number.MAX_SAFE_INTEGER, keys, { anchor: found.link, ...signalOf(opts) });
    const result: ChainVerification = {
      ok: true,
      checked: checked + walk.checked,
      from,
      to,
      checkpoint: { seq: n, madeAt: checkpoint.madeAt, keyFingerprint: checkpoint.keyFingerprint },
    };
    if (walk.last) result.head = { seq: walk.last.seq, hash: walk.last.hash, signatureValid: signatureValid(walk.last, keys), keyFingerprint: walk.last.keyFingerprint };
    let bad = rehashBad ?? digestBad ?? walk.firstBad ?? (await this.headProblem(walk.last, false)) ?? (await this.unlinkedRun(from, to, client));
    if (bad === digestBad && digestBad) {
      // Name the record when the period's walk can (a run moved out of the client's report shows there as a changed record).
      bad = (await this.verify({ from, to, ...signalOf(opts) })).firstBad ?? digestBad;
    }
    if (bad) {
      result.ok = false;
      result.firstBad = bad;
    } else {
      result.clientDigest = { client, links: digest?.links ?? 0, checkpointSeq: n };
    }
    return result;
  }

  /**
   * A client's sealed runs started in [from, to) as a bundle `verifyBundle` checks offline: for
   * every seq from the client's first such link to its last, the client's record as canonical
   * JSON text, or only `{seq, prevHash, hash}` for other clients' records; the last link's
   * signature; an attestation (which seqs are the client's) signed with this installation's key;
   * the files those records name (a vm run's screenshot). Refuses when that part of the chain
   * does not verify, or a named file is missing or does not match its record's sha256.
   */
  async exportBundle(opts: { client: string; from: string; to: string }): Promise<EvidenceBundle> {
    const from = isoOf(opts.from, 'from');
    const to = isoOf(opts.to, 'to');
    const span = await this.spanOfRuns(opts.client, from, to);
    if (!span) {
      throw new BackproofError('evidence_nothing_to_export', `no sealed runs of client ${opts.client} started from ${from} to ${to}: nothing to export`);
    }
    if (!this.signer) throw new BackproofError('evidence_no_signer', 'exporting a bundle needs the signing key: open the chain with a signer');
    const signer = await this.getSigner();

    const entries: BundleEntry[] = [];
    const named: ReturnType<typeof artifactsNamedBy> = [];
    const onLink = (link: WalkedLink): void => {
      if (link.seq < span.min) return;
      if (link.record && link.record.client === opts.client) {
        entries.push({ seq: link.seq, prevHash: link.prevHash, hash: link.hash, runId: link.runId, record: canonicalJson(link.record) });
        named.push(...artifactsNamedBy(link.record));
      } else {
        entries.push({ seq: link.seq, prevHash: link.prevHash, hash: link.hash });
      }
    };
    const walk = await this.walk(Math.max(1, span.min - 1), span.max, await this.keyRing(), { onLink });
    if (walk.firstBad || !walk.last) {
      const bad = walk.firstBad;
      throw new BackproofError(
        'evidence_tampered',
        `the evidence chain does not verify${bad ? ` at seq ${bad.seq ?? '?'}${bad.runId ? ` (run ${bad.runId})` : ''}: ${bad.problem}` : ''}; run backproof evidence verify`,
      );
    }
    const artifacts = await this.artifactsOf(named);
    const lastLink = walk.last;
    const head = { seq: lastLink.seq, hash: lastLink.hash, signature: lastLink.signature ?? '', keyFingerprint: lastLink.keyFingerprint ?? '' };
    const exportedAt = new Date().toISOString();
    const text = attestationText({ client: opts.client, from, to, exportedAt, head, entries });
    const keys = (await this.publicKeys()).filter((k) => k.fingerprint === head.keyFingerprint);
    if (signer.fingerprint !== head.keyFingerprint) keys.push({ fingerprint: signer.fingerprint, pem: signer.publicKeyPem });
    return {
      format: BUNDLE_FORMAT,
      client: opts.client,
      from,
      to,
      exportedAt,
      entries,
      head,
      attestation: { text, signature: signer.sign(text), keyFingerprint: signer.fingerprint },
      keys,
      ...(artifacts.length > 0 ? { artifacts } : {}),
    };
  }

  /** The named files' bytes from run_artifacts, each checked against the sha256 its sealed record names. */
  private async artifactsOf(named: ReturnType<typeof artifactsNamedBy>): Promise<BundleArtifact[]> {
    const out: BundleArtifact[] = [];
    for (const ref of named) {
      const { rows } = await this.executor.query<Row>(`SELECT media_type, bytes FROM ${this.s}.run_artifacts WHERE run_id = $1::uuid AND name = $2`, [ref.runId, ref.name]);
      const row = rows[0];
      if (!row) {
        throw new BackproofError('evidence_artifact_missing', `run ${ref.runId} names ${ref.name} (sha256 ${String(ref.sha256)}) but the evidence store does not hold it; the bundle would not verify`);
      }
      const bytes = Buffer.from(row.bytes as Uint8Array);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      if (sha256 !== ref.sha256) {
        throw new BackproofError('evidence_tampered', `the stored ${ref.name} of run ${ref.runId} has sha256 ${sha256}, not the ${String(ref.sha256)} sealed in its record; run backproof evidence verify`);
      }
      out.push({ runId: ref.runId, name: ref.name, mediaType: String(ref.mediaType), sha256, base64: bytes.toString('base64') });
    }
    return out;
  }

  private getSigner(): Promise<EvidenceSigner> {
    const source = this.signer;
    if (!source) throw new BackproofError('evidence_no_signer', 'no signing key');
    this.signerPromise ??= typeof source === 'function' ? source() : Promise.resolve(source);
    return this.signerPromise;
  }

  /** Lowest and highest seq of links whose run (of `client`) started in [from, to). */
  private async spanOfRuns(client: string | undefined, from: string | undefined, to: string | undefined): Promise<{ min: number; max: number } | undefined> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (client !== undefined) where.push(`r.client = $${params.push(client)}`);
    if (from !== undefined) where.push(`r.started_at >= $${params.push(from)}::timestamptz`);
    if (to !== undefined) where.push(`r.started_at < $${params.push(to)}::timestamptz`);
    const { rows } = await this.executor.query<{ min: string | null; max: string | null }>(
      `SELECT min(c.seq) AS min, max(c.seq) AS max FROM ${this.s}.evidence_chain c JOIN ${this.s}.runs r ON r.id = c.run_id
        ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}`,
      params,
    );
    const row = rows[0];
    return row && row.min !== null && row.max !== null ? { min: Number(row.min), max: Number(row.max) } : undefined;
  }

  /**
   * Checks links `first..last` in seq order, stopping at the first problem. The link before
   * `first` is not read: `first`'s prev_hash is checked against the anchor, or the genesis hash
   * when `first` is 1.
   */
  private async walk(first: number, last: number, keys: KeyRing, opts: WalkOptions = {}): Promise<WalkResult> {
    const { onLink, anchor, vouched, signal } = opts;
    const seenRuns = new Map<string, number>();
    let expected = first;
    let prev: ChainLink | undefined = anchor;
    let checked = 0;
    const result = (firstBad?: Bad): WalkResult => ({ checked, ...(firstBad ? { firstBad } : {}), ...(prev ? { last: prev } : {}) });
    for (let after = first - 1; ; ) {
      signal?.throwIfAborted();
      const { rows } = await this.executor.query<Row>(
        `SELECT c.seq AS link_seq, c.run_id AS link_run_id, c.prev_hash AS link_prev_hash, c.hash AS link_hash, c.signature AS link_signature,
                c.key_fingerprint AS link_key_fingerprint, CASE WHEN r.id IS NULL THEN NULL ELSE ${recordJsonSql('r')} END AS link_record
           FROM ${this.s}.evidence_chain c LEFT JOIN ${this.s}.runs r ON r.id = c.run_id
          WHERE c.seq > $1::bigint AND c.seq <= $2::bigint ORDER BY c.seq LIMIT ${WALK_BATCH}`,
        [after, last],
      );
      for (const row of rows) {
        const link = linkOf(row, 'link_');
        const walked: WalkedLink = { ...link, record: row.link_record === null || row.link_record === undefined ? null : recordOfJson(String(row.link_record)) };
        const bad = this.checkLink(walked, expected, first, prev, seenRuns) ?? (vouched && link.seq <= vouched.seq ? checkAgainst(vouched, walked) : signatureProblem(walked, keys));
        if (bad) return result(bad);
        checked += 1;
        seenRuns.set(link.runId, link.seq);
        onLink?.(walked);
        prev = link;
        expected = link.seq + 1;
      }
      if (rows.length < WALK_BATCH) break;
      after = prev?.seq ?? after;
    }
    // The last link walked binds every hash recomputed before it: its signature, always.
    if (vouched && prev && prev !== anchor && prev.seq <= vouched.seq) return result(signatureProblem(prev, keys));
    return result();
  }

  /** Order, continuity and the record's hash (signatures: `signatureProblem`). */
  private checkLink(link: WalkedLink, expected: number, first: number, prev: ChainLink | undefined, seenRuns: Map<string, number>): Bad | undefined {
    const at = (problem: string, seq: number | null = link.seq, runId: string | null = link.runId): Bad => ({ seq, runId, problem });
    if (link.seq !== expected) {
      if (!prev && first === 1) return at(PROBLEMS.startsLate(link.seq), 1, null);
      if (prev) return at(PROBLEMS.gap(link.seq, prev.seq), expected, null);
      // The walk's anchor itself is missing: the link before the period was deleted.
      return at(PROBLEMS.gap(link.seq, expected - 1), expected, null);
    }
    if (link.seq === 1 && link.prevHash !== GENESIS_HASH) return at(PROBLEMS.prevMismatch(0).replace('the hash of seq 0', 'the genesis hash (64 zeros)'));
    if (prev && link.prevHash !== prev.hash) return at(PROBLEMS.prevMismatch(prev.seq));
    const twice = seenRuns.get(link.runId);
    if (twice !== undefined) return at(`run ${link.runId} is sealed twice (seq ${twice} and ${link.seq})`);
    if (!link.record) return at(`record deleted: run ${link.runId} is gone from the runs table`);
    if (link.record.status === 'running' || linkHash(link.prevHash, canonicalJson(link.record)) !== link.hash) return at(PROBLEMS.hashDiffers);
    return undefined;
  }

  /**
   * The newest checkpoint, with its link as stored now. One that does not verify, or whose link is
   * gone or changed, is a problem, never passed over for an older one: only backproof writes them.
   */
  private async newestCheckpoint(keys: KeyRing): Promise<CheckpointFound | undefined> {
    const { rows } = await this.executor.query<Row>(
      `SELECT k.seq, k.hash, k.made_at, k.key_fingerprint, k.signature, k.clients, c.seq AS link_seq, c.run_id AS link_run_id, c.prev_hash AS link_prev_hash,
              c.hash AS link_hash, c.signature AS link_signature, c.key_fingerprint AS link_key_fingerprint
         FROM ${this.s}.evidence_checkpoints k LEFT JOIN ${this.s}.evidence_chain c ON c.seq = k.seq
        ORDER BY k.seq DESC LIMIT 1`,
    );
    const row = rows[0];
    if (!row) return undefined;
    const checkpoint = checkpointOf(row);
    const bad = (problem: string): CheckpointFound => ({ bad: { seq: checkpoint.seq, runId: null, problem } });
    if (!checkpointValid(checkpoint, keys)) return bad(PROBLEMS.checkpointForged(checkpoint.seq));
    if (row.link_seq === null || row.link_seq === undefined) return bad(PROBLEMS.checkpointLinkGone(checkpoint.seq, checkpoint.madeAt));
    const link = linkOf(row, 'link_');
    if (link.hash !== checkpoint.hash) return bad(PROBLEMS.checkpointDiffers(checkpoint.seq, checkpoint.madeAt));
    if (checkpoint.clients === undefined) return { checkpoint, link };
    const clients = parseClients(checkpoint.clients);
    if (!clients) return bad(PROBLEMS.checkpointClientsUnreadable(checkpoint.seq));
    return { checkpoint, link, clients };
  }

  /** Checkpoints with client digests, oldest first (their signatures: checkpointProblem). */
  private async digestCheckpoints(): Promise<Array<{ seq: number; madeAt: string; clients: string }>> {
    const { rows } = await this.executor.query<{ seq: string; made_at: string; clients: string }>(
      `SELECT seq, made_at, clients FROM ${this.s}.evidence_checkpoints WHERE clients IS NOT NULL ORDER BY seq`,
    );
    return rows.map((r) => ({ seq: Number(r.seq), madeAt: String(r.made_at), clients: String(r.clients) }));
  }

  /** After a full walk through `last`: every checkpoint up to it must verify and match its link. */
  private async checkpointProblem(keys: KeyRing, last: number): Promise<Bad | undefined> {
    const { rows } = await this.executor.query<Row>(
      `SELECT k.seq, k.hash, k.made_at, k.key_fingerprint, k.signature, k.clients, c.hash AS link_hash
         FROM ${this.s}.evidence_checkpoints k LEFT JOIN ${this.s}.evidence_chain c ON c.seq = k.seq WHERE k.seq <= $1::bigint ORDER BY k.seq`,
      [last],
    );
    for (const row of rows) {
      const checkpoint = checkpointOf(row);
      const at = (problem: string): Bad => ({ seq: checkpoint.seq, runId: null, problem });
      if (!checkpointValid(checkpoint, keys)) return at(PROBLEMS.checkpointForged(checkpoint.seq));
      if (row.link_hash !== checkpoint.hash) return at(PROBLEMS.checkpointDiffers(checkpoint.seq, checkpoint.madeAt));
    }
    return undefined;
  }

  /**
   * Signs "links 1..link.seq verified now, with these client digests" with the installation's key
   * and stores it; undefined when that seq has one already. One made there before client digests
   * (same hash) is replaced by this one.
   */
  private async writeCheckpoint(link: ChainLink, clients: string): Promise<{ seq: number; madeAt: string } | undefined> {
    const signer = await this.getSigner();
    const madeAt = new Date().toISOString();
    const signature = signer.sign(checkpointText({ seq: link.seq, hash: link.hash, madeAt, clients }));
    const inserted = await this.executor.transaction(async (q) => {
      await q(`INSERT INTO ${this.s}.evidence_keys (fingerprint, public_key_pem, first_used_at) VALUES ($1, $2, clock_timestamp()) ON CONFLICT (fingerprint) DO NOTHING`, [
        signer.fingerprint,
        signer.publicKeyPem,
      ]);
      const { rows } = await q(
        `INSERT INTO ${this.s}.evidence_checkpoints AS k (seq, hash, made_at, key_fingerprint, signature, clients) VALUES ($1::bigint, $2, $3, $4, $5, $6)
         ON CONFLICT (seq) DO UPDATE SET made_at = excluded.made_at, key_fingerprint = excluded.key_fingerprint, signature = excluded.signature, clients = excluded.clients
           WHERE k.clients IS NULL AND k.hash = excluded.hash
         RETURNING seq`,
        [link.seq, link.hash, madeAt, signer.fingerprint, signature, clients],
      );
      return rows.length > 0;
    });
    return inserted ? { seq: link.seq, madeAt } : undefined;
  }

  /** When the walk reached the newest link: does the head row agree with it? */
  private async headProblem(last: ChainLink | undefined, ranged: boolean): Promise<Bad | undefined> {
    const { rows } = await this.executor.query<{ seq: string; hash: string; max: string | null }>(
      `SELECT h.seq, h.hash, (SELECT max(seq) FROM ${this.s}.evidence_chain) AS max FROM ${this.s}.evidence_chain_head h WHERE h.id = 1`,
    );
    const head = rows[0];
    if (!head) return { seq: null, runId: null, problem: 'the chain head row is missing (the store was changed outside backproof)' };
    const newest = head.max === null ? 0 : Number(head.max);
    if (ranged && (last?.seq ?? 0) < newest) return undefined; // the walk stopped before the end
    const headSeq = Number(head.seq);
    if (headSeq > newest) {
      return { seq: newest + 1, runId: null, problem: `link missing: the chain ends at seq ${newest} but its head is seq ${headSeq} (the newest records were deleted)` };
    }
    if (headSeq < newest || (last && head.hash !== last.hash)) {
      return { seq: newest, runId: last?.runId ?? null, problem: `the chain head (seq ${headSeq}) is not the newest link (seq ${newest}): links were added or changed outside backproof` };
    }
    return undefined;
  }

  /** The oldest finalized run (started in the period; of `client`) that has no link. */
  private async unlinkedRun(from: string | undefined, to: string | undefined, client?: string): Promise<Bad | undefined> {
    const where = [`r.status <> 'running'`, `NOT EXISTS (SELECT 1 FROM ${this.s}.evidence_chain c WHERE c.run_id = r.id)`];
    const params: unknown[] = [];
    if (client !== undefined) where.push(`r.client = $${params.push(client)}`);
    if (from !== undefined) where.push(`r.started_at >= $${params.push(from)}::timestamptz`);
    if (to !== undefined) where.push(`r.started_at < $${params.push(to)}::timestamptz`);
    const { rows } = await this.executor.query<{ id: string }>(`SELECT r.id FROM ${this.s}.runs r WHERE ${where.join(' AND ')} ORDER BY r.started_at, r.id LIMIT 1`, params);
    return rows[0] ? { seq: null, runId: String(rows[0].id), problem: PROBLEMS.unlinked } : undefined;
  }

  /** Known public keys, each only if its PEM really has the fingerprint it is stored under. */
  private async keyRing(): Promise<KeyRing> {
    const ring: KeyRing = new Map();
    for (const k of await this.publicKeys()) {
      try {
        const key = createPublicKey(k.pem);
        if (fingerprintOf(key) === k.fingerprint) ring.set(k.fingerprint, key);
      } catch {
        // an unreadable key verifies nothing
      }
    }
    return ring;
  }
}

type KeyRing = Map<string, KeyObject>;

function signatureValid(link: ChainLink, keys: KeyRing): boolean {
  return link.signature !== null && link.keyFingerprint !== null && ed25519Valid(link.hash, link.signature, link.keyFingerprint, keys);
}

/** Is `signature` (base64, canonical) a valid Ed25519 signature of the UTF-8 `message` by the key `fingerprint` names? */
function ed25519Valid(message: string, signature: string, fingerprint: string, keys: KeyRing): boolean {
  const key = keys.get(fingerprint);
  if (!key) return false;
  const sig = Buffer.from(signature, 'base64');
  if (sig.length !== 64 || sig.toString('base64') !== signature) return false;
  try {
    return verifyEd25519(null, Buffer.from(message, 'utf8'), key, sig);
  } catch {
    return false;
  }
}

/** A link's signature: present, by a known key, valid. */
function signatureProblem(link: ChainLink, keys: KeyRing): Bad | undefined {
  const at = (problem: string): Bad => ({ seq: link.seq, runId: link.runId, problem });
  if (link.signature === null || link.keyFingerprint === null) return at(PROBLEMS.unsigned);
  if (!keys.has(link.keyFingerprint)) return at(PROBLEMS.unknownKey(link.keyFingerprint));
  if (!signatureValid(link, keys)) return at(PROBLEMS.badSignature);
  return undefined;
}

/** A link a checkpoint vouches for: its signature was checked when the checkpoint was made; the checkpoint's own link must still have its hash. */
function checkAgainst(checkpoint: ChainCheckpoint, link: ChainLink): Bad | undefined {
  if (link.seq !== checkpoint.seq || link.hash === checkpoint.hash) return undefined;
  return { seq: link.seq, runId: link.runId, problem: PROBLEMS.checkpointDiffers(checkpoint.seq, checkpoint.madeAt) };
}

function checkpointOf(r: Row): ChainCheckpoint {
  return {
    seq: Number(r.seq),
    hash: String(r.hash),
    madeAt: String(r.made_at),
    keyFingerprint: String(r.key_fingerprint),
    signature: String(r.signature),
    ...(r.clients === null || r.clients === undefined ? {} : { clients: String(r.clients) }),
  };
}

/** --full: the digests computed through a checkpoint's seq against the ones it signed; the first client that differs. */
function digestsDiffer(signed: { seq: number; madeAt: string; clients: string }, found: Map<string, ClientDigest>): Bad | undefined {
  const signedMap = parseClients(signed.clients);
  if (!signedMap) return { seq: signed.seq, runId: null, problem: PROBLEMS.checkpointClientsUnreadable(signed.seq) };
  for (const client of [...new Set([...found.keys(), ...signedMap.keys()])].sort()) {
    const a = found.get(client);
    const b = signedMap.get(client);
    if (a?.links !== b?.links || a?.digest !== b?.digest) return { seq: signed.seq, runId: null, problem: PROBLEMS.checkpointClientsDiffer(signed.seq, signed.madeAt, client, a, b) };
  }
  return undefined;
}

function checkpointValid(c: ChainCheckpoint, keys: KeyRing): boolean {
  return ed25519Valid(checkpointText(c), c.signature, c.keyFingerprint, keys);
}

function linkOf(r: Row, prefix = ''): ChainLink {
  const text = (k: string): string | null => {
    const v = r[prefix + k];
    return v === null || v === undefined ? null : String(v);
  };
  return {
    seq: Number(r[`${prefix}seq`]),
    runId: String(r[`${prefix}run_id`]),
    prevHash: text('prev_hash') ?? '',
    hash: text('hash') ?? '',
    signature: text('signature'),
    keyFingerprint: text('key_fingerprint'),
  };
}

/** An ISO time from what a user wrote (a date or a date-time), or a usage error. */
export function isoOf(value: string, what: string): string {
  const ms = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new BackproofError('evidence_range_invalid', `--${what} ${JSON.stringify(value)} is not a date: write 2026-11-01 or 2026-11-01T00:00:00Z`);
  }
  return new Date(ms).toISOString();
}
