import { execFile } from 'node:child_process';
import { sha256 } from './bytes.js';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { PG_BIN_DIR, type PgCluster } from './pg-cluster.js';

const run = promisify(execFile);

/**
 * Real backups for tests: databases created on a real PostgreSQL server and dumped with the real
 * pg_dump, then damaged the way backups are damaged in the field.
 */
export interface ShopOptions {
  customers?: number;
  orders?: number;
  /** Omit the orders table (a dump whose schema lost a table). */
  withoutOrders?: boolean;
  /** No tables at all. */
  empty?: boolean;
  /** Newest order's age at dump time, hours. */
  newestOrderAgeHours?: number;
  /** A role that owns the tables (plain dumps then carry OWNER TO / GRANT for it). */
  owner?: string;
}

let counter = 0;

export async function createShopDatabase(cluster: PgCluster, opts: ShopOptions = {}): Promise<string> {
  const db = `shop_${process.pid}_${++counter}`;
  await cluster.createDatabase(db);
  if (opts.empty) return db;
  const customers = opts.customers ?? 500;
  const orders = opts.orders ?? 5000;
  const newest = opts.newestOrderAgeHours ?? 1;
  let sql = `
    CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL);
    INSERT INTO customers SELECT g, 'Customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, ${customers}) g;`;
  if (!opts.withoutOrders) {
    sql += `
    CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers(id),
                         total_cents integer NOT NULL, note text, created_at timestamptz NOT NULL);
    INSERT INTO orders SELECT g, 1 + g % ${customers}, 100 + (g::bigint * 7919) % 50000, E'line\\twith tab ' || g,
           now() - interval '${newest} hours' - (g % 500) * interval '1 hour' FROM generate_series(1, ${orders}) g;`;
  }
  if (opts.owner) {
    sql += `
    DO $$ BEGIN CREATE ROLE ${opts.owner}; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
    ALTER TABLE customers OWNER TO ${opts.owner};
    GRANT SELECT ON customers TO PUBLIC;`;
    if (!opts.withoutOrders) sql += `ALTER TABLE orders OWNER TO ${opts.owner}; GRANT SELECT, INSERT ON orders TO ${opts.owner};`;
  }
  await cluster.psql(sql, db);
  return db;
}

export type DumpKind = 'custom' | 'plain' | 'plain.gz' | 'custom.gz' | 'tar' | 'directory' | 'custom.zst' | 'plain.xz' | 'tar.bz2';

/** Compressors of the .zst/.xz/.bz2 kinds: the real tools, as backup jobs run them. */
const COMPRESSORS: Record<string, string> = { zst: 'zstd', xz: 'xz', bz2: 'bzip2' };

/** pg_dump of `db` into `file`; returns the file's bytes' sha256. */
export async function dumpDatabase(cluster: PgCluster, db: string, file: string, kind: DumpKind, extraArgs: string[] = []): Promise<string> {
  const format = kind.startsWith('custom') ? 'c' : kind.startsWith('tar') ? 't' : kind === 'directory' ? 'd' : 'p';
  const tmp = `${file}.tmp-dump`;
  await run(path.join(PG_BIN_DIR, 'pg_dump'), [`-F${format}`, ...extraArgs, '-f', tmp, cluster.urlFor(db)], { maxBuffer: 64 * 1024 * 1024 });
  if (kind === 'directory') {
    // A directory-format dump, tarred up for storage as backup jobs do.
    await run('tar', ['-cf', `${tmp}.tar`, '-C', tmp, '.']);
    await fs.rm(tmp, { recursive: true });
    await fs.rename(`${tmp}.tar`, tmp);
  }
  const tool = COMPRESSORS[kind.split('.')[1] ?? ''];
  if (tool) await fs.writeFile(tmp, (await run(tool, ['-c', '-q', tmp], { encoding: 'buffer', maxBuffer: 1024 ** 3 })).stdout);
  let bytes = await fs.readFile(tmp);
  await fs.rm(tmp);
  if (kind.endsWith('.gz')) bytes = gzipSync(bytes);
  await fs.writeFile(file, bytes);
  return sha256(bytes);
}

/** pg_dumpall of the whole cluster: roles, then every database with CREATE DATABASE and \\connect. */
export async function dumpCluster(cluster: PgCluster, file: string): Promise<void> {
  await run(path.join(PG_BIN_DIR, 'pg_dumpall'), ['-f', file, '-d', cluster.url], { maxBuffer: 64 * 1024 * 1024 });
}

export { sha256 };

export async function writeSidecar(file: string, hex: string): Promise<void> {
  await fs.writeFile(`${file}.sha256`, `${hex}  ${path.basename(file)}\n`);
}

/** Keeps the first `fraction` of the file: an upload or a disk that stopped half way. */
export async function truncateFile(file: string, fraction: number): Promise<void> {
  const bytes = await fs.readFile(file);
  await fs.writeFile(file, bytes.subarray(0, Math.floor(bytes.length * fraction)));
}

/** Flips bytes in the middle of the file: bit rot, a bad sector, a tampered copy. */
export async function corruptFile(file: string, at = 0.5, count = 16): Promise<void> {
  const bytes = await fs.readFile(file);
  const start = Math.floor(bytes.length * at);
  for (let i = start; i < Math.min(bytes.length, start + count); i++) bytes[i] = bytes[i]! ^ 0xff;
  await fs.writeFile(file, bytes);
}

/** Dates a file in the past so it is outside the settle time. */
export async function age(file: string, ms: number): Promise<void> {
  const t = new Date(Date.now() - ms);
  await fs.utimes(file, t, t);
}

/** A file name with the backup time in it, as backup jobs write them. */
export function stampedName(prefix: string, at: Date, ext: string): string {
  return `${prefix}-${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}${ext}`;
}
