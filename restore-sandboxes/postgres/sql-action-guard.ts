import { Transform, type TransformCallback } from 'node:stream';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { truncate } from '../bytes.js';

/**
 * Reads a plain SQL dump the way psql splits it into statements (quotes, dollar quotes,
 * comments, parentheses, BEGIN ATOMIC bodies, COPY ... FROM stdin data) and refuses, before the
 * statement reaches psql, the server-side actions a backup has no business doing:
 * - `COPY ... TO/FROM PROGRAM` (a shell command run by the server);
 * - `COPY ... TO/FROM '<file>'` (server files);
 * - `ALTER SYSTEM` (the server's configuration);
 * - `lo_import`/`lo_export`, `pg_read_file`, `pg_read_binary_file` (server files) anywhere in a
 *   statement.
 * A refusal is an `unsafe_archive` error naming the line and the action; the bytes of the chunk
 * holding it are not passed on, and psql, whose input then fails, never sees the statement's end.
 *
 * It follows `SET standard_conforming_strings` as written in the dump; a dump that changes it
 * another way (set_config(), a role's settings) can make it read strings unlike psql: then what
 * it misses is contained like the rest (below). It is a first line, not the boundary.
 *
 * What it cannot see: SQL that a function builds at run time (`EXECUTE 'CO' || 'PY ...'`) or a
 * custom-format archive's entries, which pg_restore sends to the server itself. Those run as
 * the sandbox's server, inside the sandbox: no network, no capabilities, read-only root.
 * pg_dump itself never writes any of the refused statements.
 */
const REFUSED_FUNCTIONS = new Map([
  ['LO_IMPORT', 'lo_import (reads a server file)'],
  ['LO_EXPORT', 'lo_export (writes a server file)'],
  ['PG_READ_FILE', 'pg_read_file (reads a server file)'],
  ['PG_READ_BINARY_FILE', 'pg_read_binary_file (reads a server file)'],
]);
const MAX_WORD = 64;
/** Bytes that only separate words in code: spaces, commas, operators but `-` and `/` (comments). */
const BORING = new Uint8Array(256);
for (const ch of ' \t\r\f,.:=<>+*!|%^&~?@#[]{}') BORING[ch.charCodeAt(0)] = 1;
const MAX_STATEMENT_WORDS = 6;

type State = 'code' | 'squote' | 'estring' | 'dquote' | 'dollar-tag' | 'dollar' | 'line-comment' | 'block-comment' | 'meta' | 'copy-data';

export class SqlActionGuard extends Transform {
  private state: State = 'code';
  /** The line the current chunk starts on; `pos` is where in it the scan is. */
  private line = 1;
  private chunk: Buffer = Buffer.alloc(0);
  private pos = 0;
  /** The current word (code state) or quoted identifier, uppercased, capped. */
  private word = '';
  private quotedIdent = '';
  /** The first words of the current statement, and the last two words seen in it. */
  private first: string[] = [];
  private parenDepth = 0;
  private beginDepth = 0;
  private copyFromStdin = false;
  /** A COPY statement's TO/FROM was just read: the next token must be STDIN/STDOUT. */
  private copyTarget: '' | 'TO' | 'FROM' = '';
  /** A COPY ... FROM stdin ended on this line: its data starts on the next one. */
  private copyPending = false;
  private copyLine = '';
  private dollarTag = '';
  private dollarTail = '';
  private commentDepth = 0;
  /** The previous byte in code state was `-` or `/` (a comment may start), or `*`/`/` in a comment. */
  private pendingChar = 0;
  private estringEscape = false;
  /** standard_conforming_strings as a `SET` in the dump leaves it: off makes '...' take backslash escapes (pg_dump before 9.1). */
  private standardStrings = true;
  /** The last word or quoted value of a SET statement. */
  private setValue = '';

  constructor() {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.scan(chunk);
    } catch (err) {
      return cb(err as Error);
    }
    this.line += countNewlines(chunk, chunk.length);
    this.chunk = Buffer.alloc(0);
    cb(null, chunk);
  }

  private refuse(what: string): never {
    const line = this.line + countNewlines(this.chunk, this.pos);
    throw new VerificationError('unsafe_archive', `the dump tries to act on the server: ${truncate(what, 160)} at line ${line}; refused before it ran (pg_dump never writes this)`);
  }

  private scan(b: Buffer): void {
    this.chunk = b;
    let i = 0;
    const n = b.length;
    while (i < n) {
      this.pos = i;
      // Fast paths: whole runs of a word, a string, a comment, COPY data at once.
      switch (this.state) {
        case 'copy-data': {
          // Data rows are not SQL: only a line `\.` ends them.
          const nl = b.indexOf(0x0a, i);
          const end = nl < 0 ? n : nl;
          if (this.copyLine.length < 4) this.copyLine += b.toString('latin1', i, Math.min(end, i + 4 - this.copyLine.length));
          if (nl < 0) {
            i = n;
            continue;
          }
          if (this.copyLine === '\\.' || this.copyLine === '\\.\r') this.state = 'code';
          this.copyLine = '';
          i = nl + 1;
          continue;
        }
        case 'code': {
          if (this.pendingChar !== 0) break;
          let j = i;
          while (j < n && (isWordByte(b[j]!) || b[j]! >= 0x80 || (b[j] === 0x24 && (j > i || this.word !== '')))) j++;
          if (j > i) {
            if (this.word.length < MAX_WORD) this.word += b.toString('latin1', i, Math.min(j, i + MAX_WORD - this.word.length)).toUpperCase();
            i = j;
            continue;
          }
          if (this.word !== '' || this.copyTarget) break;
          // Between words: bytes that neither start a token that matters nor end a statement.
          while (j < n && (BORING[b[j]!] === 1 || (b[j] === 0x0a && !this.copyPending))) j++;
          if (j === i) break;
          i = j;
          continue;
        }
        case 'squote': {
          if (this.first[0] === 'SET') break;
          const q = b.indexOf(0x27, i);
          if (q < 0) {
            i = n;
            continue;
          }
          this.state = 'code';
          i = q + 1;
          continue;
        }
        case 'line-comment':
        case 'meta': {
          const nl = b.indexOf(0x0a, i);
          if (nl < 0) {
            i = n;
            continue;
          }
          this.newline();
          i = nl + 1;
          continue;
        }
        case 'dquote': {
          const q = b.indexOf(0x22, i);
          const end = q < 0 ? n : q;
          if (this.quotedIdent.length < MAX_WORD) this.quotedIdent += b.toString('latin1', i, Math.min(end, i + MAX_WORD - this.quotedIdent.length));
          if (q < 0) {
            i = n;
            continue;
          }
          this.state = 'code';
          this.endWord(this.quotedIdent.toUpperCase());
          this.quotedIdent = '';
          i = q + 1;
          continue;
        }
        case 'dollar': {
          const close = `$${this.dollarTag}$`;
          // The closing tag may straddle two chunks: the last bytes of the one before are kept.
          const joined = this.dollarTail + b.toString('latin1', i, Math.min(n, i + close.length - 1));
          const across = this.dollarTail ? joined.indexOf(close) : -1;
          if (across >= 0) {
            i += across + close.length - this.dollarTail.length;
            this.state = 'code';
            this.dollarTail = '';
            continue;
          }
          const at = b.indexOf(close, i, 'latin1');
          if (at >= 0) {
            this.state = 'code';
            this.dollarTail = '';
            i = at + close.length;
            continue;
          }
          this.dollarTail = b.toString('latin1', Math.max(i, n - (close.length - 1)), n);
          i = n;
          continue;
        }
        default:
          break;
      }
      const c = b[i]!;
      i++;
      switch (this.state) {
        case 'code':
          this.code(c);
          break;
        case 'squote':
          if (c === 0x27) this.state = 'code';
          else if (this.first[0] === 'SET' && this.setValue.length < 8) this.setValue += String.fromCharCode(c).toUpperCase();
          break;
        case 'estring':
          if (this.estringEscape) this.estringEscape = false;
          else if (c === 0x5c) this.estringEscape = true;
          else if (c === 0x27) this.state = 'code';
          break;
        case 'dollar-tag':
          if (c === 0x24) {
            this.state = 'dollar';
            this.dollarTail = '';
          } else if (isWordByte(c) && !(this.dollarTag === '' && c >= 0x30 && c <= 0x39) && this.dollarTag.length < MAX_WORD) {
            this.dollarTag += String.fromCharCode(c);
          } else {
            // `$1` or a stray `$`: no dollar quote after all.
            this.state = 'code';
            this.code(c);
          }
          break;
        case 'block-comment':
          if (this.pendingChar === 0x2a && c === 0x2f) {
            this.commentDepth--;
            this.pendingChar = 0;
            if (this.commentDepth === 0) this.state = 'code';
          } else if (this.pendingChar === 0x2f && c === 0x2a) {
            this.commentDepth++;
            this.pendingChar = 0;
          } else this.pendingChar = c;
          break;
      }
    }
  }

  private newline(): void {
    this.state = 'code';
    if (this.copyPending) {
      this.copyPending = false;
      this.state = 'copy-data';
      this.copyLine = '';
    }
  }

  private code(c: number): void {
    const pending = this.pendingChar;
    this.pendingChar = 0;
    if (pending === 0x2d && c === 0x2d) {
      this.state = 'line-comment';
      return;
    }
    if (pending === 0x2f && c === 0x2a) {
      this.state = 'block-comment';
      this.commentDepth = 1;
      return;
    }
    if (isWordByte(c) || (c === 0x24 && this.word !== '') || c >= 0x80) {
      if (this.word.length < MAX_WORD) this.word += String.fromCharCode(c).toUpperCase();
      return;
    }
    const wasWord = this.word;
    if (wasWord !== '') {
      this.word = '';
      this.endWord(wasWord);
    }
    // COPY's source or destination is anything but STDIN/STDOUT: a file name, most likely.
    if (this.copyTarget && !isSpace(c)) this.refuse(`COPY ... ${this.copyTarget} '<server file>'`);
    switch (c) {
      case 0x27: // '
        this.state = wasWord === 'E' || !this.standardStrings ? 'estring' : 'squote';
        this.setValue = '';
        break;
      case 0x22:
        this.state = 'dquote';
        this.quotedIdent = '';
        break;
      case 0x24:
        this.state = 'dollar-tag';
        this.dollarTag = '';
        break;
      case 0x5c: // a psql meta-command: its arguments run to the end of the line
        this.state = 'meta';
        break;
      case 0x0a:
        this.newline();
        break;
      case 0x2d:
      case 0x2f:
        this.pendingChar = c;
        break;
      case 0x28:
        this.parenDepth++;
        break;
      case 0x29:
        if (this.parenDepth > 0) this.parenDepth--;
        break;
      case 0x3b:
        if (this.parenDepth === 0 && this.beginDepth === 0) this.endStatement();
        break;
    }
  }

  private endWord(w: string): void {
    if (this.first.length < MAX_STATEMENT_WORDS) this.first.push(w);
    else if (this.first[0] !== 'COPY' && this.first[0] !== 'SET' && this.beginDepth === 0 && (w.length < 9 || w.length > 19) && w !== 'BEGIN' && w !== 'CASE') {
      return; // most words of a long statement (INSERT values): nothing below can apply
    }
    this.setValue = w;
    const [a, b] = this.first;
    if (a === 'ALTER' && b === 'SYSTEM' && this.first.length === 2) this.refuse('ALTER SYSTEM');
    const fn = REFUSED_FUNCTIONS.get(w);
    if (fn) this.refuse(fn);
    if (this.copyTarget) {
      if (w === 'PROGRAM') this.refuse(`COPY ... ${this.copyTarget} PROGRAM`);
      if (w !== 'STDIN' && w !== 'STDOUT') this.refuse(`COPY ... ${this.copyTarget} '<server file>'`);
      if (w === 'STDIN' && this.copyTarget === 'FROM') this.copyFromStdin = true;
      this.copyTarget = '';
    } else if (a === 'COPY' && this.parenDepth === 0 && (w === 'TO' || w === 'FROM') && this.first.length > 1) {
      this.copyTarget = w;
    }
    // psql keeps `;` inside CREATE FUNCTION/PROCEDURE ... BEGIN ATOMIC ... END in the statement
    // (its rule: the first words start with C, then F or P, or O R then F or P).
    if (w === 'BEGIN' || w === 'CASE') {
      const [, b1 = '', b2 = '', b3 = ''] = this.first;
      const fp = (x: string) => x.startsWith('F') || x.startsWith('P');
      if (a?.startsWith('C') && (fp(b1) || (b1.startsWith('O') && b2.startsWith('R') && fp(b3)))) this.beginDepth++;
    } else if (w === 'END' && this.beginDepth > 0) this.beginDepth--;
  }

  private endStatement(): void {
    const [a, b, c] = this.first;
    if ((a === 'SET' || a === 'RESET') && (b === 'STANDARD_CONFORMING_STRINGS' || c === 'STANDARD_CONFORMING_STRINGS')) {
      this.standardStrings = a === 'RESET' || !['OFF', 'FALSE', 'NO', '0'].includes(this.setValue);
    }
    if (this.first[0] === 'COPY' && this.copyFromStdin) this.copyPending = true;
    this.first = [];
    this.copyFromStdin = false;
    this.copyTarget = '';
  }
}

function countNewlines(b: Buffer, end: number): number {
  let count = 0;
  for (let at = b.indexOf(0x0a); at >= 0 && at < end; at = b.indexOf(0x0a, at + 1)) count++;
  return count;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0c;
}

function isWordByte(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f;
}
