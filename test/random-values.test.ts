import { randomBytes, createHash } from 'node:crypto';
import path from 'node:path';
import t, { type Test } from 'tap';
import { age, dumpDatabase } from './helpers/fixtures.js';
import { policyFromYaml, tempDir, useRestoreEnv, verify } from './helpers/harness.js';
import { startMysqlFixtureServer, type MysqlFixtureServer } from './helpers/mysql-fixtures.js';
import { SqliteFixtures } from './helpers/sqlite-fixtures.js';
import { judgeRise, valueLooksRandom } from '../restore-sandboxes/probes/random-values.js';
import type { PolicyConfig } from '../orchestrator/core/config-types.js';
import type { RunRecord } from '../orchestrator/core/domain.js';

// The randomValues probe (issue 19): sampled text and binary column values that look random,
// judged against the last passing run. A real database of each SQL kind, made by its own server
// or tool, dumped, restored in the sandbox; then the same database with its values encrypted in
// place (base64 or raw ciphertext), as an attacker leaves it.

const env = useRestoreEnv(t);
let mysql: MysqlFixtureServer;
let sqlite: SqliteFixtures;
t.before(async () => {
  [mysql, sqlite] = await Promise.all([startMysqlFixtureServer(), SqliteFixtures.start()]);
});
t.teardown(async () => {
  await mysql?.stop();
  await sqlite?.stop();
});

const PROBE = '          - randomValues: { maxRise: 20%, sample: 100 }';
const NOTES = ['called about the late delivery', 'prefers invoices by post', 'VIP: ships every quarter', 'asked for a refund on order 1182'];

t.test('a value is judged by its bytes: prose, names, emails and numbers are not random; ciphertext, base64 and hex of it are', async (t) => {
  for (const plain of ['Jane Smith', 'jane.smith@example.com', 'called about the late delivery, twice', 'https://example.com/orders/1182', '2026-11-30 12:00:00+00', 'customer_orders_archive_2024', 'Ünïcödé nämes are text too']) {
    t.not(valueLooksRandom(Buffer.from(plain)), true, `"${plain}"`);
  }
  for (let i = 0; i < 20; i++) {
    const secret = randomBytes(24 + i);
    t.equal(valueLooksRandom(secret), true, `${secret.length} raw random bytes`);
    t.equal(valueLooksRandom(Buffer.from(secret.toString('base64'))), true, 'their base64');
    t.equal(valueLooksRandom(Buffer.from(createHash('sha256').update(secret).digest('hex'))), true, 'a hex digest');
  }
  t.equal(valueLooksRandom(Buffer.from('short')), undefined, 'under 16 bytes: not judged');
});

t.test('the rise is judged per column and in all, against the last passing run', async (t) => {
  const before = { 'public.customers.note': [100, 0] as [number, number], 'public.customers.token': [100, 100] as [number, number] };
  t.match(judgeRise(before, undefined, 0.2, ''), { pass: true, actual: /50% of 200 sampled values in 2 columns look random; not compared/ });
  t.match(judgeRise(before, before, 0.2, 'in run x'), { pass: true, actual: /\(50% in run x\)$/ });
  const hit = { ...before, 'public.customers.note': [100, 90] as [number, number] };
  t.match(judgeRise(hit, before, 0.2, 'in run x'), { pass: false, actual: /rose in public\.customers\.note 0% → 90%/ });
  const few = { ...before, 'public.customers.note': [5, 5] as [number, number] };
  t.match(judgeRise(few, before, 0.2, 'in run x'), { pass: true }, 'a column with under 10 values judged is not compared alone');
});

/** A run of one kind's policy over a folder holding `file` written by `write`. */
async function runOf(kind: 'postgres' | 'mysql' | 'sqlite', name: string, write: (file: string) => Promise<unknown>, extra = ''): Promise<RunRecord> {
  const folder = await tempDir(`values-${kind}`);
  const file = path.join(folder, name);
  await write(file);
  await age(file, 60_000);
  const policy: PolicyConfig = policyFromYaml({ folder, kind, glob: 'shop*', probes: PROBE, extra, timestamp: 'mtime' });
  return verify({ ...policy, name: `values-${kind}` } as PolicyConfig, env.store);
}

function probeOf(run: RunRecord): RunRecord['probes'][number] {
  return run.probes.find((p) => p.type === 'randomValues')!;
}

async function threeRuns(t: Test, kind: string, good: () => Promise<RunRecord>, encrypted: () => Promise<RunRecord>, grown: () => Promise<RunRecord>): Promise<void> {
  const first = await good();
  t.equal(first.verdict, 'pass', `${kind}: ${JSON.stringify(first.reasons)}`);
  t.match(probeOf(first).actual, /^[\d.]+% of \d+ sampled values in \d+ columns look random; not compared: no earlier passing run/);
  const hit = await encrypted();
  t.equal(hit.verdict, 'fail', `${kind}: the encrypted values fail`);
  t.same(hit.reasons.map((r) => r.code), ['probe_failed']);
  t.match(probeOf(hit).actual, new RegExp(`rose in [^;]*customers\\.note [\\d.]+% → (9\\d|100)(\\.\\d)?%`), `${kind}: names the column`);
  t.match(probeOf(hit).actual, `in run ${first.id.slice(0, 8)}`, 'against the first run');
  const later = await grown();
  t.equal(later.verdict, 'pass', `${kind}: more rows of the same kind pass, judged against the last passing run: ${probeOf(later).actual}`);
}

t.test('postgres: a pg_dump whose text column was encrypted in place fails the probe', async (t) => {
  const make = async (rows: number, encrypt: boolean): Promise<string> => {
    const db = `values_${randomBytes(4).toString('hex')}`;
    await env.cluster.createDatabase(db);
    await env.cluster.psql(
      `CREATE TABLE customers (id int PRIMARY KEY, name text, email varchar(200), note text, avatar bytea);
       INSERT INTO customers SELECT i, 'Customer ' || i, 'c' || i || '@example.com',
         (ARRAY[${NOTES.map((n) => `'${n}'`).join(', ')}])[1 + i % ${NOTES.length}] || ' (' || i || ')', decode(repeat('00ff', 20), 'hex')
       FROM generate_series(1, ${rows}) i;` +
        (encrypt ? `UPDATE customers SET note = encode(decode(md5(random()::text) || md5(random()::text), 'hex'), 'base64');` : ''),
      db,
    );
    return db;
  };
  await threeRuns(
    t,
    'postgres',
    async () => runOf('postgres', 'shop.dump', async (f) => dumpDatabase(env.cluster, await make(300, false), f, 'custom')),
    async () => runOf('postgres', 'shop.dump', async (f) => dumpDatabase(env.cluster, await make(300, true), f, 'custom')),
    async () => runOf('postgres', 'shop.dump', async (f) => dumpDatabase(env.cluster, await make(600, false), f, 'custom')),
  );
});

t.test('mysql: a mariadb-dump whose text column holds ciphertext fails the probe', async (t) => {
  const make = async (rows: number, encrypt: boolean): Promise<string> => {
    const db = `values_${randomBytes(4).toString('hex')}`;
    await mysql.sql(
      `CREATE DATABASE ${db}; USE ${db};
       CREATE TABLE customers (id int PRIMARY KEY, name varchar(100), note text, photo blob);
       INSERT INTO customers SELECT seq, CONCAT('Customer ', seq), CONCAT(ELT(1 + seq % ${NOTES.length}, ${NOTES.map((n) => `'${n}'`).join(', ')}), ' (', seq, ')'), REPEAT('ab', 20)
       FROM seq_1_to_${rows};` + (encrypt ? `UPDATE customers SET note = TO_BASE64(AES_ENCRYPT(note, 'pay-us'));` : ''),
    );
    return db;
  };
  await threeRuns(
    t,
    'mysql',
    async () => runOf('mysql', 'shop.sql', async (f) => mysql.dump(f, [await make(300, false)])),
    async () => runOf('mysql', 'shop.sql', async (f) => mysql.dump(f, [await make(300, true)])),
    async () => runOf('mysql', 'shop.sql', async (f) => mysql.dump(f, [await make(600, false)])),
  );
});

t.test('sqlite: a database whose text column holds raw ciphertext fails the probe', async (t) => {
  const sql = (rows: number, encrypt: boolean): string =>
    `CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, note TEXT);
     WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ${rows})
     INSERT INTO customers SELECT i, 'Customer ' || i, (CASE i % 4 ${NOTES.map((n, i) => `WHEN ${i} THEN '${n}'`).join(' ')} END) || ' (' || i || ')' FROM g;` +
    (encrypt ? `UPDATE customers SET note = randomblob(48);` : '');
  await threeRuns(
    t,
    'sqlite',
    async () => runOf('sqlite', 'shop.db', (f) => sqlite.database(f, sql(300, false))),
    async () => runOf('sqlite', 'shop.db', (f) => sqlite.database(f, sql(300, true))),
    async () => runOf('sqlite', 'shop.db', (f) => sqlite.database(f, sql(600, false))),
  );
});
