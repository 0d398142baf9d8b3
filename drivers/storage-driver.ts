import type { Readable } from 'node:stream';
import { VerificationError } from '../orchestrator/core/errors.js';

/**
 * The storage seam. A driver finds backups where a policy says they are and opens one as a
 * stream. Every driver (local folder, S3-compatible, restic) keeps this contract, and one
 * conformance suite (test/storage-conformance.test.ts) runs against each with its real
 * counterpart.
 *
 * - `list()` yields every candidate under the source as an async iterable, page by page, never
 *   the whole listing in memory. Selection (prefix is the driver's, glob/regex, timestamps,
 *   settle time, newest, `expect`) is shared code in selection.ts, not the driver's job.
 * - `takenAt()` (optional) reads the time a backup was taken from the store's metadata when the
 *   listing does not carry it (an S3 object's `x-amz-meta-*` header); selection calls it only for
 *   entries that passed the name filter, and only with `timestamp: metadata`.
 * - `details()` returns what the provider keeps about one backup: checksums to verify while
 *   streaming (sha256 or md5, from the provider or a sidecar file) and facts for the evidence
 *   (version id, storage class, encryption, object lock / legal hold, snapshot id). Facts never
 *   hold a secret.
 * - `open()` returns the backup's bytes as a stream, read once; the caller hashes them. A
 *   driver that can resume a dropped transfer (S3 Range requests) does so inside the stream,
 *   with bounded retries, and makes sure the resumed bytes are of the same version.
 * - `transferFacts()` (optional) tells what happened while the backup was read, for the
 *   evidence: e.g. a transfer resumed twice, at which bytes and why.
 * - `usage()` (optional) counts what a run asked of a store that bills for it (S3: LIST, HEAD and
 *   GET requests, bytes downloaded, a restore from an archive tier); the run records it and, with
 *   the source's `prices`, its cost.
 * - `check()` (optional) runs the store's own integrity check of what the backup depends on
 *   (`restic check --read-data-subset`); problems found are a `fail`.
 * - A driver owns its connections, child processes (drivers/cli/child-processes.ts) and SDK clients and releases them in
 *   `close()`; the runner never holds one.
 *
 * Errors are VerificationErrors with a reason code:
 * - `error` verdicts (we could not look): `source_unreachable` (missing folder, DNS, refused,
 *   timeout, a transfer that kept failing), `source_denied` (credentials rejected, access
 *   denied: the message names the bucket or repository and where the credential came from,
 *   never the secret), `source_throttled` (slow down / 503 after retries), `source_changed`
 *   (the backup was replaced while being read).
 * - `fail` verdicts (the backup is bad): "nothing there" is turned into `no_backup` by
 *   selection, a zero-byte backup into `empty_backup` by the runner, a checksum that does not
 *   match into `checksum_mismatch`, a damaged repository into `repository_damaged`.
 *
 * How other backup tools plug in (each as a `drivers/<tool>/` folder beside restic's and borg's):
 * - borg: drivers/borg/ (archives as backups, `borg extract --stdout`, `borg check`).
 * - kopia: `kopia snapshot list --json PATH` for entries, `kopia show OBJECT_ID` (or
 *   `kopia snapshot restore` into a pipe) to stream, `kopia snapshot verify
 *   --verify-files-percent=N` for `check()`; repository password via `KOPIA_PASSWORD`.
 * - pgBackRest: drivers/pgbackrest/ (sets from backup.info as backups, keyed by label; `open()`
 *   streams a tar of what restoring the set needs, which the postgres restorer unpacks and hands
 *   to `pgbackrest restore` in the sandbox; `pgbackrest verify` is `check()`).
 */
export interface BackupEntry {
  /** Name relative to the source location (object key for S3), using `/` separators. */
  key: string;
  size: number;
  modifiedAt: Date;
  /** When the backup was taken, if the listing knows it (a restic snapshot's time). */
  takenAt?: Date;
  /** Pins these exact bytes: S3 version id, restic snapshot id. */
  version?: string;
  /** The provider's entity tag, quotes stripped (S3 ETag). */
  etag?: string;
  /** Why a listed backup holds nothing, e.g. "the snapshot does not contain /x.dump" (with size 0). */
  note?: string;
  /**
   * Why this backup may not be read at all, e.g. "a link to /etc/shadow, outside the source
   * folder /srv/backups". Selection still sees it (it may be the newest); a run that picks it
   * fails with `unsafe_source` before a byte is read.
   */
  unsafe?: string;
}

export type ChecksumAlgorithm = 'sha256' | 'md5';

export interface ExpectedChecksum {
  algorithm: ChecksumAlgorithm;
  hex: string;
  /** Where it came from, e.g. `sidecar shop.dump.sha256`, `SHA256SUMS`, `x-amz-checksum-sha256`. */
  source: string;
}

export interface BackupDetails {
  /** Checksums of the whole backup, each verified against the bytes as they stream. */
  checksums: ExpectedChecksum[];
  /** Provider checksums that exist but cannot be checked against the bytes, and why. */
  unverifiable: string[];
  /** Facts for the evidence record (version, storage class, encryption, object lock...). */
  facts: Record<string, string>;
}

export interface StorageCheck {
  /** What was checked, e.g. `restic check --read-data-subset=10%`. */
  what: string;
  /** Problems the check found; empty when the store is sound. */
  problems: string[];
  /** Short summary for the evidence, e.g. "no errors were found". */
  summary: string;
}

/** What a run asked of a paid store (S3): requests by kind and bytes downloaded, for its cost. */
export interface StorageUsage {
  requests: { list: number; head: number; get: number; restore: number };
  /** Bytes downloaded (the backup, sidecars, resumed ranges). */
  bytes: number;
  /** A restore from an archive tier this run requested: its object's size and class. */
  retrieval?: { bytes: number; storageClass: string; tier: string };
}

export interface StorageDriver {
  readonly name: string;
  /** Human description of the location (folder, s3://bucket/prefix, repository). Never a secret. */
  readonly location: string;
  list(signal?: AbortSignal): AsyncIterable<BackupEntry>;
  takenAt?(entry: BackupEntry, signal?: AbortSignal): Promise<Date | undefined>;
  details(entry: BackupEntry, signal?: AbortSignal): Promise<BackupDetails>;
  open(entry: BackupEntry, signal?: AbortSignal): Promise<Readable>;
  transferFacts?(entry: BackupEntry): Record<string, string>;
  check?(entry: BackupEntry, signal?: AbortSignal): Promise<StorageCheck>;
  /** What was asked of the store so far (a paid store's requests and bytes); optional. */
  usage?(): StorageUsage;
  close(): Promise<void>;
}

/** Names that are never backups themselves: checksum and signature sidecars, partial uploads. */
export function isAuxiliaryName(key: string): boolean {
  const base = key.split('/').pop() ?? key;
  return (
    base.startsWith('.') ||
    /^(SHA1|SHA256|SHA512|MD5|B2)SUMS(\.txt|\.asc|\.sig)?$/i.test(base) ||
    /\.(sha1|sha256|sha512|md5|b2)(sum)?$/i.test(base) ||
    /\.(asc|sig|minisig|part|partial|filepart|tmp|inprogress|incomplete|crdownload)$/i.test(base)
  );
}

/** The `unsafe_source` failure of an entry listed with `unsafe`. */
export function unsafeEntry(entry: BackupEntry): VerificationError {
  return new VerificationError('unsafe_source', `backup ${entry.key} is ${entry.unsafe ?? 'unsafe to read'}: backproof never reads it; whoever writes the source may be trying to read this host's files`);
}
