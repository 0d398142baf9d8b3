import type * as S3Sdk from '@aws-sdk/client-s3';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { DEFAULTS } from '../../orchestrator/core/defaults.js';

/** How to reach a bucket: what the storage driver and the evidence witness share. */
export interface S3Connection {
  region?: string;
  endpoint?: string;
  forcePathStyle?: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string; origin: string };
  profile?: string;
  /** `when_required` unless the store is AWS itself (see S3SourceConfig.sdkChecksums). */
  sdkChecksums?: 'when_required' | 'when_supported';
  maxRetries?: number;
  requestTimeoutMs?: number;
}

/** The SDK client's configuration for a connection: retries, timeouts, checksums, credentials. */
export function s3ClientConfig(opts: S3Connection): S3ClientConfig {
  const checksums = opts.sdkChecksums === 'when_supported' ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED';
  const config: S3ClientConfig = {
    region: opts.region ?? process.env.AWS_REGION ?? 'us-east-1',
    forcePathStyle: opts.forcePathStyle ?? opts.endpoint !== undefined,
    requestChecksumCalculation: checksums,
    responseChecksumValidation: checksums,
    maxAttempts: (opts.maxRetries ?? DEFAULTS.s3MaxRetries) + 1,
    retryMode: 'standard',
    requestHandler: { requestTimeout: opts.requestTimeoutMs ?? DEFAULTS.s3RequestTimeoutMs, connectionTimeout: 10_000 },
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    ...(opts.profile ? { profile: opts.profile } : {}),
  };
  if (opts.credentials) {
    const { accessKeyId, secretAccessKey, sessionToken } = opts.credentials;
    config.credentials = { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
  }
  return config;
}

/** Where the endpoint is, for messages: the URL, or AWS and its region. */
export function s3EndpointText(opts: Pick<S3Connection, 'endpoint' | 'region'>): string {
  return opts.endpoint ?? `AWS S3 (${opts.region ?? process.env.AWS_REGION ?? 'us-east-1'})`;
}

/**
 * @aws-sdk/client-s3, loaded at the first request: it is ~1.6 MB of code, and every command that
 * builds drivers (a run of a folder policy, the daemon) would pay for it.
 */
export async function loadS3Sdk(): Promise<typeof S3Sdk> {
  const loaded = await import('@aws-sdk/client-s3');
  // A CommonJS package: Node's own loader names its exports; the CLI bundle (esbuild) puts them on `default`.
  return 'S3Client' in loaded ? loaded : (loaded as { default: typeof S3Sdk }).default;
}
