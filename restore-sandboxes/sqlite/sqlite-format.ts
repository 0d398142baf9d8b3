import { entropy } from '../bytes.js';
/**
 * What a SQLite backup is, told from its bytes:
 * - a database file: starts with "SQLite format 3\0"; its 100-byte header gives the page size,
 *   the page count (which, when valid, says how long the file must be), the journal mode, the
 *   text encoding and the application's own ids;
 * - a `sqlite3 .dump`: SQL text that starts with "PRAGMA foreign_keys=OFF;" and
 *   "BEGIN TRANSACTION;" and ends with "COMMIT;", which is how a truncated one is recognised;
 * - anything else is described ("a PostgreSQL custom-format dump", "random-looking bytes") so
 *   that the reason says what was stored instead.
 */

export const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');
/** The database header's length; a file shorter than this cannot be a database. */
export const HEADER_BYTES = 100;

export type SqliteBackup =
  | { format: 'sqlite-db'; header: DbHeader }
  | { format: 'sqlite-db-short' }
  | { format: 'sqlite-dump' }
  | { format: 'other'; looksLike: string };

export interface DbHeader {
  pageSize: number;
  /** Pages by the header; only trustworthy when `pageCountValid`. */
  pageCount: number;
  /** SQLite 3.7.0+ keeps the page count valid (change counter = version-valid-for). */
  pageCountValid: boolean;
  /** The file size the header promises, when it promises one. */
  expectedBytes?: number;
  wal: boolean;
  facts: Record<string, string>;
}

export function detectSqliteBackup(head: Buffer): SqliteBackup {
  if (head.length >= SQLITE_MAGIC.length && head.subarray(0, SQLITE_MAGIC.length).equals(SQLITE_MAGIC)) {
    return head.length < HEADER_BYTES ? { format: 'sqlite-db-short' } : { format: 'sqlite-db', header: readHeader(head) };
  }
  if (isSqliteDump(head)) return { format: 'sqlite-dump' };
  return { format: 'other', looksLike: describeBytes(head) };
}

/** `sqlite3 .dump` output: its first statements, after an optional BOM, blank lines and comments. */
function isSqliteDump(head: Buffer): boolean {
  const text = head.subarray(0, 4096).toString('utf8').replace(/^\uFEFF/, '');
  const statements = text.replace(/^(\s*--[^\n]*\n|\s+)*/, '');
  return /^PRAGMA foreign_keys\s*=\s*OFF;\s*BEGIN TRANSACTION;/i.test(statements) || /^BEGIN TRANSACTION;\s*(CREATE|COMMIT|PRAGMA|INSERT)\b/i.test(statements);
}

const ENCODINGS: Record<number, string> = { 1: 'UTF-8', 2: 'UTF-16le', 3: 'UTF-16be' };

/** Well-known application ids (PRAGMA application_id), e.g. a GeoPackage. */
const APPLICATION_IDS: Record<number, string> = {
  0x47504b47: 'GeoPackage',
  0x47503130: 'GeoPackage 1.0',
  0x4d504258: 'MBTiles',
  0x0f055112: 'Fossil repository',
  0x0f055113: 'Fossil checkout',
  0x0f05511a: 'Fossil global config',
};

/** The header's fields (https://www.sqlite.org/fileformat.html#the_database_header). */
export function readHeader(head: Buffer): DbHeader {
  const raw = head.readUInt16BE(16);
  const pageSize = raw === 1 ? 65536 : raw;
  const pageCount = head.readUInt32BE(28);
  const changeCounter = head.readUInt32BE(24);
  const validFor = head.readUInt32BE(92);
  const pageCountValid = pageCount > 0 && changeCounter === validFor;
  const wal = head[18] === 2 || head[19] === 2;
  const encoding = head.readUInt32BE(56);
  const userVersion = head.readInt32BE(60);
  const applicationId = head.readUInt32BE(68);
  const libraryVersion = head.readUInt32BE(96);
  const facts: Record<string, string> = {
    pageSize: String(pageSize),
    pageCount: pageCountValid ? String(pageCount) : `${pageCount} (not valid: written by SQLite before 3.7.0 or a tool that does not keep it)`,
    journalMode: wal ? 'wal' : 'rollback (delete/truncate/persist/memory)',
    textEncoding: ENCODINGS[encoding] ?? `unknown (${encoding})`,
    schemaVersion: String(head.readUInt32BE(40)),
    schemaFormat: String(head.readUInt32BE(44)),
    freelistPages: String(head.readUInt32BE(36)),
  };
  if (userVersion !== 0) facts.userVersion = String(userVersion);
  if (applicationId !== 0) facts.applicationId = describeApplicationId(applicationId);
  if (libraryVersion > 3_000_000) {
    facts.lastWrittenBy = `SQLite ${Math.floor(libraryVersion / 1_000_000)}.${Math.floor(libraryVersion / 1000) % 1000}.${libraryVersion % 1000}`;
  }
  return { pageSize, pageCount, pageCountValid, expectedBytes: pageCountValid ? pageSize * pageCount : undefined, wal, facts };
}

/** A page size SQLite can have: a power of two from 512 to 65536. */
export function validPageSize(n: number): boolean {
  return n >= 512 && n <= 65536 && (n & (n - 1)) === 0;
}

function describeApplicationId(id: number): string {
  const hex = `0x${id.toString(16).padStart(8, '0')}`;
  const known = APPLICATION_IDS[id];
  if (known) return `${hex} (${known})`;
  const ascii = Buffer.alloc(4);
  ascii.writeUInt32BE(id);
  return /^[\x20-\x7e]{4}$/.test(ascii.toString('latin1')) ? `${hex} ("${ascii.toString('latin1')}")` : hex;
}

/** What bytes that are not a SQLite backup look like, for the reason. */
export function describeBytes(head: Buffer): string {
  const latin = head.subarray(0, 512).toString('latin1');
  const hex = head.subarray(0, 8).toString('hex');
  if (head.length >= 4) {
    const magic = head.readUInt32BE(0);
    if (magic === 0x377f0682 || magic === 0x377f0683) return 'a SQLite write-ahead log (a -wal file), not the database: back up the database file itself, or use sqlite3 .backup';
  }
  if (head.subarray(0, 8).toString('hex') === 'd9d505f920a163d7') return 'a SQLite rollback journal (a -journal file), not the database';
  if (latin.startsWith('PGDMP')) return 'a PostgreSQL custom-format dump (use kind: postgres)';
  if (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return 'a tar archive (use kind: files, or store the database file itself)';
  if (latin.startsWith('PK\x03\x04')) return 'a zip archive (use kind: files, or store the database file itself)';
  if (latin.startsWith('7z\xbc\xaf\x27\x1c')) return 'a 7-Zip archive, which backproof does not read';
  if (latin.startsWith('%PDF')) return 'a PDF document';
  if (looksLikeText(head)) {
    const text = head.subarray(0, 4096).toString('utf8');
    if (/^-- PostgreSQL database (cluster )?dump/m.test(text)) return 'a PostgreSQL plain SQL dump (use kind: postgres)';
    if (/^-- (MySQL|MariaDB) dump/m.test(text)) return 'a MySQL/MariaDB dump (use kind: mysql)';
    const first = text.trim().split('\n')[0] ?? '';
    return `text that is not a sqlite3 .dump (which begins "PRAGMA foreign_keys=OFF; BEGIN TRANSACTION;"); it begins "${first.slice(0, 60)}"`;
  }
  if (headEntropy(head) > 7.5) return `random-looking bytes (starts with ${hex}): encrypted (e.g. SQLCipher, or an encrypted archive) or compressed in a format backproof does not read`;
  return `binary data that is not a SQLite database (starts with ${hex}; a database starts with "SQLite format 3")`;
}

export function looksLikeText(head: Buffer): boolean {
  const sample = head.subarray(0, 4096);
  if (sample.length === 0) return false;
  let bad = 0;
  for (const b of sample) if (b === 0 || (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d)) bad++;
  // Invalid UTF-8 decodes to U+FFFD; one may come from a character cut at the sample's end.
  return bad === 0 && (sample.toString('utf8').match(/\uFFFD/g)?.length ?? 0) <= 1;
}

/** Entropy of the first 64 KiB; 0 below 256 bytes (too few to judge). */
function headEntropy(bytes: Buffer): number {
  const sample = bytes.subarray(0, 64 * 1024);
  return sample.length < 256 ? 0 : entropy(sample);
}
