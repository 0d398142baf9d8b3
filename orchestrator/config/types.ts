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

export interface SelectorConfig {
  /** Glob on the name (picomatch). Exactly one of glob/regex is set; default glob '*'. */
  glob?: string;
  regex?: string;
  timestamp: TimestampFromName | { from: 'mtime' };
  settleMs: number;
  /**
   * How often backups are made. The last complete period (yesterday; last ISO week) in
   * `timezone` must hold a backup, or the run fails with that period, even when older ones exist.
   */
  expect?: { every: 'daily' | 'weekly'; timezone: string };
}

export interface LocalSourceConfig {
  driver: 'local';
  /** Absolute path (relative paths in the file are resolved against the config file's folder). */
  path: string;
  recursive: boolean;
  select: SelectorConfig;
}

export type SourceConfig = LocalSourceConfig;

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
