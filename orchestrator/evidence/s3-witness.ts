import { createHash } from 'node:crypto';
import type * as S3Sdk from '@aws-sdk/client-s3';
import { loadS3Sdk, s3ClientConfig, s3EndpointText } from '../../drivers/s3/s3-client.js';
import { statusOf } from '../../drivers/s3/s3-errors.js';
import type { WitnessConfig } from '../core/config-types.js';
import { BackproofError } from '../core/errors.js';
import { createRedactor, type Redactor } from '../core/secrets.js';
import { headKey, headText, type WitnessHead, type WitnessTarget } from './witness.js';

/** Published heads read back at once (small JSON objects). */
const READ_CONCURRENCY = 8;

/**
 * The witness in an S3 bucket: one object per published head, written once with Content-MD5 (S3
 * requires it for a put with a retention period) and an Object Lock retention in the configured
 * mode; in compliance mode nobody, the bucket's owner included, can delete or overwrite it until
 * the retention ends. The bucket must have Object Lock enabled (only possible at creation on
 * AWS); a store that refuses the lock headers makes publishing fail with that fix.
 */
export class S3Witness implements WitnessTarget {
  readonly location: string;
  private readonly endpoint: string;
  private sdk: Promise<{ mod: typeof S3Sdk; client: S3Sdk.S3Client }> | undefined;
  /** The witness's own credentials, never in a message (a server may echo them). */
  private readonly redact: Redactor;

  constructor(private readonly cfg: WitnessConfig['s3']) {
    this.endpoint = s3EndpointText(cfg);
    this.location = `s3://${cfg.bucket}/${cfg.prefix}${cfg.endpoint ? ` at ${cfg.endpoint}` : ''}`;
    const c = cfg.credentials;
    this.redact = createRedactor(c ? [c.accessKeyId, c.secretAccessKey, ...(c.sessionToken ? [c.sessionToken] : [])] : []);
  }

  async publish(head: WitnessHead, signal?: AbortSignal): Promise<{ key: string; created: boolean; lockedUntil?: string }> {
    const { mod, client } = await this.client();
    const key = headKey(this.cfg.prefix, head);
    const opts = signal ? { abortSignal: signal } : {};
    try {
      await client.send(new mod.HeadObjectCommand({ Bucket: this.cfg.bucket, Key: key }), opts);
      return { key, created: false };
    } catch (err) {
      if (statusOf(err) !== 404) throw this.failure(`checking s3://${this.cfg.bucket}/${key}`, err);
    }
    const body = Buffer.from(headText(head), 'utf8');
    const until = this.cfg.objectLock === 'none' ? undefined : new Date(Date.now() + this.cfg.retainMs);
    try {
      await client.send(
        new mod.PutObjectCommand({
          Bucket: this.cfg.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/json',
          ContentMD5: createHash('md5').update(body).digest('base64'),
          ...(until ? { ObjectLockMode: this.cfg.objectLock === 'compliance' ? 'COMPLIANCE' : 'GOVERNANCE', ObjectLockRetainUntilDate: until } : {}),
        }),
        opts,
      );
    } catch (err) {
      throw this.failure(`writing s3://${this.cfg.bucket}/${key}`, err);
    }
    return { key, created: true, ...(until ? { lockedUntil: until.toISOString() } : {}) };
  }

  async *read(signal?: AbortSignal): AsyncIterable<{ key: string; text?: string; unreadable?: string }> {
    const { mod, client } = await this.client();
    const opts = signal ? { abortSignal: signal } : {};
    const pages = mod.paginateListObjectsV2({ client, pageSize: 1000 }, { Bucket: this.cfg.bucket, Prefix: `${this.cfg.prefix}heads/` });
    try {
      for await (const page of pages) {
        signal?.throwIfAborted();
        const keys = (page.Contents ?? []).map((o) => o.Key).filter((k): k is string => k !== undefined && !k.endsWith('/'));
        for (let i = 0; i < keys.length; i += READ_CONCURRENCY) {
          const batch = await Promise.all(
            keys.slice(i, i + READ_CONCURRENCY).map(async (key) => {
              try {
                const out = await client.send(new mod.GetObjectCommand({ Bucket: this.cfg.bucket, Key: key }), opts);
                const text = (await out.Body?.transformToString('utf8')) ?? '';
                return { key, text };
              } catch (err) {
                if (signal?.aborted) throw err;
                return { key, unreadable: this.describe(err) };
              }
            }),
          );
          yield* batch;
        }
      }
    } catch (err) {
      if (signal?.aborted || err instanceof BackproofError) throw err;
      throw this.failure(`listing s3://${this.cfg.bucket}/${this.cfg.prefix}heads/`, err);
    }
  }

  async close(): Promise<void> {
    (await this.sdk?.catch(() => undefined))?.client.destroy();
  }

  private client(): Promise<{ mod: typeof S3Sdk; client: S3Sdk.S3Client }> {
    this.sdk ??= loadS3Sdk().then((mod) => ({ mod, client: new mod.S3Client(s3ClientConfig(this.cfg)) }));
    return this.sdk;
  }

  private describe(err: unknown): string {
    const e = err as { name?: string; Code?: string; message?: string };
    const status = statusOf(err);
    return this.redact(`${e?.Code ?? e?.name ?? 'Error'}${status ? ` ${status}` : ''}: ${e?.message ?? String(err)}`);
  }

  private failure(what: string, err: unknown): BackproofError {
    const detail = this.describe(err);
    const status = statusOf(err);
    let fix = '';
    if (/object ?lock|retention|InvalidRequest/i.test(detail) && this.cfg.objectLock !== 'none') {
      fix = '; the bucket must have Object Lock enabled (on AWS: create it with --object-lock-enabled-for-bucket), or set evidence.witness.s3.objectLock: none for a store without it';
    } else if (status === 403) {
      fix = `; the credentials (${this.cfg.credentials?.origin ?? this.cfg.profile ?? 'the AWS default chain'}) need s3:PutObject, s3:PutObjectRetention, s3:GetObject and s3:ListBucket on the bucket`;
    }
    return new BackproofError('witness_failed', `${what} at ${this.endpoint} failed: ${detail}${fix}`, { cause: err });
  }
}

/** The witness a config names. */
export function witnessTarget(cfg: WitnessConfig): WitnessTarget {
  return new S3Witness(cfg.s3);
}
