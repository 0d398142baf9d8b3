import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { MysqlDumpFilter } from '../restore-sandboxes/mysql/dump-filter.js';
import { detectMysqlDump } from '../restore-sandboxes/mysql/dump-format.js';
import { isXbstream } from '../restore-sandboxes/mysql/mariabackup-restore.js';
import { age, corruptFile, createShopDatabase, dumpDatabase, truncateFile } from './helpers/fixtures.js';
import { codes, leftoversOf, policyFromYaml, tempDir, useRestoreEnv, verify } from './helpers/harness.js';
import { asMysql8Dump, compressWith, createMysqlShop, startMysqlFixtureServer, type MysqlFixtureServer } from './helpers/mysql-fixtures.js';

// kind: mysql. Real mariadb-dump output from a real MariaDB server (a throwaway container),
// restored in a real network-less Docker sandbox. A good dump passes with its probes; a damaged
// one is a `fail` naming the defect; no container or volume is left behind.

const env = useRestoreEnv(t);
let server: MysqlFixtureServer;
let dumps: string;
/** The plain single-database dump of `shop` every damaged variant starts from. */
let shopDump: string;

const PROBES = `          - tablesExist: [customers, orders]
          - rowCount: { table: orders, atLeast: 5000 }
          - sql: SELECT count(DISTINCT customer_id) FROM orders
            atLeast: 100
          - freshness: { table: orders, column: created_at, within: 48h }`;

t.before(async () => {
  server = await startMysqlFixtureServer();
  dumps = await tempDir('mysql-dumps');
  await createMysqlShop(server, 'shop');
  await createMysqlShop(server, 'other', { orders: 100 });
  await createMysqlShop(server, 'bare', { empty: true });
  shopDump = path.join(dumps, 'shop.sql');
  await server.dump(shopDump, ['shop']);
});
t.teardown(async () => {
  await server?.stop();
  if (dumps) await fs.rm(dumps, { recursive: true, force: true });
});

/** A folder holding `name`, a copy of `from` (or what `write` makes), aged past the settle time. */
async function backup(name: string, write: (file: string) => Promise<void>): Promise<string> {
  const folder = await tempDir('mysql');
  const file = path.join(folder, name);
  await write(file);
  await age(file, 60_000);
  return folder;
}

const copyOf = (from: string) => (file: string) => fs.copyFile(from, file);

t.test('a good plain mariadb-dump passes every probe, with evidence', async (t) => {
  const folder = await backup('shop.sql', copyOf(shopDump));
  const run = await verify(policyFromYaml({ folder, kind: 'mysql', probes: PROBES, extra: '        mysql: { database: shop }' }), env.store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.backup?.format, 'mysqldump');
  t.equal(run.backup?.compression, 'none');
  t.match(run.backup?.header, { writtenBy: 'mariadb-dump', host: 'localhost', database: 'shop', serverVersion: /^10\.11\./, serverFlavor: 'MariaDB' });
  t.match(run.sandbox?.serverVersion, /MariaDB/);
  t.equal(run.sandbox?.limits?.capAdd, 'none');
  t.equal(run.probes.length, 4);
  t.ok(run.probes.every((p) => p.pass), JSON.stringify(run.probes));
  t.match(run.probes.find((p) => p.type === 'freshness')?.actual, /^newest \d{4}-/);
  t.match(run.restored, { database: 'shop', tables: 3, estimatedRows: 10500, rowsCounted: 'exact' });
  t.ok(Number(run.restored?.sizeBytes) > 0);
  t.ok(run.phases.every((p) => p.outcome === 'ok' || p.name === 'storage_check'), JSON.stringify(run.phases));
  t.equal(await leftoversOf(run.id), 0, 'no container or volume left');
});

t.test('gzip and zstd compressed dumps pass (the compression comes from the bytes); a cut zstd stream fails', async (t) => {
  for (const tool of ['gzip', 'zstd'] as const) {
    // Misleading names: neither says how the file is compressed.
    const folder = await backup('shop.backup', (file) => compressWith(tool, shopDump, file));
    const run = await verify(policyFromYaml({ folder, kind: 'mysql', probes: PROBES }), env.store);
    t.equal(run.verdict, 'pass', `${tool}: ${JSON.stringify(run.reasons)}`);
    t.equal(run.backup?.compression, tool);
    t.equal(run.restored?.database, 'restore', 'a single-database dump goes into mysql.database (default "restore")');
    t.equal(await leftoversOf(run.id), 0);
  }
  // zstd is decoded by the sandbox's own tool: a cut stream is its fail, in its words.
  const cut = await backup('shop.backup', async (file) => {
    await compressWith('zstd', shopDump, file);
    await truncateFile(file, 0.5);
  });
  const run = await verify(policyFromYaml({ folder: cut, kind: 'mysql', probes: PROBES }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['corrupt_compression'], JSON.stringify(run.reasons));
  t.match(run.reasons[0]?.message, /^zstd stream is truncated/);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a --databases dump creates its own databases: probed in the configured one, else the only one', async (t) => {
  const two = await backup('shop-two.sql', (file) => server.dump(file, ['--databases', 'other', 'shop']));
  const run = await verify(policyFromYaml({ folder: two, kind: 'mysql', probes: PROBES, extra: '        mysql: { database: shop }' }), env.store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.match(run.backup?.header, { databases: 'other, shop' });
  t.equal(run.restored?.database, 'shop', 'shop, not the other database');
  t.equal(run.probes.find((p) => p.type === 'rowCount')?.actual, '5000 rows');

  const one = await backup('shop-one.sql', (file) => server.dump(file, ['--databases', 'shop']));
  const single = await verify(policyFromYaml({ folder: one, kind: 'mysql', probes: PROBES }), env.store);
  t.equal(single.verdict, 'pass', JSON.stringify(single.reasons));
  t.equal(single.backup?.header?.probedDatabase, 'shop', 'mysql.database "restore" is not in the dump: its only database');

  const ambiguous = await verify(policyFromYaml({ folder: two, kind: 'mysql', probes: PROBES }), env.store);
  t.equal(ambiguous.verdict, 'fail');
  t.same(codes(ambiguous), ['empty_restore']);
  t.match(ambiguous.reasons[0]?.message, /holds no database "restore" \(it holds: other, shop\); set mysql\.database/);
  for (const r of [run, single, ambiguous]) t.equal(await leftoversOf(r.id), 0);
});

t.test('a dump of the accounts (mysql schema, --flush-privileges) whose root logs in by unix_socket, as Debian\'s does, passes', async (t) => {
  // Only the stored accounts change (no FLUSH here): the fixture server keeps its own access.
  await server.sql(`UPDATE mysql.global_priv SET Priv = JSON_SET(Priv, '$.plugin', 'unix_socket', '$.authentication_string', '') WHERE User = 'root'`);
  const folder = await backup('shop-all.sql', (file) => server.dump(file, ['--databases', 'mysql', 'shop', '--flush-privileges']));
  t.ok((await fs.readFile(path.join(folder, 'shop-all.sql'), 'utf8')).includes('\n/*! FLUSH PRIVILEGES */;\n'), 'the dump reloads the accounts it restored');
  const run = await verify(policyFromYaml({ folder, kind: 'mysql', probes: PROBES, extra: '        mysql: { database: shop }' }), env.store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.match(run.backup?.header, { databases: 'mysql, shop', flushPrivilegesSkipped: /^yes/ });
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a MySQL 8 dump (utf8mb4_0900_ai_ci, GTID state) passes: collations mapped, GTID lines dropped', async (t) => {
  const folder = await backup('shop-mysql8.sql', (file) => asMysql8Dump(shopDump, file, { gtid: true }));
  const text = await fs.readFile(path.join(folder, 'shop-mysql8.sql'), 'utf8');
  t.match(text, /COLLATE=utf8mb4_0900_ai_ci/, 'the fixture names the MySQL 8 collation');
  const run = await verify(policyFromYaml({ folder, kind: 'mysql', probes: PROBES }), env.store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.match(run.backup?.header, {
    writtenBy: 'mysqldump',
    serverVersion: '8.0.36',
    serverFlavor: 'MySQL',
    collationsReplaced: /^utf8mb4_0900_ai_ci -> utf8mb4_uca1400_nopad_ai_ci \(MySQL 8 collations MariaDB 10\.11\.\d+\S* lacks\)$/,
    gtidStateDropped: /\(2 line\(s\)\)/,
  });
  t.ok(run.probes.every((p) => p.pass));
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a MySQL 8 dump using what MariaDB lacks (gb18030) cannot be verified here: an error, not a fail', async (t) => {
  // A small dump: the client stops at line ~25 and the rest must fit the exec's buffers (see
  // the report: a process that exits before reading its stdin holds exec() for 40-80 s).
  const small = path.join(dumps, 'bare.sql');
  await server.dump(small, ['bare']);
  const folder = await backup('shop-mysql8.sql', async (file) => {
    await asMysql8Dump(small, file);
    const text = await fs.readFile(file, 'utf8');
    await fs.writeFile(file, text.replace('DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci', 'DEFAULT CHARSET=gb18030 COLLATE=gb18030_chinese_ci'));
  });
  const run = await verify(policyFromYaml({ folder, kind: 'mysql', probes: PROBES }), env.store);
  t.equal(run.verdict, 'error');
  t.same(codes(run), ['unsupported_format']);
  t.match(run.reasons[0]?.message, /^the dump comes from MySQL 8\.0\.36 and needs what the sandbox's MariaDB 10\.11\.\d+\S* lacks \(ERROR 1115 \(42000\) at line \d+: Unknown character set: 'gb18030'\)/);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('SQL without a mysqldump header is restored; a shell escape in it is refused by the client', async (t) => {
  const plain = await backup('shop.sql', (file) => fs.writeFile(file, 'CREATE TABLE orders (id int PRIMARY KEY);\nINSERT INTO orders VALUES (1),(2);\n'));
  const ok = await verify(policyFromYaml({ folder: plain, kind: 'mysql', probes: '          - rowCount: { table: orders, atLeast: 2 }' }), env.store);
  t.equal(ok.verdict, 'pass', JSON.stringify(ok.reasons));
  t.match(ok.backup, { format: 'sql', header: { completenessCheck: /^not possible: no mysqldump header/ } });

  const evil = await backup('shop.sql', (file) => fs.writeFile(file, 'CREATE TABLE orders (id int PRIMARY KEY);\n\\! touch /tmp/pwned\nINSERT INTO orders VALUES (1);\n'));
  const run = await verify(policyFromYaml({ folder: evil, kind: 'mysql', probes: '          []' }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['unsafe_archive']);
  t.match(run.reasons[0]?.message, /ERROR at line 2: Not allowed in the sandbox mode/);
  for (const r of [ok, run]) t.equal(await leftoversOf(r.id), 0);
});

t.test('a dump cut at 60% fails as truncated (or the SQL breaks where it was cut)', async (t) => {
  const folder = await backup('shop.sql', async (file) => {
    await fs.copyFile(shopDump, file);
    await truncateFile(file, 0.6);
  });
  const run = await verify(policyFromYaml({ folder, kind: 'mysql', probes: PROBES }), env.store);
  t.equal(run.verdict, 'fail');
  t.equal(run.reasons.length, 1, JSON.stringify(run.reasons));
  t.match(codes(run)[0], /^(truncated_dump|restore_failed)$/);
  t.match(run.reasons[0]?.message, /the dump ends early|ERROR \d+/);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a dump cut exactly at a statement boundary still fails as truncated', async (t) => {
  const folder = await backup('shop.sql', async (file) => {
    const text = await fs.readFile(shopDump, 'utf8');
    await fs.writeFile(file, text.slice(0, text.indexOf('\n--\n-- Table structure for table `orders`') + 1));
  });
  const run = await verify(policyFromYaml({ folder, kind: 'mysql', probes: PROBES }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['truncated_dump']);
  t.match(run.reasons[0]?.message, /mysqldump's closing line "-- Dump completed" is missing \(last line: "UNLOCK TABLES;"\)/);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('bytes flipped in the middle of the dump: the restore fails naming the line', async (t) => {
  const folder = await backup('shop.sql', async (file) => {
    await fs.copyFile(shopDump, file);
    await corruptFile(file, 0.5, 16);
  });
  const run = await verify(policyFromYaml({ folder, kind: 'mysql', probes: PROBES }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['restore_failed'], JSON.stringify(run.reasons));
  t.match(run.reasons[0]?.message, /^the mariadb client failed \(exit 1\): ERROR \d+ \(\w+\) at line \d+: /);
  t.match(run.sandbox?.logTail, /ready for connections/, 'the server log is kept as evidence');
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a zero-byte backup fails as empty', async (t) => {
  const folder = await backup('shop.sql', (file) => fs.writeFile(file, ''));
  const run = await verify(policyFromYaml({ folder, kind: 'mysql', probes: PROBES }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['empty_backup']);
  t.match(run.reasons[0]?.message, /is empty \(0 bytes\)/);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a gzip file holding nothing fails as empty too', async (t) => {
  const empty = path.join(dumps, 'empty.sql');
  await fs.writeFile(empty, '');
  const folder = await backup('shop.sql.gz', (file) => compressWith('gzip', empty, file));
  const run = await verify(policyFromYaml({ folder, kind: 'mysql', probes: PROBES }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['empty_backup']);
  t.match(run.reasons[0]?.message, /the gzip backup decompresses to nothing/);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a dump of a database whose tables are all empty fails as an empty restore', async (t) => {
  const folder = await backup('shop.sql', (file) => server.dump(file, ['bare']));
  const run = await verify(policyFromYaml({ folder, kind: 'mysql', probes: '          []' }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['empty_restore']);
  t.match(run.reasons[0]?.message, /restored 3 tables in database "restore", but every one of them is empty/);
  t.equal(await leftoversOf(run.id), 0);

  const allowed = await verify(policyFromYaml({ folder, kind: 'mysql', probes: '          []', extra: '        mysql: { allowEmpty: true }' }), env.store);
  t.equal(allowed.verdict, 'pass', 'allowEmpty accepts it');
});

t.test('a probe for a table the dump lacks fails the probe, naming the table', async (t) => {
  const folder = await backup('shop.sql', copyOf(shopDump));
  const run = await verify(policyFromYaml({ folder, kind: 'mysql', probes: '          - tablesExist: [customers, orders, invoices]\n          - rowCount: { table: invoices, atLeast: 1 }' }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['probe_failed', 'probe_failed']);
  t.match(run.reasons[0]?.message, /expected tables exist: customers, orders, invoices, got missing: invoices/);
  t.match(run.reasons[1]?.message, /error: ERROR 1146 \(42S02\): Table 'restore\.invoices' doesn't exist/);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a PostgreSQL custom-format dump given to kind mysql is not a MySQL dump', async (t) => {
  const db = await createShopDatabase(env.cluster, { orders: 10 });
  const folder = await backup('shop.dump', (file) => dumpDatabase(env.cluster, db, file, 'custom').then(() => undefined));
  const run = await verify(policyFromYaml({ folder, kind: 'mysql', probes: PROBES }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['unrecognized_format']);
  t.match(run.reasons[0]?.message, /not a MySQL dump: the file is a PostgreSQL custom-format dump \(pg_dump -Fc\); verify it with kind: postgres/);
  t.equal(await leftoversOf(run.id), 0);
});

// The dump filter and the format detection on their own: no sandbox needed.

const MARIADB_COLLATIONS = new Set(['utf8mb4_bin', 'utf8mb4_nopad_bin', 'utf8mb4_unicode_ci', 'utf8mb4_uca1400_ai_ci', 'utf8mb4_uca1400_nopad_ai_ci', 'utf8mb4_uca1400_nopad_as_cs', 'utf8mb4_uca1400_german2_nopad_ai_ci']);

async function filtered(input: Buffer, chunkSize: number): Promise<{ out: string; filter: MysqlDumpFilter }> {
  const filter = new MysqlDumpFilter({ collations: MARIADB_COLLATIONS });
  const chunks: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunkSize) chunks.push(input.subarray(i, i + chunkSize));
  const parts: Buffer[] = [];
  for await (const part of Readable.from(chunks).pipe(filter)) parts.push(part as Buffer);
  return { out: Buffer.concat(parts).toString('latin1'), filter };
}

t.test('the dump filter gives the same output however the input is cut into chunks', async (t) => {
  const data = `INSERT INTO \`notes\` VALUES (1,'COLLATE utf8mb4_0900_ai_ci is data here','caf\u00e9 \u2713');`;
  const dump = Buffer.from(
    [
      '-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)',
      "SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ 'a:1-5,",
      "b:1-7';",
      'CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci */;',
      'USE `shop`;',
      'CREATE TABLE `notes` (',
      '  `a` varchar(10) COLLATE utf8mb4_0900_as_cs DEFAULT NULL,',
      '  `b` varchar(10) COLLATE utf8mb4_de_pb_0900_ai_ci DEFAULT NULL,',
      '  `c` varbinary(10) DEFAULT NULL',
      ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_bin;',
      data,
      '/*!50003 SET collation_connection  = utf8mb4_0900_ai_ci */ ;',
      'USE `elsewhere`;',
      '/*! FLUSH PRIVILEGES */;',
      '-- Dump completed on 2024-05-01 10:00:00',
      '',
    ].join('\n'),
    'utf8',
  );
  const whole = await filtered(dump, dump.length);
  const lines = whole.out.split('\n');
  t.equal(lines.length, dump.toString('latin1').split('\n').length, 'the line count is kept: "at line N" still points into the backup');
  t.match(lines[1], /^-- backproof: GTID state dropped/);
  t.match(lines[2], /^-- backproof: GTID state dropped/);
  t.match(lines[3], /COLLATE utf8mb4_uca1400_nopad_ai_ci \*\/;$/);
  t.equal(lines[4], 'USE `shop`;', 'the dump created shop: nothing added');
  t.match(lines[6], /COLLATE utf8mb4_uca1400_nopad_as_cs /);
  t.match(lines[7], /COLLATE utf8mb4_uca1400_german2_nopad_ai_ci /);
  t.match(lines[9], /COLLATE=utf8mb4_nopad_bin;$/);
  t.equal(Buffer.from(lines[10]!, 'latin1').toString('utf8'), data, 'data lines pass byte for byte');
  t.match(lines[11], /collation_connection {2}= utf8mb4_uca1400_nopad_ai_ci \*\//);
  t.equal(lines[12], 'CREATE DATABASE IF NOT EXISTS `elsewhere`; USE `elsewhere`;');
  t.match(lines[13], /^-- backproof: FLUSH PRIVILEGES skipped/);
  t.same([...whole.filter.collationsReplaced.keys()], ['utf8mb4_0900_ai_ci', 'utf8mb4_0900_as_cs', 'utf8mb4_de_pb_0900_ai_ci', 'utf8mb4_0900_bin']);
  t.same(whole.filter.databases, ['shop', 'elsewhere']);
  t.same(whole.filter.databasesAdded, ['elsewhere']);
  t.equal(whole.filter.gtidLinesDropped, 2);
  t.equal(whole.filter.flushPrivilegesSkipped, 1);
  t.ok(whole.filter.completed);
  for (const size of [1, 2, 3, 7, 13, 64, 100]) {
    const cut = await filtered(dump, size);
    t.equal(cut.out, whole.out, `chunks of ${size} bytes`);
    t.ok(cut.filter.completed);
  }
  const short = await filtered(dump.subarray(0, dump.indexOf('-- Dump completed')), 5);
  t.notOk(short.filter.completed, 'without its last line the dump is not complete');
  t.same(short.filter.lastLines(1), ['/*! FLUSH PRIVILEGES */;'], 'the last line as the backup has it');
});

t.test('the format comes from the first bytes, and what is not a MySQL dump is named', async (t) => {
  const sandboxLine = '/*M!999999\\- enable the sandbox mode */ \n';
  const maria = detectMysqlDump(Buffer.from(`${sandboxLine}-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)\n--\n-- Host: db1    Database: shop\n-- ------\n-- Server version\t10.11.6-MariaDB-0+deb12u1\n`));
  t.match(maria, { kind: 'sql', format: 'mysqldump', expectsCompletionLine: true, header: { writtenBy: 'mariadb-dump', host: 'db1', database: 'shop', serverFlavor: 'MariaDB' } });
  const all = detectMysqlDump(Buffer.from('-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n--\n-- Host: localhost    Database: \n-- Server version\t8.0.36\n'));
  t.match(all, { kind: 'sql', header: { writtenBy: 'mysqldump', serverVersion: '8.0.36', serverFlavor: 'MySQL' } });
  t.notOk('database' in (all.kind === 'sql' ? all.header : {}), 'an --all-databases dump names no database');
  t.match(detectMysqlDump(Buffer.from('/*!40101 SET NAMES utf8mb4 */;\nCREATE TABLE t (a int);\n')), { kind: 'sql', format: 'sql', expectsCompletionLine: false });
  const cases: Array<[string, Buffer, RegExp]> = [
    ['pg_dump -Fc', Buffer.from('PGDMP\x01\x0e\x00', 'latin1'), /PostgreSQL custom-format dump/],
    ['pg_dump plain', Buffer.from('--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n'), /PostgreSQL plain SQL dump/],
    ['sqlite file', Buffer.from('SQLite format 3\0\x10\x00', 'latin1'), /an SQLite database/],
    ['sqlite .dump', Buffer.from('PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t(a);\n'), /SQLite \.dump/],
    ['utf-16', Buffer.from('\ufeff-- MySQL dump', 'utf16le'), /UTF-16 text/],
    ['binary', Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe, 0x10, 0x00, 0x42]), /binary data.*starts with 000102fffe100042/],
    ['prose', Buffer.from('Dear customer,\nyour invoice is attached.\n'), /text, but not SQL \(first line: "Dear customer,"\)/],
  ];
  for (const [what, head, message] of cases) t.match(detectMysqlDump(head), { kind: 'foreign', code: 'unrecognized_format', message }, what);
  t.ok(isXbstream(Buffer.from('XBSTCK01\x00\x00', 'latin1')), 'an xbstream is taken for a physical backup (mariabackup.test.ts restores one)');
});
