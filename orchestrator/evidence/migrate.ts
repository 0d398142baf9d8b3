import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackproofError } from '../core/errors.js';
import { packageInfo } from '../package-root.js';
import { sqlStateOf, type SqlExecutor } from './executor.js';

/**
 * Numbered SQL migrations (`migrations/NNNN_name.sql`), applied in order, each in its own
 * transaction under a transaction-level advisory lock, so several workers opening one PostgreSQL
 * at once apply each migration exactly once. Migration files use unqualified names: they run with
 * `search_path` set to the store's schema.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export interface MigrateResult {
  /** Versions this call applied (empty when the schema was already current). */
  applied: number[];
  /** The schema's version afterwards. */
  version: number;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]*$/;
const MIGRATION_FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/;
/** First key of the two-int advisory lock: 'bp' + 'mg', so it does not collide with others' locks. */
const LOCK_CLASS = 0x62706d67;

/** Checks a schema identifier ([a-z_][a-z0-9_]*, at most 63 bytes) and returns it quoted. */
export function quoteSchema(schema: string): string {
  if (!SCHEMA_NAME.test(schema) || schema.length > 63) {
    throw new BackproofError(
      'store_schema_invalid',
      `database schema ${JSON.stringify(schema)} is not a valid name: use lower-case letters, digits and _ (not starting with a digit), at most 63 characters`,
    );
  }
  return `"${schema}"`;
}

/** The folder of .sql files: beside this module in the sources, else the package's copy (from dist/). */
export function migrationsDir(): string {
  const here = fileURLToPath(new URL('./migrations/', import.meta.url));
  const candidates = [here];
  const root = packageInfo()?.root;
  if (root) candidates.push(path.join(root, 'orchestrator', 'evidence', 'migrations'));
  const found = candidates.find((dir) => existsSync(dir));
  if (!found) {
    throw new BackproofError('store_migrations_missing', `cannot find the evidence store's SQL migrations; looked in ${candidates.join(' and ')}: reinstall backproof`);
  }
  return found;
}

export function loadMigrations(dir: string = migrationsDir()): Migration[] {
  const migrations: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    const m = MIGRATION_FILE.exec(file);
    if (!m || m[1] === undefined || m[2] === undefined) continue;
    const version = Number(m[1]);
    if (migrations.some((x) => x.version === version)) {
      throw new BackproofError('store_migrations_invalid', `two migrations share version ${version} in ${dir}`);
    }
    migrations.push({ version, name: `${m[1]}_${m[2]}`, sql: readFileSync(path.join(dir, file), 'utf8') });
  }
  migrations.sort((a, b) => a.version - b.version);
  return migrations;
}

/** Brings `schema` up to the newest migration this code knows. */
export async function migrate(db: SqlExecutor, schema: string, migrations: Migration[] = loadMigrations()): Promise<MigrateResult> {
  const q = quoteSchema(schema);
  const lock = `SELECT pg_advisory_xact_lock(${LOCK_CLASS}, ${lockKey(schema)});`;
  const known = migrations.at(-1)?.version ?? 0;

  // Bootstrap the schema and the ledger, unless they exist (then no CREATE privilege is needed).
  const { rows: ledger } = await db.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [`${q}.schema_migrations`]);
  if (!ledger[0]?.present) {
    await db.exec(
      [
        'BEGIN;',
        lock,
        `CREATE SCHEMA IF NOT EXISTS ${q};`,
        `CREATE TABLE IF NOT EXISTS ${q}.schema_migrations (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());`,
        'COMMIT;',
      ].join('\n'),
    );
  }

  const done = await appliedVersions(db, q);
  const newest = Math.max(0, ...done);
  if (newest > known) {
    throw new BackproofError(
      'store_too_new',
      `the evidence store schema ${schema} is at version ${newest}, newer than this backproof knows (${known}); upgrade backproof, or use another database.schema`,
    );
  }

  const applied: number[] = [];
  for (const m of migrations) {
    if (done.has(m.version)) continue;
    // Record the version first: if another worker applied it while we waited for the lock, the
    // insert fails on the primary key and the whole script rolls back.
    const script = [
      'BEGIN;',
      lock,
      `SET LOCAL search_path TO ${q};`,
      `INSERT INTO schema_migrations (version, name, applied_at) VALUES (${m.version}, '${m.name}', now());`,
      m.sql,
      ';',
      'COMMIT;',
    ].join('\n');
    try {
      await db.exec(script);
      applied.push(m.version);
    } catch (err) {
      if (sqlStateOf(err) === '23505') continue; // applied concurrently
      if (err instanceof BackproofError) throw err;
      throw new BackproofError('store_migration_failed', `evidence store migration ${m.name} failed on schema ${schema}: ${(err as Error).message}`, { cause: err });
    }
  }
  return { applied, version: Math.max(0, ...(await appliedVersions(db, q))) };
}

async function appliedVersions(db: SqlExecutor, quotedSchema: string): Promise<Set<number>> {
  const { rows } = await db.query<{ version: number }>(`SELECT version FROM ${quotedSchema}.schema_migrations`);
  return new Set(rows.map((r) => Number(r.version)));
}

/** A stable signed 32-bit key per schema (FNV-1a), the second half of the advisory lock. */
function lockKey(schema: string): number {
  let h = 0x811c9dc5;
  for (const ch of Buffer.from(schema, 'utf8')) {
    h ^= ch;
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}
