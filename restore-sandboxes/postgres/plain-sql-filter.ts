import { Transform, type TransformCallback } from 'node:stream';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { truncate } from '../bytes.js';

const IDENT = String.raw`"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*`;
const OWNER_TO = new RegExp(String.raw`\sOWNER TO (${IDENT});\s*$`);
const GRANT_TO = new RegExp(String.raw`^(?:ALTER DEFAULT PRIVILEGES\s.+?\s)?(?:GRANT|REVOKE)\s.+\s(?:TO|FROM)\s((?:${IDENT})(?:,\s*(?:${IDENT}))*)(?:\s+WITH\s.+|\s+GRANTED BY\s.+)?;\s*$`);
const POLICY_TO = new RegExp(String.raw`^CREATE POLICY .+?\sTO ((?:${IDENT})(?:,\s*(?:${IDENT}))*)(?:\s+USING\s|\s+WITH CHECK\s|;)`);
const FOR_ROLE = new RegExp(String.raw`^ALTER DEFAULT PRIVILEGES FOR ROLE (${IDENT})\s`);
const SET_ROLE = new RegExp(String.raw`^SET ROLE (${IDENT});`);
const SESSION_AUTH = /^SET SESSION AUTHORIZATION '((?:[^']|'')+)';/;
const CONNECT = /^\\c(?:onnect)?\s+(?:-reuse-previous=\S+\s+)?("(?:[^"]|"")+"|\S+)/;
/** pg_dump's own `\\connect`: one database name, bare or quoted (pg_dump quotes odd names as `"dbname='...'"`). */
const CONNECT_LINE = /^\\c(?:onnect)?(?:\s+-reuse-previous=(?:on|off))?\s+(?:[A-Za-z0-9_]+|"(?:[^"`]|"")+")\s*$/;
const ENCODING_LINE = /^\\encoding\s+[A-Za-z0-9_-]+\s*$/;
/** pg_dump 17.6/15.14 and later fence their output with these; the restore's own key replaces them. */
const RESTRICT_LINE = /^\\(?:un)?restrict(?:\s+[A-Za-z0-9]+)?\s*$/;
const BUILTIN = new Set(['public', 'current_user', 'session_user', 'current_role', 'postgres']);
const CREATE_ROLE = new RegExp(String.raw`^CREATE ROLE (${IDENT});\s*$`);
const CREATE_DATABASE = new RegExp(String.raw`^CREATE DATABASE (${IDENT})\s`);
const LOCALE_SETTING = /\b(LOCALE|LC_COLLATE|LC_CTYPE) = '((?:[^']|'')*)'/g;
/** First bytes of the only lines that can name a role or switch database: A G R S C \. */
const WATCHED_FIRST = new Set([0x41, 0x47, 0x52, 0x53, 0x43, 0x5c]);

/**
 * Passes a plain SQL dump through to psql while:
 * - creating, just before their first use, the roles the dump assigns ownership or privileges
 *   to (a restore into an empty sandbox has none of the production roles; without this every
 *   `ALTER ... OWNER TO app` stops the restore, and stripping ownership would lose facts);
 * - noting the database a `\connect` line switches to (dumps made with `pg_dump -C` or
 *   pg_dumpall), so probes run where the data went;
 * - keeping the last bytes, so the runner can check pg_dump's "dump complete" trailer;
 * - for cluster dumps (pg_dumpall): letting `CREATE ROLE x;` pass when the sandbox already has
 *   the role (`postgres` always exists);
 * - for `CREATE DATABASE` (pg_dumpall, pg_dump -C): noting the database, and when the dump asks
 *   for a locale the sandbox image does not have, using C.UTF-8 instead and saying so
 *   (`localesReplaced`), rather than failing a good backup on the sandbox's shortcoming.
 * - refusing (`unsafe_archive`, naming the line) every psql meta-command at the start of a line
 *   but pg_dump's own (`\\connect`/`\\c` with one database name, `\\encoding`, `\\restrict`,
 *   `\\unrestrict`): `\\!`, `\\o |cmd`, `\\copy ... program`, `\\setenv`, `\\i`, `\\w`, `\\g |cmd`...
 *   With `restrictKey`, psql itself also refuses any meta-command elsewhere on a line.
 * COPY data blocks pass untouched: their lines are data, not statements.
 */
export interface PlainSqlFilterOptions {
  /** Locales the sandbox has (`locale -a`); when absent, locales are left as they are. */
  locales?: ReadonlySet<string>;
  /**
   * psql's `\\restrict` key: the output starts with `\\restrict KEY`, so psql runs no
   * meta-command the dump holds (anywhere on a line); the dump's own `\\restrict` lines are
   * dropped and each `\\connect`/`\\encoding` line is let through between `\\unrestrict KEY`
   * and `\\restrict KEY`. Without a key, those lines pass as they are.
   */
  restrictKey?: string;
}

/** `en_US.UTF-8` and `en_US.utf8` name the same locale. */
export function normalizeLocale(name: string): string {
  return name.toLowerCase().replace(/utf-?8/, 'utf8');
}

interface LineAction {
  /** SQL to run before the line. */
  before?: string;
  /** The line to send instead of the original (without its newline). */
  replace?: string;
}
export class PlainSqlFilter extends Transform {
  readonly rolesCreated: string[] = [];
  readonly databasesCreated: string[] = [];
  readonly localesReplaced: string[] = [];
  connectedDatabase: string | undefined;
  private readonly seen = new Set<string>();
  private inCopy = false;
  private partial: Buffer = Buffer.alloc(0);
  /** The current line was judged before its end (COPY data, or no statement of interest): pass its bytes on. */
  private passLine = false;
  private tail = '';
  /** The dump's line number of the line being read. */
  private lineNo = 0;
  /** Lines added to the output: [dump line before which they were added, how many]. */
  private readonly added: Array<[number, number]> = [];
  private readonly restrictKey: string | undefined;

  private readonly locales: ReadonlySet<string> | undefined;

  constructor(opts: PlainSqlFilterOptions = {}) {
    super({ highWaterMark: 1024 * 1024 });
    this.locales = opts.locales ? new Set([...opts.locales].map(normalizeLocale)) : undefined;
    this.restrictKey = opts.restrictKey;
    if (opts.restrictKey !== undefined) {
      if (!/^[A-Za-z0-9]+$/.test(opts.restrictKey)) throw new Error('the restrict key is letters and digits');
      this.push(Buffer.from(`\\restrict ${opts.restrictKey}\n`));
      this.added.push([1, 1]);
    }
  }

  /** The dump's line number of a line of the output (psql's "psql:<stdin>:N:"); an added line counts as the dump line it precedes. */
  dumpLine(outputLine: number): number {
    let extra = 0;
    for (const [line, count] of this.added) {
      const at = line + extra;
      if (outputLine < at) break;
      if (outputLine < at + count) return line;
      extra += count;
    }
    return Math.max(1, outputLine - extra);
  }

  /** The last non-empty lines of the dump, for the completeness check. */
  lastLines(n: number): string[] {
    return this.tail
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .slice(-n);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let rest = chunk;
    if (this.passLine) {
      const nl = chunk.indexOf(0x0a);
      this.emit_(nl < 0 ? chunk : chunk.subarray(0, nl + 1));
      if (nl < 0) return cb();
      this.lineNo++;
      this.passLine = false;
      rest = chunk.subarray(nl + 1);
    }
    const buf = this.partial.length > 0 ? Buffer.concat([this.partial, rest]) : rest;
    let start = 0;
    let passFrom = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      if (nl < 0) break;
      let action: LineAction | undefined;
      try {
        action = this.line(buf, start, nl);
      } catch (err) {
        return cb(err as Error);
      }
      if (action) {
        this.emit_(buf.subarray(passFrom, start));
        if (action.before) this.emit_(Buffer.from(action.before, 'utf8'));
        if (action.replace !== undefined) {
          this.emit_(Buffer.from(action.replace + '\n', 'utf8'));
          passFrom = nl + 1;
        } else {
          passFrom = start;
        }
      }
      start = nl + 1;
    }
    this.emit_(buf.subarray(passFrom, start));
    // A long line (a big COPY row) is not held back and re-copied chunk after chunk: once it is
    // clear nothing on it matters, its bytes go straight on.
    const pending = buf.subarray(start);
    if (pending.length > 0 && !this.mustWaitForEnd(pending)) {
      this.emit_(pending);
      this.partial = Buffer.alloc(0);
      this.passLine = true;
    } else {
      this.partial = Buffer.from(pending);
    }
    cb();
  }

  /** Whether a partial line can only be judged whole. */
  private mustWaitForEnd(pending: Buffer): boolean {
    if (this.inCopy) return pending.length <= 3; // `\.` ends the data (`\.\r` with CRLF)
    return WATCHED_FIRST.has(pending[0]!);
  }

  override _flush(cb: TransformCallback): void {
    if (this.partial.length > 0) {
      let action: LineAction | undefined;
      try {
        action = this.line(this.partial, 0, this.partial.length);
      } catch (err) {
        return cb(err as Error);
      }
      if (action?.before) this.emit_(Buffer.from(action.before, 'utf8'));
      this.emit_(action?.replace !== undefined ? Buffer.from(action.replace, 'utf8') : this.partial);
    }
    cb();
  }

  private emit_(b: Buffer): void {
    if (b.length === 0) return;
    this.push(b);
    this.tail = (this.tail + b.subarray(Math.max(0, b.length - 1024)).toString('utf8')).slice(-1024);
  }

  /** Looks at one line; returns SQL to run before it or instead of it, if any. */
  private line(buf: Buffer, start: number, end: number): LineAction | undefined {
    this.lineNo++;
    const action = this.judge(buf, start, end);
    const added = (action?.before?.split('\n').length ?? 1) - 1 + (action?.replace?.split('\n').length ?? 1) - 1;
    if (added > 0) this.added.push([this.lineNo, added]);
    return action;
  }

  private judge(buf: Buffer, start: number, end: number): LineAction | undefined {
    let e = end;
    if (e > start && buf[e - 1] === 0x0d) e--;
    if (this.inCopy) {
      if (e - start === 2 && buf[start] === 0x5c && buf[start + 1] === 0x2e) this.inCopy = false;
      return undefined;
    }
    const first = buf[start];
    // Only statements that can name a role or switch database start with these letters.
    if (first === undefined || !WATCHED_FIRST.has(first)) return undefined;
    const text = buf.toString('utf8', start, e);
    const roles: string[] = [];
    if (first === 0x43) {
      if (/^COPY\s.+\sFROM stdin;$/.test(text)) this.inCopy = true;
      const role = CREATE_ROLE.exec(text);
      if (role?.[1]) {
        this.seen.add(unquote(role[1]));
        return { replace: `DO $backproof$ BEGIN CREATE ROLE ${role[1]}; EXCEPTION WHEN duplicate_object THEN NULL; END $backproof$;` };
      }
      const database = CREATE_DATABASE.exec(text);
      if (database?.[1]) {
        this.databasesCreated.push(unquote(database[1]));
        return this.fitLocales(text);
      }
      const policy = POLICY_TO.exec(text);
      if (!policy?.[1]) return undefined;
      roles.push(...splitIdents(policy[1]));
    }
    if (first === 0x5c) return this.metaCommand(text);
    const owner = OWNER_TO.exec(text);
    if (owner?.[1]) roles.push(owner[1]);
    const grant = GRANT_TO.exec(text);
    if (grant?.[1]) roles.push(...splitIdents(grant[1]));
    const forRole = FOR_ROLE.exec(text) ?? SET_ROLE.exec(text);
    if (forRole?.[1]) roles.push(forRole[1]);
    const session = SESSION_AUTH.exec(text);
    if (session?.[1]) roles.push(quoteIdent(session[1].replace(/''/g, "'")));
    let sql = '';
    for (const ident of roles) {
      const name = unquote(ident);
      if (this.seen.has(name) || BUILTIN.has(name.toLowerCase()) || name.startsWith('pg_')) continue;
      this.seen.add(name);
      this.rolesCreated.push(name);
      sql += `DO $backproof$ BEGIN CREATE ROLE ${quoteIdent(name)}; EXCEPTION WHEN duplicate_object THEN NULL; END $backproof$;\n`;
    }
    return sql ? { before: sql } : undefined;
  }

  /** A line starting with a backslash, outside COPY data: only pg_dump's own meta-commands pass. */
  private metaCommand(text: string): LineAction | undefined {
    const key = this.restrictKey;
    if (RESTRICT_LINE.test(text)) return key === undefined ? undefined : { replace: '' };
    const connect = CONNECT_LINE.test(text);
    if (connect || ENCODING_LINE.test(text)) {
      const m = connect ? CONNECT.exec(text) : undefined;
      if (m?.[1]) this.connectedDatabase = unquote(m[1]);
      return key === undefined ? undefined : { replace: `\\unrestrict ${key}\n${text.trim()}\n\\restrict ${key}` };
    }
    const command = /^\\[^\s\\]*/.exec(text)?.[0] ?? '\\';
    throw new VerificationError(
      'unsafe_archive',
      `the dump runs the psql meta-command "${truncate(command, 20)}" at line ${this.lineNo} ("${truncate(text, 80)}"); a dump may hold only pg_dump's own (\\connect, \\encoding, \\restrict): refused before psql read it`,
    );
  }

  private fitLocales(text: string): LineAction | undefined {
    const locales = this.locales;
    if (!locales) return undefined;
    let changed = false;
    const replaced = text.replace(LOCALE_SETTING, (whole, key: string, value: string) => {
      const name = value.replace(/''/g, "'");
      if (locales.has(normalizeLocale(name)) || /^(c|posix)$/i.test(name)) return whole;
      changed = true;
      if (!this.localesReplaced.includes(name)) this.localesReplaced.push(name);
      return `${key} = 'C.UTF-8'`;
    });
    return changed ? { replace: replaced } : undefined;
  }
}

function splitIdents(list: string): string[] {
  return [...list.matchAll(new RegExp(IDENT, 'g'))].map((m) => m[0]);
}

function unquote(ident: string): string {
  if (ident.startsWith('"') && ident.endsWith('"')) return ident.slice(1, -1).replace(/""/g, '"');
  return ident.toLowerCase();
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
