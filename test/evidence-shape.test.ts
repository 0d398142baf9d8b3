import path from 'node:path';
import t from 'tap';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { age, createShopDatabase, dumpDatabase, truncateFile, writeSidecar } from './helpers/fixtures.js';
import { leftoversOf, openEmbeddedStore, policyFromYaml, tempDir, verify } from './helpers/harness.js';
import { startPgCluster, type PgCluster } from './helpers/pg-cluster.js';

// The same runs recorded in a real PostgreSQL server and in embedded PGlite give records of the
// same shape, read back exactly as written. Reports later read either store.

let cluster: PgCluster;

t.before(async () => {
  cluster = await startPgCluster();
});
t.teardown(() => cluster?.stop());

/** Replaces values by their types, keeping keys and array lengths: the shape of a record. */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(shape);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, shape(v)]));
  }
  return value === null ? 'null' : typeof value;
}

t.test('pass and fail runs have the same evidence shape on PostgreSQL and PGlite', async (t) => {
  const goodFolder = await tempDir('shape-good');
  const good = path.join(goodFolder, 'shop.dump');
  await writeSidecar(good, await dumpDatabase(cluster, await createShopDatabase(cluster), good, 'custom'));
  await age(good, 60_000);
  const badFolder = await tempDir('shape-bad');
  const bad = path.join(badFolder, 'shop.dump');
  await dumpDatabase(cluster, await createShopDatabase(cluster), bad, 'custom');
  await truncateFile(bad, 0.5);
  await age(bad, 60_000);

  const pg = await RunStore.open({ url: await cluster.createDatabase('evidence'), dataDir: await tempDir('unused'), schema: 'backproof' });
  const { store: lite } = await openEmbeddedStore();
  t.teardown(async () => {
    await pg.close();
    await lite.close();
  });
  t.equal(pg.kind, 'postgres');
  t.equal(lite.kind, 'pglite');

  const results: Record<string, RunRecord[]> = {};
  for (const [name, store] of [['postgres', pg], ['pglite', lite]] as const) {
    const pass = await verify(policyFromYaml({ folder: goodFolder }), store);
    const fail = await verify(policyFromYaml({ folder: badFolder }), store);
    t.equal(pass.verdict, 'pass', `${name}: pass`);
    t.equal(fail.verdict, 'fail', `${name}: fail`);
    t.equal(await leftoversOf(pass.id), 0);
    t.equal(await leftoversOf(fail.id), 0);
    const stored = [(await store.get(pass.id))!, (await store.get(fail.id))!];
    t.same(stored, [pass, fail], `${name}: read back exactly as written`);
    results[name] = stored;
  }
  t.same(shape(results.postgres), shape(results.pglite), 'same shape in both stores');
  t.same(
    results.postgres!.map((r) => [r.verdict, r.reasons.map((x) => x.code), r.phases.map((p) => p.outcome)]),
    results.pglite!.map((r) => [r.verdict, r.reasons.map((x) => x.code), r.phases.map((p) => p.outcome)]),
    'same verdicts, reasons and phase outcomes',
  );
  const listed = await pg.list({ policy: 'acme-shop' });
  t.same(listed.map((r) => r.id), [results.postgres![1]!.id, results.postgres![0]!.id], 'newest first');
});
