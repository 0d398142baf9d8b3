/** The config schema's `evidence:` block: the signing key and the witness the chain head is published to. Messages follow schema.ts. */
import { createPrivateKey } from 'node:crypto';
import { z } from 'zod';
import { DEFAULTS } from '../core/defaults.js';
import type { EvidenceConfig, WitnessConfig } from '../core/config-types.js';
import { durationKey, say } from './schema-helpers.js';
import { secret } from './secret-schema.js';
import { credentialsOrProfile, retries, S3_CONNECTION_KEYS } from './source-schema.js';

/** Whether `pem` is an Ed25519 private key node:crypto can read. */
function isEd25519PrivateKey(pem: string): boolean {
  try {
    return createPrivateKey(pem).asymmetricKeyType === 'ed25519';
  } catch {
    return false;
  }
}

const witnessS3 = z
  .strictObject({
    ...S3_CONNECTION_KEYS,
    prefix: z.string().default(DEFAULTS.witness.prefix).describe(`Keys of the published heads start with this. Default "${DEFAULTS.witness.prefix}".`),
    objectLock: z
      .enum(['compliance', 'governance', 'none'])
      .default('compliance')
      .describe('Object Lock mode of each published head. "compliance" (default): nobody, the bucket owner and root included, can delete or overwrite it before its retention ends; the bucket must have Object Lock enabled. "governance": users with s3:BypassGovernanceRetention can. "none": no retention (a bucket without Object Lock; then the witness is only as safe as its credentials).'),
    retain: durationKey('How long each published head stays locked.', DEFAULTS.witness.retainMs),
    maxRetries: retries.default(DEFAULTS.s3MaxRetries).describe(`Retries of a failed request. Default ${DEFAULTS.s3MaxRetries}.`),
    requestTimeout: durationKey('Limit for one request to answer.', DEFAULTS.s3RequestTimeoutMs),
  })
  .superRefine(credentialsOrProfile)
  .transform(({ retain, requestTimeout, forcePathStyle, credentials, ...rest }): WitnessConfig['s3'] => ({
    ...rest,
    forcePathStyle: forcePathStyle ?? rest.endpoint !== undefined,
    retainMs: retain ?? DEFAULTS.witness.retainMs,
    requestTimeoutMs: requestTimeout ?? DEFAULTS.s3RequestTimeoutMs,
    ...(credentials ? { credentials: { ...credentials, origin: 'evidence.witness.s3.credentials' } } : {}),
  }))
  .describe('An S3 bucket (AWS or S3-compatible) with Object Lock: each head is one object, written once and locked.');

const witness = z
  .strictObject({
    s3: witnessS3,
    every: durationKey('How often the daemon publishes the chain head (when it moved since the last one).', DEFAULTS.witness.everyMs),
  })
  .transform(({ s3, every }): WitnessConfig => ({ s3, everyMs: every ?? DEFAULTS.witness.everyMs }))
  .describe(
    'Where the signed head of the evidence chain is published, outside the store: backproof evidence publish, and the daemon every `every`. backproof evidence verify --witness compares the stored chain with every published head, so deleting the newest records or rewriting the chain, even with the signing key, is found. Optional.',
  );

export const evidence = z
  .strictObject({
    signingKey: secret(
      z.string().refine(isEd25519PrivateKey, {
        error: say('not a PEM Ed25519 private key', 'make one with openssl genpkey -algorithm ed25519 -out evidence-key.pem and write signingKey: ${file:evidence-key.pem}'),
      }),
    )
      .optional()
      .describe('PEM Ed25519 private key that signs the evidence chain, from a reference: ${file:/etc/backproof/evidence-key.pem}. Default: <data dir>/evidence-key.pem, created on first use. Workers sharing one PostgreSQL should share one key.'),
    witness: witness.optional(),
  })
  .transform(
    ({ signingKey, witness: w }): EvidenceConfig => ({ ...(signingKey !== undefined ? { signingKey } : {}), ...(w !== undefined ? { witness: w } : {}) }),
  )
  .describe('Evidence signing, and the witness its chain head is published to. Optional.');
