import type * as S3Sdk from '@aws-sdk/client-s3';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import tls from 'node:tls';
import { DEFAULTS } from '../../orchestrator/core/defaults.js';
import { VerificationError } from '../../orchestrator/core/errors.js';

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
  /** A PEM file of the certificate authorities to trust (a store with its own CA), besides Node's. */
  caFile?: string;
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
    requestHandler: {
      requestTimeout: opts.requestTimeoutMs ?? DEFAULTS.s3RequestTimeoutMs,
      connectionTimeout: 10_000,
      // Node's own roots and the file's: `ca` replaces the default list, so both are named.
      ...(opts.caFile ? { httpsAgent: new https.Agent({ keepAlive: true, ca: [...tls.rootCertificates, readCa(opts.caFile)] }) } : {}),
    },
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    ...(opts.profile ? { profile: opts.profile } : {}),
  };
  if (opts.credentials) {
    const { accessKeyId, secretAccessKey, sessionToken } = opts.credentials;
    config.credentials = { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
  }
  return config;
}

function readCa(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new VerificationError('source_unreachable', `the CA file ${file} (caFile) cannot be read: ${(err as Error).message}`);
  }
}

/** Where the credentials come from, for messages (never the secret). */
export function describeCredentialOrigin(opts: Pick<S3Connection, 'credentials' | 'profile'>): string {
  if (opts.credentials) return opts.credentials.origin;
  if (opts.profile) return `profile "${opts.profile}" in the shared AWS config files (~/.aws/credentials, ~/.aws/config)`;
  if (process.env.AWS_ACCESS_KEY_ID) return 'the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)';
  if (process.env.AWS_PROFILE) return `profile "${process.env.AWS_PROFILE}" named by AWS_PROFILE`;
  return 'the AWS default chain (shared config files, web identity, container or instance role)';
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
