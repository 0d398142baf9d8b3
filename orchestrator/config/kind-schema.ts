/** The config schema's policy parts: targets, sandbox, each restore kind's block, the size check. Messages follow schema.ts. */
import { z } from 'zod';
import { DEFAULTS } from '../core/defaults.js';
import { durationKey, identifier, matching, nonEmptyText, say, share, size, sizeText, typeError } from './schema-helpers.js';
import type { CoverageConfig, CustomKindConfig, FilesKindConfig, MysqlKindConfig, PolicyConfig, PostgresKindConfig, RecoveryOption, SandboxConfig, ServiceConfig, SizeAnomalyConfig } from '../core/config-types.js';

// ---- Policy parts ----------------------------------------------------------------------------

export const targets = z
  .strictObject({
    rpo: durationKey('Recovery point objective: the newest backup must be younger than this.'),
    rto: durationKey('Recovery time objective: fetch and restore must be done within this.'),
  })
  .transform((value): PolicyConfig['targets'] => ({
    ...(value.rpo !== undefined ? { rpoMs: value.rpo } : {}),
    ...(value.rto !== undefined ? { rtoMs: value.rto } : {}),
  }))
  .describe('Targets checked on every run. Optional.');

export const sandbox = z
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

/** How far a physical backup's log (PostgreSQL's WAL, MariaDB's binary logs) is replayed. */
const recoveryTarget = z
  .union(
    [
      z.enum(['latest', 'immediate', 'sampled']),
      z.strictObject({
        time: z
          .string()
          .refine((t) => /(Z|[+-]\d\d:?\d\d)$/i.test(t.trim()) && Number.isFinite(Date.parse(t)), { error: say('not a time with its zone', 'write an ISO time with Z or an offset, e.g. "2026-12-05T09:30:00Z"') })
          .describe('Replay stops just before the first transaction that committed after this time (ISO, with Z or an offset).'),
      }),
    ],
    { error: typeError('a recovery target', () => 'write latest, immediate, sampled, or { time: "2026-12-05T09:30:00Z" }') },
  )
  .default('latest')
  .transform((recovery): RecoveryOption => (typeof recovery === 'string' ? recovery : { time: new Date(recovery.time).toISOString() }));

export const postgres = z
  .strictObject({
    database: databaseName.default('restore').describe('Database the dump is restored into and probed in. Default "restore".'),
    allowEmpty: z.boolean().default(false).describe('Accept a restore with no tables or no rows. Default false: an empty restore fails.'),
    readinessTimeout: durationKey('Wait this long for the restored server to accept connections.', DEFAULTS.readinessTimeoutMs),
    recovery: recoveryTarget.describe(
      'Physical backups (source driver pgbackrest or barman): how far the restored cluster replays the archived WAL. "latest" (default): to the end of the archive, and the RPO is measured from the last replayed commit; "immediate": only until the backup is consistent; { time }: to that time, from the newest backup set that ended before it; "sampled": to a time drawn at random for each run between the ends of the oldest and the newest backup set, from the newest set that ended before it (so older sets and the WAL between them are restored too; the RPO is the newest set\'s age and there is no size check).',
    ),
    recoveryTimeout: durationKey('Physical backups: how long WAL replay may take before the run is an error.', DEFAULTS.recoveryTimeoutMs),
  })
  .transform(({ readinessTimeout, recoveryTimeout, recovery, ...rest }): PostgresKindConfig => ({
    ...rest,
    readinessTimeoutMs: readinessTimeout ?? DEFAULTS.readinessTimeoutMs,
    recovery,
    recoveryTimeoutMs: recoveryTimeout ?? DEFAULTS.recoveryTimeoutMs,
  }))
  .describe('Options for kind: postgres. All keys optional.');

export const mysql = z
  .strictObject({
    database: databaseName
      .default('restore')
      .describe('Database a single-database dump is restored into and probed in; a dump that creates its own databases is probed in this one when it has it, else in the only one it creates. Default "restore".'),
    allowEmpty: z.boolean().default(false).describe('Accept a restore with no tables or no rows. Default false: an empty restore fails.'),
    readinessTimeout: durationKey('Wait this long for the restored server to accept connections.', DEFAULTS.readinessTimeoutMs),
    recovery: recoveryTarget.describe(
      'mariadb-backup backups whose source ships binary logs (source.binlogs): how far they are replayed on the prepared backup. "latest" (default): to the end of the last log, and the RPO is measured from the last replayed event; "immediate": the backup as it was taken; { time }: to that time, from the newest backup that ended before it; "sampled": to a time drawn at random for each run between the ends of the oldest and the newest backup, from the newest one that ended before it (the RPO is the newest backup\'s age and there is no size check).',
    ),
  })
  .transform(({ readinessTimeout, ...rest }): MysqlKindConfig => ({ ...rest, readinessTimeoutMs: readinessTimeout ?? DEFAULTS.readinessTimeoutMs }))
  .describe('Options for kind: mysql (mysqldump or mariadb-dump output, plain or compressed). All keys optional.');

const R = DEFAULTS.filesRansomware;

export const files = z
  .strictObject({
    maxBytes: size.optional().describe(`Extraction stops, and the run fails, beyond this much expanded content. Default ${sizeText(DEFAULTS.filesMaxBytes)}.`),
    maxEntries: z.number().int().min(1).default(DEFAULTS.filesMaxEntries).describe(`... or beyond this many entries. Default ${DEFAULTS.filesMaxEntries}.`),
    maxRatio: z.number().min(1).default(DEFAULTS.filesMaxRatio).describe(`... or when the expanded bytes pass this multiple of the backup's size (a decompression bomb), once past ratioFloor. Default ${DEFAULTS.filesMaxRatio}.`),
    ratioFloor: size.optional().describe(`Expanded bytes below which maxRatio is not applied. Default ${sizeText(DEFAULTS.filesRatioFloorBytes)}.`),
    allowEmpty: z.boolean().default(false).describe('Accept an archive with no files, or only empty ones. Default false.'),
    ransomware: z
      .union([
        z.literal(false),
        z.literal(true).transform(() => ({ ...R })),
        z.strictObject({
          minFiles: z.number().int().min(1).default(R.minFiles).describe(`Judged only when the last passing run had at least this many files. Default ${R.minFiles}.`),
          maxRenamed: share.default(R.maxRenamed).describe(`At most this share of the last passing run's files may reappear under a new extension with random-looking content (report.docx → report.docx.locked). Default ${R.maxRenamed * 100}%.`),
          maxRewritten: share.default(R.maxRewritten).describe(`... be rewritten at the same size into random-looking content. Default ${R.maxRewritten * 100}%.`),
          maxDisappeared: share.default(R.maxDisappeared).describe(`... disappear (judged when some of them are still there: a tree with nothing in common is another data set). Default ${R.maxDisappeared * 100}%.`),
          maxRandomRise: share.default(R.maxRandomRise).describe(`The share of files whose content looks random (judged from the bytes, whatever the names) may rise by at most this much. Default ${R.maxRandomRise * 100}%.`),
        }),
      ])
      .default({ ...R })
      .describe(
        'Each restore is compared with the last passing run of the policy (its file list is kept with the evidence): a mass rename or rewrite into random-looking content, mass deletion or a jump in the share of random-looking files is a fail, ransomware_suspected, naming examples. false turns the comparison off, true keeps the defaults. Default on, with the thresholds below.',
      ),
  })
  .transform(({ maxBytes, ratioFloor, ...rest }): FilesKindConfig => ({
    ...rest,
    maxBytes: maxBytes ?? DEFAULTS.filesMaxBytes,
    ratioFloorBytes: ratioFloor ?? DEFAULTS.filesRatioFloorBytes,
  }))
  .describe('Options for kind: files (tar, tar.gz, tar.zst, tar.xz, tar.bz2, zip). All keys optional.');

export const sqlite = z
  .strictObject({
    allowEmpty: z.boolean().default(false).describe('Accept a database with no tables or no rows. Default false.'),
  })
  .describe('Options for kind: sqlite (a SQLite database file or sqlite3 .dump text). All keys optional.');

export const argv = z
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

export const custom = z
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

export const sizeAnomaly = z
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

export const coverage = z
  .strictObject({
    every: durationKey('Each restore point the selector accepts must be proven restorable (a passing run) at least this often.', DEFAULTS.coverageEveryMs),
    points: z.number().int().min(0).max(100).default(DEFAULTS.coveragePoints).describe(`Older restore points restored per run (or per day or week, see per): never-verified first, then the oldest proof. Default ${DEFAULTS.coveragePoints}.`),
    per: z.enum(['run', 'day', 'week'], { error: typeError('run, day or week', () => 'write per: run, per: day or per: week') }).default('run').describe('What points counts against: each run (default), or each UTC day or ISO week.'),
    sample: z.number().int().min(0).max(100).default(0).describe('Points picked at random among the rest besides those due, each run, so proven points are tried again too. Default 0.'),
    target: share.optional().describe('Share of restore points proven within every below which the coverage alert fires, e.g. "90%". Default none: only a failing older point alerts.'),
  })
  .transform((value): CoverageConfig => ({
    everyMs: value.every ?? DEFAULTS.coverageEveryMs,
    points: value.points,
    per: value.per,
    sample: value.sample,
    ...(value.target !== undefined ? { target: value.target } : {}),
  }))
  .describe('Retention coverage: besides the newest backup, restore older restore points (each as a coverage run) so that every one is proven restorable once every `every`. Optional; see docs/coverage.md.');
