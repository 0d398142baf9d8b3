import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { age, createShopDatabase, dumpCluster, dumpDatabase, stampedName, writeSidecar } from './helpers/fixtures.js';
import { codes, leftoversOf, policyFromYaml, tempDir, useRestoreEnv, verify } from './helpers/harness.js';

// Good backups pass, and the evidence says what was checked. Real pg_dump output from a real
// PostgreSQL server, restored in a real Docker sandbox, recorded in the embedded env.store.

const env = useRestoreEnv(t);

t.test('a good custom-format dump with a sidecar passes, with evidence', async (t) => {
  const folder = await tempDir('good-custom');
  const db = await createShopDatabase(env.cluster);
  const older = path.join(folder, 'shop-old.dump');
  await dumpDatabase(env.cluster, await createShopDatabase(env.cluster, { orders: 10 }), older, 'custom');
  await age(older, 3_600_000);
  const file = path.join(folder, 'shop-new.dump');
  const hex = await dumpDatabase(env.cluster, db, file, 'custom');
  await writeSidecar(file, hex);
  await age(file, 60_000);

  const run = await verify(policyFromYaml({ folder }), env.store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.status, 'finished');
  t.equal(run.backup?.key, 'shop-new.dump', 'the newest by mtime is picked, the sidecar is not');
  t.equal(run.backup?.format, 'custom');
  t.equal(run.backup?.compression, 'none');
  t.equal(run.backup?.sha256, hex, 'sha256 computed while streaming');
  t.equal(run.backup?.bytesRead, (await fs.stat(file)).size);
  t.same(run.backup?.checksums, [{ algorithm: 'sha256', expected: hex, source: 'sidecar shop-new.dump.sha256', verified: true }]);
  t.match(run.backup?.header, { serverVersion: /^15\./, pgDumpVersion: /^15\./, database: db });
  t.equal(run.probes.length, 4);
  t.ok(run.probes.every((p) => p.pass), 'every probe holds');
  t.match(run.restored, { tables: 2, estimatedRows: 5500 });
  t.same(run.phases.map((p) => [p.name, p.outcome]), [
    ['select', 'ok'],
    ['storage_check', 'skipped'],
    ['sandbox', 'ok'],
    ['fetch_restore', 'ok'],
    ['readiness', 'ok'],
    ['probes', 'ok'],
    ['teardown', 'ok'],
  ]);
  t.equal(run.phases[1]?.detail, 'the local store has no integrity check of its own');
  t.ok(run.metrics.rtoMeasuredMs! > 0 && run.metrics.rtoMet, 'rto measured and met');
  t.ok(run.metrics.rpoMet, 'rpo met');
  t.equal(await leftoversOf(run.id), 0, 'no container or volume left');
  t.same(await env.store.get(run.id), run, 'the evidence store holds exactly this record');
});

t.test('a good plain SQL dump, gzip-compressed, owned by an application role, passes', async (t) => {
  const folder = await tempDir('good-plain');
  const db = await createShopDatabase(env.cluster, { owner: 'shop_app' });
  const now = new Date(Date.now() - 2 * 3_600_000);
  // A misleading name: the format and compression come from the bytes.
  const file = path.join(folder, stampedName('shop', now, '.backup'));
  await dumpDatabase(env.cluster, db, file, 'plain.gz');
  await age(file, 60_000);
  const run = await verify(policyFromYaml({ folder, timestamp: 'name' }), env.store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.backup?.format, 'plain');
  t.equal(run.backup?.compression, 'gzip');
  t.equal(run.backup?.timestampSource, 'name');
  t.equal(run.backup?.backupTime, new Date(Math.floor(now.getTime() / 1000) * 1000).toISOString());
  t.equal(run.backup?.header?.rolesCreated, 'shop_app', 'the owner role was created in the sandbox, not stripped');
  t.same(run.backup?.checksums, [], 'no sidecar: sha256 recorded only');
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a backup over its rpo fails as stale even though it restores', async (t) => {
  const folder = await tempDir('stale');
  const file = path.join(folder, stampedName('shop', new Date(Date.now() - 3 * 86_400_000), '.dump'));
  await dumpDatabase(env.cluster, await createShopDatabase(env.cluster), file, 'custom');
  await age(file, 60_000);
  const run = await verify(policyFromYaml({ folder, timestamp: 'name', probes: '          - tablesExist: [orders]' }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['stale_backup']);
  t.match(run.reasons[0]?.message, /is 3\.0d old, older than the rpo target of 26\.0h/);
  t.equal(run.metrics.rpoMet, false);
  t.ok(run.probes.every((p) => p.pass), 'the restore itself was verified');
  t.equal(await leftoversOf(run.id), 0);
});

t.test('an empty database dump restores but fails as empty', async (t) => {
  const folder = await tempDir('empty-db');
  const file = path.join(folder, 'shop.dump');
  await dumpDatabase(env.cluster, await createShopDatabase(env.cluster, { empty: true }), file, 'custom');
  await age(file, 60_000);
  const run = await verify(policyFromYaml({ folder, probes: '          []' }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['empty_restore']);
  t.match(run.reasons[0]?.message, /holds no tables/);
  t.equal(run.phases.find((p) => p.name === 'probes')?.outcome, 'fail');
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a dump missing a table fails its probes, naming the table', async (t) => {
  const folder = await tempDir('missing-table');
  const file = path.join(folder, 'shop.dump');
  await dumpDatabase(env.cluster, await createShopDatabase(env.cluster, { withoutOrders: true }), file, 'custom');
  await age(file, 60_000);
  const run = await verify(policyFromYaml({ folder }), env.store);
  t.equal(run.verdict, 'fail');
  t.ok(codes(run).every((c) => c === 'probe_failed'), JSON.stringify(run.reasons));
  t.match(run.reasons[0]?.message, /tables exist: customers, orders, got missing: orders/);
  const failed = run.probes.filter((p) => !p.pass).map((p) => p.type);
  t.same(failed, ['tablesExist', 'rowCount', 'sql', 'freshness'], 'each probe reports its own failure');
  t.match(run.probes[1]?.error, /relation "orders" does not exist/);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('data older than the freshness window fails (a stale replica restores perfectly)', async (t) => {
  const folder = await tempDir('stale-data');
  const file = path.join(folder, 'shop.dump');
  await dumpDatabase(env.cluster, await createShopDatabase(env.cluster, { newestOrderAgeHours: 24 * 6 }), file, 'custom');
  await age(file, 60_000);
  const run = await verify(policyFromYaml({ folder }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['probe_failed']);
  t.match(run.reasons[0]?.message, /newest orders\.created_at within 48\.0h/);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a pg_dumpall cluster dump restores: its roles and databases come from the dump', async (t) => {
  const folder = await tempDir('cluster');
  const db = await createShopDatabase(env.cluster, { owner: 'cluster_app' });
  const file = path.join(folder, 'shop-cluster.sql');
  await dumpCluster(env.cluster, file);
  await age(file, 60_000);
  const run = await verify(policyFromYaml({ folder, extra: `        postgres: { database: ${db} }` }), env.store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.backup?.header?.writtenBy, 'pg_dumpall');
  t.match(run.backup?.header?.databases, db);
  t.match(run.restored, { database: db, tables: 2 });
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a pg_dumpall cluster dump holding the database the policy names (the name the sandbox\'s empty one takes) restores that database, with its data', async (t) => {
  const folder = await tempDir('cluster-restore-db');
  // Only this test's cluster dump has it: the database is dropped again at the end.
  await env.cluster.createDatabase('restore');
  t.teardown(() => env.cluster.psql('DROP DATABASE IF EXISTS restore;').then(() => undefined));
  await env.cluster.psql('CREATE TABLE marker (note text); INSERT INTO marker VALUES (\'from the dump\');', 'restore');
  const file = path.join(folder, 'shop-cluster.sql');
  await dumpCluster(env.cluster, file);
  await age(file, 60_000);
  const probes = `          - sql: SELECT note FROM marker
            equals: from the dump`;
  const run = await verify(policyFromYaml({ folder, probes, extra: '        postgres: { database: restore }' }), env.store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.match(run.backup?.header?.databases, /\brestore\b/, 'the dump created it');
  t.match(run.restored, { database: 'restore', tables: 1 });
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a pg_dump -C dump from a server with a production locale restores with that locale', async (t) => {
  const folder = await tempDir('locale');
  const file = path.join(folder, 'shop.sql');
  await dumpDatabase(env.cluster, await createShopDatabase(env.cluster), file, 'plain', ['--create']);
  // This test server only has C.UTF-8; production servers commonly run en_US.UTF-8 or de_DE.UTF-8.
  const text = await fs.readFile(file, 'utf8');
  t.match(text, /^CREATE DATABASE .* LOCALE = 'C\.UTF-8';$/m);
  await fs.writeFile(file, text.replace(/LOCALE = 'C\.UTF-8'/, "LOCALE = 'de_DE.UTF-8'"));
  await age(file, 60_000);
  const probes = `          - sql: SELECT datcollate FROM pg_database WHERE datname = current_database()
            equals: de_DE.UTF-8
            name: collation as in production
          - rowCount: { table: orders, atLeast: 1000 }`;
  const run = await verify(policyFromYaml({ folder, probes }), env.store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.backup?.header?.localesReplaced, undefined, 'the sandbox has the locale: nothing replaced');
  t.match(run.backup?.header?.probedDatabase, /^shop_/, 'probed where the dump connected');
  t.equal(await leftoversOf(run.id), 0);
});

t.test("a pg_dump -Ft tar dump streams into pg_restore and passes", async (t) => {
  const folder = await tempDir('tar');
  const file = path.join(folder, 'shop.tar');
  await dumpDatabase(env.cluster, await createShopDatabase(env.cluster), file, 'tar');
  await age(file, 60_000);
  const run = await verify(policyFromYaml({ folder }), env.store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.backup?.format, 'tar');
  t.equal(await leftoversOf(run.id), 0);
});

t.test('expect: daily fails when yesterday has no backup, naming the day, though older ones restore', async (t) => {
  const folder = await tempDir('missing-day');
  const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
  const file = path.join(folder, stampedName('shop', twoDaysAgo, '.dump'));
  await dumpDatabase(env.cluster, await createShopDatabase(env.cluster), file, 'custom');
  await age(file, 60_000);
  const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
  const policy = policyFromYaml({ folder, timestamp: 'name', rpo: '72h', probes: '          - tablesExist: [orders]' });
  const run = await verify({ ...policy, source: { ...policy.source, select: { ...policy.source.select, expect: { every: 'daily', timezone: 'UTC' } } } }, env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['missing_backup']);
  t.match(run.reasons[0]?.message, `no backup for ${yesterday} (expect: daily, UTC)`);
  t.ok(run.probes.every((p) => p.pass), 'the older backup itself was verified');
  t.equal(await leftoversOf(run.id), 0);
});
