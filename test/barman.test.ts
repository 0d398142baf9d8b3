import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { BarmanStorageDriver } from '../drivers/barman/barman-storage-driver.js';
import type { PolicyConfig } from '../orchestrator/core/config-types.js';
import type { RunStore } from '../orchestrator/evidence/run-store.js';
import { makeBarmanServer, type BarmanServer } from './helpers/barman-fixtures.js';
import { collect, tarMemberNames, verificationErrorOf } from './helpers/outcomes.js';
import { codes, leftoversOf, openEmbeddedStore, policyFromYaml, tempDir, verify } from './helpers/harness.js';

// Physical PostgreSQL backups kept by a real barman (Debian's 3.4: pg_basebackup, WAL archived
// and gzip-compressed by barman; one server also with backup_compression) from a real PostgreSQL 15: the barman source lists the server's
// backups and streams one with the WAL after it; kind postgres replays it to the recovery target.

let fixture: BarmanServer;
/**
 * The same history with table orders in a tablespace outside the data directory, backed up plain
 * (`tablespaced`) and with barman's backup_compression gzip (`compressed`: data/base.tar.gz and
 * data/<oid>.tar.gz).
 */
let tablespaced: BarmanServer;
let compressed: BarmanServer;
let store: RunStore;
t.before(async () => {
  [fixture, tablespaced, compressed] = await Promise.all([makeBarmanServer(), makeBarmanServer({ tablespace: true }), makeBarmanServer({ backupCompression: 'gzip', tablespace: true })]);
  store = (await openEmbeddedStore()).store;
});
t.teardown(() => store?.close());

const LATE = "SELECT count(*) FROM orders WHERE note = 'late'";

async function policyFor(folder: string, extra: { recovery?: string; lateRows?: number; check?: string; probes?: string } = {}): Promise<PolicyConfig> {
  return policyFromYaml({
    folder: await tempDir('barman-policy'),
    kind: 'postgres',
    source: `          driver: barman
          path: ${JSON.stringify(folder)}
          check: ${extra.check ?? 'false'}
          select: { settle: 0s }`,
    probes:
      extra.probes ??
      `          - rowCount: { table: orders, atLeast: 200 }
          - sql: "${LATE}"
            equals: ${extra.lateRows ?? 100}`,
    rpo: '1h',
    extra: extra.recovery ? `        postgres: { recovery: ${extra.recovery} }` : '',
  });
}

t.test('the driver lists the backup and streams it with the WAL after it; the check finds a missing segment', async (t) => {
  const driver = new BarmanStorageDriver({ path: fixture.folder });
  t.teardown(() => driver.close());
  const [entry, ...more] = await collect(driver.list());
  t.equal(more.length, 0);
  t.equal(entry!.key, fixture.backup.id);
  t.same(entry!.takenAt, fixture.backup.endTime);
  const names = await tarMemberNames(await driver.open(entry!));
  t.equal(names[0], `base/${fixture.backup.id}/backup.info`, 'backup.info first');
  t.ok(names.includes(`base/${fixture.backup.id}/data/PG_VERSION`));
  const segments = await fixture.segments();
  t.ok(segments.every((s) => names.includes(s)), 'every archived segment from the backup on');
  t.same((await driver.check!(entry!)).problems, []);

  const copy = await fixture.copy();
  const own = segments.find((s) => path.basename(s) === fixture.backup.beginWal)!;
  await fs.rm(path.join(copy, own));
  const broken = new BarmanStorageDriver({ path: copy });
  const [e] = await collect(broken.list());
  t.match((await broken.check!(e!)).problems, [new RegExp(fixture.backup.beginWal)]);
  const nowhere = new BarmanStorageDriver({ path: path.join(copy, 'nope') });
  t.equal((await verificationErrorOf(collect(nowhere.list())))?.reason, 'source_unreachable');
});

t.test('recovery latest: the backup restores and replays every archived segment', async (t) => {
  const run = await verify(await policyFor(fixture.folder, { check: 'wals' }), store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.backup?.format, 'barman');
  t.equal(run.backup?.header?.backupId, fixture.backup.id);
  t.equal(run.backup?.header?.probedDatabase, 'shop');
  const commit = String(run.restored?.lastReplayedCommit ?? '');
  t.ok(Date.parse(commit) > fixture.backup.endTime.getTime(), `the last replayed commit (${commit}) is after the backup (${fixture.backup.endTime.toISOString()})`);
  t.ok(run.metrics.rpoMeasuredMs! < Date.parse(run.startedAt) - fixture.backup.endTime.getTime(), 'RPO from the last replayed commit');
  t.equal(run.phases.find((p) => p.name === 'storage_check')?.outcome, 'ok');
  t.equal(await leftoversOf(run.id), 0);
});

t.test('the segment barman was streaming (.partial, not archived yet) is replayed too: its rows are restored', async (t) => {
  const streamed = (n: number) => `          - sql: "SELECT count(*) FROM orders WHERE note = 'streamed'"\n            equals: ${n}`;
  const run = await verify(await policyFor(fixture.folder, { probes: streamed(50) }), store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.match(String(run.backup?.header?.walStreamed ?? ''), new RegExp(`^${fixture.partial}: `));
  // Without streaming/ the same backup restores only what was archived.
  const copy = await fixture.copy();
  await fs.rm(path.join(copy, 'streaming'), { recursive: true });
  const archivedOnly = await verify(await policyFor(copy, { probes: streamed(0) }), store);
  t.equal(archivedOnly.verdict, 'pass', JSON.stringify(archivedOnly.reasons));
  t.notOk(archivedOnly.backup?.header?.walStreamed);
});

t.test('a WAL segment missing after the backup: fail, wal_gap, naming it', async (t) => {
  const copy = await fixture.copy();
  const after = (await fixture.segments(copy)).filter((s) => path.basename(s) > fixture.backup.endWal);
  t.ok(after.length >= 3, 'segments archived after the backup');
  await fs.rm(path.join(copy, after[1]!));
  const run = await verify(await policyFor(copy, { lateRows: 0 }), store);
  t.equal(run.verdict, 'fail');
  t.ok(codes(run).includes('wal_gap'), JSON.stringify(run.reasons));
  t.match(run.reasons.find((r) => r.code === 'wal_gap')?.message, path.basename(after[1]!));
});

t.test('recovery to a time between two batches: the later rows are absent', async (t) => {
  const run = await verify(await policyFor(fixture.folder, { recovery: `{ time: "${fixture.betweenBatches}" }`, lateRows: 0 }), store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.match(String(run.restored?.recoveryStopped ?? ''), /recovery stopping before commit/);
});

t.test('recovery sampled with a single backup: nothing to draw, replayed to the end, and the evidence says so', async (t) => {
  const run = await verify(await policyFor(fixture.folder, { recovery: 'sampled' }), store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.backup?.header?.backupId, fixture.backup.id);
  t.match(String(run.backup?.header?.recovery ?? ''), /^latest/);
  t.match(String(run.backup?.provider?.recoverySampled ?? ''), /one backup only/);
});

t.test("production's ALTER SYSTEM settings in the backup are not used", async (t) => {
  const copy = await fixture.copy();
  // A restore_command of production's would replace ours; a preloaded library the image lacks stops the start.
  await fs.appendFile(path.join(copy, 'base', fixture.backup.id, 'data', 'postgresql.auto.conf'), "restore_command = 'false'\nshared_preload_libraries = 'not_in_the_image'\n");
  const run = await verify(await policyFor(copy), store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
});

t.test('backup_compression gzip: data/base.tar.gz is unpacked in the sandbox, then restored and replayed', async (t) => {
  const files = await fs.readdir(path.join(compressed.folder, 'base', compressed.backup.id, 'data'));
  t.ok(files.includes('base.tar.gz'), `barman kept a compressed tar (${files.join(', ')})`);
  t.ok(files.some((f) => /^\d+\.tar\.gz$/.test(f)), "and the tablespace's");
  const run = await verify(await policyFor(compressed.folder, { check: 'wals' }), store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.backup?.header?.backupId, compressed.backup.id);
  t.match(run.backup?.header?.tablespaces, /^fast \(oid \d+, was /, 'the tablespace, unpacked where tablespace_map now says');
  t.ok(Date.parse(String(run.restored?.lastReplayedCommit ?? '')) > compressed.backup.endTime.getTime(), 'the WAL after the backup is replayed');
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a truncated base.tar.gz: fail, restore_failed, in the words of tar', async (t) => {
  const copy = await compressed.copy();
  const tar = path.join(copy, 'base', compressed.backup.id, 'data', 'base.tar.gz');
  const bytes = await fs.readFile(tar);
  await fs.writeFile(tar, bytes.subarray(0, Math.floor(bytes.length / 2)));
  const run = await verify(await policyFor(copy), store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['restore_failed'], JSON.stringify(run.reasons));
  t.match(run.reasons[0]!.message, /unpacking base\.tar\.gz failed: .*(unexpected end|Unexpected EOF|gzip)/i);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a tablespace outside the data directory: linked again to the folder barman keeps it in', async (t) => {
  const [ts] = tablespaced.backup.tablespaces;
  t.equal(ts?.name, 'fast', 'backup.info lists the tablespace');
  const run = await verify(await policyFor(tablespaced.folder), store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.match(run.backup?.header?.tablespaces, new RegExp(`^fast \\(oid ${ts!.oid}, was `));
  t.equal(await leftoversOf(run.id), 0);
});

t.test("a backup whose tablespace folder is gone: fail, restore_failed, naming it", async (t) => {
  const copy = await tablespaced.copy();
  const [ts] = tablespaced.backup.tablespaces;
  await fs.rm(path.join(copy, 'base', tablespaced.backup.id, String(ts!.oid)), { recursive: true });
  const run = await verify(await policyFor(copy), store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['restore_failed'], JSON.stringify(run.reasons));
  t.match(run.reasons[0]!.message, new RegExp(`tablespace fast \\(oid ${ts!.oid}`));
});
