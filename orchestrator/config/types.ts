/**
 * The resolved configuration: what the rest of backproof reads. Produced only by
 * `loadConfig()` (load.ts) from the YAML file through the zod schema (schema.ts), with defaults
 * applied, durations turned into milliseconds and `${env:..}`/`${file:..}` references resolved.
 */

export interface ResolvedConfig {
  /** Absolute path of the file this came from. */
  file: string;
  /** Evidence store: PostgreSQL when `url` is set (config `database.url` or DATABASE_URL), else embedded PGlite. */
  database: { url?: string; schema: string };
  docker: { host?: string };
  clients: ClientConfig[];
  /** Every policy of every client, in file order, for convenience. */
  policies: PolicyConfig[];
  /** Values that came from references; the logger redacts them. */
  secrets: string[];
}

export interface ClientConfig {
  name: string;
  displayName: string;
  policies: PolicyConfig[];
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

export interface S3SourceConfig {
  driver: 's3';
  bucket: string;
  /** Only keys under this prefix are listed (server-side). Default none. */
  prefix: string;
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
  /** SSE-C: the base64 AES-256 key the objects were written with. */
  sseCustomerKey?: string;
  /** Retries of one request or a dropped transfer (resumed with a Range request). Default 4. */
  maxRetries: number;
  /** Per-request timeout. */
  requestTimeoutMs: number;
  select: SelectorConfig;
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

export type SourceConfig = LocalSourceConfig | S3SourceConfig | ResticSourceConfig;

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

export type ProbeConfig =
  | { type: 'sql'; name: string; sql: string; expect: Expectation; timeoutMs: number }
  | { type: 'tablesExist'; name: string; tables: string[]; timeoutMs: number }
  | { type: 'rowCount'; name: string; table: string; atLeast: number; timeoutMs: number }
  | { type: 'freshness'; name: string; table: string; column: string; withinMs: number; timeoutMs: number };

export interface PostgresKindConfig {
  /** Database the dump is restored into and probed in. Default `restore`. */
  database: string;
  /** Accept a restore with no tables or no rows. Default false: an empty restore is a fail. */
  allowEmpty: boolean;
  readinessTimeoutMs: number;
}

export interface PolicyConfig {
  name: string;
  client: string;
  kind: 'postgres';
  source: SourceConfig;
  targets: { rpoMs?: number; rtoMs?: number };
  sandbox: SandboxConfig;
  postgres: PostgresKindConfig;
  probes: ProbeConfig[];
}
