import type { Expectation, ProbeConfig, SqlProbeConfig } from '../../orchestrator/core/config-types.js';
import type { ProbeResult, RunArtifact } from '../../orchestrator/core/domain.js';
import { decodeCounts, encodeCounts, judgeRise, valueLooksRandom, VALUES_ARTIFACT, type ColumnCounts } from './random-values.js';

/**
 * SQL probes against the restored database, for every SQL kind (postgres, mysql, sqlite): the
 * kind gives its dialect and a way to run one query. Each probe gives name, expected, actual,
 * pass and duration; a probe whose query fails is a failed probe with the error, never a crash.
 */
export interface ProbeEnv {
  /**
   * Runs one query in the restored database; returns the rows one per line, columns separated
   * by `|` (psql -A -t, mysql -N -B with tabs turned into |, sqlite3 -list).
   */
  query(sql: string, timeoutMs: number): Promise<string>;
  dialect: SqlDialect;
  backupTime: Date;
  signal: AbortSignal;
  /** The policy's last passing run's artifact (RestoreContext.lastPassing), for probes judged against it. */
  lastPassing?: (artifact: string) => Promise<{ runId: string; startedAt: string; bytes: Buffer } | undefined>;
  /** Keeps a baseline artifact with the run (RestoreContext.keep). */
  keep?: (artifact: RunArtifact) => void;
}

/** The SQL each kind needs for the probe shortcuts. */
export interface SqlDialect {
  /** A query returning, one per line, those of `tables` that do not exist. */
  missingTables(tables: string[]): string;
  /** A query returning the row count of `table` (`schema.table` or `table`). */
  count(table: string): string;
  /** A query returning the newest value of `column`: epoch seconds, or a timestamp as text. */
  newest(table: string, column: string): string;
  /** A query returning `table|column|text` or `table|column|binary` for the user tables' text and binary columns, at most 100. */
  valueColumns(): string;
  /** A query returning the hex of the first 256 bytes of up to `n` non-null values of `column`, one per line. */
  sampleHex(table: string, column: string, binary: boolean, n: number): string;
}

/** What a restore context offers the probes judged against the last passing run. */
export function baselineOf(ctx: { lastPassing?: ProbeEnv['lastPassing']; keep?: ProbeEnv['keep'] }): Pick<ProbeEnv, 'lastPassing' | 'keep'> {
  return { ...(ctx.lastPassing ? { lastPassing: ctx.lastPassing.bind(ctx) } : {}), ...(ctx.keep ? { keep: ctx.keep.bind(ctx) } : {}) };
}

export function isSqlProbe(probe: ProbeConfig): probe is SqlProbeConfig {
  return probe.type === 'sql' || probe.type === 'tablesExist' || probe.type === 'rowCount' || probe.type === 'freshness' || probe.type === 'randomValues';
}

/** Runs the SQL probes among `probes` (others are run elsewhere), in order. */
export async function runSqlProbes(probes: readonly ProbeConfig[], env: ProbeEnv): Promise<ProbeResult[]> {
  const results: ProbeResult[] = [];
  for (const probe of probes.filter(isSqlProbe)) {
    env.signal.throwIfAborted();
    const started = performance.now();
    let result: Omit<ProbeResult, 'durationMs'>;
    try {
      result = await runOne(probe, env);
    } catch (err) {
      env.signal.throwIfAborted();
      result = {
        name: probe.name,
        type: probe.type,
        expected: describeExpected(probe),
        actual: 'query failed',
        pass: false,
        error: (err as Error).message,
      };
    }
    results.push({ ...result, durationMs: Math.round(performance.now() - started) });
  }
  return results;
}

async function runOne(probe: SqlProbeConfig, env: ProbeEnv): Promise<Omit<ProbeResult, 'durationMs'>> {
  const base = { name: probe.name, type: probe.type, expected: describeExpected(probe) };
  switch (probe.type) {
    case 'sql': {
      const out = await env.query(probe.sql, probe.timeoutMs);
      const value = out.split('\n')[0]?.split('|')[0] ?? '';
      const actual = out === '' ? '(no rows)' : value;
      return { ...base, actual, pass: out !== '' && meets(value, probe.expect) };
    }
    case 'tablesExist': {
      const out = await env.query(env.dialect.missingTables(probe.tables), probe.timeoutMs);
      const missing = out.split('\n').filter(Boolean);
      return { ...base, actual: missing.length ? `missing: ${missing.join(', ')}` : 'all present', pass: missing.length === 0 };
    }
    case 'rowCount': {
      const out = await env.query(env.dialect.count(probe.table), probe.timeoutMs);
      const n = Number(out.trim());
      return { ...base, actual: `${n} rows`, pass: n >= probe.atLeast };
    }
    case 'freshness': {
      const out = await env.query(env.dialect.newest(probe.table, probe.column), probe.timeoutMs);
      const text = out.split('\n')[0]?.trim() ?? '';
      if (text === '' || text === 'NULL') return { ...base, actual: 'no rows', pass: false };
      const newest = parseTimestamp(text);
      if (!newest) return { ...base, actual: `"${text.slice(0, 60)}" is not a time`, pass: false };
      const lagMs = env.backupTime.getTime() - newest.getTime();
      return {
        ...base,
        actual: `newest ${newest.toISOString()}, ${formatLag(lagMs)} before the backup time ${env.backupTime.toISOString()}`,
        pass: lagMs <= probe.withinMs,
      };
    }
    case 'randomValues': {
      const counts: ColumnCounts = {};
      for (const line of (await env.query(env.dialect.valueColumns(), probe.timeoutMs)).split('\n')) {
        const [table, column, kind, ...rest] = line.split('|');
        if (!table || !column || rest.length > 0) continue; // a name holding "|" cannot be told apart
        const sample = await env.query(env.dialect.sampleHex(table, column, kind === 'binary', probe.sample), probe.timeoutMs);
        const judged = sample.split('\n').map((hex) => valueLooksRandom(Buffer.from(hex.trim(), 'hex'))).filter((v) => v !== undefined);
        counts[`${table}.${column}`] = [judged.length, judged.filter(Boolean).length];
      }
      env.keep?.({ name: VALUES_ARTIFACT, mediaType: 'application/gzip', bytes: encodeCounts(counts), baseline: true });
      const last = await env.lastPassing?.(VALUES_ARTIFACT);
      const before = last ? decodeCounts(last.bytes) : undefined;
      return { ...base, ...judgeRise(counts, before, probe.maxRise, last ? `in run ${last.runId.slice(0, 8)} of ${last.startedAt.slice(0, 10)}` : '') };
    }
  }
}

export function describeExpectation(e: Expectation): string {
  if (e.op === 'nonEmpty') return 'a non-empty result';
  if (e.op === 'matches') return `a value matching /${e.value}/`;
  return `${{ equals: '', atLeast: 'at least ', atMost: 'at most ' }[e.op]}${e.value}`;
}

export function meets(value: string, e: Expectation): boolean {
  switch (e.op) {
    case 'equals':
      return value === e.value;
    case 'atLeast':
      return value.trim() !== '' && Number(value) >= e.value;
    case 'atMost':
      return value.trim() !== '' && Number(value) <= e.value;
    case 'matches':
      return new RegExp(e.value).test(value);
    case 'nonEmpty':
      return value !== '';
  }
}

function describeExpected(probe: SqlProbeConfig): string {
  switch (probe.type) {
    case 'sql':
      return describeExpectation(probe.expect);
    case 'tablesExist':
      return `tables exist: ${probe.tables.join(', ')}`;
    case 'rowCount':
      return `at least ${probe.atLeast} rows in ${probe.table}`;
    case 'freshness':
      return `newest ${probe.table}.${probe.column} within ${formatLag(probe.withinMs)} of the backup time`;
    case 'randomValues':
      return `the share of random-looking values (in all and per column) up by at most ${Math.round(probe.maxRise * 1000) / 10}% since the last passing run`;
  }
}

/**
 * A column's newest value as a time: epoch seconds (or milliseconds, when that large), a
 * Julian day number, or an ISO-like text; text without a zone is read as UTC.
 */
export function parseTimestamp(text: string): Date | undefined {
  if (/^-?\d+(\.\d+)?$/.test(text)) {
    const n = Number(text);
    // A Julian day number (SQLite's julianday()): 1858-2332; as epoch seconds it would be
    // January 1970, which no backup's newest row is.
    if (n >= 2_400_000 && n < 2_600_000) return new Date((n - 2_440_587.5) * 86_400_000);
    return new Date(Math.abs(n) >= 1e11 ? n : n * 1000);
  }
  const m = /^(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i.exec(text);
  if (!m) return undefined;
  let zone = m[3] ?? 'Z';
  if (/^[+-]\d{2}$/.test(zone)) zone += ':00';
  else if (/^[+-]\d{4}$/.test(zone)) zone = `${zone.slice(0, 3)}:${zone.slice(3)}`;
  const date = new Date(`${m[1]}T${m[2] ?? '00:00:00'}${zone}`);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

export function formatLag(ms: number): string {
  const sign = ms < 0 ? '-' : '';
  const abs = Math.abs(ms);
  if (abs >= 3_600_000) return `${sign}${(abs / 3_600_000).toFixed(1)}h`;
  if (abs >= 60_000) return `${sign}${Math.round(abs / 60_000)}m`;
  return `${sign}${Math.round(abs / 1000)}s`;
}
