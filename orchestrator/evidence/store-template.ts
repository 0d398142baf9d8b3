import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, ftruncateSync, mkdirSync, openSync, promises as fs, readFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGunzip, createGzip } from 'node:zlib';
import tarStream from 'tar-stream';
import { DEFAULTS } from '../core/defaults.js';
import { packageInfo } from '../package-root.js';
import type { SqlExecutor } from './executor.js';
import { loadMigrations, migrate } from './migrate.js';

/**
 * A pre-built embedded store: `npm run build` runs PGlite's initdb and every migration once and
 * packs the result (`dist/store-template.tar.gz`, ~5 MB; the cluster is ~40 MB, 16 MB of it a
 * WAL segment half zeros, which a new store gets as holes). A new data dir starts from a copy of
 * it instead of running initdb, which takes ~4 s and ~870 MB of RSS in WASM.
 *
 * The template is used only if it was built by the same PGlite release from the same
 * migrations (its key, in `dist/store-template.json`); otherwise PGlite runs initdb as before,
 * so a stale or missing template costs time, never correctness. It holds no secret: the signing
 * key lives beside the store, not in it, and is made per data dir.
 */
const TEMPLATE = 'store-template.tar.gz';
const TEMPLATE_KEY = 'store-template.json';

/** What the template depends on: the PGlite release (its on-disk format) and the migrations. */
export function templateKey(): string {
  const hash = createHash('sha256');
  hash.update(`pglite ${pgliteVersion()}\n`);
  for (const m of loadMigrations()) hash.update(`${m.version} ${m.name} ${createHash('sha256').update(m.sql).digest('hex')}\n`);
  return hash.digest('hex');
}

function pgliteVersion(): string {
  const main = fileURLToPath(import.meta.resolve('@electric-sql/pglite'));
  let dir = path.dirname(main);
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === '@electric-sql/pglite' && pkg.version) return pkg.version;
    } catch {
      // one folder up
    }
    dir = path.dirname(dir);
  }
  return 'unknown';
}

function templatePaths(outDir?: string): { tarball: string; key: string } | undefined {
  const dir = outDir ?? (packageInfo() ? path.join(packageInfo()!.root, 'dist') : undefined);
  return dir ? { tarball: path.join(dir, TEMPLATE), key: path.join(dir, TEMPLATE_KEY) } : undefined;
}

/**
 * Makes `evidenceDir` (absent) a copy of the template (in dist/, or the folder `from`), if there
 * is a current one; says whether it did. Unpacked beside it under another name and renamed into place, so a process that dies
 * half way leaves no half cluster behind (PGlite would initdb over a missing folder).
 */
export async function seedFromTemplate(evidenceDir: string, from?: string): Promise<boolean> {
  const paths = templatePaths(from);
  if (!paths) return false;
  const recorded = await fs.readFile(paths.key, 'utf8').then((t) => (JSON.parse(t) as { key?: string }).key, () => undefined);
  if (!recorded || recorded !== templateKey()) return false;
  const staging = `${evidenceDir}.seed-${process.pid}-${randomBytes(4).toString('hex')}`;
  await fs.mkdir(staging, { mode: 0o700 });
  try {
    await unpack(paths.tarball, staging);
    await fs.rename(staging, evidenceDir);
    return true;
  } catch (err) {
    await fs.rm(staging, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Builds the template into `outDir` (npm run build): a fresh PGlite store in a temp folder, every
 * migration applied, closed cleanly, packed. `open` is the embedded executor's constructor,
 * passed in so this module does not import it (it imports this one).
 */
export async function buildStoreTemplate(
  outDir: string,
  open: (dataDir: string, opts: { template: false }) => Promise<SqlExecutor>,
): Promise<{ tarball: string; bytes: number }> {
  const paths = templatePaths(outDir)!;
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-store-template-'));
  try {
    const executor = await open(work, { template: false });
    try {
      await migrate(executor, DEFAULTS.schema);
      await executor.exec('CHECKPOINT');
    } finally {
      await executor.close();
    }
    const evidence = path.join(work, 'evidence');
    // Per-process files of a running server, if any were left: a copy must not carry them.
    await fs.rm(path.join(evidence, 'postmaster.pid'), { force: true });
    await fs.mkdir(outDir, { recursive: true });
    await pack(evidence, paths.tarball);
    await fs.writeFile(paths.key, JSON.stringify({ key: templateKey(), pglite: pgliteVersion(), builtAt: new Date().toISOString() }, null, 2) + '\n');
    return { tarball: paths.tarball, bytes: (await fs.stat(paths.tarball)).size };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** Packs the files and folders under `dir` (no links, no owners) into a gzip'd tar. */
async function pack(dir: string, file: string): Promise<void> {
  const tar = tarStream.pack();
  // Written aside and renamed into place: a process seeding a data dir meanwhile reads the old
  // tarball or the new one, never half of one.
  const partial = `${file}.${process.pid}.partial`;
  const done = pipeline(tar, createGzip({ level: 9 }), createWriteStream(partial, { mode: 0o644 }));
  done.catch(() => undefined); // awaited below; its error must not be unhandled if the walk throws first
  const walk = async (rel: string): Promise<void> => {
    for (const entry of await fs.readdir(path.join(dir, rel), { withFileTypes: true })) {
      const name = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        tar.entry({ name, type: 'directory', mode: 0o700 });
        await walk(name);
      } else if (entry.isFile()) {
        const bytes = await fs.readFile(path.join(dir, name));
        await new Promise<void>((resolve, reject) => tar.entry({ name, type: 'file', mode: 0o600, size: bytes.length }, bytes, (err) => (err ? reject(err) : resolve())));
      }
    }
  };
  try {
    await walk('');
    tar.finalize();
    await done;
    await fs.rename(partial, file);
  } catch (err) {
    tar.destroy();
    await fs.rm(partial, { force: true });
    throw err;
  }
}

/** What unpack leaves out as holes: pages of zeros (PostgreSQL's page size; the WAL segment is mostly these). */
const HOLE_BYTES = 8192;

/**
 * Writes a file's bytes, leaving whole zero pages as holes (the template's 16 MiB WAL segment is
 * about half zeros: reading a hole gives the same zeros, and PostgreSQL writes into its WAL at
 * offsets, as into any page). Returns the file's length.
 */
async function writeSparse(fd: number, entry: AsyncIterable<Buffer>): Promise<number> {
  let at = 0;
  for await (const chunk of entry) {
    let start = 0;
    while (start < chunk.length) {
      // Page-aligned in the file, so a hole never splits a page PostgreSQL wrote.
      const end = Math.min(chunk.length, start + HOLE_BYTES - ((at + start) % HOLE_BYTES));
      const page = chunk.subarray(start, end);
      if (page.length !== HOLE_BYTES || !isZero(page)) writeSync(fd, page, 0, page.length, at + start);
      start = end;
    }
    at += chunk.length;
  }
  return at;
}

const ZERO_PAGE = Buffer.alloc(HOLE_BYTES);
const isZero = (page: Buffer): boolean => page.equals(ZERO_PAGE);

/** Unpacks a tarball made by `pack` into `dir`: files and folders only, every name inside `dir`. */
async function unpack(file: string, dir: string): Promise<void> {
  const extract = tarStream.extract();
  // Large reads and inflate steps: the default 16 KiB made ~2,600 trips to the thread pool.
  const reading = pipeline(createReadStream(file, { highWaterMark: 256 * 1024 }), createGunzip({ chunkSize: 256 * 1024 }), extract);
  // A damaged tarball fails the loop below too; the pipeline's own rejection must not go unhandled.
  reading.catch(() => undefined);
  for await (const entry of extract) {
    const name = entry.header.name.replace(/\/+$/, '');
    const target = path.resolve(dir, name);
    if (path.isAbsolute(name) || name.split('/').includes('..') || !target.startsWith(dir + path.sep)) {
      throw new Error(`the store template names ${JSON.stringify(entry.header.name)}, outside its folder`);
    }
    // Synchronous writes: ~1,000 small files go ~5x faster this way than through write streams.
    if (entry.header.type === 'directory') {
      mkdirSync(target, { recursive: true, mode: 0o700 });
      entry.resume();
    } else if (entry.header.type === 'file') {
      mkdirSync(path.dirname(target), { recursive: true, mode: 0o700 });
      const fd = openSync(target, 'wx', 0o600);
      try {
        const size = writeSparse(fd, entry);
        // A trailing hole still counts: the file keeps its full length.
        ftruncateSync(fd, await size);
      } finally {
        closeSync(fd);
      }
    } else {
      throw new Error(`the store template holds a ${entry.header.type} (${name}); it holds files and folders only`);
    }
  }
  await reading;
}
