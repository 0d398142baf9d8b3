import { execFile } from 'node:child_process';
import { createWriteStream, promises as fs } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { crc32, createGzip } from 'node:zlib';
import tarStream from 'tar-stream';

const run = promisify(execFile);

/**
 * File-share backups for tests: a folder of documents archived by the real tar, zip and
 * sha256sum, and hostile archives (traversal, absolute paths, escaping links, devices, bombs)
 * written entry by entry, since the real tools refuse to make most of them.
 */
export interface TreeOptions {
  /** Text documents to write (default 40). */
  documents?: number;
  /** Write a SHA256SUMS manifest at the root with the real sha256sum. */
  manifest?: boolean;
}

const WORDS = 'invoice customer order amount delivered pending paid total tax net gross quarter account ledger balance'.split(' ');

function prose(n: number, seed: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(WORDS[(i * 7 + seed * 13) % WORDS.length]!);
  return out.join(' ') + '\n';
}

/** A small file share: text and CSV documents, a PDF-like file, a real .docx-like zip, binary data. */
export async function makeShareTree(dir: string, opts: TreeOptions = {}): Promise<string[]> {
  const written: string[] = [];
  const put = async (rel: string, data: string | Buffer): Promise<void> => {
    await fs.mkdir(path.join(dir, path.dirname(rel)), { recursive: true });
    await fs.writeFile(path.join(dir, rel), data);
    written.push(rel);
  };
  for (let i = 0; i < (opts.documents ?? 40); i++) await put(`docs/report-${i}.txt`, prose(400, i));
  for (let i = 0; i < 10; i++) await put(`finance/ledger-${i}.csv`, Array.from({ length: 200 }, (_, r) => `${r},${i},${(r * 17.5).toFixed(2)},EUR`).join('\n') + '\n');
  await put('scans/contract.pdf', Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(4096)]));
  await put('data/blob.bin', randomBytes(64 * 1024));
  const office = path.join(dir, 'office');
  await fs.mkdir(office, { recursive: true });
  await fs.writeFile(path.join(office, 'document.xml'), `<w:document>${prose(300, 99)}</w:document>`);
  await run('zip', ['-q', 'letter.docx', 'document.xml'], { cwd: office });
  await fs.rm(path.join(office, 'document.xml'));
  written.push('office/letter.docx');
  if (opts.manifest) await writeManifest(dir, written);
  return written;
}

/** SHA256SUMS at the root of `dir` for `files` (relative paths), by the real sha256sum. */
export async function writeManifest(dir: string, files: string[]): Promise<void> {
  const { stdout } = await run('sha256sum', files, { cwd: dir, maxBuffer: 64 * 1024 * 1024 });
  await fs.writeFile(path.join(dir, 'SHA256SUMS'), stdout);
}

export type ArchiveKind = 'tar' | 'tar.gz' | 'tar.zst' | 'tar.xz' | 'tar.bz2' | 'zip';

/** Archives `dir` with the real tar (and its compressors) or zip. */
export async function archive(dir: string, out: string, kind: ArchiveKind): Promise<void> {
  await fs.rm(out, { force: true });
  if (kind === 'zip') {
    await run('zip', ['-q', '-r', '-y', out, '.'], { cwd: dir });
    return;
  }
  const flag = { tar: [], 'tar.gz': ['-z'], 'tar.zst': ['--zstd'], 'tar.xz': ['-J'], 'tar.bz2': ['-j'] }[kind];
  await run('tar', ['-c', ...flag, '-f', out, '-C', dir, '.']);
}

export interface CraftedEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';
  data?: string | Buffer;
  /** A file of this many zero bytes, streamed (for bombs). */
  zeros?: number;
  linkname?: string;
}

/** A tar written entry by entry (hostile names and types included), optionally gzip'd. */
export async function craftTar(out: string, entries: CraftedEntry[], opts: { gzip?: boolean } = {}): Promise<void> {
  const pack = tarStream.pack();
  const source = Readable.from(pack);
  const writing = opts.gzip ? pipeline(source, createGzip({ level: 1 }), createWriteStream(out)) : pipeline(source, createWriteStream(out));
  for (const e of entries) {
    const type = e.type ?? 'file';
    if (e.zeros !== undefined) {
      const sink = pack.entry({ name: e.name, size: e.zeros, type: 'file', mode: 0o644 });
      const chunk = Buffer.alloc(1024 * 1024);
      for (let left = e.zeros; left > 0; left -= chunk.length) {
        if (!sink.write(left >= chunk.length ? chunk : chunk.subarray(0, left))) await new Promise((r) => sink.once('drain', r));
      }
      await new Promise<void>((resolve, reject) => sink.end((err?: Error | null) => (err ? reject(err) : resolve())));
      continue;
    }
    const data = typeof e.data === 'string' ? Buffer.from(e.data) : e.data;
    const header = { name: e.name, type, mode: type === 'directory' ? 0o755 : 0o644, linkname: e.linkname, ...(type === 'character-device' || type === 'block-device' ? { devmajor: 1, devminor: 3 } : {}) };
    await new Promise<void>((resolve, reject) => pack.entry(header, type === 'file' ? (data ?? Buffer.alloc(0)) : undefined, (err) => (err ? reject(err) : resolve())));
  }
  pack.finalize();
  await writing;
}

/** A zip of stored entries written by hand: names exactly as given (zip tools rewrite "../"). */
export async function craftZip(out: string, entries: Array<{ name: string; data: string | Buffer; symlink?: boolean }>): Promise<void> {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const data = typeof e.data === 'string' ? Buffer.from(e.data) : e.data;
    const name = Buffer.from(e.name);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    locals.push(local, name, data);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(0x031e, 4); // made by: unix
    central.writeUInt16LE(20, 6);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((e.symlink ? 0o120777 : 0o100644) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += 30 + name.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  await fs.writeFile(out, Buffer.concat([...locals, directory, end]));
}
