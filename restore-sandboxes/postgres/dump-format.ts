import { looksLikeText } from '../bytes.js';
/**
 * PostgreSQL dump formats, told apart by their bytes:
 * - custom (`pg_dump -Fc`): starts with "PGDMP"; its header holds the archive version, the
 *   dump time, the database name and the server and pg_dump versions;
 * - tar (`pg_dump -Ft`): a ustar archive whose first member is toc.dat;
 * - directory (`pg_dump -Fd`) stored as a tar: a ustar archive holding a toc.dat (not first),
 *   whose own header is a custom-format header ("PGDMP", archive format directory);
 * - plain SQL: text; pg_dump's own output begins with "-- PostgreSQL database dump" and ends with
 *   "-- PostgreSQL database dump complete", which is how a truncated one is recognised.
 */
/** `other-tar` and `utf16-text` are recognised only to be refused with a precise reason. */
export type DumpFormat = 'custom' | 'tar' | 'directory-tar' | 'plain' | 'other-tar' | 'utf16-text';

export interface FormatInfo {
  format: DumpFormat;
  header: Record<string, string>;
  /** For plain dumps written by pg_dump/pg_dumpall: the last line the complete dump must contain. */
  completeMarker?: string;
}

export function detectDumpFormat(head: Buffer): FormatInfo | undefined {
  if (head.subarray(0, 5).toString('latin1') === 'PGDMP') {
    return { format: 'custom', header: parseCustomHeader(head) };
  }
  if (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') {
    // pg_dump -Ft writes toc.dat first; any other tar (a directory-format dump tarred up, an
    // archive of files) is not something pg_restore reads as a stream.
    const first = head.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
    if (first === 'toc.dat') return { format: 'tar', header: { firstMember: first } };
    // A directory-format dump tarred up: every member is one of pg_dump's (toc.dat, 1234.dat.gz,
    // blobs.toc...), in one folder. toc.dat's own header (the versions) is read when it comes
    // early enough; pg_dump writes it last, so it often does not.
    const members = tarMembers(head);
    const files = members.filter((m) => !m.folder);
    const folders = new Set(files.map((m) => m.name.slice(0, m.name.lastIndexOf('/') + 1)));
    if (files.length > 0 && folders.size === 1 && files.every((m) => DIRECTORY_DUMP_MEMBER.test(m.name.slice(m.name.lastIndexOf('/') + 1)))) {
      const toc = files.find((m) => m.name.endsWith('toc.dat'));
      const tocHeader = toc && head.subarray(toc.offset, toc.offset + 5).toString('latin1') === 'PGDMP' ? parseCustomHeader(head.subarray(toc.offset)) : {};
      return { format: 'directory-tar', header: { ...tocHeader, dumpFolder: [...folders][0] ?? '' } };
    }
    return { format: 'other-tar', header: { firstMember: first } };
  }
  const bom = head.subarray(0, 2).toString('hex');
  if (bom === 'fffe' || bom === 'feff') return { format: 'utf16-text', header: {} };
  if (looksLikeText(head)) {
    const text = head.toString('utf8');
    const header: Record<string, string> = {};
    const from = /^-- Dumped from database version (.+)$/m.exec(text);
    const by = /^-- Dumped by pg_dump(?:all)? version (.+)$/m.exec(text);
    if (from?.[1]) header.serverVersion = from[1].trim();
    if (by?.[1]) header.pgDumpVersion = by[1].trim();
    let completeMarker: string | undefined;
    if (/^-- PostgreSQL database cluster dump\s*$/m.test(text)) completeMarker = '-- PostgreSQL database cluster dump complete';
    else if (/^-- PostgreSQL database dump\s*$/m.test(text)) completeMarker = '-- PostgreSQL database dump complete';
    if (completeMarker) header.writtenBy = completeMarker.includes('cluster') ? 'pg_dumpall' : 'pg_dump';
    const foreign = /^-- (MySQL dump|MariaDB dump)|^PRAGMA foreign_keys|^BEGIN TRANSACTION;\s*$/m.exec(text);
    if (foreign && !completeMarker) header.foreignDump = foreign[1] ?? 'SQLite .dump';
    return { format: 'plain', header, completeMarker };
  }
  return undefined;
}

/** The files pg_dump -Fd writes: toc.dat, a data file per table (compressed or not), large objects. */
const DIRECTORY_DUMP_MEMBER = /^(toc\.dat|\d+\.dat(\.gz|\.lz4|\.zst)?|blobs(_\d+)?\.toc|blob_\d+\.dat(\.gz|\.lz4|\.zst)?)$/;

/** The members of a ustar archive whose headers lie within `head`: name, where its data starts, whether a folder. */
function tarMembers(head: Buffer): Array<{ name: string; offset: number; folder: boolean }> {
  const members = [];
  for (let at = 0; at + 512 <= head.length; ) {
    const block = head.subarray(at, at + 512);
    if (block.subarray(257, 262).toString('latin1') !== 'ustar') break; // end blocks, or not a header
    const prefix = block.subarray(345, 500).toString('latin1').replace(/\0.*$/s, '');
    const name = (prefix ? `${prefix}/` : '') + block.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(block.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
    if (!Number.isFinite(size) || size < 0) break;
    members.push({ name, offset: at + 512, folder: block[156] === 0x35 || name.endsWith('/') });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return members;
}

/** Best-effort reading of pg_backup_archiver's header; stops quietly at anything unexpected. */
export function parseCustomHeader(buf: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 5;
  const byte = (): number => {
    if (pos >= buf.length) throw new RangeError('short header');
    return buf[pos++]!;
  };
  try {
    const vmaj = byte();
    const vmin = byte();
    const vrev = byte();
    out.archiveVersion = `${vmaj}.${vmin}.${vrev}`;
    const intSize = byte();
    byte(); // offSize
    const fmt = byte();
    out.archiveFormat = fmt === 1 ? 'custom' : fmt === 3 ? 'tar' : fmt === 5 ? 'directory' : String(fmt);
    if (intSize < 1 || intSize > 8) return out;
    const readInt = (): number => {
      const sign = byte();
      let value = 0;
      for (let i = 0; i < intSize; i++) value += byte() * 2 ** (8 * i);
      return sign ? -value : value;
    };
    const readStr = (): string | undefined => {
      const len = readInt();
      if (len < 0) return undefined;
      if (len > 1024 || pos + len > buf.length) throw new RangeError('bad string');
      const s = buf.subarray(pos, pos + len).toString('utf8');
      pos += len;
      return s;
    };
    const v = vmaj * 10000 + vmin * 100 + vrev;
    if (v >= 11500) {
      const algo = byte();
      out.compression = ['none', 'gzip', 'lz4', 'zstd'][algo] ?? String(algo);
    } else {
      const level = readInt();
      // -1 is zlib's Z_DEFAULT_COMPRESSION, what `pg_dump -Fc` writes unless given -Z.
      out.compression = level === 0 ? 'none' : level < 0 ? 'gzip (default level)' : `gzip level ${level}`;
    }
    const [sec, min, hour, mday, mon, year] = [readInt(), readInt(), readInt(), readInt(), readInt(), readInt()];
    readInt(); // isdst
    out.dumpTime = `${1900 + year}-${pad(mon + 1)}-${pad(mday)} ${pad(hour)}:${pad(min)}:${pad(sec)} (dumping server's local time)`;
    const db = readStr();
    if (db !== undefined) out.database = db;
    const server = readStr();
    if (server !== undefined) out.serverVersion = server;
    const dumper = readStr();
    if (dumper !== undefined) out.pgDumpVersion = dumper;
  } catch {
    // A short or odd header: keep what was read; pg_restore has the final word.
  }
  return out;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}
