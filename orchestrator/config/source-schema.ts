/** The config schema's `source:` block: the storage drivers' blocks and the selector (timestamps, expect, cron). Messages follow schema.ts. */
import cronParser from 'cron-parser';
import { z } from 'zod';
import { DEFAULTS } from '../core/defaults.js';
import { addProblem, durationKey, isRecordPayload, matching, nonEmptyText, quote, regexString, say, timezone, typeError } from './schema-helpers.js';
import { secret } from './secret-schema.js';
import type {
  BarmanSourceConfig, BorgSourceConfig, ExpectConfig, LocalSourceConfig, MariabackupSourceConfig, PgbackrestS3Config, PgbackrestSourceConfig, ResticSourceConfig, S3Credentials, S3SourceConfig, SelectorConfig, StorageDriverName, TimestampFromName, TimestampSource } from '../core/config-types.js';

// ---- Source and selector ---------------------------------------------------------------------

const timestampObject = z
  .strictObject({
    from: z
      .enum(['name', 'mtime', 'metadata'])
      .describe('"name": read the time from the file name; "mtime": the modification time; "metadata": the time the store records (restic snapshot time, S3 user metadata).'),
    pattern: regexString.optional().describe('Regex applied to the file name; the named group "ts" (or the whole match) holds the timestamp.'),
    format: nonEmptyText('format').optional().describe('Format with tokens YYYY MM DD HH mm ss, e.g. YYYYMMDD-HHmmss; default: ISO-like forms, epoch seconds.'),
    timezone: timezone.optional().describe('IANA zone for timestamps without an offset, e.g. Europe/Berlin. Default UTC.'),
    key: matching(/^[A-Za-z0-9_-]+$/, 'a metadata key', 'use letters, digits, "-" and "_", without the x-amz-meta- prefix, e.g. backup-time')
      .optional()
      .describe('from: metadata on S3: the user-metadata key (x-amz-meta-<key>) holding an ISO 8601 time or epoch seconds. Default backup-time.'),
  })
  .superRefine((value, ctx) => {
    const onlyName = value.from === 'name' ? [] : (['pattern', 'format', 'timezone'] as const);
    for (const key of onlyName) {
      if (value[key] !== undefined) addProblem(ctx, `${key} applies only to timestamps read from the name`, `set from: name, or remove ${key}`, [key]);
    }
    if (value.from !== 'metadata' && value.key !== undefined) addProblem(ctx, 'key applies only to from: metadata', 'set from: metadata, or remove key', ['key']);
  })
  .transform((value): TimestampSource => {
    if (value.from === 'mtime') return { from: 'mtime' };
    if (value.from === 'metadata') return { from: 'metadata', key: (value.key ?? 'backup-time').toLowerCase() };
    const fromName: TimestampFromName = { from: 'name', timezone: value.timezone ?? 'UTC' };
    if (value.pattern !== undefined) fromName.pattern = value.pattern;
    if (value.format !== undefined) fromName.format = value.format;
    return fromName;
  });

const timestamp = z
  .union([z.enum(['mtime', 'name', 'metadata']).transform((from) => timestampObject.parse({ from })), timestampObject], {
    error: typeError('a timestamp source', () => 'use mtime, name, metadata, or { from: name, pattern, format, timezone }'),
  })
  .describe('Where a backup\'s time comes from: "mtime" (default; "metadata" for restic), "name", "metadata", or { from: name, pattern, format, timezone }.');

/** A five-field cron expression (minute hour day-of-month month day-of-week). */
export function cronProblem(expression: string): string | undefined {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5) return `has ${fields.length} field${fields.length === 1 ? '' : 's'}, not 5`;
  try {
    cronParser.parseExpression(expression, { tz: 'UTC' });
    return undefined;
  } catch (err) {
    return (err as Error).message.replace(/^Error: /, '');
  }
}

const cronExpression = z.string().superRefine((value, ctx) => {
  const problem = cronProblem(value);
  if (problem) {
    addProblem(ctx, `${quote(value)} is not a cron expression (${problem})`, 'write five fields: minute hour day-of-month month day-of-week, e.g. "0 2 * * *" for 02:00 daily; minutes run 0-59, hours 0-23');
  }
});

const expectEvery = z.enum(['daily', 'weekly']);
const expect = z
  .union(
    [
      expectEvery.transform((every) => ({ every, timezone: undefined })),
      z.strictObject({
        every: expectEvery.describe('daily: yesterday must hold a backup; weekly: last ISO week (Monday to Sunday).'),
        timezone: timezone.optional().describe('IANA zone the periods are counted in. Default: the timestamp timezone, else UTC.'),
      }),
      z.strictObject({
        cron: cronExpression.describe('The backup job\'s schedule, e.g. "0 2 * * *": the last scheduled time must have produced a backup.'),
        timezone: timezone.optional().describe('IANA zone the cron expression runs in. Default: the timestamp timezone, else UTC.'),
        grace: durationKey('How long a scheduled backup may take before it counts as missing.', DEFAULTS.expectGraceMs),
      }),
    ],
    { error: typeError('a backup frequency', () => 'use daily, weekly, { every: daily, timezone: Europe/Berlin } or { cron: "0 2 * * *", timezone: Europe/Berlin }') },
  )
  .describe('How often backups are made: a missing period is a fail naming it ("no backup for 2026-11-27").');

const select = z
  .strictObject({
    glob: nonEmptyText('glob').optional().describe('Glob on the file name (picomatch), e.g. "shop-*.dump". Default "*". Not with regex.'),
    regex: regexString.optional().describe('Regular expression on the file name, e.g. "^shop-.*\\.dump$". Not with glob.'),
    timestamp: timestamp.optional(),
    settle: durationKey('Files younger than this may still be being written and are skipped; "0s" to take every file.', DEFAULTS.settleMs),
    expect: expect.optional(),
  })
  .superRefine((value, ctx) => {
    const glob = value.glob;
    // Names are relative to the source (its folder, bucket prefix or repository path) with no
    // "." or ".." parts: such a glob can never match, and the run would say only "no backup".
    if (glob?.startsWith('/')) {
      addProblem(ctx, `the glob "${glob}" starts with "/", but names are relative to the source and never do`, 'put the folder in source.path (or the bucket\'s prefix) and keep only the name pattern in glob, e.g. glob: "shop-*.dump"', ['glob']);
    } else if (glob !== undefined && glob.split('/').some((part) => part === '..' || part === '.')) {
      addProblem(ctx, `the glob "${glob}" has a "." or ".." part, but names inside the source never do`, 'point source.path at the folder that holds the backups and match names inside it, e.g. glob: "shop-*.dump"', ['glob']);
    }
    if (value.glob === undefined || value.regex === undefined) return;
    addProblem(ctx, 'glob and regex are both set', 'keep one: glob for shell-style patterns (shop-*.dump), regex for regular expressions', ['regex']);
  }, { when: isRecordPayload })
  .transform((value): SelectorConfig => ({
    ...(value.regex !== undefined ? { regex: value.regex } : { glob: value.glob ?? '*' }),
    timestamp: value.timestamp ?? { from: 'mtime' },
    settleMs: value.settle ?? DEFAULTS.settleMs,
    ...(value.expect ? { expect: resolveExpect(value.expect, value.timestamp?.from === 'name' ? value.timestamp.timezone : 'UTC') } : {}),
  }))
  .describe('Which files are backups and how old each is. All keys optional.');

type ExpectInput = { every: 'daily' | 'weekly'; timezone?: string | undefined } | { cron: string; timezone?: string | undefined; grace?: number | undefined };

function resolveExpect(value: ExpectInput, fallbackZone: string): ExpectConfig {
  const timezone = value.timezone ?? fallbackZone;
  if ('cron' in value) return { every: 'cron', cron: value.cron.trim(), timezone, graceMs: value.grace ?? DEFAULTS.expectGraceMs };
  return { every: value.every, timezone };
}

export const retries = z.number().int().min(0).max(20);

const localSource = z
  .strictObject({
    driver: z.literal('local').describe('A folder on this machine (a NAS mount, a backup disk).'),
    path: nonEmptyText('path').describe("Folder holding the backups; relative paths start at the config file's folder."),
    recursive: z.boolean().default(false).describe('Also look in sub-folders. Default false.'),
    select: select.prefault({}),
  })
  .superRefine((value, ctx) => {
    if (value.select?.timestamp?.from !== 'metadata') return;
    addProblem(ctx, 'a folder keeps no backup time besides the name and the modification time', 'use timestamp: name or timestamp: mtime', ['select', 'timestamp']);
  })
  .transform((value): LocalSourceConfig => value);

const s3Credentials = z
  .strictObject({
    // A storage server may echo the key id in an error: redacted like the rest.
    accessKeyId: secret(nonEmptyText('accessKeyId').describe('Access key id, e.g. ${env:ACME_S3_KEY}.')),
    secretAccessKey: secret(nonEmptyText('secretAccessKey').describe('Secret key; use a reference: ${env:ACME_S3_SECRET} or ${file:secrets/acme-s3}.')),
    sessionToken: secret(nonEmptyText('sessionToken')).optional().describe('Session token for temporary credentials.'),
  })
  .describe('Explicit credentials. Default: profile, else the AWS chain (AWS_ACCESS_KEY_ID..., shared files, instance role).');

/** How to reach a bucket: the keys an S3 source and the evidence witness (evidence-schema.ts) share. */
export const S3_CONNECTION_KEYS = {
  bucket: matching(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'a bucket name', 'use 3-63 lowercase letters, digits, "." and "-"; put folders in prefix:').describe('Bucket name.'),
  region: nonEmptyText('region').optional().describe('Region, e.g. eu-central-1. Default AWS_REGION, else us-east-1.'),
  endpoint: matching(/^https?:\/\/[^/\s]+\/?$/, 'an endpoint URL', 'write https://host[:port], e.g. https://s3.eu-central-003.backblazeb2.com')
    .optional()
    .describe('Endpoint of an S3-compatible store. Default: AWS.'),
  forcePathStyle: z.boolean().optional().describe('Path-style URLs (endpoint/bucket/key). Default true when endpoint is set, else false.'),
  credentials: s3Credentials.optional(),
  profile: nonEmptyText('profile').optional().describe('Shared config profile (~/.aws/credentials) instead of explicit credentials.'),
  caFile: nonEmptyText('caFile')
    .optional()
    .describe("A PEM file of certificate authorities to trust besides the system's (a store with a certificate of its own CA), e.g. /etc/ssl/minio-ca.pem; relative paths start at the config file's folder."),
  sdkChecksums: z
    .enum(['when_required', 'when_supported'])
    .default('when_required')
    .describe('SDK request/response checksums. "when_required" (default) works with every S3-compatible store; "when_supported" is the AWS SDK default and corrupts uploads or fails on stores without aws-chunked/CRC support (older MinIO, Ceph, Wasabi).'),
};

/**
 * An S3 connection block as the drivers take it: path-style URLs by default with an endpoint, the
 * timeout in ms, and where the credentials came from (load.ts fills in the references as written).
 */
function resolvedConnection<T extends { requestTimeout?: number | undefined; forcePathStyle?: boolean | undefined; endpoint?: string | undefined; credentials?: Omit<S3Credentials, 'origin'> | undefined }>(
  { requestTimeout, forcePathStyle, credentials, ...rest }: T,
  origin: string,
): Omit<T, 'requestTimeout' | 'forcePathStyle' | 'credentials'> & { forcePathStyle: boolean; requestTimeoutMs: number; credentials?: S3Credentials } {
  return {
    ...rest,
    forcePathStyle: forcePathStyle ?? rest.endpoint !== undefined,
    requestTimeoutMs: requestTimeout ?? DEFAULTS.s3RequestTimeoutMs,
    ...(credentials ? { credentials: { ...credentials, origin } } : {}),
  };
}

/** Explicit credentials and a profile exclude each other. */
export function credentialsOrProfile(value: { credentials?: unknown; profile?: unknown }, ctx: z.RefinementCtx): void {
  if (value.credentials !== undefined && value.profile !== undefined) {
    addProblem(ctx, 'credentials and profile are both set', 'keep one: credentials for keys from references, profile for ~/.aws/credentials', ['profile']);
  }
}

const price = z.number().min(0);
const prices = z
  .strictObject({
    currency: z.string().regex(/^[A-Z]{3}$/, { error: say('is not a currency code', 'write three capital letters, e.g. USD or EUR') }).default('USD').describe('Currency of the prices. Default USD.'),
    egressPerGB: price.default(0).describe('Per GB (10^9 bytes) downloaded, e.g. 0.09. Default 0.'),
    per1000Requests: price.default(0).describe('Per 1,000 GET and HEAD requests, e.g. 0.0004. Default 0.'),
    per1000Lists: price.default(0).describe('Per 1,000 LIST requests, e.g. 0.005. Default 0.'),
    retrievalPerGB: z.record(z.string().regex(/^[A-Z_]+$/, { error: say('is not a storage class', 'write the class as S3 names it, e.g. GLACIER or DEEP_ARCHIVE') }), price).default({}).describe('Per GB retrieved from an archive tier, by storage class, e.g. { GLACIER: 0.01, DEEP_ARCHIVE: 0.02 }. Default none.'),
  })
  .describe("What reading the bucket costs; each run records its requests, bytes and this estimate (runs show, the monthly report). Optional.");

const s3Source = z
  .strictObject({
    driver: z.literal('s3').describe('An S3 bucket: AWS or S3-compatible (MinIO, Wasabi, Backblaze B2, Cloudflare R2, Ceph).'),
    ...S3_CONNECTION_KEYS,
    prefix: z.string().default('').describe('Only keys under this prefix, e.g. "acme/shop/". Default: the whole bucket.'),
    sseCustomerKey: secret(matching(/^[A-Za-z0-9+/]{43}=$/, 'a base64 AES-256 key', 'write the 32-byte key as base64 (44 characters), from a reference: ${env:ACME_SSE_KEY}'))
      .optional()
      .describe('SSE-C: the customer key the objects were encrypted with (base64, 32 bytes).'),
    maxRetries: retries.default(DEFAULTS.s3MaxRetries).describe(`Retries of a failed request or a dropped transfer (resumed where it stopped). Default ${DEFAULTS.s3MaxRetries}.`),
    requestTimeout: durationKey('Limit for one request to answer (and for a transfer to stall).', DEFAULTS.s3RequestTimeoutMs),
    prices: prices.optional(),
    archiveRetrieval: z
      .strictObject({
        tier: z.enum(['bulk', 'standard', 'expedited'], { error: typeError('bulk, standard or expedited', () => 'write tier: bulk (cheapest, hours), standard or expedited (minutes, GLACIER only)') }).default('bulk').describe('Retrieval tier. Default bulk.'),
        days: z.number().int().min(1).max(30).default(1).describe('Days the restored copy stays readable. Default 1.'),
      })
      .optional()
      .describe('A backup in an archive tier (GLACIER, DEEP_ARCHIVE, Intelligent-Tiering archive access) cannot be read until restored: with this, backproof requests the restore (RestoreObject) and a later run verifies the copy; without it such a run is an error naming the fix.'),
    select: select.prefault({}),
  })
  .superRefine(credentialsOrProfile)
  .transform((value): S3SourceConfig => resolvedConnection(value, 'source.credentials'));

const checkSubset = z
  .union([
    z.literal(false),
    matching(/^(\d+(\.\d+)?%|\d+\/\d+|\d+[KMGT])$/, 'a subset', 'write a percentage ("5%"), a fraction ("1/10") or a size ("500M"), or false to skip the check'),
  ], { error: typeError('a subset', () => 'write a percentage ("5%"), a fraction ("1/10") or a size ("500M"), or false') })
  .default(DEFAULTS.resticCheckSubset);

const resticSource = z
  .strictObject({
    driver: z.literal('restic').describe('A restic repository: each snapshot holding the file is a backup.'),
    repository: nonEmptyText('repository').describe('Repository: a local path or a restic repository string (sftp:, rest:, s3:, b2:...).'),
    password: secret(nonEmptyText('password').describe('Repository password, from a reference: ${env:RESTIC_PASSWORD} or ${file:secrets/restic}.')),
    file: matching(/^\/./, 'an absolute path inside the snapshot', 'write the path the file had when it was backed up, e.g. /var/backups/shop.dump').describe('The file inside each snapshot that is the backup.'),
    host: nonEmptyText('host').optional().describe('Only snapshots taken on this host.'),
    tags: z.array(nonEmptyText('tag')).default([]).describe('Only snapshots carrying all these tags.'),
    paths: z.array(nonEmptyText('path')).default([]).describe('Only snapshots of these paths.'),
    check: checkSubset.describe(`restic check --read-data-subset before each restore: "5%", "1/10", "500M", or false. Default "${DEFAULTS.resticCheckSubset}".`),
    binary: nonEmptyText('binary').default('restic').describe('The restic program. Default restic on PATH.'),
    select: select.prefault({}),
  })
  // A snapshot's time is both its mtime and its metadata time; load.ts fills in passwordOrigin.
  .transform(({ check, ...rest }): ResticSourceConfig => ({ ...rest, checkSubset: check, passwordOrigin: 'source.password' }));

const borgSource = z
  .strictObject({
    driver: z.literal('borg').describe('A borg repository (borg 1.2): each archive holding the file is a backup.'),
    repository: nonEmptyText('repository').describe('Repository: a local path or an ssh:// URL.'),
    passphrase: secret(nonEmptyText('passphrase').describe('Repository passphrase, from a reference: ${env:BORG_PASSPHRASE} or ${file:secrets/borg}. Leave out for an unencrypted repository.')).optional(),
    file: matching(/^\/?[^/]/, 'a path inside the archive', 'write the path the file has in the archive, e.g. var/backups/shop.dump (borg stores paths without the leading "/")').describe('The file inside each archive that is the backup, e.g. var/backups/shop.dump.'),
    archives: nonEmptyText('archives').optional().describe('Only archives whose names match this glob (borg --glob-archives), e.g. "db1-*".'),
    check: z
      .union([z.literal(false), z.enum(['repository', 'archive', 'verify-data'])], { error: typeError('a check', () => 'write repository, archive, verify-data, or false') })
      .default(DEFAULTS.borgCheck)
      .describe(`borg check before each restore: "repository" (borg check --repository-only: every segment), "archive" (the chosen archive's metadata and chunk list), "verify-data" (reads and authenticates all of its data), or false. Default "${DEFAULTS.borgCheck}".`),
    lockWait: durationKey('How long to wait for a lock held by a running backup, prune or check before giving up.', DEFAULTS.borgLockWaitMs),
    binary: nonEmptyText('binary').default('borg').describe('The borg program. Default borg on PATH.'),
    select: select.prefault({}),
  })
  // load.ts fills in passphraseOrigin.
  .transform(({ lockWait, ...rest }): BorgSourceConfig => ({ ...rest, file: rest.file.replace(/^\/+/, ''), lockWaitMs: lockWait ?? DEFAULTS.borgLockWaitMs, passphraseOrigin: 'source.passphrase' }));

const pgbackrestS3 = z
  .strictObject({
    ...S3_CONNECTION_KEYS,
    maxRetries: retries.default(DEFAULTS.s3MaxRetries).describe(`Retries of a failed request. Default ${DEFAULTS.s3MaxRetries}.`),
    requestTimeout: durationKey('Limit for one request to answer.', DEFAULTS.s3RequestTimeoutMs),
  })
  .superRefine(credentialsOrProfile)
  .transform((value): PgbackrestS3Config => resolvedConnection(value, 'source.s3.credentials'))
  .describe("The repository is in a bucket (pgBackRest's repo1-type=s3; any S3-compatible store): listed and read with the AWS SDK. pgbackrest itself (source.check, an encrypted repository) reaches it over HTTPS only.");

const pgbackrestSource = z
  .strictObject({
    driver: z.literal('pgbackrest').describe('A pgBackRest repository, on this machine or in an S3 bucket: each backup set of the stanza is a backup, restored with the WAL archived after it (kind postgres).'),
    repository: nonEmptyText('repository').describe("pgBackRest's repo1-path: the repository's folder on this machine, e.g. /var/lib/pgbackrest; with s3, its path in the bucket, e.g. /pgbackrest."),
    s3: pgbackrestS3.optional(),
    stanza: matching(/^[A-Za-z0-9_.-]+$/, 'a stanza name', 'write the stanza as pgbackrest info lists it, e.g. main').describe('The stanza whose backups are verified.'),
    check: z
      .union([z.literal(false), z.literal('verify')], { error: typeError('a check', () => 'write verify or false') })
      .default('verify')
      .describe('pgbackrest verify (every file of every backup set and WAL segment against its checksum) before each restore, or false. Needs pgBackRest 2.33+ on this host; listing and restoring do not. Default "verify".'),
    binary: nonEmptyText('binary').default('pgbackrest').describe('The pgbackrest program for the check and for listing an encrypted repository. Default pgbackrest on PATH.'),
    cipherPass: secret(nonEmptyText('cipherPass'))
      .optional()
      .describe("An encrypted repository's passphrase (pgBackRest's repo1-cipher-pass, aes-256-cbc); use a reference: ${env:ACME_PGBACKREST_PASS} or ${file:secrets/pgbackrest}. It reaches pgbackrest through its environment, never its command line."),
    select: select.prefault({}),
  })
  .superRefine((value, ctx) => {
    if (value.s3 && !value.repository.startsWith('/')) {
      addProblem(ctx, `"${value.repository}" is not a repo1-path: pgBackRest's paths in a bucket start with "/"`, 'write the repository as pgBackRest\'s repo1-path, e.g. repository: /pgbackrest', ['repository']);
    }
  })
  .transform((value): PgbackrestSourceConfig => value);

const barmanSource = z
  .strictObject({
    driver: z.literal('barman').describe('A barman server on this machine: each backup barman would restore (DONE) is a backup, restored with the WAL barman archived after it (kind postgres).'),
    path: nonEmptyText('path').describe("One server's folder under barman_home, holding base/ and wals/, e.g. /var/lib/barman/pg."),
    check: z
      .union([z.literal(false), z.literal('wals')], { error: typeError('a check', () => 'write wals or false') })
      .default('wals')
      .describe('Before each restore, check that every WAL segment the backup needs is archived (what barman check-backup checks, done without writing). Default "wals".'),
    select: select.prefault({}),
  })
  .transform((value): BarmanSourceConfig => value);

const mariabackupSource = z
  .strictObject({
    driver: z.literal('mariabackup').describe('Physical MariaDB backups made by mariadb-backup: each sub-folder of path holding xtrabackup_checkpoints is a backup; an incremental restores on top of its chain (kind mysql).'),
    path: nonEmptyText('path').describe('The folder whose sub-folders are mariadb-backup target directories (--target-dir), full and incremental, e.g. /srv/mariabackup/shop.'),
    binlogs: nonEmptyText('binlogs')
      .optional()
      .describe("A folder of the server's archived binary logs (mariadb-bin.000042, ..., as mariadb-binlog --read-from-remote-server --raw or a copy of the server's keeps them): those from the backup's binlog position on are replayed after it, to mysql.recovery. Optional."),
    select: select.prefault({}),
  })
  .transform((value): MariabackupSourceConfig => value);

// One source block per name of STORAGE_DRIVERS: a driver without one does not compile.
const SOURCE_BLOCKS = { local: localSource, s3: s3Source, restic: resticSource, borg: borgSource, pgbackrest: pgbackrestSource, barman: barmanSource, mariabackup: mariabackupSource } satisfies Record<StorageDriverName, z.ZodType>;
export const source = z
  .discriminatedUnion('driver', [SOURCE_BLOCKS.local, SOURCE_BLOCKS.s3, SOURCE_BLOCKS.restic, SOURCE_BLOCKS.borg, SOURCE_BLOCKS.pgbackrest, SOURCE_BLOCKS.barman, SOURCE_BLOCKS.mariabackup], {
    error: (issue) =>
      issue.code === 'invalid_union' && (issue as { note?: string }).note === 'No matching discriminator'
        ? say('unknown or missing storage driver', 'set driver: local (a folder), s3 (a bucket), restic, borg or pgbackrest (a repository), barman (a barman server folder), mariabackup (a folder of mariadb-backup directories)')
        : undefined,
  })
  .describe('Where the backups are: driver local, s3, restic, borg, pgbackrest, barman or mariabackup, with that driver\'s keys.');
