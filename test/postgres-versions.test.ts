import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import t from 'tap';
import { policyOfKind } from '../orchestrator/core/config-types.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { PostgresRestorer } from '../restore-sandboxes/postgres/postgres-restorer.js';
import { age, createShopDatabase, dumpDatabase } from './helpers/fixtures.js';
import { codes, leftoversOf, policyFromYaml, quietLogger, tempDir, useRestoreEnv, verify } from './helpers/harness.js';

// Dumps written by a newer PostgreSQL than the default sandbox (15) are restored in an image of
// a matching major, chosen from the dump's own header. The PostgreSQL 17 dumps here are made by
// the real pg_dump 17 inside a backproof/postgres:17 sandbox (.ci/run builds both images).

const PG17 = 'backproof/postgres:17';
const env = useRestoreEnv(t);

/** pg_dump 17 of a small shop database, made inside a PostgreSQL 17 sandbox. */
async function dump17(file: string, format: 'c' | 'p'): Promise<void> {
  const policy = policyOfKind(policyFromYaml({ folder: path.dirname(file) }), 'postgres');
  const restorer = new PostgresRestorer();
  const runId = `fixture-${path.basename(file)}-${process.pid}`;
  const sandbox = await new DockerRuntime().create(restorer.sandboxSpec(policy, runId, PG17));
  try {
    const signal = AbortSignal.timeout(120_000);
    await restorer.prepare({ runId, policy, sandbox, logger: quietLogger(), signal, backupTime: new Date(), backupSize: 0 });
    const psql = ['/usr/lib/postgresql/17/bin/psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '/tmp', '-U', 'postgres'];
    for (const [db, sql] of [
      ['postgres', 'CREATE DATABASE shop'],
      ['shop', `CREATE TABLE customers (id bigint PRIMARY KEY, name text);
                INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 500) g;
                CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers, created_at timestamptz);
                INSERT INTO orders SELECT g, 1 + g % 500, now() - g * interval '1 minute' FROM generate_series(1, 5000) g;`],
    ] as const) {
      const r = await sandbox.exec([...psql, '-d', db, '-c', sql], { user: 'postgres', signal });
      if (r.exitCode !== 0) throw new Error(r.stderr);
    }
    const out = createWriteStream(file);
    const r = await sandbox.exec(['/usr/lib/postgresql/17/bin/pg_dump', `-F${format}`, '-h', '/tmp', '-U', 'postgres', 'shop'], { user: 'postgres', signal, stdout: out });
    if (r.exitCode !== 0) throw new Error(r.stderr);
  } finally {
    await sandbox.remove();
  }
  await age(file, 60_000);
}

t.test('a PostgreSQL 17 custom dump is restored in the PostgreSQL 17 image, chosen from its header', async (t) => {
  const folder = await tempDir('pg17');
  await dump17(path.join(folder, 'shop.dump'), 'c');
  const run = await verify(policyFromYaml({ folder }), env.store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.sandbox?.image, PG17);
  t.match(run.sandbox?.serverVersion, /^17\./);
  t.match(run.sandbox?.imageChoice, /dump comes from PostgreSQL 17/);
  t.match(run.backup?.header, { serverVersion: /^17\./, archiveFormat: 'custom' });
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a gzip\'d PostgreSQL 17 plain dump too (the header is read through the compression)', async (t) => {
  const folder = await tempDir('pg17-plain');
  const plain = path.join(folder, 'plain.tmp');
  await dump17(plain, 'p');
  await pipeline((await fs.open(plain)).createReadStream(), createGzip(), createWriteStream(path.join(folder, 'shop.sql.gz')));
  await fs.rm(plain);
  await age(path.join(folder, 'shop.sql.gz'), 60_000);
  const run = await verify(policyFromYaml({ folder }), env.store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.sandbox?.image, PG17);
  t.equal(run.backup?.compression, 'gzip');
});

t.test('pinned to the PostgreSQL 15 image, a PostgreSQL 17 dump cannot be verified: error with the fix', async (t) => {
  const folder = await tempDir('pg17-pinned');
  await dump17(path.join(folder, 'shop.dump'), 'c');
  const policy = policyFromYaml({ folder });
  const run = await verify({ ...policy, sandbox: { ...policy.sandbox, image: 'backproof/postgres:15' } }, env.store);
  t.equal(run.verdict, 'error', 'not a fail: the backup may well be good');
  t.same(codes(run), ['unsupported_format']);
  t.match(run.reasons[0]?.message, /PostgreSQL 17, newer than the sandbox's 15/);
  t.equal(run.sandbox?.imageChoice, undefined, 'pinned: nothing chosen');
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a PostgreSQL 15 dump keeps the PostgreSQL 15 image', async (t) => {
  const folder = await tempDir('pg15');
  const file = path.join(folder, 'shop.dump');
  await dumpDatabase(env.cluster, await createShopDatabase(env.cluster), file, 'custom');
  await age(file, 60_000);
  const run = await verify(policyFromYaml({ folder, probes: '          - tablesExist: [orders]' }), env.store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.sandbox?.image, 'backproof/postgres:15');
});
