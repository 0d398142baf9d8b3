import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { PgbackrestStorageDriver } from '../drivers/pgbackrest/pgbackrest-storage-driver.js';
import type { PolicyConfig } from '../orchestrator/core/config-types.js';
import type { RunStore } from '../orchestrator/evidence/run-store.js';
import { collect, tarMemberNames, verificationErrorOf } from './helpers/outcomes.js';
import { makePgbackrestRepo, type PgbackrestRepo } from './helpers/pgbackrest-fixtures.js';
import { codes, leftoversOf, openEmbeddedStore, policyFromYaml, tempDir, verify } from './helpers/harness.js';

// Physical PostgreSQL backups from a real pgBackRest repository (Debian's pgbackrest 2.45, a real
// PostgreSQL 15 archiving its WAL): the driver lists the stanza's backup sets and streams what a
// restore of one needs; kind postgres restores it with pgbackrest inside the sandbox and replays
// the archived WAL to the policy's recovery target.

let fixture: PgbackrestRepo;
let store: RunStore;
t.before(async () => {
  fixture = await makePgbackrestRepo();
  store = (await openEmbeddedStore()).store;
});
t.teardown(() => store?.close());

const LATE = "SELECT count(*) FROM orders WHERE note = 'late'";

async function policyFor(repo: string, extra: { recovery?: string; lateRows?: number; check?: string } = {}): Promise<PolicyConfig> {
  const folder = await tempDir('pgbackrest-policy');
  return policyFromYaml({
    folder,
    kind: 'postgres',
    source: `          driver: pgbackrest
          repository: ${JSON.stringify(repo)}
          stanza: main
          check: ${extra.check ?? 'false'}
          select: { settle: 0s }`,
    probes: `          - rowCount: { table: orders, atLeast: 1000 }
          - sql: "${LATE}"
            equals: ${extra.lateRows ?? 100}`,
    rpo: '1h',
    extra: extra.recovery ? `        postgres: { recovery: ${extra.recovery} }` : '',
  });
}

async function tarNames(driver: PgbackrestStorageDriver, key: string): Promise<string[]> {
  const entry = (await collect(driver.list())).find((e) => e.key === key)!;
  return tarMemberNames(await driver.open(entry));
}

t.test('the driver lists the backup sets newest first and streams what a restore of one needs', async (t) => {
  const [full, incr] = fixture.sets;
  t.equal(fixture.sets.length, 2);
  const driver = new PgbackrestStorageDriver({ repository: fixture.repo, stanza: 'main' });
  t.teardown(() => driver.close());
  const listed = await collect(driver.list());
  t.same(
    listed.map((e) => e.key),
    [incr!.label, full!.label],
  );
  t.equal(listed[0]!.modifiedAt.toISOString(), incr!.stoppedAt.toISOString(), 'a set is as old as its end');
  const details = await driver.details(listed[0]!);
  t.equal(details.facts.backupType, 'incr');
  t.equal(details.facts.postgresMajor, '15');
  t.equal(details.facts.references, full!.label);
  const names = await tarNames(driver, incr!.label);
  t.equal(names[0], 'archive/main/archive.info', 'archive.info first: the restorer recognises the stream by it');
  t.ok(names.some((n) => n.startsWith(`backup/main/${full!.label}/`)), 'the set the incremental takes files from');
  t.ok(names.some((n) => n.startsWith(`backup/main/${incr!.label}/`)));
  t.notOk(names.some((n) => n.endsWith('/latest')), 'links are not copied');
  const wal = names.filter((n) => /\/0{7}1[0-9A-F]{16}-/.test(n)).map((n) => path.basename(n).slice(0, 24));
  t.ok(wal.length >= 3, `WAL from the set's start on (${wal.join(', ')})`);
  t.ok(wal.every((s) => s >= incr!.archiveStart), 'none from before the set');
  const again = await tarNames(driver, incr!.label);
  t.same(again, names, 'the same order every time');
});

t.test('a link out of the repository is never read', async (t) => {
  const repo = await fixture.copy();
  const [, incr] = fixture.sets;
  const secret = path.join(await tempDir('pgbackrest-secret'), 'secret.txt');
  await fs.writeFile(secret, 'host secret');
  const dir = path.dirname(path.join(repo, (await fixture.segments(repo)).at(-1)!));
  await fs.symlink(secret, path.join(dir, `${'0'.repeat(7)}1${'F'.repeat(16)}-${'a'.repeat(40)}.gz`));
  await fs.rm(path.join(repo, 'backup/main/backup.info'));
  await fs.symlink(secret, path.join(repo, 'backup/main/backup.info'));
  const driver = new PgbackrestStorageDriver({ repository: repo, stanza: 'main' });
  t.teardown(() => driver.close());
  const err = await verificationErrorOf(collect(driver.list()));
  t.equal(err?.reason, 'unsafe_source', 'backup.info linked out of the repository');
  await fs.rm(path.join(repo, 'backup/main/backup.info'));
  await fs.copyFile(path.join(repo, 'backup/main/backup.info.copy'), path.join(repo, 'backup/main/backup.info'));
  const driver2 = new PgbackrestStorageDriver({ repository: repo, stanza: 'main' });
  t.teardown(() => driver2.close());
  const names = await tarNames(driver2, incr!.label);
  t.notOk(names.some((n) => n.includes('FFFFFFFF')), 'a WAL-named link is left out of the stream');
});

t.test('pgbackrest verify in storage_check, and a repository that is not there', async (t) => {
  const driver = new PgbackrestStorageDriver({ repository: fixture.repo, stanza: 'main', check: 'verify' });
  t.teardown(() => driver.close());
  const [entry] = await collect(driver.list());
  const check = await driver.check!(entry!);
  t.same(check.problems, []);
  t.match(check.summary, /backup: \d{8}-\d{6}F_\d{8}-\d{6}I/, "pgBackRest's own words");
  const damaged = await fixture.copy();
  const file = (await fs.readdir(path.join(damaged, `backup/main/${fixture.sets[0]!.label}/pg_data/global`))).find((f) => f.endsWith('.gz'))!;
  await fs.writeFile(path.join(damaged, `backup/main/${fixture.sets[0]!.label}/pg_data/global`, file), 'not what was backed up');
  const d2 = new PgbackrestStorageDriver({ repository: damaged, stanza: 'main', check: 'verify' });
  t.teardown(() => d2.close());
  const found = await d2.check!((await collect(d2.list()))[0]!);
  t.ok(found.problems.length > 0, found.problems.join('; '));
  const gone = new PgbackrestStorageDriver({ repository: path.join(damaged, 'nope'), stanza: 'main' });
  t.equal((await verificationErrorOf(collect(gone.list())))?.reason, 'source_unreachable');
  const wrongStanza = new PgbackrestStorageDriver({ repository: fixture.repo, stanza: 'other' });
  const err = await verificationErrorOf(collect(wrongStanza.list()));
  t.equal(err?.reason, 'source_unreachable');
  t.match(err?.message ?? '', /source\.stanza/);
});

t.test('recovery latest: the newest set restores and replays every archived segment', async (t) => {
  const policy = await policyFor(fixture.repo, { check: 'verify' });
  const run = await verify(policy, store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  const [, incr] = fixture.sets;
  t.equal(run.backup?.format, 'pgbackrest');
  t.equal(run.backup?.header?.backupLabel, incr!.label);
  t.equal(run.backup?.header?.probedDatabase, 'shop', 'the only database of the cluster is probed');
  const commit = String(run.restored?.lastReplayedCommit ?? '');
  t.ok(Date.parse(commit) > incr!.stoppedAt.getTime(), `the last replayed commit (${commit}) is after the last backup (${incr!.stoppedAt.toISOString()})`);
  t.ok(Date.parse(commit) > Date.parse(fixture.betweenBatches), 'and after the late rows');
  t.ok(run.metrics.rpoMeasuredMs! <= Date.parse(run.startedAt) - Date.parse(commit) + 1000, 'RPO from the last replayed commit, not from the backup');
  t.ok(run.metrics.rpoMeasuredMs! < Date.parse(run.startedAt) - incr!.stoppedAt.getTime());
  t.equal(run.phases.find((p) => p.name === 'storage_check')?.outcome, 'ok');
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a WAL segment missing from the archive: fail, wal_gap, naming it', async (t) => {
  const repo = await fixture.copy();
  const [, incr] = fixture.sets;
  const after = (await fixture.segments(repo)).filter((s) => path.basename(s).slice(0, 24) > incr!.archiveStop);
  t.ok(after.length >= 3, 'segments archived after the last backup');
  const removed = after[1]!;
  await fs.rm(path.join(repo, removed));
  const run = await verify(await policyFor(repo, { lateRows: 0 }), store);
  t.equal(run.verdict, 'fail');
  t.ok(codes(run).includes('wal_gap'), JSON.stringify(run.reasons));
  const reason = run.reasons.find((r) => r.code === 'wal_gap')!;
  t.match(reason.message, path.basename(removed).slice(0, 24), 'the missing segment is named');
  t.match(reason.message, /replay stopped at/);
});

t.test('a segment the backup itself needs is missing: fail, wal_gap, before any replay', async (t) => {
  const repo = await fixture.copy();
  const [, incr] = fixture.sets;
  const own = (await fixture.segments(repo)).find((s) => path.basename(s).startsWith(incr!.archiveStart))!;
  await fs.rm(path.join(repo, own));
  const run = await verify(await policyFor(repo), store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['wal_gap'], JSON.stringify(run.reasons));
  t.match(run.reasons[0]!.message, incr!.archiveStart);
});

t.test('recovery to a time: rows committed after it are absent, before it present', async (t) => {
  const before = await verify(await policyFor(fixture.repo, { recovery: `{ time: "${fixture.betweenBatches}" }`, lateRows: 0 }), store);
  t.equal(before.verdict, 'pass', JSON.stringify(before.reasons));
  t.match(String(before.restored?.recoveryStopped ?? ''), /recovery stopping before commit/);
  t.ok(Date.parse(String(before.restored?.lastReplayedCommit)) < Date.parse(fixture.betweenBatches));
  const after = await verify(await policyFor(fixture.repo, { recovery: `{ time: "${fixture.afterLate}" }`, lateRows: 100 }), store);
  t.equal(after.verdict, 'pass', `a target after the late rows has them: ${JSON.stringify(after.reasons)}`);
  t.ok(Date.parse(String(after.restored?.lastReplayedCommit)) < Date.parse(fixture.afterLate));
  const beyond = await verify(await policyFor(fixture.repo, { recovery: `{ time: "${new Date().toISOString()}" }`, lateRows: 100 }), store);
  // A target after the end of the archive is not reached: PostgreSQL 15 refuses to promote.
  t.equal(beyond.verdict, 'fail', JSON.stringify(beyond.reasons));
  t.match(JSON.stringify(beyond.reasons), /ends before the recovery target/);
});

t.test('recovery sampled: a time drawn between the sets, the older set restored and replayed to it', async (t) => {
  const [full, incr] = fixture.sets;
  const sampledPolicy = async (select = '{ settle: 0s }'): Promise<PolicyConfig> =>
    policyFromYaml({
      folder: await tempDir('pgbackrest-policy'),
      kind: 'postgres',
      source: `          driver: pgbackrest
          repository: ${JSON.stringify(fixture.repo)}
          stanza: main
          check: false
          select: ${select}`,
      // Every time in the window is before the rows written after the incremental set.
      probes: `          - rowCount: { table: orders, atLeast: 200 }
          - sql: "SELECT count(*) FROM orders WHERE note IN ('after incr', 'late')"
            equals: 0`,
      rpo: '1h',
      extra: '        postgres: { recovery: sampled }',
    });
  const run = await verify(await sampledPolicy(), store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.backup?.key, full!.label, 'the set that ended before the drawn time: the full one');
  const said = String(run.backup?.header?.recovery ?? '');
  const drawn = /^sampled: to (\S+), drawn at random between (\S+) and (\S+) /.exec(said);
  t.ok(drawn, `the evidence says how the time was drawn: ${said}`);
  const [at, from, to] = drawn!.slice(1).map((x) => Date.parse(x));
  t.equal(from, full!.stoppedAt.getTime(), 'from the end of the oldest set');
  t.equal(to, incr!.stoppedAt.getTime(), 'to the end of the newest');
  t.ok(at! > from! && at! <= to!, 'the time lies in the window');
  const commit = Date.parse(String(run.restored?.lastReplayedCommit ?? ''));
  t.ok(!Number.isFinite(commit) || commit <= at!, 'nothing committed after the drawn time was replayed');
  t.equal(run.metrics.rpoMeasuredMs, Date.parse(run.startedAt) - incr!.stoppedAt.getTime(), "the RPO is the newest set's age, not the restored data's");
  t.equal(await leftoversOf(run.id), 0);

  // One set to choose from (the selector takes only full sets): nothing to draw, replayed to the end.
  const only = await verify(await sampledPolicy('{ settle: 0s, glob: "*F" }'), store);
  t.equal(only.backup?.key, full!.label);
  t.match(String(only.backup?.header?.recovery ?? ''), /^latest/);
  t.match(String(only.backup?.provider?.recoverySampled ?? ''), /one backup only/);
  t.ok(codes(only).every((c) => c === 'probe_failed'), `the late rows are replayed, so the probe of none fails: ${JSON.stringify(only.reasons)}`);
});

t.test('an incremental set whose full set is gone: fail, naming it', async (t) => {
  const repo = await fixture.copy();
  const [full] = fixture.sets;
  await fs.rm(path.join(repo, 'backup/main', full!.label), { recursive: true });
  const run = await verify(await policyFor(repo), store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['restore_failed'], JSON.stringify(run.reasons));
  t.match(run.reasons[0]!.message, full!.label);
});

t.test('an encrypted repository: read with source.cipherPass, by reference, and the pass is in no record', async (t) => {
  const pass = 'canary-pgbackrest-pass-7c1e';
  const enc = await makePgbackrestRepo({ cipherPass: pass });
  const policy = async (cipher: string, env: NodeJS.ProcessEnv = {}) =>
    policyFromYaml({
      folder: await tempDir('pgbackrest-enc-policy'),
      kind: 'postgres',
      source: `          driver: pgbackrest
          repository: ${JSON.stringify(enc.repo)}
          stanza: main
          check: verify${cipher}
          select: { settle: 0s }`,
      probes: `          - sql: "${LATE}"
            equals: 100`,
      rpo: '1h',
      env,
    });
  const without = await verify(await policy(''), store);
  t.equal(without.verdict, 'error');
  t.same(codes(without), ['unsupported_format']);
  t.match(without.reasons[0]!.message, /source\.cipherPass/);

  const run = await verify(await policy('\n          cipherPass: ${env:PGB_PASS}', { PGB_PASS: pass }), store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.backup?.header?.encryption, 'aes-256-cbc (repo1-cipher-type)');
  t.equal(run.phases.find((p) => p.name === 'storage_check')?.outcome, 'ok', 'pgbackrest verify decrypts too');
  t.notOk(JSON.stringify(run).includes(pass), 'the passphrase is in no part of the record');
  t.equal(run.backup?.provider?.postgresMajor, '15', 'the major read on the host, through pgbackrest info');
  t.match(run.sandbox?.imageChoice, /PostgreSQL 15: the image of that major/, 'chosen before the stream could be read');

  const wrong = await verify(await policy('\n          cipherPass: not-the-pass'), store);
  t.equal(wrong.verdict, 'error', JSON.stringify(wrong.reasons));
  t.same(codes(wrong), ['source_denied']);
});
