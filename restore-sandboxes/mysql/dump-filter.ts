import { Transform, type TransformCallback } from 'node:stream';
import { replacementCollation } from './collations.js';
import { COMPLETION_LINE } from './dump-format.js';

/**
 * Passes a MySQL/MariaDB SQL dump through to the mariadb client, one pass, nothing buffered
 * beyond a line, while:
 * - replacing MySQL 8's _0900_ collations, which MariaDB lacks, with the nearest one the
 *   sandbox has (collations.ts), only where a collation is named (`COLLATE x`, `COLLATE=x`,
 *   `collation_connection = x`) and never on data lines (INSERT ...), so table data passes
 *   byte for byte;
 * - turning `SET @@GLOBAL.GTID_PURGED=...` (MySQL's GTID state, possibly spread over several
 *   lines; MariaDB has no such variable) into comments;
 * - turning `FLUSH PRIVILEGES` (after a restored mysql schema, from --all-databases
 *   --flush-privileges) into a comment: loading the production accounts would lock the
 *   verification out of its own sandbox; the restored accounts stay in the tables, as data;
 * - noting the databases the dump creates (`CREATE DATABASE`) or switches to (`USE`); before a
 *   `USE` of a database the dump did not create (mysqldump --databases --no-create-db), creating
 *   it, as the person restoring would;
 * - keeping the last bytes, for the "-- Dump completed" check.
 * Every change keeps the line count, so the client's "at line N" is a line of the backup itself.
 * Lines are handled as latin1 text, byte for byte, so dumps in any character set pass intact.
 */
export interface MysqlDumpFilterOptions {
  /** Collations the server has (lowercase full names, e.g. utf8mb4_uca1400_ai_ci); when absent none are replaced. */
  collations?: ReadonlySet<string>;
}

const TAIL_BYTES = 4096;
/** A line longer than this that is not data is passed on unexamined rather than held in memory. */
const MAX_HELD_LINE = 4 * 1024 * 1024;
const DATA_LINE_STARTS = ['INSERT ', 'REPLACE ', '('];
const NAME = '(`(?:[^`]|``)+`|[A-Za-z0-9_$]+)';
const CREATE_DATABASE = new RegExp(String.raw`^CREATE\s+(?:DATABASE|SCHEMA)\s+(?:/\*!\d+\s+IF NOT EXISTS\s*\*/\s*|IF NOT EXISTS\s+)?${NAME}`, 'i');
const USE = new RegExp(String.raw`^USE\s+${NAME}\s*;`, 'i');
const GTID_PURGED = /^SET\s+@@GLOBAL\.GTID_PURGED\s*=/i;
const FLUSH_PRIVILEGES = /^(?:\/\*!\d*\s*)?FLUSH\s+PRIVILEGES\b[^;]*;\s*$/i;
const COLLATION = /(\bCOLLATE\s*=?\s*|\bcollation_(?:connection|database|server)\s*=\s*)(['`"]?)(utf8mb4_[A-Za-z0-9_]+)\2/gi;

export class MysqlDumpFilter extends Transform {
  /** MySQL collation -> the one used instead. */
  readonly collationsReplaced = new Map<string, string>();
  /** Databases the dump creates or switches to, in order of first mention. */
  readonly databases: string[] = [];
  /** Databases created by the filter before a `USE` (the dump did not create them). */
  readonly databasesAdded: string[] = [];
  /** Lines of `SET @@GLOBAL.GTID_PURGED` turned into comments. */
  gtidLinesDropped = 0;
  /** `FLUSH PRIVILEGES` statements turned into comments. */
  flushPrivilegesSkipped = 0;
  private readonly created = new Set<string>();
  private readonly collations: ReadonlySet<string> | undefined;
  private partial: Buffer = Buffer.alloc(0);
  /** The current line was judged before its end (data, or too long): pass its bytes on. */
  private passLine = false;
  private inGtid = false;
  private tail: Buffer = Buffer.alloc(0);

  constructor(opts: MysqlDumpFilterOptions = {}) {
    super({ highWaterMark: 1024 * 1024 });
    this.collations = opts.collations;
  }

  /** The last non-empty lines of the dump as it came in. */
  lastLines(n: number): string[] {
    return this.tail
      .toString('utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .slice(-n);
  }

  /** Whether the dump's last line is mysqldump's "-- Dump completed". */
  get completed(): boolean {
    return COMPLETION_LINE.test(this.lastLines(1)[0] ?? '');
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.keepTail(chunk);
    let rest = chunk;
    if (this.passLine) {
      const nl = chunk.indexOf(0x0a);
      this.push(nl < 0 ? chunk : chunk.subarray(0, nl + 1));
      if (nl < 0) return cb();
      this.passLine = false;
      rest = chunk.subarray(nl + 1);
    }
    const buf = this.partial.length > 0 ? Buffer.concat([this.partial, rest]) : rest;
    let start = 0;
    let passFrom = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      if (nl < 0) break;
      const replaced = this.line(buf, start, nl);
      if (replaced !== undefined) {
        if (start > passFrom) this.push(buf.subarray(passFrom, start));
        this.push(Buffer.from(replaced, 'latin1'));
        passFrom = nl; // the newline itself goes on with what follows
      }
      start = nl + 1;
    }
    if (start > passFrom) this.push(buf.subarray(passFrom, start));
    const pending = buf.subarray(start);
    if (pending.length > 0 && (this.isDataLine(pending) || pending.length > MAX_HELD_LINE)) {
      // A data line (a long extended INSERT) is not held back and re-copied chunk after chunk.
      this.push(pending);
      this.partial = Buffer.alloc(0);
      this.passLine = true;
    } else {
      this.partial = Buffer.from(pending);
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (this.partial.length > 0) {
      const replaced = this.line(this.partial, 0, this.partial.length);
      this.push(replaced !== undefined ? Buffer.from(replaced, 'latin1') : this.partial);
      this.partial = Buffer.alloc(0);
    }
    cb();
  }

  private keepTail(chunk: Buffer): void {
    this.tail = chunk.length >= TAIL_BYTES ? Buffer.from(chunk.subarray(-TAIL_BYTES)) : Buffer.concat([this.tail, chunk]).subarray(-TAIL_BYTES);
  }

  /** A line that holds table data: passed on unexamined. Undecided (false) while too short to tell. */
  private isDataLine(bytes: Buffer): boolean {
    if (this.inGtid) return false;
    const head = bytes.subarray(0, 8).toString('latin1').toUpperCase();
    return DATA_LINE_STARTS.some((s) => head.startsWith(s));
  }

  /** The replacement for buf[start, end) (without the newline), or undefined to pass it as is. */
  private line(buf: Buffer, start: number, end: number): string | undefined {
    const bytes = buf.subarray(start, end);
    if (this.isDataLine(bytes)) return undefined;
    const text = bytes.toString('latin1');
    if (this.inGtid || GTID_PURGED.test(text)) {
      this.inGtid = !text.trimEnd().endsWith(';');
      this.gtidLinesDropped++;
      return '-- backproof: GTID state dropped (MySQL GTID_PURGED; MariaDB has no such variable)';
    }
    if (FLUSH_PRIVILEGES.test(text)) {
      this.flushPrivilegesSkipped++;
      return '-- backproof: FLUSH PRIVILEGES skipped (the sandbox keeps its own accounts loaded)';
    }
    const create = CREATE_DATABASE.exec(text);
    if (create?.[1]) {
      const name = unquote(create[1]);
      this.created.add(name);
      this.note(name);
    }
    let out = text;
    const use = USE.exec(text);
    if (use?.[1]) {
      const name = unquote(use[1]);
      this.note(name);
      if (!this.created.has(name)) {
        this.created.add(name);
        this.databasesAdded.push(name);
        out = `CREATE DATABASE IF NOT EXISTS ${use[1]}; ${out}`;
      }
    }
    if (this.collations && /collat/i.test(text)) {
      const available = this.collations;
      out = out.replace(COLLATION, (all: string, lead: string, quote: string, name: string) => {
        const instead = replacementCollation(name, available);
        if (!instead) return all;
        this.collationsReplaced.set(name, instead);
        return `${lead}${quote}${instead}${quote}`;
      });
    }
    return out === text ? undefined : out;
  }

  private note(name: string): void {
    if (!this.databases.includes(name)) this.databases.push(name);
  }
}

/** A database name as the dump wrote it (backquoted or bare, latin1 text) -> its UTF-8 name. */
function unquote(quoted: string): string {
  const name = quoted.startsWith('`') ? quoted.slice(1, -1).replace(/``/g, '`') : quoted;
  return Buffer.from(name, 'latin1').toString('utf8');
}
