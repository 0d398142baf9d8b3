import type { Expectation, ProbeConfig } from '../../orchestrator/config/types.js';
import type { ProbeResult } from '../../orchestrator/domain.js';
import { quoteIdent } from './plain-sql-filter.js';

/**
 * SQL probes against the restored database. Each gives name, expected, actual, pass and
 * duration; a probe whose query fails is a failed probe with the error, never a crash.
 */
export interface ProbeEnv {
  /** Runs one query in the restored database; returns psql's unaligned, tuples-only output. */
  query(sql: string, timeoutMs: number): Promise<string>;
  backupTime: Date;
  signal: AbortSignal;
}

export async function runSqlProbes(probes: readonly ProbeConfig[], env: ProbeEnv): Promise<ProbeResult[]> {
  const results: ProbeResult[] = [];
  for (const probe of probes) {
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

async function runOne(probe: ProbeConfig, env: ProbeEnv): Promise<Omit<ProbeResult, 'durationMs'>> {
  const base = { name: probe.name, type: probe.type, expected: describeExpected(probe) };
  switch (probe.type) {
    case 'sql': {
      const out = await env.query(probe.sql, probe.timeoutMs);
      const value = out.split('\n')[0]?.split('|')[0] ?? '';
      const actual = out === '' ? '(no rows)' : value;
      return { ...base, actual, pass: out !== '' && meets(value, probe.expect) };
    }
    case 'tablesExist': {
      const list = probe.tables.map((t) => `(${literal(t)})`).join(', ');
      const out = await env.query(`SELECT t FROM (VALUES ${list}) AS v(t) WHERE to_regclass(t) IS NULL`, probe.timeoutMs);
      const missing = out.split('\n').filter(Boolean);
      return { ...base, actual: missing.length ? `missing: ${missing.join(', ')}` : 'all present', pass: missing.length === 0 };
    }
    case 'rowCount': {
      const out = await env.query(`SELECT count(*) FROM ${qualified(probe.table)}`, probe.timeoutMs);
      const n = Number(out.trim());
      return { ...base, actual: `${n} rows`, pass: n >= probe.atLeast };
    }
    case 'freshness': {
      const out = await env.query(
        `SELECT extract(epoch FROM max(${ident(probe.column)}))::float8 FROM ${qualified(probe.table)}`,
        probe.timeoutMs,
      );
      if (out.trim() === '') return { ...base, actual: 'no rows', pass: false };
      const newest = new Date(Number(out.trim()) * 1000);
      const lagMs = env.backupTime.getTime() - newest.getTime();
      return {
        ...base,
        actual: `newest ${newest.toISOString()}, ${formatLag(lagMs)} before the backup time ${env.backupTime.toISOString()}`,
        pass: lagMs <= probe.withinMs,
      };
    }
  }
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

function describeExpected(probe: ProbeConfig): string {
  switch (probe.type) {
    case 'sql': {
      const e = probe.expect;
      if (e.op === 'nonEmpty') return 'a non-empty result';
      if (e.op === 'matches') return `a value matching /${e.value}/`;
      return `${{ equals: '', atLeast: 'at least ', atMost: 'at most ' }[e.op]}${e.value}`;
    }
    case 'tablesExist':
      return `tables exist: ${probe.tables.join(', ')}`;
    case 'rowCount':
      return `at least ${probe.atLeast} rows in ${probe.table}`;
    case 'freshness':
      return `newest ${probe.table}.${probe.column} within ${formatLag(probe.withinMs)} of the backup time`;
  }
}

/** `schema.table` or `table`. */
function qualified(name: string): string {
  return name
    .split('.')
    .map((part) => ident(part))
    .join('.');
}

/** Plain lowercase names stay as SQL would read them; anything else is quoted exactly. */
function ident(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : quoteIdent(name);
}

function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

function formatLag(ms: number): string {
  const sign = ms < 0 ? '-' : '';
  const abs = Math.abs(ms);
  if (abs >= 3_600_000) return `${sign}${(abs / 3_600_000).toFixed(1)}h`;
  if (abs >= 60_000) return `${sign}${Math.round(abs / 60_000)}m`;
  return `${sign}${Math.round(abs / 1000)}s`;
}
