import { pipeline, type Readable } from 'node:stream';
import type { PolicyConfig } from '../../orchestrator/core/config-types.js';
import { DEFAULTS } from '../../orchestrator/core/defaults.js';
import type { ProbeResult } from '../../orchestrator/core/domain.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { formatBytes } from '../../orchestrator/core/format.js';
import { peek } from '../../orchestrator/core/integrity.js';
import { decompress, decompressInSandbox } from '../compression.js';
import { FILES_USER } from '../images/build-image.js';
import { baselineOf, runSqlProbes, type SqlDialect } from '../probes/sql-probes.js';
import { emptyDatabaseReasons, type Inspection, type RestoreContext, type RestoreOutcome, type Restorer } from '../restorer.js';
import type { ExecResult, SandboxSpec } from '../sandbox-runtime.js';
import { ByteTally } from './byte-tally.js';
import { detectSqliteBackup, validPageSize, type DbHeader } from './sqlite-format.js';
import { truncate } from '../bytes.js';
import { filesSandboxSpec } from '../files/files-restorer.js';

const DB_FILE = '/restore/restored.sqlite';
/** Everything after the restore reads the database read-only. */
const DB_READ_ONLY = `file:${DB_FILE}?mode=ro`;
/**
 * sqlite3 as every step runs it: no ~/.sqliterc, no prompts, stop at the first error, and safe
 * mode (no .shell/.system/.load/ATTACH/readfile()/writefile()), so neither a dump's dot-commands
 * nor a probe's SQL reach beyond the database.
 */
const SQLITE3 = ['sqlite3', '-init', '/dev/null', '-batch', '-bail', '-safe'];
/** How long a query waits on a lock (nothing else writes the restored copy; this only guards). */
const BUSY_TIMEOUT_MS = 5_000;
/** Bytes of the restored database before the restore stops (a decompression bomb). */
const MAX_BYTES = DEFAULTS.filesMaxBytes;

/**
 * SQLite: a database file (the file itself, as copied or as written by `sqlite3 .backup` /
 * `VACUUM INTO`) or a `sqlite3 .dump`, either optionally compressed; the format comes from the
 * bytes.
 *
 * A database file is streamed into the run's volume as is, its length checked against the page
 * count its header promises (a short file is a truncated backup), then `PRAGMA integrity_check`
 * must say "ok". A dump is loaded into a new database by sqlite3 itself, and must end with its
 * COMMIT (without it sqlite3 rolls everything back).
 *
 * Sandbox: backproof/files as uid 1000 with NO capabilities, read-only root, the database in a
 * per-run volume at /restore (owned by that user in the image), scratch in a /tmp tmpfs. Nothing
 * listens anywhere: every step is a sqlite3 process over the file.
 */
export class SqliteRestorer implements Restorer<'sqlite'> {
  readonly kind = 'sqlite' as const;
  private readonly output: string[] = [];

  sandboxSpec(policy: PolicyConfig, runId: string, image?: string): SandboxSpec {
    return filesSandboxSpec(policy, runId, image);
  }

  async prepare(ctx: RestoreContext<'sqlite'>): Promise<{ serverVersion: string }> {
    const r = await ctx.sandbox.exec(['sqlite3', '-version'], { signal: ctx.signal, user: FILES_USER });
    if (r.exitCode !== 0) {
      throw new VerificationError('sandbox_failed', `image ${ctx.sandbox.image} has no working sqlite3 (exit ${r.exitCode}: ${lastLine(r.stderr)}); use ${DEFAULTS.filesImage} or an image with the sqlite3 shell`);
    }
    return { serverVersion: `SQLite ${r.stdout.trim().split(/\s+/)[0] ?? 'unknown'}` };
  }

  async restore(ctx: RestoreContext<'sqlite'>, input: Readable): Promise<RestoreOutcome> {
    const { sandbox, signal } = ctx;
    const { compression, stream: plainBytes } = await decompress(input, (c, compressed) => decompressInSandbox(sandbox, c, compressed, { signal, user: FILES_USER }));
    const { head, stream } = await peek(plainBytes, 64 * 1024);
    if (head.length === 0) {
      throw new VerificationError('empty_backup', compression === 'none' ? 'the backup is empty (0 bytes)' : `the ${compression} backup decompresses to nothing`);
    }
    const backup = detectSqliteBackup(head);
    switch (backup.format) {
      case 'sqlite-db-short':
        stream.destroy();
        throw new VerificationError('truncated_dump', `the database file ends inside its own 100-byte header (${head.length} bytes in all)`);
      case 'other':
        stream.destroy();
        throw new VerificationError('unrecognized_format', `not a SQLite database or sqlite3 .dump: the backup is ${backup.looksLike}`);
      case 'sqlite-dump':
        return { format: 'sqlite-dump', compression, header: await this.loadDump(ctx, stream) };
      case 'sqlite-db':
        return { format: 'sqlite-db', compression, header: await this.copyDatabase(ctx, stream, backup.header) };
    }
  }

  async ready(ctx: RestoreContext<'sqlite'>): Promise<void> {
    const r = await this.sqlite(ctx, ['-readonly', DB_READ_ONLY, 'SELECT 1']);
    if (r.exitCode !== 0 || r.stdout.trim() !== '1') throw sqliteFailure('opening the restored database', r, ctx.policy.sandbox.memoryBytes);
  }

  async inspect(ctx: RestoreContext<'sqlite'>): Promise<Inspection> {
    // One row of JSON, so that no table name (with | or a newline in it) can confuse the parsing.
    const listed = await this.sqlite(ctx, [
      '-list',
      '-noheader',
      '-readonly',
      DB_READ_ONLY,
      `SELECT json_object(
         'tables', json((SELECT json_group_array(json_object('name', name, 'virtual', sql LIKE 'CREATE VIRTUAL TABLE%'))
                           FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\')),
         'bytes', (SELECT page_count * page_size FROM pragma_page_count, pragma_page_size),
         'fk', (SELECT count(*) FROM pragma_foreign_key_check))`,
    ]);
    if (listed.exitCode !== 0) throw sqliteFailure('listing the restored tables', listed, ctx.policy.sandbox.memoryBytes);
    const stats = JSON.parse(listed.stdout) as { tables: Array<{ name: string; virtual: number }>; bytes: number; fk: number };
    const tables = stats.tables;
    // Virtual tables (FTS and the like) keep their rows in shadow tables, which are counted.
    const real = tables.filter((t) => !t.virtual);
    let total = 0;
    if (real.length > 0) {
      const counted = await this.sqlite(ctx, ['-list', '-noheader', '-readonly', DB_READ_ONLY, real.map((t) => `SELECT count(*) FROM ${quoteIdent(t.name)};`).join('\n')]);
      if (counted.exitCode !== 0) throw sqliteFailure('counting the restored rows', counted, ctx.policy.sandbox.memoryBytes);
      total = counted.stdout.split('\n').filter(Boolean).reduce((sum, n) => sum + Number(n), 0);
    }
    const summary = { tables: tables.length, rows: total, sizeBytes: stats.bytes, foreignKeyViolations: stats.fk };
    return { summary, reasons: emptyDatabaseReasons('the database', 'the file', tables.length, total, ctx.policy.sqlite.allowEmpty) };
  }

  async probe(ctx: RestoreContext<'sqlite'>): Promise<ProbeResult[]> {
    return runSqlProbes(ctx.policy.probes, {
      dialect: SQLITE_DIALECT,
      backupTime: ctx.backupTime,
      signal: ctx.signal,
      ...baselineOf(ctx),
      query: async (sql, timeoutMs) => {
        // sqlite3 has no statement timeout: coreutils' timeout ends the process instead.
        const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
        const r = await ctx.sandbox.exec(
          ['timeout', '-k', '2', String(seconds), ...SQLITE3, '-list', '-noheader', '-cmd', `.timeout ${BUSY_TIMEOUT_MS}`, '-readonly', DB_READ_ONLY, sql],
          { signal: ctx.signal, user: FILES_USER },
        );
        if (r.exitCode === 124 || r.exitCode === 137) throw new Error(`the query ran past its timeout of ${timeoutMs} ms`);
        if (r.exitCode !== 0) throw new Error(sqliteWords(firstErrorLine(r.stderr)) || `sqlite3 exited with ${r.exitCode}`);
        return r.stdout.replace(/\n$/, '');
      },
    });
  }

  async logTail(): Promise<string> {
    return this.output.join('\n').slice(-4000);
  }

  /** Streams a database file into the volume, checks its length against its header, then its integrity. */
  private async copyDatabase(ctx: RestoreContext<'sqlite'>, stream: Readable, header: DbHeader): Promise<Record<string, string>> {
    const facts = { ...header.facts };
    if (!validPageSize(header.pageSize)) {
      stream.destroy();
      throw new VerificationError('restore_failed', `the database header is damaged: page size ${header.pageSize} is not a power of two from 512 to 65536`);
    }
    const tally = new ByteTally({ maxBytes: MAX_BYTES });
    const copy = await ctx.sandbox.exec(['dd', `of=${DB_FILE}`, 'bs=1M', 'status=none'], {
      stdin: pipeline(stream, tally, () => undefined),
      signal: ctx.signal,
      user: FILES_USER,
    });
    this.keep('dd', copy.stderr);
    if (copy.exitCode !== 0) throw new VerificationError('sandbox_failed', `writing the database into the sandbox's volume failed (dd exit ${copy.exitCode}): ${lastLine(copy.stderr)}`);
    const size = tally.bytes;
    facts.fileBytes = String(size);
    const { pageSize, pageCount, expectedBytes } = header;
    if (expectedBytes !== undefined && size < expectedBytes) {
      const missing = expectedBytes - size;
      throw new VerificationError(
        'truncated_dump',
        `the database file ends early: it is ${formatBytes(size)} (${size} bytes), but its header says ${pageCount} pages of ${pageSize} bytes (${expectedBytes} bytes); ${missing} bytes (${Math.ceil(missing / pageSize)} pages) are missing`,
      );
    }
    if (expectedBytes === undefined && size % pageSize !== 0) {
      throw new VerificationError('truncated_dump', `the database file ends inside a page: ${size} bytes is not a whole number of ${pageSize}-byte pages`);
    }
    if (expectedBytes !== undefined && size > expectedBytes) facts.trailingBytes = `${size - expectedBytes} (past the header's page count; SQLite ignores them)`;
    if (header.wal) facts.journalMode = 'wal (commits still in the -wal file when the copy was made are not in a plain file copy)';

    const check = await this.sqlite(ctx, ['-list', '-noheader', '-readonly', DB_READ_ONLY, 'PRAGMA integrity_check(20)']);
    // The check prints what it found, and on some damage then stops with an error of its own.
    const found = check.stdout.split('\n').map((l) => l.trim()).filter((l) => l && !/^\*\*\* in database \w+ \*\*\*$/.test(l));
    const ok = check.exitCode === 0 && found.length === 1 && found[0] === 'ok';
    if (!ok && (found.length === 0 || check.exitCode >= 128)) throw sqliteFailure('PRAGMA integrity_check', check, ctx.policy.sandbox.memoryBytes);
    if (!ok) {
      const problems = found.filter((l) => l !== 'database disk image is malformed');
      const count = problems.length >= 20 ? '20 or more problems' : `${problems.length} problem(s)`;
      throw new VerificationError(
        'restore_failed',
        `the database is damaged: PRAGMA integrity_check reports ${count}: ${problems.slice(0, 3).map((p) => truncate(p, 160)).join('; ')}${problems.length > 3 ? '; …' : ''}`,
      );
    }
    facts.integrityCheck = 'ok';
    return facts;
  }

  /** Loads a `sqlite3 .dump` into a new database; its closing COMMIT must be there. */
  private async loadDump(ctx: RestoreContext<'sqlite'>, stream: Readable): Promise<Record<string, string>> {
    const tally = new ByteTally({ tailBytes: 4096, maxBytes: MAX_BYTES });
    const load = await ctx.sandbox.exec([...SQLITE3, DB_FILE], { stdin: pipeline(stream, tally, () => undefined), signal: ctx.signal, user: FILES_USER });
    this.keep('sqlite3 (loading the dump)', load.stderr);
    if (load.exitCode >= 128) throw sqliteFailure('loading the dump', load, ctx.policy.sandbox.memoryBytes);
    const lines = tally.tail().split('\n').map((l) => l.trim()).filter(Boolean);
    const last = lines.at(-1) ?? '';
    if (load.stdinComplete && !/^COMMIT;$/i.test(last)) {
      const words = load.exitCode !== 0 ? ` (sqlite3: ${firstErrorLine(load.stderr)})` : '';
      throw new VerificationError('truncated_dump', `the sqlite3 .dump ends early: its closing "COMMIT;" is missing, so nothing of it would be kept (last line: "${truncate(last, 80)}")${words}`);
    }
    if (load.exitCode !== 0) throw new VerificationError('restore_failed', `loading the sqlite3 .dump failed: ${firstErrorLine(load.stderr)}`);
    const facts: Record<string, string> = { dumpBytes: String(tally.bytes) };
    const info = await this.sqlite(ctx, ['-list', '-noheader', '-readonly', DB_READ_ONLY, 'PRAGMA page_size; PRAGMA page_count; PRAGMA encoding;']);
    const [pageSize, pageCount, encoding] = info.stdout.split('\n');
    if (info.exitCode === 0) Object.assign(facts, { pageSize, pageCount, textEncoding: encoding });
    return facts;
  }

  private async sqlite(ctx: RestoreContext<'sqlite'>, args: string[]): Promise<ExecResult> {
    const r = await ctx.sandbox.exec([...SQLITE3, '-cmd', `.timeout ${BUSY_TIMEOUT_MS}`, ...args], { signal: ctx.signal, user: FILES_USER });
    this.keep('sqlite3', r.stderr);
    return r;
  }

  /** Keeps a tool's last words for the evidence's log tail. */
  private keep(tool: string, stderr: string): void {
    const text = stderr.trim();
    if (!text) return;
    this.output.push(`${tool}: ${text.slice(-2000)}`);
    if (this.output.length > 10) this.output.shift();
  }
}

/**
 * What a failed sqlite3 says about the backup: words of a damaged file make it a `fail`; a
 * killed process or anything else is the sandbox's (an `error`).
 */
function sqliteFailure(what: string, r: ExecResult, memoryBytes: number): VerificationError {
  if (r.exitCode >= 128) {
    const sig = r.exitCode - 128;
    return new VerificationError(
      'sandbox_failed',
      `${what}: sqlite3 was killed by signal ${sig}${sig === 9 ? ` (most often the sandbox's memory limit of ${formatBytes(memoryBytes)}: raise sandbox.memory)` : ''}`,
    );
  }
  const line = sqliteWords(firstErrorLine(r.stderr || r.stdout));
  if (/unsupported file format/i.test(line)) {
    return new VerificationError('unsupported_format', `${what}: the database uses a newer file format than the sandbox's SQLite reads (${line})`);
  }
  if (/no such module|no such collation/i.test(line)) {
    return new VerificationError('unsupported_format', `${what}: the database needs what the sandbox's sqlite3 lacks (${line}); set sandbox.image to an image that has it`);
  }
  if (/out of memory|database or disk is full/i.test(line)) {
    return new VerificationError('sandbox_failed', `${what}: ${line}; raise sandbox.memory, or free space on the engine's disk`);
  }
  if (/file is not a database|malformed|corrupt|disk I\/O error/i.test(line)) {
    return new VerificationError('restore_failed', `the database is damaged: ${what}: sqlite3 says "${line}"`);
  }
  return new VerificationError('sandbox_failed', `${what} failed in the sandbox (sqlite3 exit ${r.exitCode}): ${line}`);
}

const SQLITE_DIALECT: SqlDialect = {
  missingTables: (tables) =>
    `WITH wanted(t) AS (VALUES ${tables.map((t) => `(${literal(bare(t))})`).join(', ')})
     SELECT t FROM wanted WHERE lower(t) NOT IN (SELECT lower(name) FROM sqlite_master WHERE type IN ('table', 'view'))`,
  count: (table) => `SELECT count(*) FROM ${quoteIdent(bare(table))}`,
  newest: (table, column) => `SELECT max(${quoteIdent(column)}) FROM ${quoteIdent(bare(table))}`,
  // Declared types, by SQLite's affinity rules (a column without a type holds anything).
  valueColumns: () =>
    `SELECT m.name, p.name, CASE WHEN upper(p.type) LIKE '%BLOB%' OR p.type = '' THEN 'binary' ELSE 'text' END
       FROM sqlite_master m JOIN pragma_table_info(m.name) p
      WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
        AND (upper(p.type) LIKE '%CHAR%' OR upper(p.type) LIKE '%TEXT%' OR upper(p.type) LIKE '%CLOB%' OR upper(p.type) LIKE '%BLOB%' OR p.type = '')
      ORDER BY m.name, p.cid LIMIT 100`,
  sampleHex: (table, column, _binary, n) =>
    `SELECT hex(substr(${quoteIdent(column)}, 1, 256)) FROM ${quoteIdent(bare(table))} WHERE typeof(${quoteIdent(column)}) IN ('text', 'blob') LIMIT ${n}`,
};

/** A SQLite file has one schema, `main`: `main.orders` is `orders`. */
function bare(table: string): string {
  return table.replace(/^main\./i, '');
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** sqlite3's message without its framing: "Error: in prepare, no such table: x (1)" -> "no such table: x". */
function sqliteWords(line: string): string {
  return line.replace(/^(Parse error|Runtime error|Error)( near line \d+)?: (in prepare, |stepping, )?/, '').replace(/ \(\d+\)$/, '');
}

function firstErrorLine(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  return truncate(lines.find((l) => /error/i.test(l)) ?? lines.at(-1) ?? 'no message', 300);
}

function lastLine(text: string): string {
  return truncate(text.trim().split('\n').at(-1) ?? '', 300);
}

