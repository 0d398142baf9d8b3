import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { MariabackupStorageDriver } from '../drivers/mariabackup/mariabackup-storage-driver.js';
import type { PolicyConfig } from '../orchestrator/core/config-types.js';
import type { RunStore } from '../orchestrator/evidence/run-store.js';
import { collect, tarMemberNames, verificationErrorOf } from './helpers/outcomes.js';
import { makeMariabackupChain, type MariabackupChain } from './helpers/mariabackup-fixtures.js';
import { MARIADB_TEST_IMAGE } from './helpers/mysql-fixtures.js';
import { codes, leftoversOf, openEmbeddedStore, policyFromYaml, tempDir, verify } from './helpers/harness.js';

// Physical MariaDB backups made by the real mariadb-backup (Debian's 10.11, in the sandbox image)
// from a real server: a full backup and two incrementals. The mariabackup source lists them and
// streams a backup's chain; kind mysql prepares the chain in the sandbox and serves it.

let fixture: MariabackupChain;
let store: RunStore;
t.before(async () => {
  fixture = await makeMariabackupChain();
  store = (await openEmbeddedStore()).store;
});
t.teardown(() => store?.close());

async function policyFor(folder: string, rows: number): Promise<PolicyConfig> {
  return policyFromYaml({
    folder: await tempDir('mariabackup-policy'),
    kind: 'mysql',
    source: `          driver: mariabackup
          path: ${JSON.stringify(folder)}
          select: { settle: 0s }`,
    sandbox: `${process.env.BACKPROOF_TEST_MARIADB_IMAGE ? `image: ${JSON.stringify(MARIADB_TEST_IMAGE)}, ` : ''}memory: 1g, timeout: 5m`,
    probes: `          - rowCount: { table: orders, atLeast: ${rows} }
          - sql: "SELECT count(*) FROM orders"
            equals: ${rows}`,
  });
}

async function tarNames(driver: MariabackupStorageDriver, key: string): Promise<string[]> {
  const entry = (await collect(driver.list())).find((e) => e.key === key)!;
  return tarMemberNames(await driver.open(entry));
}

t.test('the driver lists each target directory, newest first, and streams its chain oldest first', async (t) => {
  const [full, inc1, inc2] = fixture.names;
  const driver = new MariabackupStorageDriver({ path: fixture.folder });
  t.teardown(() => driver.close());
  const entries = await collect(driver.list());
  t.same(entries.map((e) => e.key), [inc2, inc1, full]);
  t.ok(entries.every((e) => e.size > 0 && e.takenAt instanceof Date));
  const details = await driver.details(entries[0]!);
  t.equal(details.facts?.chain, `${full} -> ${inc1} -> ${inc2}`);
  t.equal(details.facts?.backupType, 'incremental');
  const names = await tarNames(driver, inc2);
  t.equal(names[0], `${full}/xtrabackup_checkpoints`, 'the stream begins with the full backup\'s checkpoints');
  const firstOf = (dir: string) => names.findIndex((n) => n.startsWith(`${dir}/`));
  t.ok(firstOf(full) < firstOf(inc1) && firstOf(inc1) < firstOf(inc2), 'full, then inc1, then inc2');
  t.equal(names[firstOf(inc2)], `${inc2}/xtrabackup_checkpoints`);
  const fullOnly = await tarNames(driver, full);
  t.ok(fullOnly.every((n) => n.startsWith(`${full}/`)), 'a full backup streams alone');
  const missing = new MariabackupStorageDriver({ path: path.join(fixture.folder, 'nope') });
  t.equal((await verificationErrorOf(collect(missing.list())))?.reason, 'source_unreachable');
});

t.test('the newest incremental restores on its chain and passes', async (t) => {
  const run = await verify(await policyFor(fixture.folder, fixture.rows[2]), store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.backup?.format, 'mariabackup');
  t.equal(run.backup?.header?.backup, fixture.names[2]);
  t.equal(run.backup?.header?.chain, fixture.names.join(' -> '));
  t.equal(run.backup?.header?.probedDatabase, 'shop', 'the only database of the server is probed');
  t.equal(run.restored?.tables, 1);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('an incremental whose base is gone: fail, naming the missing link', async (t) => {
  const folder = await fixture.copy();
  await fs.rm(path.join(folder, fixture.names[1]), { recursive: true });
  const run = await verify(await policyFor(folder, fixture.rows[2]), store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['restore_failed'], JSON.stringify(run.reasons));
  t.match(run.reasons[0]!.message, new RegExp(`incremental backup ${fixture.names[2]} starts at LSN \\d+, and no backup ends there`));
  t.match(run.reasons[0]!.message, /chain is broken/);
});

t.test('a link out of the folder is never read', async (t) => {
  const folder = await fixture.copy();
  const outside = path.join(await tempDir('mariabackup-outside'), 'secret');
  await fs.writeFile(outside, 'backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 99999999\n');
  const newest = path.join(folder, fixture.names[2], 'xtrabackup_checkpoints');
  await fs.rm(newest);
  await fs.symlink(outside, newest);
  // A data file swapped for a link is left out of the stream, never followed.
  await fs.symlink(outside, path.join(folder, fixture.names[0], 'stolen.ibd'));
  const driver = new MariabackupStorageDriver({ path: folder });
  t.teardown(() => driver.close());
  const entries = await collect(driver.list());
  t.match(entries.find((e) => e.key === fixture.names[2])?.unsafe, /outside/);
  t.notOk((await tarNames(driver, fixture.names[0])).some((n) => n.endsWith('stolen.ibd')));
  const run = await verify(await policyFor(folder, fixture.rows[2]), store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['unsafe_source'], JSON.stringify(run.reasons));
});

t.test('a backup of another MariaDB series is refused, naming it', async (t) => {
  const folder = await fixture.copy();
  const info = path.join(folder, fixture.names[0], 'xtrabackup_info');
  await fs.writeFile(info, (await fs.readFile(info, 'utf8')).replace(/^server_version = .*$/m, 'server_version = 10.6.16-MariaDB-log'));
  const run = await verify(await policyFor(folder, fixture.rows[2]), store);
  t.equal(run.verdict, 'error', 'the sandbox cannot judge it: an error, not a verdict on the backup');
  t.same(codes(run), ['unsupported_format'], JSON.stringify(run.reasons));
  t.match(run.reasons[0]!.message, /10\.6\.16/);
});

// One backup as a single file, as `mariadb-backup --backup --stream=xbstream | gzip` writes it,
// from the local driver (S3 serves such a file the same way): kind mysql takes it by its bytes.
function streamPolicy(folder: string, rows: number): Promise<PolicyConfig> {
  return tempDir('mariabackup-stream-policy').then((dir) =>
    policyFromYaml({
      folder: dir,
      kind: 'mysql',
      source: `          driver: local
          path: ${JSON.stringify(folder)}
          select: { glob: "*.xb*", settle: 0s }`,
      sandbox: `${process.env.BACKPROOF_TEST_MARIADB_IMAGE ? `image: ${JSON.stringify(MARIADB_TEST_IMAGE)}, ` : ''}memory: 1g, timeout: 5m`,
      probes: `          - sql: "SELECT count(*) FROM orders"
            equals: ${rows}`,
    }),
  );
}

t.test('an xbstream file (gzipped) is unpacked with mbstream, prepared and served', async (t) => {
  const run = await verify(await streamPolicy(path.dirname(fixture.streams.full), fixture.streamRows), store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.backup?.format, 'mariabackup');
  t.equal(run.backup?.compression, 'gzip');
  t.equal(run.backup?.header?.stream, 'xbstream');
  t.equal(run.backup?.header?.backupType, 'full-backuped');
  t.match(run.backup?.header?.tool, /^mariadb-backup 10\.11/);
  t.equal(run.probes[0]?.actual, String(fixture.streamRows), 'every row up to the stream');
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a truncated xbstream: fail, restore_failed, in the words of mbstream or --prepare', async (t) => {
  const folder = await tempDir('mariabackup-stream-cut');
  const whole = await fs.readFile(fixture.streams.full);
  const { gunzipSync, gzipSync } = await import('node:zlib');
  const plain = gunzipSync(whole);
  await fs.writeFile(path.join(folder, 'shop-cut.xb.gz'), gzipSync(plain.subarray(0, Math.floor(plain.length * 0.6))));
  const run = await verify(await streamPolicy(folder, fixture.streamRows), store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['restore_failed'], JSON.stringify(run.reasons));
  t.match(run.reasons[0]!.message, /mbstream|prepare|checkpoints/);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('an incremental xbstream on its own: fail, naming the base it needs', async (t) => {
  const run = await verify(await streamPolicy(path.dirname(fixture.streams.incremental), fixture.streamRows), store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['restore_failed'], JSON.stringify(run.reasons));
  t.match(run.reasons[0]!.message, /the xbstream holds an incremental backup starting at LSN \d+, and its base \(a backup ending at that LSN\) is not in it/);
});

// The server's binary logs shipped beside the backups (source.binlogs): replayed after the chain.
async function binlogPolicy(o: { binlogs: string; recovery?: string; rows?: number; late?: number; probes?: string; rpo?: string }): Promise<PolicyConfig> {
  return policyFromYaml({
    folder: await tempDir('mariabackup-binlog-policy'),
    kind: 'mysql',
    source: `          driver: mariabackup
          path: ${JSON.stringify(fixture.folder)}
          binlogs: ${JSON.stringify(o.binlogs)}
          select: { settle: 0s }`,
    sandbox: `${process.env.BACKPROOF_TEST_MARIADB_IMAGE ? `image: ${JSON.stringify(MARIADB_TEST_IMAGE)}, ` : ''}memory: 1g, timeout: 5m`,
    probes:
      o.probes ??
      `          - sql: "SELECT count(*) FROM orders"
            equals: ${o.rows}
          - sql: "SELECT count(*) FROM orders WHERE note = 'late'"
            equals: ${o.late}`,
    ...(o.rpo ? { rpo: o.rpo } : {}),
    extra: o.recovery ? `        mysql: { recovery: ${o.recovery} }` : '',
  });
}

t.test('binary logs shipped: latest replays them after the chain; the RPO is measured from the last replayed commit', async (t) => {
  const run = await verify(await binlogPolicy({ binlogs: fixture.binlogs, rows: fixture.allRows, late: 50 }), store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.backup?.header?.backup, fixture.names[2], 'from the newest backup of the chain');
  t.match(run.backup?.header?.binlogStart, /^mariadb-bin\.\d{6}:\d+/);
  t.match(run.backup?.header?.binlogsReplayed, /mariadb-bin\.\d{6}/);
  const commit = Date.parse(String(run.backup?.header?.lastReplayedCommit ?? ''));
  t.ok(commit > Date.parse(fixture.betweenBatches), `the last replayed commit (${run.backup?.header?.lastReplayedCommit}) is the late batch's`);
  t.ok(run.metrics.rpoMeasuredMs! <= Date.parse(run.startedAt) - commit + 1000, 'RPO from that commit, not from the backup');
  t.equal(await leftoversOf(run.id), 0);
});

t.test('recovery to a time between the batches: the late rows are absent', async (t) => {
  const run = await verify(await binlogPolicy({ binlogs: fixture.binlogs, recovery: `{ time: "${fixture.betweenBatches}" }`, rows: 1700, late: 0 }), store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.match(run.backup?.header?.binlogRecovery, /^time: to /);
});

t.test('recovery sampled: an older backup of the chain, replayed to a time drawn inside the window', async (t) => {
  const [full, inc1, inc2] = fixture.names;
  const policy = await binlogPolicy({
    binlogs: fixture.binlogs,
    recovery: 'sampled',
    // Every time in the window is before the rows written after the newest backup.
    probes: `          - rowCount: { table: orders, atLeast: 200 }
          - sql: "SELECT count(*) FROM orders WHERE note IN ('after backups', 'late')"
            equals: 0`,
    rpo: '1h',
  });
  const run = await verify(policy, store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.ok([full, inc1].includes(run.backup!.key), `an older backup than the newest is restored: ${run.backup?.key}`);
  t.match(run.backup?.header?.binlogRecovery, /^sampled: to \S+, drawn at random between /);
  const driver = new MariabackupStorageDriver({ path: fixture.folder });
  t.teardown(() => driver.close());
  const newest = (await collect(driver.list())).find((e) => e.key === inc2)!;
  t.equal(run.metrics.rpoMeasuredMs, Date.parse(run.startedAt) - newest.takenAt!.getTime(), "the RPO is the newest backup's age, not the restored data's");
  t.equal(await leftoversOf(run.id), 0);
});

t.test('recovery immediate: the backup as it was taken, no log replayed', async (t) => {
  const run = await verify(await binlogPolicy({ binlogs: fixture.binlogs, recovery: 'immediate', rows: fixture.rows[2], late: 0 }), store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.match(run.backup?.header?.binlogs, /not replayed/);
});

t.test('a binary log missing from the archive: fail, wal_gap, naming it', async (t) => {
  const copy = path.join(await tempDir('mariabackup-binlog-gap'), 'binlogs');
  await fs.cp(fixture.binlogs, copy, { recursive: true });
  const start = /^(\S+)/.exec(await fs.readFile(path.join(fixture.folder, fixture.names[2], 'xtrabackup_binlog_info'), 'utf8'))![1]!;
  const after = (await fs.readdir(copy)).filter((n) => n >= start).sort();
  t.ok(after.length >= 3, `logs from the backup's on: ${after.join(', ')}`);
  await fs.rm(path.join(copy, after[1]!));
  const run = await verify(await binlogPolicy({ binlogs: copy, rows: fixture.allRows, late: 50 }), store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['wal_gap'], JSON.stringify(run.reasons));
  t.match(run.reasons[0]!.message, new RegExp(`binary log ${after[1]!.replace('.', '\\.')} is missing`));
});
