import type * as S3Sdk from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { tarOf } from '../local/folder-tar.js';
import type { StorageUsage } from '../storage-driver.js';
import { describeCredentialOrigin, loadS3Sdk, s3ClientConfig, s3EndpointText, type S3Connection } from '../s3/s3-client.js';
import { classifyS3Error, statusOf } from '../s3/s3-errors.js';
import type { RepoStorage } from './repo-storage.js';

export interface S3RepoOptions extends S3Connection {
  bucket: string;
  /** repo1-path: where in the bucket the repository is, e.g. /pgbackrest (pgBackRest's default /var/lib/pgbackrest). */
  path: string;
}

interface Sdk {
  client: S3Sdk.S3Client;
  mod: typeof S3Sdk;
}

/**
 * A pgBackRest repository in a bucket (repo1-type=s3): the keys under repo1-path are the files of
 * a posix repository, read with the AWS SDK (any S3-compatible store). Listing and restoring need
 * no pgbackrest on this host; `pgbackrest verify` (and the listing of an encrypted repository)
 * run pgbackrest with the same bucket, endpoint and keys, the keys in its environment only.
 * pgBackRest talks to S3 over HTTPS only.
 */
export class S3Repo implements RepoStorage {
  readonly location: string;
  private readonly base: string;
  private readonly endpoint: string;
  private readonly credentialOrigin: string;
  private sdk?: Promise<Sdk>;
  private readonly used: StorageUsage = { requests: { list: 0, head: 0, get: 0, restore: 0 }, bytes: 0 };

  constructor(private readonly opts: S3RepoOptions) {
    const trimmed = opts.path.replace(/^\/+|\/+$/g, '');
    this.base = trimmed ? `${trimmed}/` : '';
    this.endpoint = s3EndpointText(opts);
    this.credentialOrigin = describeCredentialOrigin(opts);
    this.location = `s3://${opts.bucket}/${trimmed}${opts.endpoint ? ` at ${opts.endpoint}` : ''}`;
  }

  usage(): StorageUsage {
    return { requests: { ...this.used.requests }, bytes: this.used.bytes };
  }

  async readText(rel: string, signal?: AbortSignal): Promise<string> {
    const { client, mod } = await this.client();
    try {
      this.used.requests.get++;
      const out = await client.send(new mod.GetObjectCommand({ Bucket: this.opts.bucket, Key: this.base + rel }), signal ? { abortSignal: signal } : {});
      const text = (await out.Body?.transformToString('utf8')) ?? '';
      this.used.bytes += Buffer.byteLength(text);
      return text;
    } catch (err) {
      if (statusOf(err) === 404 || (err as { name?: string }).name === 'NoSuchKey') throw Object.assign(new Error(`${this.base + rel} is not in the bucket`), { code: 'ENOENT' });
      throw this.unreachable(err, rel);
    }
  }

  async filesUnder(rel: string, signal?: AbortSignal): Promise<string[]> {
    const { client, mod } = await this.client();
    const prefix = `${this.base}${rel}/`;
    const out: string[] = [];
    try {
      for await (const page of mod.paginateListObjectsV2({ client, pageSize: 1000 }, { Bucket: this.opts.bucket, Prefix: prefix })) {
        this.used.requests.list++;
        signal?.throwIfAborted();
        for (const o of page.Contents ?? []) if (o.Key && !o.Key.endsWith('/')) out.push(o.Key.slice(this.base.length));
      }
    } catch (err) {
      if (signal?.aborted) throw err;
      throw this.unreachable(err, rel);
    }
    return out.sort();
  }

  async isFile(rel: string, signal?: AbortSignal): Promise<boolean> {
    const { client, mod } = await this.client();
    try {
      this.used.requests.head++;
      await client.send(new mod.HeadObjectCommand({ Bucket: this.opts.bucket, Key: this.base + rel }), signal ? { abortSignal: signal } : {});
      return true;
    } catch (err) {
      if (statusOf(err) === 404 || (err as { name?: string }).name === 'NotFound') return false;
      throw this.unreachable(err, rel);
    }
  }

  /** The objects as one tar, each read whole in turn (its size from the response), mode 0600. */
  tar(files: readonly string[], signal?: AbortSignal): Readable {
    return tarOf(
      files,
      async (rel) => {
        const { client, mod } = await this.client();
        let got: S3Sdk.GetObjectCommandOutput;
        try {
          this.used.requests.get++;
          got = await client.send(new mod.GetObjectCommand({ Bucket: this.opts.bucket, Key: this.base + rel }), signal ? { abortSignal: signal } : {});
        } catch (err) {
          throw this.unreachable(err, rel);
        }
        const size = got.ContentLength ?? 0;
        this.used.bytes += size;
        return { stream: got.Body as Readable, size, modifiedAt: got.LastModified ?? new Date(0) };
      },
      signal,
    );
  }

  async pgbackrestRepo(): Promise<{ args: string[]; env: Record<string, string> }> {
    const url = new URL(this.opts.endpoint ?? `https://s3.${this.opts.region ?? process.env.AWS_REGION ?? 'us-east-1'}.amazonaws.com`);
    if (url.protocol !== 'https:') {
      throw new VerificationError(
        'source_unreachable',
        `pgbackrest reaches an S3 repository over HTTPS only, and the endpoint is ${this.opts.endpoint}: serve the bucket over HTTPS (caFile for a certificate of your own), or set source.check: false (listing and restoring do not run pgbackrest)`,
      );
    }
    const { client } = await this.client();
    let keys: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
    try {
      keys = await client.config.credentials();
    } catch (err) {
      throw this.unreachable(err, '');
    }
    const args = [
      '--repo1-type=s3',
      `--repo1-path=/${this.base.replace(/\/$/, '')}`,
      `--repo1-s3-bucket=${this.opts.bucket}`,
      `--repo1-s3-endpoint=${url.hostname}`,
      `--repo1-storage-port=${url.port || '443'}`,
      `--repo1-s3-region=${this.opts.region ?? process.env.AWS_REGION ?? 'us-east-1'}`,
      `--repo1-s3-uri-style=${this.opts.forcePathStyle ?? this.opts.endpoint !== undefined ? 'path' : 'host'}`,
      ...(this.opts.caFile ? [`--repo1-storage-ca-file=${this.opts.caFile}`] : []),
    ];
    const env: Record<string, string> = { PGBACKREST_REPO1_S3_KEY: keys.accessKeyId, PGBACKREST_REPO1_S3_KEY_SECRET: keys.secretAccessKey };
    if (keys.sessionToken) env.PGBACKREST_REPO1_S3_TOKEN = keys.sessionToken;
    return { args, env };
  }

  unreachable(err: unknown, rel = ''): VerificationError {
    return classifyS3Error(err, { what: `s3://${this.opts.bucket}/${this.base}${rel}`, endpoint: this.endpoint, credentialOrigin: this.credentialOrigin });
  }

  async close(): Promise<void> {
    (await this.sdk?.catch(() => undefined))?.client.destroy();
  }

  private client(): Promise<Sdk> {
    this.sdk ??= loadS3Sdk().then((mod) => ({ client: new mod.S3Client(s3ClientConfig(this.opts)), mod }));
    return this.sdk;
  }
}
