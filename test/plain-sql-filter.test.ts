import { Readable, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import t from 'tap';
import type { VerificationError } from '../orchestrator/core/errors.js';
import { PlainSqlFilter } from '../restore-sandboxes/postgres/plain-sql-filter.js';
import { SqlActionGuard } from '../restore-sandboxes/postgres/sql-action-guard.js';

// Cluster-dump and locale handling of the plain SQL filter, line by line.

async function filtered(sql: string, filter: PlainSqlFilter): Promise<string> {
  let out = '';
  for await (const chunk of Readable.from([Buffer.from(sql)]).pipe(filter)) out += (chunk as Buffer).toString('utf8');
  return out;
}

t.test("pg_dumpall's CREATE ROLE passes when the role exists already", async (t) => {
  const f = new PlainSqlFilter();
  const out = await filtered('CREATE ROLE postgres;\nALTER ROLE postgres WITH SUPERUSER;\nCREATE ROLE app;\nALTER TABLE t OWNER TO app;\n', f);
  t.equal(
    out,
    'DO $backproof$ BEGIN CREATE ROLE postgres; EXCEPTION WHEN duplicate_object THEN NULL; END $backproof$;\n' +
      'ALTER ROLE postgres WITH SUPERUSER;\n' +
      'DO $backproof$ BEGIN CREATE ROLE app; EXCEPTION WHEN duplicate_object THEN NULL; END $backproof$;\n' +
      'ALTER TABLE t OWNER TO app;\n',
  );
  t.same(f.rolesCreated, [], 'the dump created its roles itself');
});

t.test('a locale the sandbox lacks becomes C.UTF-8 and is reported; one it has stays', async (t) => {
  const line = "CREATE DATABASE shop WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'tr_TR.UTF-8';\n";
  const lacking = new PlainSqlFilter({ locales: new Set(['C', 'C.utf8', 'POSIX', 'en_US.utf8']) });
  t.equal(await filtered(line, lacking), line.replace("'tr_TR.UTF-8'", "'C.UTF-8'"));
  t.same(lacking.localesReplaced, ['tr_TR.UTF-8']);
  t.same(lacking.databasesCreated, ['shop']);
  const having = new PlainSqlFilter({ locales: new Set(['C.utf8', 'tr_TR.utf8']) });
  t.equal(await filtered(line, having), line, 'UTF-8 and utf8 spellings are the same locale');
  t.same(having.localesReplaced, []);
  const older = "CREATE DATABASE \"Shop\" WITH TEMPLATE = template0 ENCODING = 'UTF8' LC_COLLATE = 'de_DE.UTF-8' LC_CTYPE = 'de_DE.UTF-8';\n";
  const f = new PlainSqlFilter({ locales: new Set(['C.utf8']) });
  t.equal(await filtered(older, f), older.replaceAll("'de_DE.UTF-8'", "'C.UTF-8'"), 'LC_COLLATE and LC_CTYPE of older servers too');
  t.same(f.databasesCreated, ['Shop']);
  t.same(f.localesReplaced, ['de_DE.UTF-8']);
});

t.test('without a locale list nothing is rewritten', async (t) => {
  const line = "CREATE DATABASE shop WITH LOCALE = 'tr_TR.UTF-8';\n";
  t.equal(await filtered(line, new PlainSqlFilter()), line);
});

// Hostile plain dumps: psql meta-commands and server-side actions are refused before psql reads them.

async function refusal(sql: string, ...streams: Array<PlainSqlFilter | SqlActionGuard>): Promise<Error | undefined> {
  try {
    await pipeline(Readable.from([Buffer.from(sql)]), ...(streams as unknown as [Transform]), new Writable({ write: (_c, _e, cb) => cb() }));
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

t.test('meta-commands other than pg_dump\'s own are refused, naming the line; COPY data is not read as commands', async (t) => {
  for (const [line, command] of [
    ['\\! id', '\\!'],
    ["\\o |sh -c 'id'", '\\o'],
    ["\\copy t to program 'id'", '\\copy'],
    ['\\setenv PAGER id', '\\setenv'],
    ['\\i /etc/passwd', '\\i'],
    ['\\w /tmp/x', '\\w'],
    ['\\connect shop \\! id', '\\connect'],
    ['\\connect `id`', '\\connect'],
  ] as const) {
    const err = await refusal(`SET x = 1;\nCOPY t (a) FROM stdin;\n\\N\n\\.\n${line}\nSELECT 1;\n`, new PlainSqlFilter({ restrictKey: 'k1' }));
    t.equal((err as VerificationError | undefined)?.code, 'unsafe_archive', line);
    t.match(err?.message, `the psql meta-command "${command}" at line 5`);
  }
});

t.test("with a restrict key, pg_dump's own meta-commands pass between unrestrict and restrict; line numbers map back", async (t) => {
  const f = new PlainSqlFilter({ restrictKey: 'k1' });
  const out = await filtered('\\restrict abc\nCREATE DATABASE shop;\n\\connect shop\nALTER TABLE t OWNER TO app;\nSELECT 1;\n\\unrestrict abc\n', f);
  t.equal(
    out,
    '\\restrict k1\n\nCREATE DATABASE shop;\n\\unrestrict k1\n\\connect shop\n\\restrict k1\n' +
      'DO $backproof$ BEGIN CREATE ROLE "app"; EXCEPTION WHEN duplicate_object THEN NULL; END $backproof$;\nALTER TABLE t OWNER TO app;\nSELECT 1;\n\n',
  );
  t.equal(f.connectedDatabase, 'shop');
  t.same([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => f.dumpLine(n)), [1, 1, 2, 3, 3, 3, 4, 4, 5, 6]);
  t.equal(await filtered('\\connect -reuse-previous=on "dbname=\'my db\'"\n', new PlainSqlFilter()), '\\connect -reuse-previous=on "dbname=\'my db\'"\n', 'without a key, lines pass as they are');
});

t.test('server-side actions a dump has no business doing are refused, naming the line', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ["COPY t TO PROGRAM 'touch /tmp/x';", /COPY \.\.\. TO PROGRAM at line 3/],
    ["copy t\n  from\n  program 'id';", /COPY \.\.\. FROM PROGRAM at line 5/],
    ["SELECT 1; COPY (SELECT 1) TO '/tmp/x';", /COPY \.\.\. TO '<server file>' at line 3/],
    ["COPY t FROM E'/etc/passwd';", /COPY \.\.\. FROM '<server file>'/],
    ['COPY t FROM $$/etc/passwd$$;', /COPY \.\.\. FROM '<server file>'/],
    ["ALTER SYSTEM SET archive_command = 'id';", /ALTER SYSTEM at line 3/],
    ["SELECT pg_catalog.lo_import('/etc/passwd');", /lo_import \(reads a server file\)/],
    ["SELECT \"lo_export\"(1, '/tmp/x');", /lo_export/],
    ["SELECT pg_read_file('/etc/passwd');", /pg_read_file/],
    ["COPY public.t (a, b, c, d, e, f, g) TO PROGRAM 'id';", /COPY \.\.\. TO PROGRAM at line 3/],
    ["INSERT INTO t VALUES (1, 2, 3, 4, 5, 6, 7, pg_catalog.lo_import('/etc/passwd'));", /lo_import/],
    // with standard_conforming_strings off, psql reads 'a\'' as one string and runs the COPY
    ["SET standard_conforming_strings = 'off';\nSELECT 'a\\'' ; COPY t TO PROGRAM 'id'; --';", /COPY \.\.\. TO PROGRAM at line 4/],
  ];
  for (const [sql, message] of cases) {
    const err = await refusal(`SET x = 1;\nCREATE TABLE t (a int);\n${sql}\n`, new SqlActionGuard());
    t.equal((err as VerificationError | undefined)?.code, 'unsafe_archive', sql);
    t.match(err?.message, message, sql);
  }
});

t.test('what only looks like those actions passes: strings, comments, dollar quotes, COPY data, BEGIN ATOMIC bodies', async (t) => {
  const sql = [
    "INSERT INTO t VALUES ('COPY t TO PROGRAM ''id''; ALTER SYSTEM');",
    '-- COPY t TO PROGRAM \'id\'',
    "/* ALTER SYSTEM /* nested */ lo_import('x') */ SELECT 1;",
    "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $fn$ BEGIN PERFORM lo_import('x'); END $fn$;",
    'CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END;',
    'COPY public.t (a, b, c, d, e, f, g) FROM stdin;',
    "1\t\\N\tCOPY x TO PROGRAM 'id'",
    "1\tCOPY x TO PROGRAM 'id'",
    '\\N\tALTER SYSTEM',
    '\\.',
    'COPY t TO stdout;',
    "SELECT E'it\\'s', $1, a$b FROM t;",
    "\\connect shop",
    '',
  ].join('\n');
  t.equal(await refusal(sql, new SqlActionGuard()), undefined);
  // a chunk boundary anywhere gives the same judgement
  const bytes = Buffer.from(`${sql}COPY t TO PROGRAM 'id';\n`);
  for (let cut = 1; cut < bytes.length; cut += 7) {
    const guard = new SqlActionGuard();
    const err = await pipeline(Readable.from([bytes.subarray(0, cut), bytes.subarray(cut)]), guard, new Writable({ write: (_c, _e, cb) => cb() })).then(
      () => undefined,
      (e: Error) => e,
    );
    if (!/COPY \.\.\. TO PROGRAM at line 14/.test(err?.message ?? '')) t.fail(`cut at ${cut}: ${err?.message}`);
  }
});
