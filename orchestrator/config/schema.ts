/**
 * The one zod schema for the config file (version 1). Parsing the file's data through
 * `configSchema` yields the resolved types of types.ts with defaults applied and durations and
 * sizes turned into numbers. Left to load.ts, which sees the whole file: `file`, `secrets`,
 * absolute `source.path` and `daemon.liveness.file` values, and unique client and policy names
 * across the file. The daemon's parts (daemon:, alerts:, schedules, heartbeats, alert routing)
 * are in daemon-schema.ts; the shared building blocks in schema-helpers.ts.
 *
 * Messages: every issue raised here carries both what is wrong and what to do, joined by
 * `FIX_SEPARATOR` (see `say`); load.ts splits them into a ConfigProblem's `problem` and `fix`.
 */
import { createPrivateKey } from 'node:crypto';
import cronParser from 'cron-parser';
import { z } from 'zod';
import { DEFAULTS } from '../core/defaults.js';
import { DURATION_EXAMPLES } from './duration.js';
import { addProblem, compactDuration, duration, durationKey, identifier, isRecordPayload, matching, nonEmptyText, quote, regexString, say, size, sizeText, timezone, typeError } from './schema-helpers.js';
import { alertRouting, alertsSchema, checkChannelNames, daemonSchema, heartbeatSchema, resolveClient, scheduleSchema, type ClientDraft, type PolicyDraft } from './daemon-schema.js';
import { checkReportsChannel, clientReportsSchema, reportsSchema, resolveReports } from './reports-schema.js';
import { secret } from './secret-schema.js';
import { vmSchema } from './vm-schema.js';
import { RESTORE_KINDS, type StorageDriverName, type CustomKindConfig, type Expectation, type FilesKindConfig, type MysqlKindConfig, type PolicyConfig, type PostgresKindConfig, type ProbeConfig, type RestoreKind, type ServiceConfig, type SizeAnomalyConfig } from '../core/config-types.js';
import type { ClientConfig, ExpectConfig, LocalSourceConfig, ResolvedConfig, ResticSourceConfig, S3SourceConfig, SandboxConfig, SelectorConfig, TimestampFromName, TimestampSource } from '../core/config-types.js';

/** What the schema produces; load.ts adds `file` and `secrets` and absolutises source paths. */
export type ConfigFromSchema = Omit<ResolvedConfig, 'file' | 'secrets'>;

// The building blocks live in schema-helpers.ts (so daemon-schema.ts can use them without a cycle).
export { addProblem, compactDuration, durationKey, FIX_SEPARATOR, identifier, isRecordPayload, isTimeZone, matching, nonEmptyText, parseSize, quote, say, timezone, typeError } from './schema-helpers.js';

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

const retries = z.number().int().min(0).max(20);

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

const s3Source = z
  .strictObject({
    driver: z.literal('s3').describe('An S3 bucket: AWS or S3-compatible (MinIO, Wasabi, Backblaze B2, Cloudflare R2, Ceph).'),
    bucket: matching(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'a bucket name', 'use 3-63 lowercase letters, digits, "." and "-"; put folders in prefix:').describe('Bucket name.'),
    prefix: z.string().default('').describe('Only keys under this prefix, e.g. "acme/shop/". Default: the whole bucket.'),
    region: nonEmptyText('region').optional().describe('Region, e.g. eu-central-1. Default AWS_REGION, else us-east-1.'),
    endpoint: matching(/^https?:\/\/[^/\s]+\/?$/, 'an endpoint URL', 'write https://host[:port], e.g. https://s3.eu-central-003.backblazeb2.com')
      .optional()
      .describe('Endpoint of an S3-compatible store. Default: AWS.'),
    forcePathStyle: z.boolean().optional().describe('Path-style URLs (endpoint/bucket/key). Default true when endpoint is set, else false.'),
    credentials: s3Credentials.optional(),
    profile: nonEmptyText('profile').optional().describe('Shared config profile (~/.aws/credentials) instead of explicit credentials.'),
    sdkChecksums: z
      .enum(['when_required', 'when_supported'])
      .default('when_required')
      .describe('SDK request/response checksums. "when_required" (default) works with every S3-compatible store; "when_supported" is the AWS SDK default and corrupts uploads or fails on stores without aws-chunked/CRC support (older MinIO, Ceph, Wasabi).'),
    sseCustomerKey: secret(matching(/^[A-Za-z0-9+/]{43}=$/, 'a base64 AES-256 key', 'write the 32-byte key as base64 (44 characters), from a reference: ${env:ACME_SSE_KEY}'))
      .optional()
      .describe('SSE-C: the customer key the objects were encrypted with (base64, 32 bytes).'),
    maxRetries: retries.default(DEFAULTS.s3MaxRetries).describe(`Retries of a failed request or a dropped transfer (resumed where it stopped). Default ${DEFAULTS.s3MaxRetries}.`),
    requestTimeout: durationKey('Limit for one request to answer (and for a transfer to stall).', DEFAULTS.s3RequestTimeoutMs),
    select: select.prefault({}),
  })
  .superRefine((value, ctx) => {
    if (value.credentials !== undefined && value.profile !== undefined) {
      addProblem(ctx, 'credentials and profile are both set', 'keep one: credentials for keys from references, profile for ~/.aws/credentials', ['profile']);
    }
  })
  .transform(({ requestTimeout, forcePathStyle, credentials, ...rest }): S3SourceConfig => ({
    ...rest,
    forcePathStyle: forcePathStyle ?? rest.endpoint !== undefined,
    requestTimeoutMs: requestTimeout ?? DEFAULTS.s3RequestTimeoutMs,
    // load.ts fills in where the credentials came from (the references as written).
    ...(credentials ? { credentials: { ...credentials, origin: 'source.credentials' } } : {}),
  }));

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

// One source block per name of STORAGE_DRIVERS: a driver without one does not compile.
const SOURCE_BLOCKS = { local: localSource, s3: s3Source, restic: resticSource } satisfies Record<StorageDriverName, z.ZodType>;
const source = z
  .discriminatedUnion('driver', [SOURCE_BLOCKS.local, SOURCE_BLOCKS.s3, SOURCE_BLOCKS.restic], {
    error: (issue) =>
      issue.code === 'invalid_union' && (issue as { note?: string }).note === 'No matching discriminator'
        ? say('unknown or missing storage driver', 'set driver: local (a folder), s3 (a bucket) or restic (a repository)')
        : undefined,
  })
  .describe('Where the backups are: driver local, s3 or restic, with that driver\'s keys.');

// ---- Policy parts ----------------------------------------------------------------------------

const targets = z
  .strictObject({
    rpo: durationKey('Recovery point objective: the newest backup must be younger than this.'),
    rto: durationKey('Recovery time objective: fetch and restore must be done within this.'),
  })
  .transform((value): PolicyConfig['targets'] => ({
    ...(value.rpo !== undefined ? { rpoMs: value.rpo } : {}),
    ...(value.rto !== undefined ? { rtoMs: value.rto } : {}),
  }))
  .describe('Targets checked on every run. Optional.');

const sandbox = z
  .strictObject({
    image: nonEmptyText('image').optional().describe(`Image to restore into. Default from the kind: ${DEFAULTS.postgresImage} (or the one matching the dump) for postgres, ${DEFAULTS.mysqlImage} for mysql, ${DEFAULTS.filesImage} for files and sqlite; custom.image for custom; ${DEFAULTS.vm.image} for vm.`),
    memory: size.optional().describe(`Memory limit: 512m, 2g, 2GiB or bytes. Default ${sizeText(DEFAULTS.sandboxMemoryBytes)}.`),
    cpus: z.number().positive().default(DEFAULTS.sandboxCpus).describe(`CPUs (may be fractional). Default ${DEFAULTS.sandboxCpus}.`),
    pids: z.number().int().min(32).default(DEFAULTS.sandboxPids).describe(`Process limit, at least 32. Default ${DEFAULTS.sandboxPids}.`),
    tmp: size.optional().describe(`Size of the /tmp tmpfs: 512m, 1g or bytes. Default ${sizeText(DEFAULTS.sandboxTmpBytes)}.`),
    timeout: durationKey('Hard limit for a whole run, sandbox included.', DEFAULTS.runTimeoutMs),
  })
  .transform(({ image, memory, cpus, pids, tmp, timeout }): SandboxConfig => ({
    ...(image !== undefined ? { image } : {}),
    memoryBytes: memory ?? DEFAULTS.sandboxMemoryBytes,
    cpus,
    pids,
    tmpBytes: tmp ?? DEFAULTS.sandboxTmpBytes,
    timeoutMs: timeout ?? DEFAULTS.runTimeoutMs,
  }))
  .describe('Limits of the network-less container the backup is restored into. All keys optional.');

const databaseName = matching(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'a plain database name', 'use letters, digits and "_", starting with a letter or "_"');

const postgres = z
  .strictObject({
    database: databaseName.default('restore').describe('Database the dump is restored into and probed in. Default "restore".'),
    allowEmpty: z.boolean().default(false).describe('Accept a restore with no tables or no rows. Default false: an empty restore fails.'),
    readinessTimeout: durationKey('Wait this long for the restored server to accept connections.', DEFAULTS.readinessTimeoutMs),
  })
  .transform(({ readinessTimeout, ...rest }): PostgresKindConfig => ({ ...rest, readinessTimeoutMs: readinessTimeout ?? DEFAULTS.readinessTimeoutMs }))
  .describe('Options for kind: postgres. All keys optional.');

const mysql = z
  .strictObject({
    database: databaseName
      .default('restore')
      .describe('Database a single-database dump is restored into and probed in; a dump that creates its own databases is probed in this one when it has it, else in the only one it creates. Default "restore".'),
    allowEmpty: z.boolean().default(false).describe('Accept a restore with no tables or no rows. Default false: an empty restore fails.'),
    readinessTimeout: durationKey('Wait this long for the restored server to accept connections.', DEFAULTS.readinessTimeoutMs),
  })
  .transform(({ readinessTimeout, ...rest }): MysqlKindConfig => ({ ...rest, readinessTimeoutMs: readinessTimeout ?? DEFAULTS.readinessTimeoutMs }))
  .describe('Options for kind: mysql (mysqldump or mariadb-dump output, plain or compressed). All keys optional.');

const files = z
  .strictObject({
    maxBytes: size.optional().describe(`Extraction stops, and the run fails, beyond this much expanded content. Default ${sizeText(DEFAULTS.filesMaxBytes)}.`),
    maxEntries: z.number().int().min(1).default(DEFAULTS.filesMaxEntries).describe(`... or beyond this many entries. Default ${DEFAULTS.filesMaxEntries}.`),
    maxRatio: z.number().min(1).default(DEFAULTS.filesMaxRatio).describe(`... or when the expanded bytes pass this multiple of the backup's size (a decompression bomb), once past ratioFloor. Default ${DEFAULTS.filesMaxRatio}.`),
    ratioFloor: size.optional().describe(`Expanded bytes below which maxRatio is not applied. Default ${sizeText(DEFAULTS.filesRatioFloorBytes)}.`),
    allowEmpty: z.boolean().default(false).describe('Accept an archive with no files, or only empty ones. Default false.'),
  })
  .transform(({ maxBytes, ratioFloor, ...rest }): FilesKindConfig => ({
    ...rest,
    maxBytes: maxBytes ?? DEFAULTS.filesMaxBytes,
    ratioFloorBytes: ratioFloor ?? DEFAULTS.filesRatioFloorBytes,
  }))
  .describe('Options for kind: files (tar, tar.gz, tar.zst, tar.xz, tar.bz2, zip). All keys optional.');

const sqlite = z
  .strictObject({
    allowEmpty: z.boolean().default(false).describe('Accept a database with no tables or no rows. Default false.'),
  })
  .describe('Options for kind: sqlite (a SQLite database file or sqlite3 .dump text). All keys optional.');

const argv = z
  .array(z.string(), { error: typeError('a command', () => 'write the command as a list: ["redis-cli", "ping"]') })
  .min(1, { error: say('the command is empty', 'write the program and its arguments as a list: ["redis-cli", "ping"]') });

const capability = matching(/^(CAP_)?[A-Z_]+$/, 'a capability name', 'use a Linux capability name such as CHOWN or DAC_OVERRIDE');
const envMap = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).default({});

const service = z
  .strictObject({
    name: identifier('service')
      .refine((name) => !name.startsWith('backproof'), { error: say('service names starting with "backproof" are backproof\'s own (its probe helper)', 'choose another name') })
      .describe('Name of the container, used by probes (service: NAME).'),
    image: nonEmptyText('image').describe('Image of this container.'),
    cmd: argv.describe('Its process; it must exist in the image.'),
    user: nonEmptyText('user').optional().describe('User to run as (name or uid[:gid]). Default the image\'s.'),
    capAdd: z.array(capability).default([]).describe('Capabilities added back after dropping all. Default none.'),
    env: envMap.describe('Environment variables.'),
  })
  .transform((value): ServiceConfig => ({ ...value, capAdd: value.capAdd.map(stripCap) }));

const custom = z
  .strictObject({
    image: nonEmptyText('image').describe('Image of the main container, e.g. redis:7 loaded into the engine, or one built with backproof images build.'),
    cmd: argv.default(['sleep', 'infinity']).describe('The main container\'s process; it must exist in the image. Default ["sleep", "infinity"].'),
    user: nonEmptyText('user').optional().describe('User to run as (name or uid[:gid]). Default the image\'s.'),
    capAdd: z.array(capability).default([]).describe('Capabilities the image needs back after dropping all; document each. Default none.'),
    env: envMap.describe('Environment variables of the main container and its commands.'),
    input: z.enum(['stdin', 'file']).default('stdin').describe('"stdin": the backup is streamed into the restore command; "file": it is written to /restore/backup first. Default stdin.'),
    decompress: z.boolean().default(true).describe('Decompress gzip, zstd, xz or bzip2 (told from the bytes) before the restore command sees the backup. Default true.'),
    restore: argv.describe('The restore command, run in the main container, e.g. ["redis-check-rdb", "/restore/backup"].'),
    ready: argv.optional().describe('A command that exits 0 once the restored system is ready; retried until readinessTimeout.'),
    readinessTimeout: durationKey('Wait this long for the ready command to succeed.', DEFAULTS.readinessTimeoutMs),
    readOnlyRoot: z.boolean().default(true).describe('Root filesystem read-only; data goes to /restore (a per-run volume) and /tmp. Default true.'),
    services: z.array(service).default([]).describe('Further containers sharing the main one\'s network namespace and /restore volume, like a pod: an application started against the restored data.'),
  })
  .transform(({ readinessTimeout, ...rest }): CustomKindConfig => ({
    ...rest,
    capAdd: rest.capAdd.map(stripCap),
    readinessTimeoutMs: readinessTimeout ?? DEFAULTS.readinessTimeoutMs,
  }))
  .describe('Options for kind: custom: the escape hatch for anything else (MongoDB, Redis, an application stack).');

function stripCap(name: string): string {
  return name.replace(/^CAP_/, '');
}

const sizeAnomaly = z
  .union([
    z.literal(false),
    z.strictObject({
      minPercent: z.number().gt(0).max(100).default(DEFAULTS.sizeAnomalyMinPercent).describe(`The backup fails when smaller than this percentage of the median. Default ${DEFAULTS.sizeAnomalyMinPercent}.`),
      lastRuns: z.number().int().min(1).max(1000).default(DEFAULTS.sizeAnomalyLastRuns).describe(`Median of this many latest passing runs. Default ${DEFAULTS.sizeAnomalyLastRuns}.`),
      minHistory: z.number().int().min(1).default(DEFAULTS.sizeAnomalyMinHistory).describe(`Passing runs needed before the check judges. Default ${DEFAULTS.sizeAnomalyMinHistory}.`),
    }),
  ], { error: typeError('a size check', () => 'write sizeAnomaly: { minPercent: 50, lastRuns: 10 }, or false to turn it off') })
  .default({ minPercent: DEFAULTS.sizeAnomalyMinPercent, lastRuns: DEFAULTS.sizeAnomalyLastRuns, minHistory: DEFAULTS.sizeAnomalyMinHistory })
  .transform((value): SizeAnomalyConfig | false => value)
  .describe(`A backup much smaller than usual fails: below minPercent of the median size of the last lastRuns passing runs. On by default (${DEFAULTS.sizeAnomalyMinPercent}% of ${DEFAULTS.sizeAnomalyLastRuns}); false turns it off.`);

// ---- Probes ----------------------------------------------------------------------------------

const PROBE_KINDS = ['sql', 'tablesExist', 'rowCount', 'freshness', 'files', 'manifest', 'encryptedLooking', 'command', 'http'] as const;
type ProbeKey = (typeof PROBE_KINDS)[number];
const EXPECTATIONS = ['equals', 'atLeast', 'atMost', 'matches', 'nonEmpty'] as const;
/** Probe checks that take one of the expectations (on the query's value, the command's output, the body). */
const WITH_EXPECTATION: readonly ProbeKey[] = ['sql', 'command', 'http'];
/** Which probe checks each kind can run. */
export const PROBES_OF_KIND: Record<RestoreKind, readonly ProbeKey[]> = {
  postgres: ['sql', 'tablesExist', 'rowCount', 'freshness', 'command', 'http'],
  mysql: ['sql', 'tablesExist', 'rowCount', 'freshness', 'command', 'http'],
  sqlite: ['sql', 'tablesExist', 'rowCount', 'freshness', 'command', 'http'],
  files: ['files', 'manifest', 'encryptedLooking', 'command', 'http'],
  custom: ['command', 'http'],
  // A VM's own checks are vm.expect (screen, serial): the sandbox holds QEMU, not the guest.
  vm: [],
};

const share = z
  .union([z.number().min(0).max(1), z.string().regex(/^\s*\d+(\.\d+)?\s*%\s*$/).transform((text) => Number(text.replace('%', '')) / 100)], {
    error: typeError('a share', () => 'write a fraction between 0 and 1 (0.1) or a percentage ("10%")'),
  })
  .refine((n) => n >= 0 && n <= 1, { error: say('a share must be between 0% and 100%', 'write e.g. 0.1 or "10%"') });

const probe = z
  .strictObject({
    sql: nonEmptyText('SQL').optional().describe('A query whose first column of the first row is checked by one of equals, atLeast, atMost, matches, nonEmpty.'),
    equals: z
      .union([z.string(), z.number()], { error: typeError('text or a number', () => 'write the expected value, e.g. equals: 42') })
      .optional()
      .describe('sql/command/http probe: the value (output, body) must equal this (compared as text).'),
    atLeast: z.number().optional().describe('sql/command probe: the value must be a number >= this.'),
    atMost: z.number().optional().describe('sql/command probe: the value must be a number <= this.'),
    matches: regexString.optional().describe('sql/command/http probe: the value (output, body) must match this regular expression.'),
    nonEmpty: z
      .literal(true, { error: typeError('allowed here', () => 'write nonEmpty: true, or use another expectation') })
      .optional()
      .describe('sql/command/http probe: the value (output, body) must not be empty.'),
    tablesExist: z.array(nonEmptyText('table name')).min(1).optional().describe('Tables that must exist, e.g. [orders, public.customers].'),
    rowCount: z
      .strictObject({
        table: nonEmptyText('table').describe('Table to count.'),
        atLeast: z.number().int().min(0).default(1).describe('Minimum row count. Default 1.'),
      })
      .optional()
      .describe('The table must hold at least atLeast rows.'),
    freshness: z
      .strictObject({
        table: nonEmptyText('table').describe('Table to check.'),
        column: nonEmptyText('column').describe('Timestamp column (or epoch seconds); its newest value is checked.'),
        within: duration.describe(`The newest value must be younger than this, relative to the backup's time. A duration: ${DURATION_EXAMPLES}.`),
      })
      .optional()
      .describe('The newest value of a timestamp column must be recent.'),
    files: z
      .union([
        z.array(nonEmptyText('path')).min(1).transform((exist) => ({ exist, nonEmpty: false })),
        z.strictObject({
          exist: z.array(nonEmptyText('path')).default([]).describe('Paths or globs (picomatch) relative to the archive\'s root; each must match at least one file.'),
          minCount: z.number().int().min(0).optional().describe('At least this many files among those matched (all files when exist is empty).'),
          minTotalBytes: size.optional().describe('Their total size at least this: 10m, 1g or bytes.'),
          nonEmpty: z.boolean().default(false).describe('No matched file may be zero bytes long.'),
        }),
      ])
      .optional()
      .describe('kind files: paths that must exist, how many files and bytes at least, no zero-byte files.'),
    manifest: nonEmptyText('manifest path')
      .optional()
      .describe('kind files: a sha256sum-style manifest inside the archive (path or glob, e.g. SHA256SUMS): every file it lists must be there with that sha256.'),
    encryptedLooking: z
      .union([z.literal(true).transform(() => ({ maxShare: DEFAULTS.encryptedMaxShare })), z.strictObject({ maxShare: share.default(DEFAULTS.encryptedMaxShare).describe(`At most this share of the documents may look random: a fraction (0.1) or a percentage ("10%"). Default ${DEFAULTS.encryptedMaxShare * 100}%.`) })])
      .optional()
      .describe(`kind files: the share of documents (text, CSV, office, PDF by name) whose bytes look random, as ransomware leaves them, must stay at or below maxShare. Default ${DEFAULTS.encryptedMaxShare}.`),
    command: argv.optional().describe('A command run inside the sandbox (argv, never through a shell); its exit code and stdout are checked.'),
    service: identifier('service').optional().describe('command probe: the custom.services container to run in. Default the main one.'),
    exitCode: z.number().int().min(0).max(255).optional().describe('command probe: expected exit code. Default 0.'),
    http: z
      .strictObject({
        port: z.number().int().min(1).max(65535).describe('Port inside the sandbox\'s network namespace.'),
        path: z.string().startsWith('/').default('/').describe('Path to GET. Default /.'),
        status: z.number().int().min(100).max(599).default(200).describe('Expected status. Default 200.'),
      })
      .optional()
      .describe('GET http://127.0.0.1:PORT/PATH inside the sandbox\'s own network namespace; status and body (equals, matches, nonEmpty) are checked.'),
    name: nonEmptyText('name').optional().describe('Name shown in reports. Default derived from the check.'),
    timeout: durationKey('Limit for this probe.', DEFAULTS.probeTimeoutMs),
  })
  .superRefine((value, ctx) => {
    const has = (key: string) => (value as Record<string, unknown>)[key] !== undefined;
    const kinds = PROBE_KINDS.filter(has);
    const expectations = EXPECTATIONS.filter(has);
    const kind = kinds[0];
    if (kinds.length === 0) addProblem(ctx, 'probe has no check', `add exactly one of ${PROBE_KINDS.join(', ')}`);
    else if (kinds.length > 1) addProblem(ctx, `probe has several checks (${kinds.join(', ')})`, 'split them into separate probes, one check each');
    else if (kind === 'sql' && expectations.length === 0) {
      addProblem(ctx, 'sql probe has no expectation', 'add exactly one of equals, atLeast, atMost, matches, nonEmpty: true');
    } else if (expectations.length > 1) {
      addProblem(ctx, `${kind} probe has several expectations (${expectations.join(', ')})`, 'keep exactly one, or split into separate probes');
    } else if (kind && !WITH_EXPECTATION.includes(kind)) {
      const hint = kind === 'rowCount' ? ' (rowCount takes its own: rowCount: { table, atLeast })' : '';
      for (const key of expectations) addProblem(ctx, `${key} applies only to sql, command and http probes`, `remove it${hint}`, [key]);
    } else if (kind === 'http' && (has('atLeast') || has('atMost'))) {
      addProblem(ctx, 'http probes check the body with equals, matches or nonEmpty', 'use matches: "..." on the body, or a command probe for numbers');
    }
    if (kind !== 'command') {
      for (const key of ['service', 'exitCode'] as const) if (has(key)) addProblem(ctx, `${key} applies only to command probes`, `remove it`, [key]);
    }
  }, { when: isRecordPayload })
  .transform((value): ProbeConfig => {
    const timeoutMs = value.timeout ?? DEFAULTS.probeTimeoutMs;
    const named = (derived: string) => value.name ?? shorten(derived);
    const hasExpectation = EXPECTATIONS.some((k) => value[k] !== undefined);
    if (value.sql !== undefined) {
      return { type: 'sql', name: named(`sql: ${value.sql}`), sql: value.sql, expect: expectationOf(value), timeoutMs };
    }
    if (value.tablesExist !== undefined) {
      return { type: 'tablesExist', name: named(`tablesExist: ${value.tablesExist.join(', ')}`), tables: value.tablesExist, timeoutMs };
    }
    if (value.rowCount !== undefined) {
      const { table, atLeast } = value.rowCount;
      return { type: 'rowCount', name: named(`rowCount: ${table} >= ${atLeast}`), table, atLeast, timeoutMs };
    }
    if (value.freshness !== undefined) {
      const { table, column, within } = value.freshness;
      return { type: 'freshness', name: named(`freshness: ${table}.${column} within ${compactDuration(within)}`), table, column, withinMs: within, timeoutMs };
    }
    if (value.files !== undefined) {
      const f = value.files as { exist: string[]; minCount?: number; minTotalBytes?: number; nonEmpty: boolean };
      const what = [f.exist.length ? f.exist.join(', ') : 'all files', f.minCount !== undefined ? `>= ${f.minCount} files` : '', f.minTotalBytes !== undefined ? `>= ${sizeText(f.minTotalBytes)}` : '', f.nonEmpty ? 'none empty' : '']
        .filter(Boolean)
        .join(', ');
      return {
        type: 'files',
        name: named(`files: ${what}`),
        exist: f.exist,
        nonEmpty: f.nonEmpty,
        ...(f.minCount !== undefined ? { minCount: f.minCount } : {}),
        ...(f.minTotalBytes !== undefined ? { minTotalBytes: f.minTotalBytes } : {}),
        timeoutMs,
      };
    }
    if (value.manifest !== undefined) return { type: 'manifest', name: named(`manifest: ${value.manifest}`), path: value.manifest, timeoutMs };
    if (value.encryptedLooking !== undefined) {
      const { maxShare } = value.encryptedLooking;
      return { type: 'encryptedLooking', name: named(`encrypted-looking documents <= ${Math.round(maxShare * 1000) / 10}%`), maxShare, timeoutMs };
    }
    if (value.command !== undefined) {
      return {
        type: 'command',
        name: named(`command: ${value.command.join(' ')}`),
        argv: value.command,
        exitCode: value.exitCode ?? 0,
        ...(value.service !== undefined ? { service: value.service } : {}),
        ...(hasExpectation ? { expect: expectationOf(value) } : {}),
        timeoutMs,
      };
    }
    if (value.http === undefined) throw new Error('unreachable: the probe check above requires one kind');
    const { port, path, status } = value.http;
    return {
      type: 'http',
      name: named(`http: GET :${port}${path} -> ${status}`),
      port,
      path,
      status,
      ...(hasExpectation ? { expect: expectationOf(value) } : {}),
      timeoutMs,
    };
  })
  .describe(`One check on the restored data: exactly one of ${PROBE_KINDS.join(', ')}.`);

function expectationOf({ equals, atLeast, atMost, matches }: { equals?: string | number; atLeast?: number; atMost?: number; matches?: string }): Expectation {
  if (equals !== undefined) return { op: 'equals', value: String(equals) };
  if (atLeast !== undefined) return { op: 'atLeast', value: atLeast };
  if (atMost !== undefined) return { op: 'atMost', value: atMost };
  return matches !== undefined ? { op: 'matches', value: matches } : { op: 'nonEmpty' };
}

/** Default probe names: whitespace collapsed, at most 60 characters. */
function shorten(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 60 ? `${flat.slice(0, 59)}…` : flat;
}

// ---- Policies, clients, file -----------------------------------------------------------------

const LABEL = /^[a-z0-9][a-z0-9_.-]{0,62}$/i;
/** Worker labels as a policy requires them; `kvm: true` and `kvm: "true"` are the same label. */
export const workerLabels = z.record(
  z.string().regex(LABEL, { error: say('is not a label name', 'use letters, digits, ".", "_" and "-", e.g. site or kvm') }),
  z
    .union([z.string().regex(LABEL), z.boolean(), z.number()], { error: typeError('a label value', () => 'write a word, number or true/false, e.g. site: berlin, kvm: true') })
    .transform((v) => String(v)),
);

const KINDS = RESTORE_KINDS;

const policy = z
  .strictObject({
    name: identifier('policy').describe('Policy id, unique across all clients: lowercase letters, digits, ".", "_", "-".'),
    kind: z
      .enum(KINDS, { error: typeError('a supported kind', () => `use one of ${KINDS.join(', ')}`) })
      .describe('What the backups are: postgres (pg_dump output), mysql (mysqldump/mariadb-dump), files (tar or zip archives), sqlite (database files), custom (any image and commands), vm (whole-machine disk images, booted).'),
    source,
    targets: targets.prefault({}),
    sandbox: sandbox.prefault({}),
    postgres: postgres.optional(),
    mysql: mysql.optional(),
    files: files.optional(),
    sqlite: sqlite.optional(),
    custom: custom.optional(),
    vm: vmSchema.optional(),
    sizeAnomaly,
    probes: z.array(probe).default([]).describe('Checks run on the restored data, in order. Default none.'),
    schedule: scheduleSchema.optional(),
    heartbeat: heartbeatSchema.optional(),
    alerts: alertRouting('policy').optional(),
    requires: workerLabels
      .default({})
      .describe('Labels a worker must carry to run this policy in cluster mode (backproof worker --label site=berlin), e.g. { site: berlin, kvm: true }. Default none: any worker.'),
  })
  .superRefine((value, ctx) => {
    const kind = value.kind as RestoreKind;
    if (!(KINDS as readonly string[]).includes(kind)) return;
    // Each kind's block has the kind's name.
    for (const block of KINDS) {
      if (block !== kind && (value as Record<string, unknown>)[block] !== undefined) {
        addProblem(ctx, `${block} applies only to kind: ${block}`, `remove it, or set kind: ${block}`, [block]);
      }
    }
    if (kind === 'custom' && value.custom === undefined) {
      addProblem(ctx, 'kind: custom needs a custom block', 'add custom: { image, restore: [command...] } (and ready:, services: as needed)', ['custom']);
    }
    if (kind === 'vm') {
      const guest = value.vm?.memoryBytes ?? DEFAULTS.vm.memoryBytes;
      const limit = value.sandbox?.memoryBytes ?? DEFAULTS.sandboxMemoryBytes;
      if (limit < guest + DEFAULTS.vm.overheadBytes) {
        addProblem(ctx, `sandbox.memory (${sizeText(limit)}) leaves no room for QEMU beside the guest's ${sizeText(guest)}`, `set sandbox.memory to at least ${sizeText(guest + DEFAULTS.vm.overheadBytes)}, or lower vm.memory`, ['sandbox', 'memory']);
      }
    }
    const allowed = PROBES_OF_KIND[kind];
    (Array.isArray(value.probes) ? value.probes : []).forEach((p, i) => {
      if (typeof p !== 'object' || p === null) return;
      const type = (p as { type?: string }).type as ProbeKey | undefined;
      if (type && !allowed.includes(type)) {
        addProblem(ctx, `a ${type} probe does not apply to kind: ${kind}`, `use one of ${allowed.join(', ')} for kind: ${kind}`, ['probes', i]);
      }
    });
    const services = value.custom?.services ?? [];
    (Array.isArray(value.probes) ? value.probes : []).forEach((p, i) => {
      const wanted = (p as { service?: string } | null)?.service;
      if (wanted !== undefined && !services.some((s) => s.name === wanted)) {
        addProblem(ctx, `there is no service "${wanted}"`, services.length ? `use one of ${services.map((s) => s.name).join(', ')}, or remove service to run in the main container` : 'services exist only under kind: custom; remove service', ['probes', i, 'service']);
      }
    });
  }, { when: isRecordPayload })
  .transform(({ schedule, heartbeat, alerts, ...value }): Omit<PolicyDraft, 'client'> => ({
    ...value,
    ...(schedule !== undefined ? { schedule } : {}),
    ...(heartbeat !== undefined ? { heartbeat } : {}),
    ...(alerts !== undefined ? { alerts } : {}),
    postgres: value.postgres ?? postgres.parse({}),
    mysql: value.mysql ?? mysql.parse({}),
    files: value.files ?? files.parse({}),
    sqlite: value.sqlite ?? sqlite.parse({}),
    ...(value.kind === 'vm' ? { vm: value.vm ?? vmSchema.parse({}) } : {}),
  }))
  .describe('What to verify and how.');

const client = z
  .strictObject({
    name: identifier('client').describe('Client id, unique: lowercase letters, digits, ".", "_", "-".'),
    displayName: nonEmptyText('displayName').optional().describe('Name shown in reports. Default: name.'),
    alerts: alertRouting('client').optional(),
    policies: z
      .array(policy)
      .min(1, { error: say('client has no policies', 'add at least one policy under policies:') })
      .describe('The client\'s policies; at least one.'),
    reports: clientReportsSchema.optional(),
  })
  .transform((value): ClientDraft & Pick<ClientConfig, 'reports'> => ({
    name: value.name,
    displayName: value.displayName ?? value.name,
    alerts: value.alerts ?? {},
    policies: value.policies.map((p): PolicyDraft => ({ ...p, client: value.name })),
    ...(value.reports !== undefined ? { reports: value.reports } : {}),
  }))
  .describe('A client (tenant) and its policies.');

const database = z
  .strictObject({
    url: secret(
      z.string().refine(isPostgresUrl, { error: say('not a postgres:// URL', 'write postgres://user:password@host:5432/dbname, or remove it to use the embedded store') }),
      'url',
    )
      .optional()
      .describe('PostgreSQL URL of the evidence store, e.g. ${env:DATABASE_URL}. Default: DATABASE_URL, else an embedded store.'),
    schema: matching(/^[a-z_][a-z0-9_]{0,62}$/, 'a plain schema name', 'use lowercase letters, digits and "_", starting with a letter or "_"')
      .default(DEFAULTS.schema)
      .describe(`Schema holding backproof's tables. Default "${DEFAULTS.schema}".`),
  })
  .describe('Evidence store. Optional.');

export function isPostgresUrl(url: string): boolean {
  try {
    const parsed = new URL(url);
    return (parsed.protocol === 'postgres:' || parsed.protocol === 'postgresql:') && parsed.host !== '';
  } catch {
    return false;
  }
}

const pem = (what: string, example: string) =>
  matching(/-----BEGIN [A-Z ]+-----/, `a PEM ${what}`, `write the file's contents through a reference: ${example}`);

const docker = z
  .strictObject({
    host: matching(/^(unix|npipe|tcp|http|https|ssh):\/\/./, 'a Docker host address', 'use unix:///var/run/docker.sock, tcp://host:2376 or ssh://user@host')
      .optional()
      .describe('Docker daemon address, e.g. unix:///var/run/docker.sock. Default: DOCKER_HOST or the local socket.'),
    tls: z
      .strictObject({
        ca: pem('CA certificate', '${file:docker-tls/ca.pem}').describe('CA that signed the engine\'s certificate: ${file:docker-tls/ca.pem}.'),
        cert: pem('client certificate', '${file:docker-tls/cert.pem}').describe('Client certificate: ${file:docker-tls/cert.pem}.'),
        key: secret(pem('private key', '${file:docker-tls/key.pem}').describe('Client key: ${file:docker-tls/key.pem}; never logged.')),
      })
      .optional()
      .describe('TLS for a tcp:// engine started with dockerd --tlsverify (the files docker calls ca.pem, cert.pem, key.pem).'),
    sshKey: secret(pem('private key', '${file:~/.ssh/id_ed25519}')).optional().describe('Private key for an ssh:// engine; default: the SSH agent (SSH_AUTH_SOCK).'),
  })
  .describe('Docker daemon the sandboxes run on. Optional.');

/** Whether `pem` is an Ed25519 private key node:crypto can read. */
function isEd25519PrivateKey(pem: string): boolean {
  try {
    return createPrivateKey(pem).asymmetricKeyType === 'ed25519';
  } catch {
    return false;
  }
}

const evidence = z
  .strictObject({
    signingKey: secret(
      z.string().refine(isEd25519PrivateKey, {
        error: say('not a PEM Ed25519 private key', 'make one with openssl genpkey -algorithm ed25519 -out evidence-key.pem and write signingKey: ${file:evidence-key.pem}'),
      }),
    )
      .optional()
      .describe('PEM Ed25519 private key that signs the evidence chain, from a reference: ${file:/etc/backproof/evidence-key.pem}. Default: <data dir>/evidence-key.pem, created on first use. Workers sharing one PostgreSQL should share one key.'),
  })
  .describe('Evidence signing. Optional.');

/** `database:` and `evidence:` alone (loadStoreSettings: what opening the evidence store takes). */
export const storeSettingsSchema = z.object({ database: database.prefault({}), evidence: evidence.optional() });

/** Keys a policy inherits from `defaults:` unless it sets them (objects merge key by key; lists and values are replaced). */
export const DEFAULTABLE_POLICY_KEYS = ['targets', 'sandbox', 'sizeAnomaly', 'alerts', 'requires', 'schedule'] as const;

const policyDefaults = z
  .strictObject({
    targets: targets.optional(),
    sandbox: sandbox.optional(),
    sizeAnomaly: sizeAnomaly.optional(),
    alerts: alertRouting('policy').optional(),
    requires: workerLabels.optional().describe('Labels a worker must carry to run a policy in cluster mode, for every policy that sets no requires of its own.'),
    schedule: scheduleSchema.optional(),
  })
  .describe(`What every policy inherits unless it sets it: ${DEFAULTABLE_POLICY_KEYS.join(', ')}. Mappings merge key by key (a policy's sandbox: { memory: 4g } keeps the default timeout); lists and single values are replaced.`);

export const configSchema = z
  .strictObject({
    version: z
      .literal(1, { error: typeError('a supported version', () => 'set version: 1 (the only version for now) or remove it') })
      .optional()
      .describe('Config file format version; 1.'),
    database: database.prefault({}),
    docker: docker.prefault({}),
    evidence: evidence.optional(),
    daemon: daemonSchema.prefault({}),
    alerts: alertsSchema.prefault({}),
    clients: z
      .array(client)
      .min(1, { error: say('no clients', 'add at least one client under clients:, each with name and policies') })
      .describe('The clients (tenants) whose backups are verified; at least one.'),
    reports: reportsSchema.optional(),
    defaults: policyDefaults.optional(),
  })
  .superRefine((value, ctx) => checkChannelNames(value, ctx), { when: isRecordPayload })
  .superRefine((value, ctx) => checkReportsChannel(value, ctx), { when: isRecordPayload })
  .transform((value): ConfigFromSchema => {
    // Policies cannot see daemon: and alerts:; their schedules and alert routing are completed here.
    const clients = value.clients.map((c) => ({ ...resolveClient(c, value.daemon, value.alerts), ...(c.reports !== undefined ? { reports: c.reports } : {}) }));
    return {
      database: value.database.url !== undefined ? { url: value.database.url, schema: value.database.schema } : { schema: value.database.schema },
      docker: {
        ...(value.docker.host !== undefined ? { host: value.docker.host } : {}),
        ...(value.docker.tls !== undefined ? { tls: value.docker.tls } : {}),
        ...(value.docker.sshKey !== undefined ? { sshKey: value.docker.sshKey } : {}),
      },
      ...(value.evidence !== undefined ? { evidence: value.evidence.signingKey !== undefined ? { signingKey: value.evidence.signingKey } : {} } : {}),
      daemon: value.daemon,
      alerts: value.alerts,
      clients,
      policies: clients.flatMap((c) => c.policies),
      ...(value.reports !== undefined ? { reports: resolveReports(value.reports, value.alerts) } : {}),
    };
  })
  .meta({ title: 'backproof configuration', description: 'backproof.yaml: the clients, policies and probes backproof verifies.' });

let jsonSchemaCache: Record<string, unknown> | undefined;

/** JSON Schema of the file as written (input side), for editors' completion and validation. */
export function configJsonSchema(): Record<string, unknown> {
  jsonSchemaCache ??= z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return structuredClone(jsonSchemaCache);
}
