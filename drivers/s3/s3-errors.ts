import { VerificationError } from '../../orchestrator/core/errors.js';

/**
 * SDK and network failures sorted into reason codes, with the bucket and key and where the
 * credential came from; never the secret. Everything here is an `error` verdict: we could not
 * look, the backup may be fine.
 */
export interface S3ErrorContext {
  /** `s3://bucket/key` or `s3://bucket/prefix`. */
  what: string;
  endpoint: string;
  credentialOrigin: string;
}

const DENIED = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'AuthorizationHeaderMalformed',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'CredentialsProviderError',
]);
const THROTTLED = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'TooManyRequests', 'RequestLimitExceeded', 'ServiceUnavailable']);
const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

export function statusOf(err: unknown): number | undefined {
  return (err as SdkError)?.$metadata?.httpStatusCode;
}

function nameOf(err: unknown): string {
  const e = err as SdkError;
  return e?.Code ?? e?.name ?? e?.code ?? 'Error';
}

/** A failure worth another attempt: the network, a timeout, throttling, a 5xx. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof VerificationError) return false;
  const e = err as SdkError;
  const status = statusOf(err);
  if (status !== undefined) return status >= 500 || status === 429 || THROTTLED.has(nameOf(err));
  return NETWORK.has(e?.code ?? '') || ['TimeoutError', 'RequestTimeout', 'AbortError'].includes(e?.name ?? '') || /aborted|socket hang up|premature close|timed? ?out/i.test(e?.message ?? '');
}

export function classifyS3Error(err: unknown, ctx: S3ErrorContext): VerificationError {
  if (err instanceof VerificationError) return err;
  const name = nameOf(err);
  const status = statusOf(err);
  const detail = `${name}${status ? ` ${status}` : ''}: ${(err as SdkError)?.message ?? String(err)}`;
  if (DENIED.has(name) || status === 401 || status === 403) {
    return new VerificationError(
      'source_denied',
      `${ctx.what} at ${ctx.endpoint}: access denied (${detail}) with the credentials from ${ctx.credentialOrigin}; check the key pair and that it may list and read the bucket`,
      { cause: err },
    );
  }
  if (name === 'NoSuchBucket') {
    return new VerificationError('source_unreachable', `${ctx.what} at ${ctx.endpoint}: the bucket does not exist (${detail}); check bucket, region and endpoint`, { cause: err });
  }
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
    return new VerificationError('source_changed', `${ctx.what} at ${ctx.endpoint}: the object is gone (deleted or replaced since it was listed)`, { cause: err });
  }
  if (name === 'PreconditionFailed' || status === 412) {
    return new VerificationError('source_changed', `${ctx.what} at ${ctx.endpoint}: the object was replaced while it was being read; run again`, { cause: err });
  }
  if (name === 'InvalidRequest' && /customer|SSE|encrypt/i.test(detail)) {
    return new VerificationError(
      'source_denied',
      `${ctx.what} at ${ctx.endpoint}: the object is encrypted with a customer key (SSE-C) that does not fit (${detail}); set source.sseCustomerKey to the key it was written with`,
      { cause: err },
    );
  }
  if (THROTTLED.has(name) || status === 429 || status === 503) {
    return new VerificationError('source_throttled', `${ctx.what} at ${ctx.endpoint}: the store kept asking to slow down (${detail}); retried, then gave up`, { cause: err });
  }
  const code = (err as SdkError)?.code ?? '';
  if (NETWORK.has(code) || (err as SdkError)?.name === 'TimeoutError') {
    return new VerificationError(
      'source_unreachable',
      `${ctx.what} at ${ctx.endpoint}: cannot reach the store (${(err as SdkError)?.message ?? code}); check the endpoint, region and network`,
      { cause: err },
    );
  }
  return new VerificationError('source_unreachable', `${ctx.what} at ${ctx.endpoint}: ${detail}`, { cause: err });
}
