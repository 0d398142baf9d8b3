import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import t from 'tap';
import { VerificationError } from '../orchestrator/core/errors.js';
import { decompress, detectCompression } from '../restore-sandboxes/compression.js';
import { OutputTail } from '../orchestrator/core/output-tail.js';
import { detectDumpFormat, parseCustomHeader } from '../restore-sandboxes/postgres/dump-format.js';
import { PlainSqlFilter } from '../restore-sandboxes/postgres/plain-sql-filter.js';
import { PG_BIN_DIR, startPgCluster } from './helpers/pg-cluster.js';
import { readAll } from './helpers/bytes.js';

const run = promisify(execFile);
const HEAD_BYTES = 64 * 1024; // what the restorer peeks at
const INJECTED = /^DO \$backproof\$ BEGIN CREATE ROLE ("(?:[^"]|"")+"); EXCEPTION WHEN duplicate_object THEN NULL; END \$backproof\$;$/;

// ---- Real dumps of one small database, made once ----------------------------------------------

const cluster = await startPgCluster();
t.teardown(() => cluster.stop());
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-dumps-'));
t.teardown(() => fs.rm(dir, { recursive: true, force: true }));

await cluster.createDatabase('shop');
await cluster.psql(`CREATE ROLE app; CREATE ROLE "Mixed Case"; CREATE ROLE reader; CREATE ROLE rls_user; CREATE ROLE "we""ird";`);
await cluster.psql(
  String.raw`
  CREATE TABLE t (id int PRIMARY KEY, note text);
  ALTER TABLE t OWNER TO app;
  INSERT INTO t SELECT i, 'row ' || i || ' ' || md5(i::text) FROM generate_series(1, 3000) i;
  ALTER TABLE t ENABLE ROW LEVEL SECURITY;
  CREATE POLICY readers ON t FOR SELECT TO rls_user USING (id > 0);
  CREATE TABLE notes (body text);
  GRANT SELECT ON notes TO app, "Mixed Case";
  GRANT INSERT ON notes TO "we""ird";
  ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA public GRANT SELECT ON TABLES TO reader;
  -- Data lines that look like statements, and a value that is a lone backslash-dot.
  INSERT INTO notes VALUES ('ALTER TABLE x OWNER TO evil;'), ('GRANT ALL ON t TO evil2;'), (E'\\.'),
    ('SET SESSION AUTHORIZATION ''evil3'';'), ('COPY x FROM stdin;'), ('REVOKE ALL ON t FROM evil5;'), ('Grüße aus 東京');`,
  'shop',
);

async function dump(file: string, args: string[], tool = 'pg_dump'): Promise<Buffer> {
  const out = path.join(dir, file);
  await run(path.join(PG_BIN_DIR, tool), [...args, '-f', out, '-d', tool === 'pg_dump' ? cluster.urlFor('shop') : cluster.url]);
  return fs.readFile(out);
}

const dumpStarted = Date.now();
const custom = await dump('shop.dump', ['-Fc']);
const customZ0 = await dump('shop-z0.dump', ['-Fc', '-Z', '0']);
const customZ9 = await dump('shop-z9.dump', ['-Fc', '-Z', '9']);
const tar = await dump('shop.tar', ['-Ft']);
const plain = await dump('shop.sql', ['-Fp', '-C']);
const dumpall = await dump('all.sql', [], 'pg_dumpall');

/** A deterministic generator, so a failing chunking can be replayed. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function chunked(buf: Buffer, seed: number): Buffer[] {
  const rnd = prng(seed);
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; ) {
    const r = rnd();
    const size = r < 0.3 ? 1 : r < 0.5 ? 2 + Math.floor(rnd() * 3) : 1 + Math.floor(rnd() * 4096);
    out.push(buf.subarray(i, i + size));
    i += size;
  }
  return out;
}


async function filtered(chunks: Buffer[]): Promise<{ out: string; filter: PlainSqlFilter }> {
  const filter = new PlainSqlFilter();
  const out = await readAll(Readable.from(chunks).pipe(filter));
  return { out: out.toString('utf8'), filter };
}

async function rejection(p: Promise<unknown>): Promise<VerificationError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof VerificationError)) throw new Error(`expected a VerificationError, got ${String(err)}`);
  return err;
}

// ---- Dump formats --------------------------------------------------------------------------

t.test("pg_dump -Fc: the custom header's fields", async (t) => {
  const info = detectDumpFormat(custom.subarray(0, HEAD_BYTES));
  t.equal(info?.format, 'custom');
  const h = info?.header ?? {};
  t.equal(h.archiveVersion, '1.14.0', 'PostgreSQL 15 writes archive version 1.14');
  t.equal(h.archiveFormat, 'custom');
  t.equal(h.compression, 'gzip (default level)');
  t.equal(h.database, 'shop');
  t.match(h.serverVersion, /^15\.\d+/);
  t.match(h.pgDumpVersion, /^15\.\d+/);
  const m = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d) \(dumping server's local time\)$/.exec(h.dumpTime ?? '');
  t.ok(m, `dumpTime ${h.dumpTime}`);
  if (m) {
    const [y, mo, d, hh, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
    const local = new Date(y, mo - 1, d, hh, mi, s).getTime(); // pg_dump ran in our time zone
    t.ok(Math.abs(local - dumpStarted) < 120_000, 'dumpTime is when the dump was made');
  }
  t.equal(parseCustomHeader(customZ0).compression, 'none', '-Z 0');
  t.equal(parseCustomHeader(customZ9).compression, 'gzip level 9', '-Z 9');
  t.equal(parseCustomHeader(customZ0).database, 'shop');
});

t.test('a short or damaged custom header parses as far as it goes, never throws', async (t) => {
  const ten = parseCustomHeader(custom.subarray(0, 10));
  t.same(ten, { archiveVersion: '1.14.0' });
  t.equal(detectDumpFormat(custom.subarray(0, 10))?.format, 'custom');
  for (let n = 0; n <= 120; n++) t.doesNotThrow(() => parseCustomHeader(custom.subarray(0, n)), `first ${n} bytes`);
  const full = parseCustomHeader(custom.subarray(0, 200));
  t.equal(full.pgDumpVersion, parseCustomHeader(custom).pgDumpVersion, '200 bytes hold the whole header');
  const bad = Buffer.from(custom.subarray(0, 200));
  bad[8] = 40; // intSize 40: nonsense
  t.same(parseCustomHeader(bad), { archiveVersion: '1.14.0', archiveFormat: 'custom' });
});

t.test('a 1.15 header (PostgreSQL 16+) names its compression algorithm', async (t) => {
  const int = (n: number): Buffer => Buffer.from([n < 0 ? 1 : 0, Math.abs(n) & 0xff, (Math.abs(n) >> 8) & 0xff, 0, 0]);
  const str = (s: string): Buffer => Buffer.concat([int(Buffer.byteLength(s)), Buffer.from(s)]);
  const head = Buffer.concat([
    Buffer.from('PGDMP'),
    Buffer.from([1, 15, 0, 4, 8, 1, 3]), // version, intSize 4, offSize 8, custom, zstd
    ...[5, 30, 2, 27, 10, 126, 0].map(int), // 2026-11-27 02:30:05
    str('shop'),
    str('16.4'),
    str('16.4'),
  ]);
  t.same(parseCustomHeader(head), {
    archiveVersion: '1.15.0',
    archiveFormat: 'custom',
    compression: 'zstd',
    dumpTime: "2026-11-27 02:30:05 (dumping server's local time)",
    database: 'shop',
    serverVersion: '16.4',
    pgDumpVersion: '16.4',
  });
});

t.test('pg_dump -Ft is tar; -Fp and pg_dumpall are plain with their completion markers', async (t) => {
  t.same(detectDumpFormat(tar.subarray(0, HEAD_BYTES)), { format: 'tar', header: { firstMember: 'toc.dat' } });
  const p = detectDumpFormat(plain.subarray(0, HEAD_BYTES));
  t.equal(p?.format, 'plain');
  t.match(p?.header, { serverVersion: /^15\.\d+/, pgDumpVersion: /^15\.\d+/, writtenBy: 'pg_dump' });
  t.equal(p?.completeMarker, '-- PostgreSQL database dump complete');
  t.ok(plain.toString().split('\n').includes(p?.completeMarker ?? '?'), 'the marker is a line of the real dump');
  const all = detectDumpFormat(dumpall.subarray(0, HEAD_BYTES));
  t.equal(all?.format, 'plain');
  t.equal(all?.header.writtenBy, 'pg_dumpall');
  t.match(all?.header.serverVersion, /^15\.\d+/);
  t.equal(all?.completeMarker, '-- PostgreSQL database cluster dump complete');
  t.ok(dumpall.toString().split('\n').includes(all?.completeMarker ?? '?'), 'the cluster marker is a line of the real dump');
  const crlf = detectDumpFormat(Buffer.from(plain.subarray(0, 4096).toString().replace(/\n/g, '\r\n')));
  t.equal(crlf?.completeMarker, p?.completeMarker, 'a dump saved with CRLF');
  t.equal(crlf?.header.serverVersion, p?.header.serverVersion, 'no \\r in the version');
});

t.test('hand-written SQL is plain without a marker; binary and UTF-16 are not dumps', async (t) => {
  const sql = detectDumpFormat(Buffer.from('-- my export\nCREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n'));
  t.same(sql, { format: 'plain', header: {}, completeMarker: undefined });
  const rnd = prng(7);
  const garbage = Buffer.from(Array.from({ length: 4096 }, () => Math.floor(rnd() * 256)));
  t.equal(detectDumpFormat(garbage), undefined, 'random bytes');
  t.equal(detectDumpFormat(Buffer.from(`\ufeff${plain.subarray(0, 2048).toString()}`, 'utf16le'))?.format, 'utf16-text', 'UTF-16 text is named, to be refused with a reason');
  t.equal(detectDumpFormat(Buffer.alloc(0)), undefined, 'nothing');
  t.equal(detectDumpFormat(Buffer.from('\x7fELF\x02\x01\x01\x00\x00\x00')), undefined, 'an executable');
});

// ---- Compression -----------------------------------------------------------------------------

async function hasTool(tool: string): Promise<boolean> {
  return run('sh', ['-c', `command -v ${tool}`]).then(
    () => true,
    () => false,
  );
}

async function compress(tool: string, file: string): Promise<Buffer> {
  return (await run(tool, ['-c', file], { encoding: 'buffer', maxBuffer: 64 * 1024 ** 2 })).stdout;
}

t.test('compression is told by its magic bytes, as the real tools write them', async (t) => {
  for (const tool of ['gzip', 'zstd', 'xz', 'bzip2'] as const) {
    const skip = (await hasTool(tool)) ? false : `${tool} is not installed`;
    await t.test(tool, { skip }, async (t) => {
      const packed = await compress(tool, path.join(dir, 'shop.sql'));
      t.equal(detectCompression(packed.subarray(0, 8)), tool, tool);
      t.equal(detectDumpFormat(packed.subarray(0, HEAD_BYTES)), undefined, `${tool} bytes are not read as a dump`);
      if (tool !== 'gzip') {
        const err = await rejection(decompress(Readable.from([packed])));
        t.equal(err.reason, 'unsupported_format');
        t.match(err.message, tool);
      }
    });
  }
  for (const [name, buf] of [['plain', plain], ['custom', custom], ['tar', tar]] as const) t.equal(detectCompression(buf), 'none', name);
  t.equal(detectCompression(Buffer.from([0x1f])), 'none', 'one byte');
});

t.test('decompress: gzip round trip, several members, and untouched plain input', async (t) => {
  const gz = await compress('gzip', path.join(dir, 'shop.sql'));
  const r = await decompress(Readable.from(chunked(gz, 1)));
  t.equal(r.compression, 'gzip');
  t.ok((await readAll(r.stream)).equals(plain), 'the same bytes back');
  const tarGz = await compress('gzip', path.join(dir, 'shop.tar'));
  const both = await decompress(Readable.from([Buffer.concat([gz, tarGz])]));
  t.ok((await readAll(both.stream)).equals(Buffer.concat([plain, tar])), 'cat a.gz b.gz: both parts');
  const padded = await decompress(Readable.from([gz, Buffer.alloc(512)]));
  t.ok((await readAll(padded.stream)).equals(plain), 'zero padding after the last member (tape, dd) is ignored, as gzip does');
  const junk = await decompress(Readable.from([gz, Buffer.from('GARBAGE!')]));
  t.equal((await rejection(readAll(junk.stream))).reason, 'corrupt_compression', 'other bytes after it are not');
  const none = await decompress(Readable.from(chunked(custom, 2)));
  t.equal(none.compression, 'none');
  t.ok((await readAll(none.stream)).equals(custom));
});

t.test('decompress: a truncated or damaged gzip is corrupt_compression', async (t) => {
  const gz = await compress('gzip', path.join(dir, 'shop.sql'));
  const cut = await decompress(Readable.from([gz.subarray(0, Math.floor(gz.length / 2))]));
  const e1 = await rejection(readAll(cut.stream));
  t.equal(e1.reason, 'corrupt_compression');
  t.match(e1.message, /truncated/);
  const noTrailer = await decompress(Readable.from([gz.subarray(0, gz.length - 4)]));
  t.equal((await rejection(readAll(noTrailer.stream))).reason, 'corrupt_compression', 'only the length trailer missing');
  const damaged = Buffer.from(gz);
  for (let i = Math.floor(gz.length / 2); i < Math.floor(gz.length / 2) + 16; i++) damaged[i] = damaged[i]! ^ 0x5a;
  const bad = await decompress(Readable.from([damaged]));
  const e2 = await rejection(readAll(bad.stream));
  t.equal(e2.reason, 'corrupt_compression');
  t.match(e2.message, /^gzip stream is corrupt/);
});

// ---- PlainSqlFilter on a real plain dump -----------------------------------------------------

t.test('PlainSqlFilter adds only role creation, before first use, at any chunking', async (t) => {
  for (const seed of [11, 12, 13]) {
    const { out, filter } = await filtered(chunked(plain, seed));
    const lines = out.split('\n');
    const injected = lines.filter((l) => INJECTED.test(l));
    t.equal(lines.filter((l) => !INJECTED.test(l)).join('\n'), plain.toString(), `seed ${seed}: the dump itself is untouched`);
    t.same([...filter.rolesCreated].sort(), ['Mixed Case', 'app', 'reader', 'rls_user', 'we"ird'], 'COPY data roles are not created');
    t.equal(injected.length, filter.rolesCreated.length, 'one creation per role');
    t.equal(filter.connectedDatabase, 'shop', '\\connect of pg_dump -C');
    t.ok(filter.lastLines(8).includes('-- PostgreSQL database dump complete'), 'lastLines shows the completion marker');
    for (const [i, l] of lines.entries()) {
      if (!INJECTED.test(l) || INJECTED.test(lines[i - 1] ?? '')) continue;
      let next = i;
      while (INJECTED.test(lines[next] ?? '')) next++;
      const named = lines.slice(i, next).map((x) => INJECTED.exec(x)![1]!);
      for (const ident of named) t.ok(lines[next]!.includes(ident) || lines[next]!.includes(ident.toLowerCase().replace(/"/g, '')), `${ident} is used by: ${lines[next]}`);
    }
  }
  const ones = await filtered(chunked(plain, 0).flatMap((c) => [...c].map((b) => Buffer.from([b]))));
  t.equal(ones.out.split('\n').filter((l) => !INJECTED.test(l)).join('\n'), plain.toString(), 'one byte at a time, UTF-8 intact');
});

t.test('the filtered dump restores where its roles do not exist; the raw one does not', async (t) => {
  await cluster.psql('DROP DATABASE shop');
  await cluster.psql('DROP ROLE app, "Mixed Case", reader, rls_user, "we""ird"');
  await t.rejects(cluster.psql(plain.toString()), /role "app" does not exist/, 'without the filter the restore stops');
  await cluster.psql('DROP DATABASE shop');
  const { out } = await filtered(chunked(plain, 21));
  await cluster.psql(out);
  t.equal((await cluster.psql("SELECT tableowner FROM pg_tables WHERE tablename = 't'", 'shop')).trim(), 'app');
  t.equal((await cluster.psql('SELECT count(*) FROM t', 'shop')).trim(), '3000');
  t.equal((await cluster.psql("SELECT count(*) FROM notes WHERE body = E'\\\\.'", 'shop')).trim(), '1', 'the backslash-dot value is data');
  t.equal((await cluster.psql("SELECT count(*) FROM notes WHERE body = 'Grüße aus 東京'", 'shop')).trim(), '1');
  const roles = await cluster.psql("SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname !~ '^pg_' AND rolname <> 'postgres'");
  t.equal(roles.trim(), 'Mixed Case,app,reader,rls_user,we"ird', 'no role from COPY data');
});

t.test('PlainSqlFilter: CRLF dumps, pg_dumpall, and long COPY rows', async (t) => {
  const crlf = Buffer.from(plain.toString().replace(/\n/g, '\r\n'));
  const c = await filtered(chunked(crlf, 31));
  t.equal(c.out.split('\n').filter((l) => !INJECTED.test(l)).join('\n'), crlf.toString(), 'CRLF passes unchanged');
  t.same([...c.filter.rolesCreated].sort(), ['Mixed Case', 'app', 'reader', 'rls_user', 'we"ird']);
  t.equal(c.filter.connectedDatabase, 'shop');
  t.ok(c.filter.lastLines(8).includes('-- PostgreSQL database dump complete'));

  const all = await filtered(chunked(dumpall, 41));
  // pg_dumpall's own `CREATE ROLE x;` lines are wrapped to pass when the role exists already.
  const unwrapped = all.out.replace(/^DO \$backproof\$ BEGIN (CREATE ROLE [^;]+;) EXCEPTION WHEN duplicate_object THEN NULL; END \$backproof\$;$/gm, '$1');
  t.equal(unwrapped, dumpall.toString(), 'the dump is otherwise untouched');
  t.match(all.out, /^DO \$backproof\$ BEGIN CREATE ROLE postgres; EXCEPTION WHEN duplicate_object/m, 'CREATE ROLE postgres cannot stop the restore');
  t.ok(all.filter.lastLines(8).includes('-- PostgreSQL database cluster dump complete'));
  t.equal(all.filter.connectedDatabase, 'shop', 'the last \\connect');

  // A row of a big bytea/text value is one line: it must flow through, not pile up until its end.
  const filter = new PlainSqlFilter();
  let seen = 0;
  filter.on('data', (b: Buffer) => (seen += b.length));
  filter.write('COPY public.blobs (id, data) FROM stdin;\n1\t');
  for (let i = 0; i < 64; i++) filter.write(Buffer.alloc(16 * 1024, 0x61));
  await new Promise((r) => setImmediate(r));
  t.ok(seen > 1024 * 1024, `the first MB of an unfinished row is already passed on (${seen} bytes)`);
  filter.end('\n\\.\nALTER TABLE public.blobs OWNER TO blobber;\n');
  await new Promise((r) => filter.on('end', r));
  t.same(filter.rolesCreated, ['blobber'], 'the line after the COPY block is read again');
});

// ---- OutputTail ------------------------------------------------------------------------------

t.test('OutputTail keeps the head and the tail of long output', async (t) => {
  const small = new OutputTail(10);
  small.push(Buffer.from('hello '));
  small.push(Buffer.from('world'));
  t.equal(small.text(), 'hello world', 'short output whole');
  const exact = new OutputTail(5);
  exact.push(Buffer.from('0123456789'));
  t.equal(exact.text(), '0123456789', 'exactly max: nothing omitted');
  const long = new OutputTail(10);
  long.push(Buffer.from('abcdefghij'));
  long.push(Buffer.from('klmnopqrstuvwxyz0123'));
  t.equal(long.text(), 'abcdefghij\n[... 10 bytes omitted ...]\nuvwxyz0123');
  const drip = new OutputTail(4);
  for (const ch of 'pg_restore: error: could not execute query') drip.push(Buffer.from(ch));
  t.equal(drip.text(), 'pg_r\n[... 34 bytes omitted ...]\nuery', 'byte by byte');
  const uneven = new OutputTail(3, 6);
  uneven.push('borg: Repository ');
  uneven.push('does not exist.');
  t.equal(uneven.text(), 'bor\n[... 23 bytes omitted ...]\nexist.', 'head and tail of their own sizes; strings too');
});

t.test('a directory-format dump in a tar is told from its members; toc.dat gives the versions when it comes early', async (t) => {
  const folder = path.join(dir, 'shop.dir');
  await run(path.join(PG_BIN_DIR, 'pg_dump'), ['-Fd', '-f', folder, '-d', cluster.urlFor('shop')]);
  // toc.dat first (as `tar -C shop.dir toc.dat .` would put it): the header is read.
  const tocFirst = path.join(dir, 'toc-first.tar');
  const others = (await fs.readdir(folder)).filter((f) => f !== 'toc.dat');
  await run('tar', ['-cf', tocFirst, '-C', dir, 'shop.dir/toc.dat', ...others.map((f) => `shop.dir/${f}`)]);
  const early = detectDumpFormat((await fs.readFile(tocFirst)).subarray(0, HEAD_BYTES));
  t.match(early, { format: 'directory-tar', header: { serverVersion: /^15\./, dumpFolder: 'shop.dir/' } });
  // Data files first: the members still say what it is, without versions.
  const dataFirst = path.join(dir, 'data-first.tar');
  await run('tar', ['-cf', dataFirst, '-C', folder, ...others, 'toc.dat']);
  const late = detectDumpFormat((await fs.readFile(dataFirst)).subarray(0, HEAD_BYTES));
  t.equal(late?.format, 'directory-tar');
  t.equal(late?.header.serverVersion, undefined);
  // A tar with anything else in it is not a directory dump.
  await fs.writeFile(path.join(folder, 'README.txt'), 'notes');
  const mixed = path.join(dir, 'mixed.tar');
  await run('tar', ['-cf', mixed, '-C', folder, 'README.txt', ...others]);
  t.equal(detectDumpFormat((await fs.readFile(mixed)).subarray(0, HEAD_BYTES))?.format, 'other-tar');
});
