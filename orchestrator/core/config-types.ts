/**
 * The resolved configuration: what the rest of backproof reads. Produced only by
 * `loadConfig()` (load.ts) from the YAML file through the zod schema (schema.ts), with defaults
 * applied, durations turned into milliseconds and `${env:..}`/`${file:..}` references resolved.
 */

export interface EvidenceConfig {
  /** PEM Ed25519 private key; absent: the data dir's key. */
  signingKey?: string;
  witness?: WitnessConfig;
}

/** evidence.witness: the signed chain head published outside the store (evidence publish, the daemon, verify --witness). */
export interface WitnessConfig {
  s3: S3ConnectionConfig & {
    /** Keys of published heads start with this. */
    prefix: string;
    /** Object Lock mode of each head; `none` for a bucket without Object Lock. */
    objectLock: 'compliance' | 'governance' | 'none';
    /** Retention of each head. */
    retainMs: number;
  };
  /** How often the daemon publishes the head (when it moved). */
  everyMs: number;
}

export interface ResolvedConfig {
  /** Absolute path of the file this came from. */
  file: string;
  /** Evidence store: PostgreSQL when `url` is set (config `database.url` or DATABASE_URL), else embedded PGlite. */
  database: { url?: string; schema: string };
  docker: DockerConfig;
  /** Evidence signing and witness; absent when the file has no `evidence:` (then the data dir's key signs). */
  evidence?: EvidenceConfig;
  clients: ClientConfig[];
  /** `backproof daemon`: limits, catch-up, shutdown, liveness. All defaults when the file has no `daemon:`. */
  daemon: DaemonConfig;
  /** Alert channels and defaults. No channels: alerts are evaluated and recorded but sent nowhere. */
  alerts: AlertsConfig;
  /** Every policy of every client, in file order, for convenience. */
  policies: PolicyConfig[];
  /** Values that came from references; the logger redacts them. */
  secrets: string[];
  /** Monthly client reports (branding, zone, mailing); absent when the file has no `reports:`. */
  reports?: ReportsConfig;
}

export interface ClientConfig {
  name: string;
  displayName: string;
  /** The client's alert routing as written (its policies' `alerts` already include it). */
  alerts: AlertRoutingInput;
  policies: PolicyConfig[];
  /** Who receives the client's monthly report; absent when the client has no `reports:` (then its `alerts.to` receive it). */
  reports?: ClientReportsConfig;
  /** What the client's verification may spend on storage a month. */
  budget?: StorageBudget;
}

// ---- Monthly reports (reports-schema.ts) --------------------------------------------------------

export type ReportFormat = 'pdf' | 'html' | 'csv' | 'json';

export interface ReportsConfig {
  /** The MSP's name on report covers. */
  mspName: string;
  /** Absolute path of a PNG or JPEG shown on report covers (load.ts checks it). */
  logo?: string;
  /** IANA zone the month is counted in. Default UTC. */
  timezone: string;
  /** When the daemon mails every client's report of the previous month (in `timezone`); absent: never. */
  schedule?: { text: string; cron: string; timezone: string };
  /** The email channel (under alerts.channels) reports are mailed through; absent: reports are not mailed. */
  channel?: string;
  /** Format of mailed reports. Default pdf. */
  format: ReportFormat;
}

export interface ClientReportsConfig {
  /** Recipients of the client's monthly report. */
  to: string[];
}

// ---- Daemon, schedules, alerts -----------------------------------------------------------------

export interface DaemonConfig {
  /** Runs at once, overall. Default 2. */
  concurrency: number;
  /** Runs at once per client. Default 1. */
  perClient: number;
  /** At start, run each policy whose last scheduled time passed without a run. Default true. */
  catchUp: boolean;
  /** First signal: wait this long for running runs, then cancel them. Default 10m. */
  shutdownGraceMs: number;
  /** How often conditions between runs are checked (stale, missing, overdue, reminders, delivery retries). Default 5m. */
  checkEveryMs: number;
  /** Zone of schedules that name none. Default UTC. */
  timezone: string;
  /** Default `grace` of schedules: a scheduled run not started within it is `overdue`. Default 1h. */
  overdueGraceMs: number;
  liveness: {
    /** Rewritten with a JSON status at least every `checkEveryMs` and after each run; absent when unset. */
    file?: string;
    /** HTTP port serving GET /healthz (200 alive, 503 not); 0 picks a free port; absent when unset. */
    port?: number;
    /** Address the liveness endpoint listens on. Default 127.0.0.1. */
    host: string;
  };
  /** The dashboard and API (`backproof serve`) inside the daemon, sharing its store; absent: not served. */
  web?: { host: string; port: number };
}

/**
 * When a policy is verified. `cron` always holds a cron expression node-schedule and cron-parser
 * understand (5 fields, or 6 with seconds first); shorthands such as `daily at 02:30` are turned
 * into one by the schema.
 */
/** The engine sandboxes run on (a worker may override host and TLS on its command line). */
export interface DockerConfig {
  host?: string;
  /** PEM contents for a tcp:// engine with --tlsverify. */
  tls?: { ca: string; cert: string; key: string };
  /** PEM private key for ssh:// engines without an agent. */
  sshKey?: string;
}

export interface ScheduleConfig {
  /** As written, for messages and `backproof status`: "daily at 02:30" or "0 2 * * *". */
  text: string;
  cron: string;
  /** IANA zone the schedule runs in. */
  timezone: string;
  /** Each scheduled run starts after a random delay of up to this. Default 0. */
  jitterMs: number;
  /** A scheduled run that has not started within this (plus jitter) is `overdue`. */
  graceMs: number;
}

/** healthchecks.io-style pings: `url` on pass, `failUrl` on fail or error. */
export interface HeartbeatConfig {
  url: string;
  /** Default `url` + "/fail". */
  failUrl: string;
  timeoutMs: number;
}

export type AlertConditionName = 'fail' | 'error' | 'recovery' | 'stale' | 'missing' | 'size_anomaly' | 'rto_exceeded' | 'overdue' | 'delivery_failed' | 'no_worker' | 'coverage';

/** Alert routing as written on a client or a policy. */
export interface AlertRoutingInput {
  channels?: string[];
  to?: string[];
  reminderAfterMs?: number;
}

/** A policy's alert routing, resolved: policy over client over `alerts:` defaults. */
export interface AlertRouting {
  /** Names of the channels this policy's alerts go to (each also filters by its `conditions`). */
  channels: string[];
  /** Extra recipients for the email channels, the client's and the policy's together. */
  to: string[];
  /** An open condition is notified again after this long; 0: never. */
  reminderAfterMs: number;
}

interface ChannelBase {
  name: string;
  /** Conditions this channel is told about (their resolutions included). Default: all. */
  conditions: AlertConditionName[];
}

export interface EmailChannelConfig extends ChannelBase {
  type: 'email';
  host: string;
  port: number;
  /** Implicit TLS (port 465). */
  secure: boolean;
  startTls: 'required' | 'opportunistic' | 'never';
  tlsRejectUnauthorized: boolean;
  auth?: { user: string; pass: string };
  from: string;
  /** Always-on recipients; client and policy `alerts.to` are added. A mail with nobody to go to is skipped. */
  to: string[];
  cc: string[];
}

export interface WebhookChannelConfig extends ChannelBase {
  type: 'webhook';
  url: string;
  preset: 'generic' | 'slack' | 'teams';
  headers: Record<string, string>;
  timeoutMs: number;
}

export type ChannelConfig = EmailChannelConfig | WebhookChannelConfig;

/** Every alert channel type: the schema, the channel registry and the conformance suite derive from it. */
export const CHANNEL_TYPES = ['email', 'webhook'] as const;
export type ChannelType = (typeof CHANNEL_TYPES)[number];
export type ChannelOf<T extends ChannelType> = Extract<ChannelConfig, { type: T }>;
const channelsHaveTypes: ChannelConfig['type'] extends ChannelType ? (ChannelType extends ChannelConfig['type'] ? true : never) : never = true;
void channelsHaveTypes;

export interface AlertsConfig {
  channels: ChannelConfig[];
  /** Default reminder interval. Default 24h. */
  reminderAfterMs: number;
  /** Attempts per delivery, the first included. Default 4. */
  maxAttempts: number;
  /** A delivery that failed every attempt is tried again at each check for this long. Default 24h. */
  retryForMs: number;
}

export interface TimestampFromName {
  from: 'name';
  /** Regex applied to the file name; the named group `ts` (or the whole match) holds the timestamp. */
  pattern?: string;
  /** Optional explicit format with tokens YYYY MM DD HH mm ss; else ISO-like forms and epoch seconds are recognised. */
  format?: string;
  /** IANA zone for timestamps without an offset. Default UTC. */
  timezone: string;
}

/**
 * The time the store records for the backup: a restic snapshot's time, or an S3 object's user
 * metadata `x-amz-meta-<key>` (ISO 8601 or epoch seconds).
 */
export interface TimestampFromMetadata {
  from: 'metadata';
  /** S3 user-metadata key, without `x-amz-meta-`. Default `backup-time`. */
  key: string;
}

export type TimestampSource = TimestampFromName | TimestampFromMetadata | { from: 'mtime' };

/** How often backups are made; the last complete period must hold one. */
export type ExpectConfig =
  | { every: 'daily' | 'weekly'; timezone: string }
  | {
      every: 'cron';
      /** Five-field cron expression of the backup job, e.g. "0 2 * * *". */
      cron: string;
      timezone: string;
      /** How long after a scheduled time the backup may still be running before it counts as missing. */
      graceMs: number;
    };

export interface SelectorConfig {
  /** Glob on the name (picomatch). Exactly one of glob/regex is set; default glob '*'. */
  glob?: string;
  regex?: string;
  timestamp: TimestampSource;
  settleMs: number;
  /**
   * How often backups are made. The last complete period (yesterday; last ISO week; the last
   * scheduled cron time) in `timezone` must hold a backup, or the run fails with that period,
   * even when older ones exist.
   */
  expect?: ExpectConfig;
}

export interface LocalSourceConfig {
  driver: 'local';
  /** Absolute path (relative paths in the file are resolved against the config file's folder). */
  path: string;
  recursive: boolean;
  select: SelectorConfig;
}

/** A credential value and where it came from, for error messages that never show the secret. */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** E.g. `source.credentials of policy shop-db (${env:ACME_KEY})`. */
  origin: string;
}

/** How to reach a bucket: what an S3 source and the evidence witness share. */
export interface S3ConnectionConfig {
  bucket: string;
  /** Default: AWS_REGION, else us-east-1. */
  region?: string;
  /** For S3-compatible stores (MinIO, Wasabi, B2, R2, Ceph): https://host[:port]. */
  endpoint?: string;
  /** Path-style URLs (endpoint/bucket/key). Default true when `endpoint` is set. */
  forcePathStyle: boolean;
  /** Explicit keys; else `profile`; else the AWS default chain (environment, shared files, instance role). */
  credentials?: S3Credentials;
  profile?: string;
  /**
   * SDK checksums on requests and responses. `when_required` (default) works with every
   * S3-compatible store; `when_supported` is the AWS SDK default and breaks on stores that do
   * not understand aws-chunked uploads or CRC trailers.
   */
  sdkChecksums: 'when_required' | 'when_supported';
  /** Retries of one request (or, for a source, a dropped transfer, resumed with a Range request). Default 4. */
  maxRetries: number;
  /** Per-request timeout. */
  requestTimeoutMs: number;
  /** A PEM file of certificate authorities to trust besides the system's. */
  caFile?: string;
}

export interface S3SourceConfig extends S3ConnectionConfig {
  driver: 's3';
  /** Only keys under this prefix are listed (server-side). Default none. */
  prefix: string;
  /** SSE-C: the base64 AES-256 key the objects were written with. */
  sseCustomerKey?: string;
  /** What reading costs here: each run records its estimate (RunMetrics.storage.cost). */
  prices?: StoragePrices;
  /** Objects in an archive tier (GLACIER, DEEP_ARCHIVE): request their restore (RestoreObject) instead of failing with the fix. */
  archiveRetrieval?: { tier: 'bulk' | 'standard' | 'expedited'; days: number };
  select: SelectorConfig;
}

/** What a client's verification may spend on storage a month (UTC), in the sources' price currency. */
export interface StorageBudget {
  monthly: number;
  currency: string;
}

/** A storage price table: what one run's reads cost (a source's `prices:`). */
export interface StoragePrices {
  currency: string;
  /** Per GB (10^9 bytes) downloaded. */
  egressPerGB: number;
  /** Per 1,000 GET and HEAD requests. */
  per1000Requests: number;
  /** Per 1,000 LIST requests. */
  per1000Lists: number;
  /** Per GB retrieved from an archive tier, by storage class (GLACIER, DEEP_ARCHIVE, STANDARD_IA...). */
  retrievalPerGB: Record<string, number>;
}

export interface ResticSourceConfig {
  driver: 'restic';
  /** A local path or any restic repository string (sftp:, rest:, s3:, b2:, ...). */
  repository: string;
  /** Repository password, from a reference. */
  password: string;
  /** Where the password came from, for error messages. */
  passwordOrigin: string;
  /** The file inside each snapshot that is the backup, e.g. /var/backups/shop.dump. */
  file: string;
  /** Only snapshots of this host / with all these tags / of these paths. */
  host?: string;
  tags: string[];
  paths: string[];
  /** `restic check --read-data-subset` before each restore, e.g. "5%", "1/10", "500M"; false to skip. */
  checkSubset: string | false;
  /** restic binary. Default `restic` on PATH. */
  binary: string;
  select: SelectorConfig;
}

export interface BorgSourceConfig {
  driver: 'borg';
  /** A local path or an ssh:// repository URL. */
  repository: string;
  /** Repository passphrase, from a reference; absent for an unencrypted repository. */
  passphrase?: string;
  /** Where the passphrase came from, for error messages. */
  passphraseOrigin: string;
  /** The file inside each archive that is the backup, as borg stores it, e.g. var/backups/shop.dump. */
  file: string;
  /** Only archives whose names match this glob (borg --glob-archives). */
  archives?: string;
  /** `borg check` in the storage_check phase: the repository, the chosen archive, or its data; false to skip. */
  check: 'repository' | 'archive' | 'verify-data' | false;
  /** How long to wait for a lock held by a running backup. */
  lockWaitMs: number;
  /** borg binary. Default `borg` on PATH. */
  binary: string;
  select: SelectorConfig;
}

/** A pgBackRest repository in a bucket (repo1-type=s3). */
export type PgbackrestS3Config = S3ConnectionConfig;

export interface PgbackrestSourceConfig {
  driver: 'pgbackrest';
  /** repo1-path: the repository's folder on this machine, or, with `s3`, its path in the bucket. */
  repository: string;
  /** The repository is in this bucket. */
  s3?: PgbackrestS3Config;
  stanza: string;
  /** `pgbackrest verify` in the storage_check phase; false to skip. */
  check: 'verify' | false;
  /** pgbackrest binary for the check. Default `pgbackrest` on PATH. */
  binary: string;
  /** An encrypted repository's passphrase (repo1-cipher-pass, aes-256-cbc). */
  cipherPass?: string;
  select: SelectorConfig;
}

export interface MariabackupSourceConfig {
  /** A folder of archived binary logs (mariadb-bin.000042, ...), replayed after the backup. */
  binlogs?: string;
  driver: 'mariabackup';
  /** The folder whose sub-folders are mariadb-backup target directories. */
  path: string;
  select: SelectorConfig;
}

export interface BarmanSourceConfig {
  driver: 'barman';
  /** One barman server's folder: `<barman_home>/<server>`. */
  path: string;
  /** The WAL each backup needs checked in the storage_check phase; false to skip. */
  check: 'wals' | false;
  select: SelectorConfig;
}

export type SourceConfig = LocalSourceConfig | S3SourceConfig | ResticSourceConfig | BorgSourceConfig | PgbackrestSourceConfig | BarmanSourceConfig | MariabackupSourceConfig;

/** Every storage driver's name: the schema's drivers, the registry and every test loop derive from it. */
export const STORAGE_DRIVERS = ['local', 's3', 'restic', 'borg', 'pgbackrest', 'barman', 'mariabackup'] as const;
export type StorageDriverName = (typeof STORAGE_DRIVERS)[number];
/** The source block of one driver. */
export type SourceOf<D extends StorageDriverName> = Extract<SourceConfig, { driver: D }>;
// Both ways: a source type without a name in the list, or a name without a source type, does not compile.
const sourcesHaveNames: SourceConfig['driver'] extends StorageDriverName ? (StorageDriverName extends SourceConfig['driver'] ? true : never) : never = true;
void sourcesHaveNames;

export interface SandboxConfig {
  /** Image to restore into; default from the restorer (backproof/postgres:15 for postgres). */
  image?: string;
  memoryBytes: number;
  cpus: number;
  pids: number;
  tmpBytes: number;
  timeoutMs: number;
}

export type Expectation =
  | { op: 'equals'; value: string }
  | { op: 'atLeast'; value: number }
  | { op: 'atMost'; value: number }
  | { op: 'matches'; value: string }
  | { op: 'nonEmpty' };

/** Probes on a restored database (postgres, mysql, sqlite). */
export type SqlProbeConfig =
  | { type: 'sql'; name: string; sql: string; expect: Expectation; timeoutMs: number }
  | { type: 'tablesExist'; name: string; tables: string[]; timeoutMs: number }
  | { type: 'rowCount'; name: string; table: string; atLeast: number; timeoutMs: number }
  | { type: 'freshness'; name: string; table: string; column: string; withinMs: number; timeoutMs: number }
  /** Sampled text and binary values that look random (encrypted, base64 noise): their share may rise by at most maxRise since the last passing run. */
  | { type: 'randomValues'; name: string; maxRise: number; sample: number; timeoutMs: number };

/** Probes on a restored file tree (kind: files). */
export type FileProbeConfig =
  | {
      type: 'files';
      name: string;
      /** Paths or globs (relative to the archive's root) that must each match at least one file. */
      exist: string[];
      /** Files matched by `exist` (or all files when `exist` is empty): at least this many. */
      minCount?: number;
      /** Their total size at least this many bytes. */
      minTotalBytes?: number;
      /** None of the matched files may be zero bytes long. */
      nonEmpty: boolean;
      timeoutMs: number;
    }
  | {
      type: 'manifest';
      name: string;
      /** Path (or glob) of a sha256sum-style manifest inside the archive, e.g. SHA256SUMS. */
      path: string;
      timeoutMs: number;
    }
  | {
      type: 'encryptedLooking';
      name: string;
      /** Largest share (0..1) of document-type files whose bytes look random before the probe fails. */
      maxShare: number;
      timeoutMs: number;
    };

/** Probes any kind can run: a command inside the sandbox, an HTTP request inside its network namespace. */
export type SandboxProbeConfig =
  | {
      type: 'command';
      name: string;
      argv: string[];
      /** Container of the sandbox to run in: the main one, or a `custom.services` name. */
      service?: string;
      exitCode: number;
      /** Checked against the command's stdout (trimmed). */
      expect?: Expectation;
      timeoutMs: number;
    }
  | {
      type: 'http';
      name: string;
      port: number;
      path: string;
      status: number;
      /** Checked against the response body. */
      expect?: Expectation;
      timeoutMs: number;
    };

export type ProbeConfig = SqlProbeConfig | FileProbeConfig | SandboxProbeConfig;

/**
 * Every restore kind. The config schema (its `kind` values and the kind blocks), the restorer
 * registry (restore-sandboxes/registry.ts) and the tests that loop over kinds derive from this
 * list; each kind has a config block of its own name.
 */
export const RESTORE_KINDS = ['postgres', 'mysql', 'files', 'sqlite', 'custom', 'vm'] as const;
export type RestoreKind = (typeof RESTORE_KINDS)[number];

export interface PostgresKindConfig {
  /** Database the dump is restored into and probed in. Default `restore`. */
  database: string;
  /** Accept a restore with no tables or no rows. Default false: an empty restore is a fail. */
  allowEmpty: boolean;
  readinessTimeoutMs: number;
  /** Physical backups (pgBackRest, barman): replay the WAL archive to its end, only to consistency, to a time (ISO), or to a time drawn for each run. */
  recovery: RecoveryOption;
  recoveryTimeoutMs: number;
}

/** How far a restore replays a physical backup's log (PostgreSQL's WAL, MariaDB's binary logs). */
export type RecoveryTarget =
  | 'latest'
  | 'immediate'
  | {
      time: string;
      /** The time was drawn at random by the run (recovery: sampled) between these two backups' ends. */
      sampled?: { from: string; to: string };
    };
/** As a policy says it: `sampled` is a time the run's select phase draws inside the retention window. */
export type RecoveryOption = RecoveryTarget | 'sampled';

/**
 * The target a restore replays to: a run's select phase has drawn `sampled` into a time before
 * any restore starts (runner/phases/select.ts); undrawn, it replays to the end.
 */
export function restoreTarget(recovery: RecoveryOption): RecoveryTarget {
  return recovery === 'sampled' ? 'latest' : recovery;
}

/** A time target as the evidence says it: "time: to T", or how a sampled one was drawn. */
export function describeTime(target: { time: string; sampled?: { from: string; to: string } }): string {
  return target.sampled ? `sampled: to ${target.time}, drawn at random between ${target.sampled.from} and ${target.sampled.to} (the ends of the oldest and the newest backup)` : `time: to ${target.time}`;
}

/** kind: mysql (MySQL and MariaDB, mysqldump / mariadb-dump output). */
export interface MysqlKindConfig {
  /**
   * Database a single-database dump (no CREATE DATABASE/USE of its own) is restored into and
   * probed in; a dump that creates its own databases is probed in this one when it is among
   * them, else in the only one it creates. Default `restore`.
   */
  database: string;
  allowEmpty: boolean;
  readinessTimeoutMs: number;
  /** mariadb-backup with shipped binary logs: how far they are replayed. */
  recovery: RecoveryOption;
}

/** kind: files (tar, tar.gz, tar.zst, tar.xz, tar.bz2, zip). */
export interface FilesKindConfig {
  /** Extraction stops (a fail) beyond this many bytes of expanded content. */
  maxBytes: number;
  /** ... or this many entries. */
  maxEntries: number;
  /** ... or when the expanded bytes exceed this multiple of the backup's size (once past `ratioFloorBytes`). */
  maxRatio: number;
  ratioFloorBytes: number;
  /** Accept an archive with no regular files, or only empty ones. Default false. */
  allowEmpty: boolean;
  /** The comparison with the last passing run's file list (shares are fractions), or false for none. */
  ransomware: false | { minFiles: number; maxRenamed: number; maxRewritten: number; maxDisappeared: number; maxRandomRise: number };
}

/** kind: sqlite (a SQLite database file, or `sqlite3 .dump` SQL text). */
export interface SqliteKindConfig {
  allowEmpty: boolean;
}

/** A further container of a custom sandbox, sharing the main container's network namespace and volume. */
export interface ServiceConfig {
  name: string;
  image: string;
  cmd: string[];
  user?: string;
  capAdd: string[];
  env: Record<string, string>;
}

/** kind: custom: any image, a restore command and a readiness command. */
export interface CustomKindConfig {
  image: string;
  /** The main container's process; it must exist in the image. */
  cmd: string[];
  user?: string;
  /** Capabilities the image needs back after CapDrop ALL; keep it empty when you can. */
  capAdd: string[];
  env: Record<string, string>;
  /** Whether the backup arrives on the restore command's stdin, or as the file `/restore/backup`. */
  input: 'stdin' | 'file';
  /** gzip/zstd/xz/bzip2 (told from the bytes) decompressed before the restore command sees it. Default true. */
  decompress: boolean;
  restore: string[];
  /** Exits 0 once the restored system is ready; retried until readinessTimeout. */
  ready?: string[];
  readinessTimeoutMs: number;
  /** Root filesystem read-only (default true); data goes to /restore (a per-run volume) and /tmp. */
  readOnlyRoot: boolean;
  services: ServiceConfig[];
}

/** Disk image formats kind vm boots; `vhd` is what QEMU calls `vpc`. */
export type VmDiskFormat = 'raw' | 'qcow2' | 'vmdk' | 'vhdx' | 'vhd';

/** A named screen or serial pattern of kind vm. */
export interface VmPattern {
  name: string;
  /** A JavaScript regular expression, matched case-insensitively against the screen text and the serial log. */
  pattern: string;
}

/** kind: vm: a whole-machine disk image, booted in QEMU inside the sandbox. */
export interface VmKindConfig {
  /** `auto`: from `qemu-img info`; never left to QEMU to guess. */
  format: 'auto' | VmDiskFormat;
  /** `auto`: OVMF (UEFI) for a GPT disk with an EFI system partition, else SeaBIOS. */
  firmware: 'auto' | 'bios' | 'uefi';
  /** `auto`: pc (i440FX) for BIOS, q35 for UEFI. */
  machine: 'auto' | 'pc' | 'q35';
  /** `auto`: IDE on pc, SATA on q35: restored VMware/Hyper-V guests may lack virtio drivers. */
  bus: 'auto' | 'ide' | 'sata' | 'virtio' | 'scsi';
  /** `auto`: KVM when the engine's host has /dev/kvm, else TCG (software emulation). */
  accel: 'auto' | 'kvm' | 'tcg';
  /** Guest memory; the sandbox's memory limit must leave room for QEMU itself. */
  memoryBytes: number;
  /** Guest CPUs. */
  cpus: number;
  /** A compressed image is expanded into the sandbox's scratch volume up to this size. */
  maxDiskBytes: number;
  /** Which default patterns apply: linux, windows, or both (any). */
  os: 'any' | 'linux' | 'windows';
  bootTimeoutMs: number;
  /** not_booted when the screen and the serial port stay unchanged this long (before a login prompt). */
  stallTimeoutMs: number;
  screenshotEveryMs: number;
  /** Read graphics-mode screens with OCR (tesseract); text-mode screens are read from video memory. */
  ocr: boolean;
  /** Further patterns that mean booted (a logon screen the defaults do not know). */
  bootedPatterns: VmPattern[];
  /** Further patterns that mean not_booted; their names become the failure's name. */
  failurePatterns: VmPattern[];
  /** What a boot still busy at bootTimeout is: a fail (default) or an error of the verification. */
  inconclusive: 'fail' | 'error';
  /** Probes after the boot: patterns the final screen text and the serial log must match. */
  expect: { screen?: string; serial?: string };
}

/** The size check against history: the newest backup must not shrink below `minPercent` of the median of the last passing runs. */
export interface SizeAnomalyConfig {
  minPercent: number;
  lastRuns: number;
  /** Passing runs needed before the check judges. */
  minHistory: number;
}

/**
 * Retention coverage: besides the newest backup, restore `points` older restore points per run
 * (or per day or week), so each point the selector accepts is proven restorable once every
 * `everyMs`: never-verified points first, then those whose proof is oldest, plus `sample` random
 * ones. Below `target` (a share of proven points) the `coverage` alert fires.
 */
export interface CoverageConfig {
  everyMs: number;
  points: number;
  per: 'run' | 'day' | 'week';
  sample: number;
  target?: number;
}

/** What every policy has, whatever its kind. */
export interface PolicyBase {
  name: string;
  client: string;
  source: SourceConfig;
  targets: { rpoMs?: number; rtoMs?: number };
  sandbox: SandboxConfig;
  postgres: PostgresKindConfig;
  mysql: MysqlKindConfig;
  files: FilesKindConfig;
  sqlite: SqliteKindConfig;
  custom?: CustomKindConfig;
  vm?: VmKindConfig;
  /** false: no size check. */
  sizeAnomaly: SizeAnomalyConfig | false;
  /** Absent: only the newest backup is restored. */
  coverage?: CoverageConfig;
  /** The client's monthly storage budget (clients[].budget): coverage runs are planned within it. */
  budget?: StorageBudget;
  probes: ProbeConfig[];
  /** When `backproof daemon` verifies it; without one the daemon only checks staleness and reminders. */
  schedule?: ScheduleConfig;
  heartbeat?: HeartbeatConfig;
  alerts: AlertRouting;
  /** Cluster mode: labels a worker must carry to run this policy (`{ site: 'berlin' }`); empty: any worker. */
  requires: Record<string, string>;
}

/** The block a kind cannot do without (the database kinds' blocks always resolve to defaults). */
interface KindBlocks {
  postgres: { postgres: PostgresKindConfig };
  mysql: { mysql: MysqlKindConfig };
  files: { files: FilesKindConfig };
  sqlite: { sqlite: SqliteKindConfig };
  custom: { custom: CustomKindConfig };
  vm: { vm: VmKindConfig };
}

/** A policy of one kind: its restorer receives this, with its own block required. */
export type PolicyOf<K extends RestoreKind> = PolicyBase & { kind: K } & KindBlocks[K];

/** A policy: a union discriminated on `kind` (`policy.kind === 'vm'` narrows to one with `vm`). */
export type PolicyConfig = { [K in RestoreKind]: PolicyOf<K> }[RestoreKind];

/** The policy as one of kind K, or an error naming both kinds (for code that serves one kind only). */
export function policyOfKind<K extends RestoreKind>(policy: PolicyConfig, kind: K): PolicyOf<K> {
  if (policy.kind !== kind) throw new Error(`policy ${policy.name} is kind ${policy.kind}, not ${kind}`);
  return policy as PolicyOf<K>;
}
