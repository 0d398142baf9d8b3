import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { DEFAULTS } from '../../orchestrator/core/defaults.js';
import { DockerRuntime } from '../../restore-sandboxes/docker/docker-runtime.js';
import { FILES_USER } from '../../restore-sandboxes/images/build-image.js';
import type { Sandbox } from '../../restore-sandboxes/sandbox-runtime.js';

/**
 * Real SQLite backups for tests, written by the real sqlite3 (the host has none): it runs in a
 * throwaway container from backproof/files, and each database or .dump streams out to a file.
 */
export class SqliteFixtures {
  private counter = 0;

  private constructor(private readonly sandbox: Sandbox) {}

  static async start(): Promise<SqliteFixtures> {
    const sandbox = await new DockerRuntime().create({
      runId: `fixtures-${randomUUID()}`,
      policy: 'sqlite-fixtures',
      image: DEFAULTS.filesImage,
      cmd: ['sleep', 'infinity'],
      user: FILES_USER,
      capAdd: [],
      memoryBytes: 1024 ** 3,
      cpus: 2,
      pids: 64,
      shmBytes: 64 * 1024 ** 2,
      tmpfs: { '/tmp': 64 * 1024 ** 2 },
      volumes: ['/restore'],
      readOnlyRoot: true,
    });
    return new SqliteFixtures(sandbox);
  }

  /** Runs `sql` in a new database and writes the database file to `file`. */
  async database(file: string, sql: string): Promise<void> {
    const db = await this.make(sql);
    await this.copyOut(['cat', db], file);
  }

  /** Runs `sql` in a new database and writes its `sqlite3 .dump` to `file`. */
  async dump(file: string, sql: string): Promise<void> {
    const db = await this.make(sql);
    await this.copyOut(['sqlite3', '-init', '/dev/null', db, '.dump'], file);
  }

  async stop(): Promise<void> {
    await this.sandbox.remove();
  }

  private async make(sql: string): Promise<string> {
    const db = `/restore/fixture-${++this.counter}.db`;
    const r = await this.sandbox.exec(['sqlite3', '-init', '/dev/null', '-bail', '-batch', db], { stdin: Readable.from([Buffer.from(sql)]) });
    if (r.exitCode !== 0) throw new Error(`sqlite3 failed making a fixture (exit ${r.exitCode}): ${r.stderr}`);
    return db;
  }

  private async copyOut(argv: string[], file: string): Promise<void> {
    const r = await this.sandbox.exec(argv, { stdout: createWriteStream(file) });
    if (r.exitCode !== 0) throw new Error(`${argv.join(' ')} failed (exit ${r.exitCode}): ${r.stderr}`);
  }
}

/** Numbers 1..n, for INSERT ... SELECT. */
const series = (n: number): string => `WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ${n})`;

/**
 * The shop: customers and orders, the newest order an hour old (created_at as UTC text, as
 * applications using SQLite's datetime() store it).
 */
export function shopSql(opts: { customers?: number; orders?: number; wal?: boolean } = {}): string {
  const customers = opts.customers ?? 500;
  const orders = opts.orders ?? 5000;
  return `${opts.wal ? 'PRAGMA journal_mode=WAL;\n' : ''}PRAGMA user_version = 3;
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL);
${series(customers)} INSERT INTO customers SELECT i, 'Customer ' || i, 'c' || i || '@example.com' FROM g;
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                     total_cents INTEGER NOT NULL, note TEXT, created_at TEXT NOT NULL);
${series(orders)} INSERT INTO orders SELECT i, 1 + i % ${customers}, 100 + (i * 7919) % 50000, 'line ' || i || ' with | a bar',
       datetime('now', '-' || (1 + i % 500) || ' hours') FROM g;
CREATE INDEX orders_by_customer ON orders(customer_id);
`;
}
