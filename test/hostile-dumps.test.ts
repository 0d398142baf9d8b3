import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { age, dumpDatabase } from './helpers/fixtures.js';
import { codes, leftoversOf, policyFromYaml, tempDir, useRestoreEnv, verify } from './helpers/harness.js';

// Dumps that try to act, restored in real sandboxes (PostgreSQL 15 and MariaDB images): psql
// meta-commands and server-side actions are refused before they run (`fail`, `unsafe_archive`,
// naming the line), what no scan can see (SQL built at run time) runs inside the sandbox only,
// and nothing appears on the host. Each case names a host path the dump tries to create.

const env = useRestoreEnv(t);

/** A host path no one else uses; the dump tries to create it. */
function canary(): string {
  return path.join('/tmp', `backproof-hostile-${randomBytes(6).toString('hex')}`);
}

async function dumpFolder(name: string, sql: string): Promise<string> {
  const folder = await tempDir('hostile-dump');
  const file = path.join(folder, name);
  await fs.writeFile(file, sql);
  await age(file, 60_000);
  return folder;
}

const PG_HEAD = 'SET client_encoding = \'UTF8\';\nCREATE TABLE orders (id int PRIMARY KEY);\nINSERT INTO orders VALUES (1), (2);\n';
const PG_PROBES = '          - rowCount: { table: orders, atLeast: 2 }';

t.test('postgres plain SQL: psql meta-commands, at the start of a line or after a statement, are refused', async (t) => {
  const host = canary();
  const cases: Array<{ line: string; message: RegExp }> = [
    { line: `\\! touch ${host}`, message: /the psql meta-command "\\!" at line 4/ },
    { line: `SELECT 1; \\o |touch ${host}`, message: /psql meta-command \(a backslash command after other text\) at line 4; psql ran restricted/ },
  ];
  for (const c of cases) {
    const folder = await dumpFolder('shop.sql', `${PG_HEAD}${c.line}\nSELECT 2;\n`);
    const run = await verify(policyFromYaml({ folder, probes: PG_PROBES }), env.store);
    t.equal(run.verdict, 'fail', c.line);
    t.same(codes(run), ['unsafe_archive'], JSON.stringify(run.reasons));
    t.match(run.reasons[0]?.message, c.message);
    t.equal(await leftoversOf(run.id), 0);
    t.notOk(existsSync(host), 'nothing ran on the host');
  }
});

t.test('postgres plain SQL: COPY ... TO PROGRAM and ALTER SYSTEM are refused before they run', async (t) => {
  const host = canary();
  for (const [sql, message] of [
    [`COPY (SELECT 1) TO PROGRAM 'touch ${host}';`, /COPY \.\.\. TO PROGRAM at line 4; refused before it ran/],
    ["ALTER SYSTEM SET archive_command = 'touch /tmp/x';", /ALTER SYSTEM at line 4/],
  ] as const) {
    const folder = await dumpFolder('shop.sql', `${PG_HEAD}${sql}\n`);
    const run = await verify(policyFromYaml({ folder, probes: PG_PROBES }), env.store);
    t.equal(run.verdict, 'fail', sql);
    t.same(codes(run), ['unsafe_archive'], JSON.stringify(run.reasons));
    t.match(run.reasons[0]?.message, message);
    t.equal(await leftoversOf(run.id), 0);
  }
  t.notOk(existsSync(host), 'nothing ran on the host');
});

t.test('postgres: a program started by SQL built at run time runs inside the sandbox only: as postgres, with loopback alone', async (t) => {
  // No scan sees `'PRO' || 'GRAM'`: the server (a superuser session) runs it, inside the sandbox.
  const host = canary();
  const folder = await dumpFolder(
    'shop.sql',
    `${PG_HEAD}CREATE TABLE seen (line text);\n` +
      `DO $$ BEGIN EXECUTE 'COPY seen FROM PRO' || 'GRAM ''id -un; ls /sys/class/net; touch ${host} && echo wrote'''; END $$;\n`,
  );
  const probes = `${PG_PROBES}
          - sql: SELECT string_agg(line, ',' ORDER BY line) FROM seen
            equals: lo,postgres,wrote`;
  const run = await verify(policyFromYaml({ folder, probes }), env.store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(await leftoversOf(run.id), 0);
  t.notOk(existsSync(host), 'the file it wrote stayed in the sandbox, which is gone');
});

t.test('postgres custom format: a program a CHECK constraint starts while pg_restore loads the data runs inside the sandbox only', async (t) => {
  // A real pg_dump -Fc archive. The table's CHECK calls a function that starts a program when
  // it runs anywhere but in the source database: for each row pg_restore loads.
  const host = canary();
  const source = `hostile_src_${process.pid}`;
  await env.cluster.createDatabase(source);
  await env.cluster.psql(
    `CREATE TABLE public.seen (line text);
     CREATE FUNCTION public.act(int) RETURNS int LANGUAGE plpgsql AS $f$
       BEGIN
         IF current_database() <> '${source}' THEN
           EXECUTE 'COPY public.seen FROM PROGRAM ''id -un; touch ${host} && echo wrote''';
         END IF;
         RETURN $1;
       END $f$;
     CREATE TABLE public.orders (id int PRIMARY KEY CHECK (public.act(id) > 0));
     INSERT INTO public.orders VALUES (1), (2);`,
    source,
  );
  const folder = await tempDir('hostile-dump');
  const file = path.join(folder, 'shop.dump');
  await dumpDatabase(env.cluster, source, file, 'custom');
  await age(file, 60_000);
  t.notOk(existsSync(host), 'nothing ran while making the dump');
  const probes = `${PG_PROBES}
          - sql: SELECT string_agg(DISTINCT line, ',' ORDER BY line) FROM seen
            equals: postgres,wrote`;
  const run = await verify(policyFromYaml({ folder, probes }), env.store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.backup?.format, 'custom');
  t.equal(await leftoversOf(run.id), 0);
  t.notOk(existsSync(host), 'the file it wrote stayed in the sandbox, which is gone');
});

t.test('postgres: untrusted languages are not in the image: the restore stops there', async (t) => {
  const host = canary();
  const extension = await verify(policyFromYaml({ folder: await dumpFolder('shop.sql', `${PG_HEAD}CREATE EXTENSION plpython3u;\n`), probes: PG_PROBES }), env.store);
  t.equal(extension.verdict, 'error');
  t.same(codes(extension), ['sandbox_failed']);
  t.match(extension.reasons[0]?.message, /needs the extension "plpython3u", which the sandbox image lacks/);
  const fn = await verify(
    policyFromYaml({
      folder: await dumpFolder('shop.sql', `${PG_HEAD}CREATE FUNCTION f() RETURNS int LANGUAGE plperlu AS $$ system("touch ${host}"); return 1; $$;\nSELECT f();\n`),
      probes: PG_PROBES,
    }),
    env.store,
  );
  t.equal(fn.verdict, 'fail');
  t.same(codes(fn), ['restore_failed']);
  t.match(fn.reasons[0]?.message, /language "plperlu" does not exist/);
  for (const r of [extension, fn]) t.equal(await leftoversOf(r.id), 0);
  t.notOk(existsSync(host));
});

t.test('mariadb: files and shell commands in a dump are refused; LOAD_FILE() reads nothing', async (t) => {
  const host = canary();
  const head = 'CREATE TABLE orders (id int PRIMARY KEY, note text);\nINSERT INTO orders VALUES (1, NULL), (2, NULL);\n';
  const cases: Array<{ sql: string; message: RegExp }> = [
    { sql: `SELECT 'owned' INTO OUTFILE '${host}';`, message: /reads or writes server files .*--secure-file-priv: ERROR 1290 .* at line 3/ },
    { sql: "LOAD DATA INFILE '/etc/passwd' INTO TABLE orders;", message: /ERROR 1290/ },
    { sql: `system touch ${host}`, message: /mariadb client command .*ERROR at line 3: Not allowed in the sandbox mode/ },
  ];
  for (const c of cases) {
    const run = await verify(policyFromYaml({ folder: await dumpFolder('shop.sql', `${head}${c.sql}\n`), kind: 'mysql', probes: '          []' }), env.store);
    t.equal(run.verdict, 'fail', c.sql);
    t.same(codes(run), ['unsafe_archive'], JSON.stringify(run.reasons));
    t.match(run.reasons[0]?.message, c.message);
    t.equal(await leftoversOf(run.id), 0);
  }
  const read = await verify(
    policyFromYaml({
      folder: await dumpFolder('shop.sql', `${head}UPDATE orders SET note = LOAD_FILE('/etc/passwd');\n`),
      kind: 'mysql',
      probes: `          - sql: SELECT count(*) FROM orders WHERE note IS NULL
            equals: 2`,
    }),
    env.store,
  );
  t.equal(read.verdict, 'pass', JSON.stringify(read.reasons));
  t.equal(await leftoversOf(read.id), 0);
  t.notOk(existsSync(host), 'nothing written on the host');
});

t.test('postgres: a dump that allocates without bound ends at the sandbox memory limit, as an error naming it', async (t) => {
  // A hash of 100 million distinct values with work_mem raised: several GB, in a 512 MB sandbox.
  // The kernel kills the server process; the run cannot tell a hostile dump from a big one that
  // needs more memory, so this is `error` (ours to look at), with the limit named.
  const folder = await dumpFolder('shop.sql', `${PG_HEAD}SET work_mem = '2000MB';\nSELECT count(*) FROM (SELECT DISTINCT g FROM generate_series(1, 100000000) g) s;\n`);
  const started = Date.now();
  const run = await verify(policyFromYaml({ folder, probes: PG_PROBES, sandbox: 'memory: 512m, timeout: 3m' }), env.store);
  t.equal(run.verdict, 'error', JSON.stringify(run.reasons));
  t.same(codes(run), ['sandbox_failed']);
  t.match(run.reasons[0]?.message, /memory limit (of|is) 512(\.0)? MiB/);
  t.ok(Date.now() - started < 150_000, 'ended before the hard timeout');
  t.equal(await leftoversOf(run.id), 0);
});
