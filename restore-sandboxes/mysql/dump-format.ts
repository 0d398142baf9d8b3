import { looksLikeText, truncate } from '../bytes.js';
/**
 * What a kind: mysql backup is, told from its first (decompressed) bytes:
 * - a mysqldump / mariadb-dump: SQL text whose header comment says so ("-- MySQL dump 10.13
 *   Distrib 8.0.36" or "-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB"), after mariadb-dump's
 *   optional first line `/*M!999999\- enable the sandbox mode *\/`. Such a dump ends with
 *   "-- Dump completed on ...", which is how a truncated one is recognised;
 * - other SQL text (a dump made with --skip-comments, or by another tool): restored, but its
 *   completeness cannot be told;
 * - anything else is refused with what it is (a PostgreSQL or SQLite dump, an archive, a
 *   physical backup, UTF-16 text, binary data).
 */
export type MysqlDumpDetection =
  | { kind: 'sql'; format: 'mysqldump' | 'sql'; header: Record<string, string>; expectsCompletionLine: boolean }
  | { kind: 'foreign'; code: 'unrecognized_format' | 'unsupported_format'; message: string };

/** The last line mysqldump and mariadb-dump write (unless --skip-comments). */
export const COMPLETION_LINE = /^-- Dump completed(?: on .*)?$/;

const DUMP_HEADER = /^-- (MySQL|MariaDB) dump ([\d.]+)\s+Distrib ([^,\s]+)(?:, for (.+))?$/m;
/** Statements a MySQL SQL file starts with (after comments). */
const SQL_START = /^\s*(?:CREATE|INSERT|DROP|SET|USE|LOCK TABLES|ALTER|REPLACE|START TRANSACTION|BEGIN|DELIMITER|\/\*![0-9]{5,6})\b/im;

export function detectMysqlDump(head: Buffer): MysqlDumpDetection {
  const foreign = (message: string, code: 'unrecognized_format' | 'unsupported_format' = 'unrecognized_format') => ({ kind: 'foreign' as const, code, message });
  const latin = head.subarray(0, 16).toString('latin1');
  if (latin.startsWith('PGDMP')) return foreign('not a MySQL dump: the file is a PostgreSQL custom-format dump (pg_dump -Fc); verify it with kind: postgres');
  if (latin.startsWith('SQLite format 3\0')) return foreign('not a MySQL dump: the file is an SQLite database; verify it with kind: sqlite');
  // An xbstream (mariadb-backup --stream=xbstream) never gets here: the restorer takes it as a
  // physical backup first (mariabackup-restore.ts).
  if (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return foreign('not a MySQL dump: the file is a tar archive; verify file archives with kind: files');
  if (latin.startsWith('PK\x03\x04')) return foreign('not a MySQL dump: the file is a zip archive; verify file archives with kind: files');
  const bom = head.subarray(0, 2).toString('hex');
  if (bom === 'fffe' || bom === 'feff') {
    return foreign('the dump is UTF-16 text (as written by Windows PowerShell redirection, `mysqldump > file`); the mysql client cannot read it: write dumps with mysqldump --result-file=FILE');
  }
  if (!looksLikeText(head)) {
    return foreign(`not a MySQL dump: binary data, neither SQL text nor a known compression (starts with ${head.subarray(0, 8).toString('hex')})`);
  }
  const text = head.toString('utf8');
  const dump = DUMP_HEADER.exec(text);
  if (dump) {
    const header: Record<string, string> = {
      writtenBy: dump[1] === 'MariaDB' || /mariadb/i.test(dump[3] ?? '') ? 'mariadb-dump' : 'mysqldump',
      dumpVersion: `${dump[2]} Distrib ${dump[3]}`,
    };
    const hostDb = /^-- Host: (\S*)\s+Database: (.*)$/m.exec(text);
    if (hostDb?.[1]) header.host = hostDb[1];
    if (hostDb?.[2]?.trim()) header.database = hostDb[2].trim();
    const server = /^-- Server version\s+(.+)$/m.exec(text);
    if (server?.[1]) header.serverVersion = server[1].trim();
    header.serverFlavor = /mariadb/i.test(header.serverVersion ?? dump[3] ?? '') ? 'MariaDB' : 'MySQL';
    return { kind: 'sql', format: 'mysqldump', header, expectsCompletionLine: true };
  }
  if (/^-- PostgreSQL database (?:cluster )?dump\s*$/m.test(text) || /^SELECT pg_catalog\.set_config\(|^COPY \S+ .*FROM stdin;$/m.test(text)) {
    return foreign('not a MySQL dump: the file is a PostgreSQL plain SQL dump (pg_dump); verify it with kind: postgres');
  }
  if (/^PRAGMA foreign_keys=OFF;\s*\nBEGIN TRANSACTION;/m.test(text)) {
    return foreign('not a MySQL dump: the file is an SQLite .dump (sqlite3 .dump); restore it into SQLite, not MySQL');
  }
  if (text.trim() === '') return foreign('the backup holds only whitespace, no SQL');
  if (SQL_START.test(stripComments(text))) {
    return { kind: 'sql', format: 'sql', header: { completenessCheck: 'not possible: no mysqldump header (made with --skip-comments, or by another tool)' }, expectsCompletionLine: false };
  }
  const first = text.split('\n').find((l) => l.trim() !== '') ?? '';
  return foreign(`not a MySQL dump: text, but not SQL (first line: "${truncate(first.trim(), 60)}")`);
}

/** Text with `--` and `#` line comments and blank lines removed, for the SQL test. */
function stripComments(text: string): string {
  return text
    .split('\n')
    .filter((l) => !/^\s*(--(\s|$)|#|$)/.test(l))
    .join('\n');
}

