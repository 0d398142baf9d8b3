import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import type { RunStore } from '../orchestrator/evidence/run-store.js';
import { seededBytes } from './helpers/bytes.js';
import { age } from './helpers/fixtures.js';
import { codes, leftoversOf, openEmbeddedStore, policyFromYaml, tempDir, verify } from './helpers/harness.js';
import { shopSql, SqliteFixtures } from './helpers/sqlite-fixtures.js';

// kind: sqlite. Databases and .dumps written by the real sqlite3 (in a throwaway container),
// restored in a real Docker sandbox, damaged the way files are damaged in the field.

const run = promisify(execFile);

const SHOP_PROBES = `          - tablesExist: [customers, orders]
          - rowCount: { table: orders, atLeast: 5000 }
          - sql: SELECT count(DISTINCT customer_id) FROM orders
            atLeast: 100
          - freshness: { table: orders, column: created_at, within: 48h }`;

let store: RunStore;
let fixtures: SqliteFixtures;
let shopDb: Buffer;
let shopDump: Buffer;

t.before(async () => {
  store = (await openEmbeddedStore()).store;
  fixtures = await SqliteFixtures.start();
  const dir = await tempDir('sqlite-fixtures');
  await fixtures.database(path.join(dir, 'shop.db'), shopSql());
  await fixtures.dump(path.join(dir, 'shop.sql'), shopSql());
  shopDb = await fs.readFile(path.join(dir, 'shop.db'));
  shopDump = await fs.readFile(path.join(dir, 'shop.sql'));
});

t.teardown(async () => {
  await fixtures?.stop();
  await store?.close();
});

/** A folder holding one aged backup `name` with `bytes`. */
async function backup(name: string, bytes: Buffer): Promise<string> {
  const folder = await tempDir('sqlite');
  const file = path.join(folder, name);
  await fs.writeFile(file, bytes);
  await age(file, 60_000);
  return folder;
}

async function verifySqlite(folder: string, probes = SHOP_PROBES) {
  return verify(policyFromYaml({ folder, kind: 'sqlite', probes }), store);
}

t.test('a good database file passes every probe, with its header in the evidence', async (t) => {
  const r = await verifySqlite(await backup('shop.db', shopDb));
  t.equal(r.verdict, 'pass', JSON.stringify(r.reasons));
  t.equal(r.backup?.format, 'sqlite-db');
  t.equal(r.backup?.compression, 'none');
  t.match(r.backup?.header, { pageSize: '4096', pageCount: String(shopDb.length / 4096), textEncoding: 'UTF-8', userVersion: '3', integrityCheck: 'ok', journalMode: /^rollback/ });
  t.match(r.sandbox?.serverVersion, /^SQLite 3\./);
  t.equal(r.probes.length, 4);
  t.ok(r.probes.every((p) => p.pass), JSON.stringify(r.probes));
  t.match(r.probes.find((p) => p.type === 'freshness')?.actual, /^newest .* before the backup time/);
  t.match(r.restored, { tables: 2, rows: 5500, sizeBytes: shopDb.length, foreignKeyViolations: 0 });
  t.equal(await leftoversOf(r.id), 0, 'no container or volume left');
});

t.test('gzip and zstd compressed databases pass; compression is told from the bytes', async (t) => {
  const gz = await verifySqlite(await backup('shop.db', gzipSync(shopDb)));
  t.equal(gz.verdict, 'pass', JSON.stringify(gz.reasons));
  t.equal(gz.backup?.compression, 'gzip');
  t.equal(await leftoversOf(gz.id), 0);

  const folder = await tempDir('sqlite-zst');
  await fs.writeFile(path.join(folder, 'plain'), shopDb);
  await run('zstd', ['-q', '-o', path.join(folder, 'shop.db.zst'), path.join(folder, 'plain')]);
  await fs.rm(path.join(folder, 'plain'));
  await age(path.join(folder, 'shop.db.zst'), 60_000);
  const zst = await verifySqlite(folder);
  t.equal(zst.verdict, 'pass', JSON.stringify(zst.reasons));
  t.equal(zst.backup?.compression, 'zstd');
  t.match(zst.restored, { rows: 5500 });
  t.equal(await leftoversOf(zst.id), 0);
});

t.test('a sqlite3 .dump is loaded into a new database and passes', async (t) => {
  const r = await verifySqlite(await backup('shop.sql', shopDump));
  t.equal(r.verdict, 'pass', JSON.stringify(r.reasons));
  t.equal(r.backup?.format, 'sqlite-dump');
  t.equal(r.backup?.header?.dumpBytes, String(shopDump.length));
  t.match(r.restored, { tables: 2, rows: 5500 });
  t.ok(r.probes.every((p) => p.pass), JSON.stringify(r.probes));
  t.equal(await leftoversOf(r.id), 0);
});

t.test('a .dump cut before its COMMIT fails as truncated', async (t) => {
  const cut = shopDump.subarray(0, Math.floor(shopDump.length * 0.7));
  const r = await verifySqlite(await backup('shop.sql', cut));
  t.equal(r.verdict, 'fail', JSON.stringify(r.reasons));
  t.same(codes(r), ['truncated_dump']);
  t.match(r.reasons[0]?.message, /the sqlite3 \.dump ends early: its closing "COMMIT;" is missing/);
  t.equal(await leftoversOf(r.id), 0);
});

t.test('a WAL-mode database (checkpointed file) passes', async (t) => {
  const folder = await tempDir('sqlite-wal');
  const file = path.join(folder, 'shop.db');
  await fixtures.database(file, shopSql({ wal: true }));
  const bytes = await fs.readFile(file);
  t.equal(bytes[18], 2, 'the fixture really is in WAL mode');
  await age(file, 60_000);
  const r = await verifySqlite(folder);
  t.equal(r.verdict, 'pass', JSON.stringify(r.reasons));
  t.match(r.backup?.header?.journalMode, /^wal/);
  t.match(r.restored, { rows: 5500 });
  t.equal(await leftoversOf(r.id), 0);
});

t.test('a truncated database file fails as truncated, saying how much is missing', async (t) => {
  const r = await verifySqlite(await backup('shop.db', shopDb.subarray(0, Math.floor(shopDb.length * 0.6))));
  t.equal(r.verdict, 'fail', JSON.stringify(r.reasons));
  t.same(codes(r), ['truncated_dump']);
  t.match(r.reasons[0]?.message, /the database file ends early: .* but its header says \d+ pages of 4096 bytes .* are missing/);
  t.equal(await leftoversOf(r.id), 0);
});

t.test('a damaged b-tree page fails with integrity_check words', async (t) => {
  const damaged = Buffer.from(shopDb);
  // Page 5 (a table b-tree page, past the schema on page 1): overwrite its header and cells.
  damaged.fill(0xa5, 4 * 4096, 4 * 4096 + 200);
  const r = await verifySqlite(await backup('shop.db', damaged));
  t.equal(r.verdict, 'fail', JSON.stringify(r.reasons));
  t.same(codes(r), ['restore_failed']);
  t.match(r.reasons[0]?.message, /the database is damaged: PRAGMA integrity_check reports \d+ problem\(s\): .*(page|Tree|btree)/i);
  t.equal(await leftoversOf(r.id), 0);
});

t.test('a damaged first page fails as restore_failed, with what is wrong', async (t) => {
  const badPageSize = Buffer.from(shopDb);
  badPageSize.writeUInt16BE(3000, 16); // a page size no SQLite writes
  const r = await verifySqlite(await backup('shop.db', badPageSize));
  t.equal(r.verdict, 'fail', JSON.stringify(r.reasons));
  t.same(codes(r), ['restore_failed']);
  t.match(r.reasons[0]?.message, /header is damaged: page size 3000/);
  t.equal(await leftoversOf(r.id), 0);

  const badSchema = Buffer.from(shopDb);
  badSchema.fill(0xff, 100, 400); // the schema's b-tree page header and cell pointers
  const s = await verifySqlite(await backup('shop.db', badSchema));
  t.equal(s.verdict, 'fail', JSON.stringify(s.reasons));
  t.same(codes(s), ['restore_failed']);
  t.match(s.reasons[0]?.message, /the database is damaged: .*(malformed|not a database)/);
  t.equal(await leftoversOf(s.id), 0);
});

t.test('an empty backup (0 bytes) fails as empty', async (t) => {
  const r = await verifySqlite(await backup('shop.db', Buffer.alloc(0)));
  t.equal(r.verdict, 'fail', JSON.stringify(r.reasons));
  t.same(codes(r), ['empty_backup']);
  t.match(r.reasons[0]?.message, /empty \(0 bytes\)/);
  t.equal(await leftoversOf(r.id), 0);
});

t.test('a gzip that decompresses to nothing fails as empty', async (t) => {
  const r = await verifySqlite(await backup('shop.db.gz', gzipSync(Buffer.alloc(0))));
  t.equal(r.verdict, 'fail', JSON.stringify(r.reasons));
  t.same(codes(r), ['empty_backup']);
  t.match(r.reasons[0]?.message, /gzip backup decompresses to nothing/);
  t.equal(await leftoversOf(r.id), 0);
});

t.test('a database with no tables fails as an empty restore', async (t) => {
  const folder = await tempDir('sqlite-notables');
  const file = path.join(folder, 'shop.db');
  await fixtures.database(file, 'PRAGMA user_version = 7; PRAGMA application_id = 1196444487;');
  await age(file, 60_000);
  const r = await verifySqlite(folder, '          []');
  t.equal(r.verdict, 'fail', JSON.stringify(r.reasons));
  t.same(codes(r), ['empty_restore']);
  t.match(r.reasons[0]?.message, /holds no tables/);
  t.match(r.backup?.header, { userVersion: '7', applicationId: '0x47504b47 (GeoPackage)' });
  t.equal(await leftoversOf(r.id), 0);
});

t.test('a probe on a missing table fails the run with probe_failed', async (t) => {
  const r = await verifySqlite(await backup('shop.db', shopDb), '          - tablesExist: [customers, invoices]\n          - rowCount: { table: invoices, atLeast: 1 }');
  t.equal(r.verdict, 'fail', JSON.stringify(r.reasons));
  t.same(codes(r), ['probe_failed', 'probe_failed']);
  t.match(r.reasons[0]?.message, /missing: invoices/);
  t.match(r.reasons[1]?.message, /no such table: invoices/);
  t.equal(await leftoversOf(r.id), 0);
});

t.test('random bytes are not a database: unrecognized format, saying what they look like', async (t) => {
  const r = await verifySqlite(await backup('shop.db', seededBytes(200_000, 'not-a-database')));
  t.equal(r.verdict, 'fail', JSON.stringify(r.reasons));
  t.same(codes(r), ['unrecognized_format']);
  t.match(r.reasons[0]?.message, /not a SQLite database or sqlite3 \.dump: the backup is random-looking bytes/);
  t.equal(await leftoversOf(r.id), 0);
});

t.test('a PostgreSQL dump stored under a sqlite policy is named as such', async (t) => {
  const r = await verifySqlite(await backup('shop.db', Buffer.from('--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n')));
  t.same(codes(r), ['unrecognized_format']);
  t.match(r.reasons[0]?.message, /a PostgreSQL plain SQL dump \(use kind: postgres\)/);
  t.equal(await leftoversOf(r.id), 0);
});
