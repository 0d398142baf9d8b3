import { Readable } from 'node:stream';
import t from 'tap';
import { PlainSqlFilter } from '../restore-sandboxes/postgres/plain-sql-filter.js';

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
