import type { Readable } from 'node:stream';

/**
 * The storage seam. A driver finds backups where a policy says they are and opens one as a
 * stream. Contract:
 * - `list()` yields every candidate under the source as an async iterable, never the whole
 *   listing in memory; selection (glob/regex, timestamps, settle time, newest) is shared code in
 *   selection.ts, not the driver's job.
 * - `open()` returns the backup's bytes as a stream, read once; the caller hashes them.
 * - `expectedChecksum()` returns a checksum the provider or a sidecar file keeps for the backup
 *   (`<name>.sha256`, a `SHA256SUMS` file beside it), with where it came from.
 * - Errors are VerificationErrors: `source_unreachable` (an `error` verdict: we could not look)
 *   for missing folders, permissions, network; selection turns "nothing there" into a `fail`.
 * - A driver owns its connections and releases them in `close()`; the runner never holds an SDK
 *   client or a file handle.
 */
export interface BackupEntry {
  /** Name relative to the source location, using `/` separators. */
  key: string;
  size: number;
  modifiedAt: Date;
}

export interface ExpectedChecksum {
  algorithm: 'sha256';
  hex: string;
  /** Where it came from, e.g. `sidecar shop.dump.sha256` or `SHA256SUMS`. */
  source: string;
}

export interface StorageDriver {
  readonly name: string;
  /** Human description of the location, e.g. the folder path. Never contains a secret. */
  readonly location: string;
  list(signal?: AbortSignal): AsyncIterable<BackupEntry>;
  open(entry: BackupEntry, signal?: AbortSignal): Promise<Readable>;
  expectedChecksum(entry: BackupEntry, signal?: AbortSignal): Promise<ExpectedChecksum | undefined>;
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
