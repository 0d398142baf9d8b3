import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type * as S3Sdk from '@aws-sdk/client-s3';
import type { GetObjectCommandInput, HeadObjectCommandOutput, S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { DEFAULTS } from '../../orchestrator/core/defaults.js';
import { SIDECAR_MAX_BYTES, SidecarChecksums } from '../sidecars.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { formatBytes } from '../../orchestrator/core/format.js';
import type { BackupDetails, BackupEntry, ExpectedChecksum, StorageDriver, StorageUsage } from '../storage-driver.js';
import { archiveState, restoreRequest, retrievalTime } from './s3-archive.js';
import { classifyS3Error, isRetryable, statusOf } from './s3-errors.js';
import { resumableDownload } from './resumable-download.js';
import { describeCredentialOrigin, loadS3Sdk, s3ClientConfig, s3EndpointText, type S3Connection } from './s3-client.js';

export interface S3DriverOptions extends S3Connection {
  bucket: string;
  prefix?: string;
  sseCustomerKey?: string;
  /** First retry delay; doubles per retry. */
  retryBaseDelayMs?: number;
  /** `timestamp: metadata`: the user-metadata key holding the backup time. */
  metadataKey?: string;
  /** Told when a dropped transfer resumes (for the run's log). */
  onResume?: (key: string, offset: number, attempt: number, cause: unknown) => void;
  /** Request the restore of an object in an archive tier (see s3-archive.ts). */
  archiveRetrieval?: { tier: 'bulk' | 'standard' | 'expedited'; days: number };
}

type Sdk = Pick<typeof S3Sdk, 'GetObjectCommand' | 'HeadObjectCommand' | 'RestoreObjectCommand' | 'paginateListObjectsV2'> & { client: S3Client };

/**
 * An S3 bucket, on AWS or any S3-compatible store. Lists page by page (1,000 keys a request,
 * never the whole bucket in memory), verifies what the store keeps (x-amz-checksum-sha256 of a
 * single-part upload, a single-part ETag, which is the MD5 of the bytes, and `.sha256` /
 * `SHA256SUMS` objects beside the backup), records version, encryption and object lock for the
 * evidence, pins the version it looked at, and resumes a dropped download with Range requests.
 */
export class S3StorageDriver implements StorageDriver {
  readonly name = 's3';
  readonly location: string;
  private readonly clientConfig: S3ClientConfig;
  /** The SDK and its client, loaded at the first request (loadS3Sdk). */
  private sdk: Promise<Sdk> | undefined;
  private closed = false;
  private readonly endpoint: string;
  private readonly credentialOrigin: string;
  private readonly sse: Pick<GetObjectCommandInput, 'SSECustomerAlgorithm' | 'SSECustomerKey' | 'SSECustomerKeyMD5'>;
  /** What details() saw of each object, so open() reads exactly that version. */
  private readonly pinned = new Map<string, { versionId?: string; etag?: string; size: number }>();
  private readonly heads = new Map<string, Promise<HeadObjectCommandOutput>>();
  private readonly sidecars = new SidecarChecksums((key) => this.readSmall(key));
  /** Resumed transfers per key: "at byte N (cause)". */
  private readonly resumes = new Map<string, string[]>();
  private readonly used: StorageUsage = { requests: { list: 0, head: 0, get: 0, restore: 0 }, bytes: 0 };

  constructor(private readonly opts: S3DriverOptions) {
    const prefix = opts.prefix ?? '';
    this.endpoint = s3EndpointText(opts);
    this.location = `s3://${opts.bucket}/${prefix}${opts.endpoint ? ` at ${opts.endpoint}` : ''}`;
    this.credentialOrigin = describeCredentialOrigin(opts);
    this.clientConfig = s3ClientConfig(opts);
    this.sse = opts.sseCustomerKey
      ? {
          SSECustomerAlgorithm: 'AES256',
          SSECustomerKey: opts.sseCustomerKey,
          SSECustomerKeyMD5: createHash('md5').update(Buffer.from(opts.sseCustomerKey, 'base64')).digest('base64'),
        }
      : {};
  }

  async *list(signal?: AbortSignal): AsyncIterable<BackupEntry> {
    try {
      const { client, paginateListObjectsV2 } = await this.client();
      const pages = paginateListObjectsV2({ client, pageSize: 1000 }, { Bucket: this.opts.bucket, Prefix: this.opts.prefix || undefined });
      for await (const page of pages) {
        this.used.requests.list++;
        signal?.throwIfAborted();
        for (const object of page.Contents ?? []) {
          if (!object.Key || object.Key.endsWith('/')) continue; // folder markers
          yield {
            key: object.Key,
            size: object.Size ?? 0,
            modifiedAt: object.LastModified ?? new Date(0),
            ...(object.ETag ? { etag: unquote(object.ETag) } : {}),
          };
        }
      }
    } catch (err) {
      if (signal?.aborted) throw err;
      throw classifyS3Error(err, this.context(this.opts.prefix ?? ''));
    }
  }

  async takenAt(entry: BackupEntry, signal?: AbortSignal): Promise<Date | undefined> {
    const head = await this.head(entry.key, signal);
    const raw = head.Metadata?.[this.opts.metadataKey ?? 'backup-time'];
    return raw === undefined ? undefined : parseMetadataTime(raw);
  }

  async details(entry: BackupEntry, signal?: AbortSignal): Promise<BackupDetails> {
    const head = await this.head(entry.key, signal);
    await this.readableOrRequested(entry, head, signal);
    const etag = head.ETag ? unquote(head.ETag) : undefined;
    this.pinned.set(entry.key, { ...(head.VersionId ? { versionId: head.VersionId } : {}), ...(etag ? { etag } : {}), size: head.ContentLength ?? entry.size });
    const { checksums, unverifiable } = providerChecksums(head);
    const sidecar = await this.sidecars.find(entry.key);
    if (sidecar) checksums.unshift(sidecar);
    return { checksums, unverifiable, facts: factsOf(head, entry) };
  }

  async open(entry: BackupEntry, signal?: AbortSignal): Promise<Readable> {
    const pin = this.pinned.get(entry.key) ?? { size: entry.size, ...(entry.etag ? { etag: entry.etag } : {}) };
    const what = `s3://${this.opts.bucket}/${entry.key}`;
    return resumableDownload({
      size: pin.size,
      idleTimeoutMs: this.opts.requestTimeoutMs ?? DEFAULTS.s3RequestTimeoutMs,
      maxRetries: this.opts.maxRetries ?? DEFAULTS.s3MaxRetries,
      baseDelayMs: this.opts.retryBaseDelayMs ?? DEFAULTS.retryBaseDelayMs,
      isRetryable,
      ...(signal ? { signal } : {}),
      fetch: async (start, fetchSignal) => {
        const { client, GetObjectCommand } = await this.client();
        this.used.requests.get++;
        const out = await client.send(
          new GetObjectCommand({
            Bucket: this.opts.bucket,
            Key: entry.key,
            ...(pin.versionId ? { VersionId: pin.versionId } : pin.etag ? { IfMatch: `"${pin.etag}"` } : {}),
            ...(start > 0 ? { Range: `bytes=${start}-` } : {}),
            ...this.sse,
          }),
          { abortSignal: fetchSignal },
        );
        const body = out.Body as (AsyncIterable<Uint8Array> & { destroy?: (err?: Error) => void }) | undefined;
        if (!body) throw Object.assign(new Error('the response had no body'), { code: 'ECONNRESET' });
        return { body: this.counted(body), ...(out.ETag ? { etag: unquote(out.ETag) } : {}) };
      },
      fail: (err, offset, attempts) => {
        const e = classifyS3Error(err, this.context(entry.key));
        if (e.reason !== 'source_unreachable' || attempts <= 1) return e;
        return Object.assign(e, {
          message: `reading ${what} at ${this.endpoint} stopped at byte ${offset} of ${pin.size} and failed ${attempts} times in a row: ${(err as Error)?.message ?? String(err)}`,
        });
      },
      onResume: (offset, attempt, cause) => {
        const list = this.resumes.get(entry.key) ?? [];
        list.push(`at byte ${offset} (${(cause as Error)?.message ?? String(cause)})`);
        this.resumes.set(entry.key, list);
        this.opts.onResume?.(entry.key, offset, attempt, cause);
      },
    });
  }

  usage(): StorageUsage {
    return structuredClone(this.used);
  }

  /** A body whose bytes are counted as they are read (bytes downloaded, for the run's cost). */
  private counted(body: AsyncIterable<Uint8Array> & { destroy?: (err?: Error) => void }): AsyncIterable<Uint8Array> & { destroy?: (err?: Error) => void } {
    const used = this.used;
    return {
      async *[Symbol.asyncIterator]() {
        for await (const chunk of body) {
          used.bytes += chunk.length;
          yield chunk;
        }
      },
      ...(body.destroy ? { destroy: (err?: Error) => body.destroy!(err) } : {}),
    };
  }

  /**
   * An object in an archive tier cannot be read until restored: the run says so (an `error`,
   * `source_archived`) with the fix, or, with `archiveRetrieval`, requests the restore and says
   * a later run verifies the copy. One being restored waits for that; a restored copy is read.
   */
  private async readableOrRequested(entry: BackupEntry, head: HeadObjectCommandOutput, signal?: AbortSignal): Promise<void> {
    const archive = archiveState(head);
    if (archive.state === 'readable' || archive.state === 'restored') return;
    const what = `s3://${this.opts.bucket}/${entry.key}`;
    if (archive.state === 'restoring') {
      throw new VerificationError('source_archived', `${what} is in ${archive.storageClass} and its restore is still in progress (x-amz-restore: ongoing-request="true"); a later run verifies the copy once it is readable`);
    }
    const retrieval = this.opts.archiveRetrieval;
    if (!retrieval) {
      throw new VerificationError(
        'source_archived',
        `${what} is in ${archive.storageClass}: it cannot be read until it is restored; set archiveRetrieval: { tier: bulk, days: 1 } on the source to have backproof request the restore (a later run then verifies it), or restore it yourself (aws s3api restore-object)`,
      );
    }
    const { client, RestoreObjectCommand } = await this.client();
    this.used.requests.restore++;
    const size = head.ContentLength ?? entry.size;
    try {
      await client.send(
        new RestoreObjectCommand({ Bucket: this.opts.bucket, Key: entry.key, ...(head.VersionId ? { VersionId: head.VersionId } : {}), RestoreRequest: restoreRequest(archive, retrieval.tier, retrieval.days) }),
        signal ? { abortSignal: signal } : {},
      );
    } catch (err) {
      if ((err as { name?: string }).name !== 'RestoreAlreadyInProgress' && statusOf(err) !== 409) throw classifyS3Error(err, this.context(entry.key));
      throw new VerificationError('source_archived', `${what} is in ${archive.storageClass} and its restore is already in progress; a later run verifies the copy once it is readable`);
    }
    this.used.retrieval = { bytes: size, storageClass: archive.storageClass, tier: retrieval.tier };
    throw new VerificationError(
      'source_archived',
      `${what} is in ${archive.storageClass}: restore requested (tier ${retrieval.tier}, ${formatBytes(size)}, readable for ${retrieval.days} day(s); ${retrievalTime(archive.storageClass, retrieval.tier)}); a later run verifies the copy once it is readable`,
    );
  }

  transferFacts(entry: BackupEntry): Record<string, string> {
    const resumed = this.resumes.get(entry.key);
    return resumed ? { resumed: `${resumed.length} time(s): ${resumed.join('; ')}` } : {};
  }

  async close(): Promise<void> {
    this.closed = true;
    (await this.sdk?.catch(() => undefined))?.client.destroy();
  }

  private client(): Promise<Sdk> {
    if (this.closed) return Promise.reject(new Error('the S3 driver is closed'));
    this.sdk ??= loadS3Sdk().then((mod) => {
      return {
        client: new mod.S3Client(this.clientConfig),
        GetObjectCommand: mod.GetObjectCommand,
        HeadObjectCommand: mod.HeadObjectCommand,
        RestoreObjectCommand: mod.RestoreObjectCommand,
        paginateListObjectsV2: mod.paginateListObjectsV2,
      };
    });
    return this.sdk;
  }

  private head(key: string, signal?: AbortSignal): Promise<HeadObjectCommandOutput> {
    let head = this.heads.get(key);
    if (!head) {
      head = this.client()
        .then(({ client, HeadObjectCommand }) => {
          this.used.requests.head++;
          return client.send(new HeadObjectCommand({ Bucket: this.opts.bucket, Key: key, ChecksumMode: 'ENABLED', ...this.sse }), signal ? { abortSignal: signal } : {});
        })
        .catch((err: unknown) => {
          this.heads.delete(key);
          throw classifyS3Error(err, this.context(key));
        });
      this.heads.set(key, head);
    }
    return head;
  }

  /** A small object's text (a sidecar), or undefined when there is none. */
  private async readSmall(key: string): Promise<string | undefined> {
    const get = async (sse: boolean): Promise<string | undefined> => {
      const { client, GetObjectCommand } = await this.client();
      this.used.requests.get++;
      const out = await client.send(new GetObjectCommand({ Bucket: this.opts.bucket, Key: key, ...(sse ? this.sse : {}) }));
      this.used.bytes += Math.min(out.ContentLength ?? 0, SIDECAR_MAX_BYTES);
      if ((out.ContentLength ?? 0) > SIDECAR_MAX_BYTES) {
        (out.Body as { destroy?: () => void } | undefined)?.destroy?.();
        return undefined;
      }
      return out.Body?.transformToString('utf8');
    };
    try {
      // Sidecars are often written without the backup's customer key: plain first, then with it.
      return await get(false).catch((err: unknown) => {
        if (this.opts.sseCustomerKey && statusOf(err) === 400) return get(true);
        throw err;
      });
    } catch (err) {
      const status = statusOf(err);
      if (status === 404 || (err as { name?: string }).name === 'NoSuchKey') return undefined;
      throw classifyS3Error(err, this.context(key));
    }
  }

  private context(key: string) {
    return { what: `s3://${this.opts.bucket}/${key}`, endpoint: this.endpoint, credentialOrigin: this.credentialOrigin };
  }
}

function unquote(etag: string): string {
  return etag.replace(/^W\//, '').replace(/^"|"$/g, '');
}

/** Where the SDK's credentials come from, in words: never the values. */

/** ISO 8601 or epoch seconds (or milliseconds) in a metadata value. */
export function parseMetadataTime(raw: string): Date | undefined {
  const text = raw.trim();
  if (/^\d{10}(\d{3})?$/.test(text)) return new Date(text.length === 10 ? Number(text) * 1000 : Number(text));
  if (!/^\d{4}-\d{2}-\d{2}/.test(text)) return undefined;
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/**
 * The checksums S3 keeps that say something about the whole object's bytes: a full-object
 * x-amz-checksum-sha256, and an ETag that is the MD5 of the bytes (a single-part upload without
 * SSE-C or SSE-KMS). The rest is recorded as unverifiable, with why.
 */
export function providerChecksums(head: HeadObjectCommandOutput): { checksums: ExpectedChecksum[]; unverifiable: string[] } {
  const checksums: ExpectedChecksum[] = [];
  const unverifiable: string[] = [];
  const sha = head.ChecksumSHA256;
  if (sha) {
    if (head.ChecksumType === 'COMPOSITE' || /-\d+$/.test(sha)) unverifiable.push(`x-amz-checksum-sha256 ${sha} is a checksum of the parts of a multipart upload, not of the whole object`);
    else checksums.push({ algorithm: 'sha256', hex: Buffer.from(sha, 'base64').toString('hex'), source: 'x-amz-checksum-sha256' });
  }
  for (const [name, value] of [['crc32', head.ChecksumCRC32], ['crc32c', head.ChecksumCRC32C], ['crc64nvme', head.ChecksumCRC64NVME], ['sha1', head.ChecksumSHA1]] as const) {
    if (value) unverifiable.push(`x-amz-checksum-${name} ${value} (backproof verifies sha256 and MD5 only)`);
  }
  const etag = head.ETag ? unquote(head.ETag) : undefined;
  if (etag) {
    if (etag.includes('-')) unverifiable.push(`ETag ${etag} is of a multipart upload (${etag.split('-')[1]} parts), not an MD5 of the object`);
    else if (head.SSECustomerAlgorithm || head.ServerSideEncryption === 'aws:kms' || head.ServerSideEncryption === 'aws:kms:dsse') {
      unverifiable.push(`ETag ${etag} of an object encrypted with ${head.SSECustomerAlgorithm ? 'SSE-C' : 'SSE-KMS'} is not an MD5 of its bytes`);
    } else if (/^[0-9a-f]{32}$/i.test(etag)) checksums.push({ algorithm: 'md5', hex: etag.toLowerCase(), source: 'ETag (MD5 of a single-part upload)' });
  }
  return { checksums, unverifiable };
}

/** What an auditor asks about an object: which version, how it is encrypted, whether it is immutable. */
export function factsOf(head: HeadObjectCommandOutput, entry: BackupEntry): Record<string, string> {
  const facts: Record<string, string> = {};
  if (head.VersionId) facts.versionId = head.VersionId;
  if (head.ETag) facts.etag = unquote(head.ETag);
  if (head.StorageClass) facts.storageClass = head.StorageClass;
  if (head.SSECustomerAlgorithm) facts.encryption = `SSE-C (${head.SSECustomerAlgorithm})`;
  else if (head.ServerSideEncryption) facts.encryption = head.ServerSideEncryption === 'AES256' ? 'SSE-S3 (AES256)' : `SSE-KMS (${head.ServerSideEncryption})`;
  if (head.ObjectLockMode) {
    const until = head.ObjectLockRetainUntilDate ? ` until ${head.ObjectLockRetainUntilDate.toISOString()}` : '';
    facts.objectLock = `${head.ObjectLockMode}${until}`;
  } else facts.objectLock = 'none reported (no retention on the object, or the store does not support object lock)';
  facts.legalHold = head.ObjectLockLegalHoldStatus ?? 'none reported';
  if (head.ContentLength !== undefined && head.ContentLength !== entry.size) {
    facts.sizeChanged = `listed as ${entry.size} bytes, now ${head.ContentLength}: replaced after the listing; the newer object is read`;
  }
  return facts;
}
