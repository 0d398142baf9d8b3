/**
 * The evidence store's seam: the one thing the SQL layer needs from a database. Two
 * implementations sit beside it: `pg-executor.ts` (a PostgreSQL server through a small
 * `pg.Pool`, for any number of processes) and `pglite-executor.ts` (embedded PGlite in the data
 * directory, for one process at a time). Every query in `run-store.ts` and `migrate.ts` runs on
 * both, so keep it to plain parameterised SQL that PostgreSQL 13+ understands.
 *
 * An executor owns its connections: `close()` releases them (and PGlite's lock file) and is safe
 * to call twice.
 */
export interface SqlExecutor {
  /** One statement, `$1..$n` parameters. Rows come back with the driver's type parsing. */
  query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
  /**
   * Runs `fn` in one transaction on one connection: BEGIN, `fn`'s statements, COMMIT; ROLLBACK
   * when `fn` throws (the error is rethrown). Use `q` inside, never `query`: on PostgreSQL
   * `query` takes another pooled connection, outside the transaction.
   */
  transaction<T>(fn: (q: QueryFn) => Promise<T>): Promise<T>;
  /**
   * A script of several statements, no parameters, run on one connection. It may contain
   * `BEGIN ... COMMIT`; if any statement fails, an open transaction is rolled back before the
   * error is rethrown, so the connection never goes back to a pool mid-transaction.
   */
  exec(sqlText: string): Promise<void>;
  close(): Promise<void>;
  readonly kind: 'postgres' | 'pglite';
  /**
   * Bytes of the embedded store's WebAssembly linear memory (PostgreSQL's heap, buffer pool and
   * caches inside this process; it only grows). Absent for a PostgreSQL server, which runs in
   * its own processes.
   */
  memoryBytes?(): number;
}

/** One parameterised statement inside a transaction (see `SqlExecutor.transaction`). */
export type QueryFn = <R = Record<string, unknown>>(text: string, values?: unknown[]) => Promise<{ rows: R[] }>;

/** The SQLSTATE of a database error from either driver (`23505` unique violation, ...). */
export function sqlStateOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}
