import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseDocument } from 'yaml';
import { fastYaml, parseSource, topLevelOnly } from '../orchestrator/config/config-sources.js';
import { loadConfig, loadStoreSettings, parseConfigText } from '../orchestrator/config/load.js';
import { ConfigError } from '../orchestrator/core/errors.js';

/**
 * The config's data is read by js-yaml (fast) and, when a problem must be located, by `yaml`
 * (positions). Both must read every text to the same data, or a config would mean one thing
 * when valid and another when a problem elsewhere sends it down the slow path.
 */
const slow = (text: string): unknown => parseDocument(text, { uniqueKeys: false }).toJS();

const SCALARS = [
  // null, bool: YAML 1.2 core only (yes/no/on/off/y/n are strings, as in `yaml`)
  '~', 'null', 'Null', 'NULL', '', 'nULL', 'true', 'True', 'TRUE', 'false', 'tRUE', 'yes', 'no', 'on', 'off', 'y', 'N',
  // ints: decimal, 0o, 0x; YAML 1.1 forms are strings
  '0', '-0', '+5', '007', '0o17', '0o8', '0x1F', '0X1F', '0b101', '1_000', '1,000', '12:30', '190:20:30', '9007199254740993',
  // floats
  '1.', '.5', '-.5', '1.50', '1e3', '1E-3', '+1.2e+3', '.inf', '-.Inf', '+.INF', '.nan', '.NaN', 'NaN', 'inf', '1.2.3', '1e', 'e3',
  // strings that look like other things
  '2026-12-03', '2026-12-03T06:00:00Z', '10m', '1.5g', '512m', '26h', '3 2 * * *', 'daily at 03:00', '${env:TOKEN}', '${file:/run/secrets/x}',
  '@daily', '=x', 'a: b', 'http://example.com:8080/x?y=1#z', 'C:\\backups', 'élan', '日本', '💾',
];

t.test('plain scalars resolve alike in both parsers (YAML 1.2 core schema)', async (tt) => {
  for (const s of SCALARS) {
    const text = `v: ${s.includes(': ') || s.startsWith('@') || s.startsWith('%') ? JSON.stringify(s) : s}\n`;
    const fast = fastYaml(text);
    const expected = (() => {
      try {
        return { data: slow(text) };
      } catch {
        return undefined;
      }
    })();
    if (!fast) {
      tt.pass(`${JSON.stringify(s)}: js-yaml declines, yaml alone reads it`);
      continue;
    }
    tt.same(fast.data, expected?.data, `${JSON.stringify(s)} -> ${JSON.stringify((expected?.data as { v: unknown } | undefined)?.v)}`);
    const v = (fast.data as { v: unknown }).v;
    const w = (expected?.data as { v: unknown }).v;
    tt.equal(typeof v, typeof w, `${JSON.stringify(s)}: same type`);
    if (typeof v === 'number' && Number.isNaN(v)) tt.ok(Number.isNaN(w), 'NaN both');
  }
});

t.test('structures: block and flow collections, block scalars, quoting, comments, documents', async (tt) => {
  const texts = [
    'a:\n  - 1\n  - two\n  - { x: 1, y: [a, "b", \'c\'] }\nb: |\n  line 1\n   line 2\nc: >-\n  folded\n  text\n\n  para\nd: "esc \\t \\u00e9 \\x41"\ne: \'it\'\'s\'\n',
    '# comment\n---\nversion: 1 # trailing\nclients: []\n...\n',
    'k: multi\n  line\n  plain\n',
    'empty_map: {}\nempty_seq: []\nnested: [[1, [2]], {a: {b: null}}]\n',
    '? complex\n: value\n"quoted key": 1\n\'single\': 2\n',
    'k: !!str 5\nj: !!int "7"\n',
    'list:\n- a\n- b\n',
    '',
    '# only a comment\n',
    'a: 1\r\nb: 2\r\n',
    '\ufeffbom: 1\n',
    'a: &x 1\nb: *x\ncron: "*/5 * * * *"\nglob: "*.dump"\n',
  ];
  for (const text of texts) {
    const fast = fastYaml(text);
    if (!fast) {
      tt.pass(`declined: ${JSON.stringify(text.slice(0, 30))}`);
      continue;
    }
    tt.same(fast.data, slow(text), JSON.stringify(text.slice(0, 40)));
  }
});

t.test('texts only yaml may read go to yaml: anchors, aliases, duplicate keys, several documents, syntax errors', async (tt) => {
  const declined = [
    'a: &x [1]\nb: *x\n',
    'base: &b { rpo: 1h }\np: { <<: *b }\n',
    'a: 1\na: 2\n',
    'a: 1\n---\nb: 2\n',
    'a: [1, 2\n',
    'a:\n\t- tab\n',
    'k: !custom 1\n',
  ];
  for (const text of declined) tt.equal(fastYaml(text), undefined, JSON.stringify(text));
  // And the slow path still reports them as before.
  const err = (() => {
    try {
      parseSource('a: 1\na: 2\n', 'dup.yaml');
    } catch (e) {
      return e;
    }
  })();
  tt.ok(err instanceof ConfigError, 'a duplicate key is a ConfigError');
  tt.match((err as ConfigError).message, /dup\.yaml:2.*unique/s, 'naming the file and the line');
});

t.test('a problem in a fast-read config is located at its line and column, as before', async (tt) => {
  const text = `version: 1
clients:
  - name: acme
    policies:
      - name: acme-db
        kind: postgres
        source: { driver: local, path: /backups, select: { glob: "*.dump" } }
        schedule: "61 * * * *"
`;
  tt.ok(fastYaml(text), 'read by the fast parser');
  const err = (() => {
    try {
      parseConfigText(text, '/etc/backproof/backproof.yaml');
    } catch (e) {
      return e;
    }
  })();
  tt.ok(err instanceof ConfigError);
  tt.match((err as ConfigError).message, /backproof\.yaml:8:\d+: clients\[0\]\.policies\[0\]\.schedule/, 'file:line:column and key path');
});

t.test("the documentation's example configs read alike in both parsers", async (tt) => {
  // README.md and every page of docs/: each YAML block, named by its file and number.
  const docs = fileURLToPath(new URL('../docs/', import.meta.url));
  const files = ['README.md', ...readdirSync(docs).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
  const blocks = files.flatMap((file) => {
    const text = readFileSync(fileURLToPath(new URL(`../${file}`, import.meta.url)), 'utf8');
    return [...text.matchAll(/```ya?ml\n([\s\S]*?)```/g)].map((m, n) => ({ where: `${file} block ${n}`, text: m[1]! }));
  });
  tt.ok(blocks.length > 10, `${blocks.length} YAML blocks in README.md and docs/`);
  for (const { where: i, text } of blocks) {
    const fast = fastYaml(text);
    let expected: unknown;
    try {
      expected = slow(text);
    } catch {
      tt.equal(fast, undefined, `${i}: yaml cannot read it, js-yaml declines it too`);
      continue;
    }
    if (fast) tt.same(fast.data, expected, i);
    else tt.pass(`${i}: declined (anchors or js-yaml's stricter reading), read by yaml`);
  }
});

t.test('commands that read evidence read database: and evidence: alone (loadStoreSettings)', async (tt) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'backproof-store-settings-'));
  tt.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'backproof.yaml');
  const saved = process.env.DATABASE_URL;
  delete process.env.DATABASE_URL;
  tt.teardown(() => {
    if (saved === undefined) delete process.env.DATABASE_URL;
    else process.env.DATABASE_URL = saved;
  });
  // A policy with a bad schedule and an unknown key: loadConfig refuses the file, reading evidence does not.
  process.env.BP_TEST_STORE_PW = 'pw';
  tt.teardown(() => delete process.env.BP_TEST_STORE_PW);
  writeFileSync(
    file,
    `database: { url: "postgres://bp:\${env:BP_TEST_STORE_PW}@127.0.0.1:5432/ev", schema: ev }\nclients:\n  - name: a\n    policies:\n      - { name: p, kind: postgres, source: { driver: local, path: /b }, schedule: "61 * * * *", bogus: 1 }\n`,
  );
  await tt.rejects(loadConfig(file), ConfigError, 'the whole config has problems');
  tt.same(await loadStoreSettings(file), { database: { url: 'postgres://bp:pw@127.0.0.1:5432/ev', schema: 'ev' } }, 'references in database: are resolved, the policies not checked');
  writeFileSync(file, `database: { url: "postgres://bp:\${env:BP_TEST_STORE_UNSET}@h/d" }\nclients: []\n`);
  const unset = await loadStoreSettings(file).catch((e: unknown) => e);
  tt.match((unset as Error).message, /backproof\.yaml:1:\d+: database\.url: .*BP_TEST_STORE_UNSET/, 'an unset reference is located in database.url');
  writeFileSync(file, `database: { schema: ev }\nclients: [{ name: a, policies: [{ name: p, kind: postgres, source: { driver: local, path: /b }, schedule: "61 * * * *" }] }]\n`);
  tt.same(await loadStoreSettings(file), { database: { schema: 'ev' } }, 'the policies are not checked');
  writeFileSync(file, `database: { url: "mysql://x@y/z" }\nclients: []\n`);
  const err = await loadStoreSettings(file).catch((e: unknown) => e);
  tt.ok(err instanceof ConfigError, 'a bad database: is a ConfigError');
  tt.match((err as ConfigError).message, /backproof\.yaml:1:\d+: database\.url: not a postgres:\/\/ URL/, 'file, line, key path and the problem');
  process.env.DATABASE_URL = 'postgres://u@127.0.0.1:1/d';
  writeFileSync(file, `clients: []\n`);
  tt.same(await loadStoreSettings(file), { database: { url: 'postgres://u@127.0.0.1:1/d', schema: 'backproof' } }, 'DATABASE_URL when the file names none');
});

t.test('reading database: and evidence: alone: the same entries as the whole file, at the same lines, or the whole file is read', async (tt) => {
  const keys = ['database', 'evidence'] as const;
  const text = `---\nversion: 1 # the format\n\nclients:\n  - name: a\n    policies: []\n# the store\ndatabase:\n  schema: ev\n\n  url: "postgres://u@h/d"\nevidence : { signingKey: k }\nalerts: {}\n`;
  const part = topLevelOnly(text, keys);
  tt.equal(part?.split('\n').length, text.split('\n').length, 'line for line');
  tt.same(
    part?.split('\n').map((l, i) => (l === '' ? '' : i + 1)).filter(Boolean),
    [1, 8, 9, 11, 12],
    'the --- line, database: and its lines, evidence:; the rest blanked',
  );
  tt.same(fastYaml(part!)?.data, { database: { schema: 'ev', url: 'postgres://u@h/d' }, evidence: { signingKey: 'k' } });
  tt.equal(topLevelOnly('clients: []\n', keys), 'clients: []\n'.replace('clients: []', ''), 'neither key: nothing left, read as an empty mapping');
  // Lines a scan cannot place: the whole file is read instead.
  const unsure: Array<[string, string]> = [
    ['note: {a: 1,\ndatabase: 2}\n', 'a flow mapping that js-yaml continues at column 0'],
    ['note: "one\ndatabase: two"\n', 'a quoted value that js-yaml continues at column 0'],
    ["note: 'one\ndatabase: two'\n", 'the same, single-quoted'],
    ['note: [a,\ndatabase]\n', 'a flow list'],
    ['note: "a \\" # b\ndatabase: c"\n', 'an escaped quote and a # inside the quotes'],
    ["note: 'it''s # b\ndatabase: c'\n", "'' inside single quotes"],
    ['clients:\n- name: a\ndatabase: { schema: x }\n', 'a list at column 0'],
    ['%YAML 1.2\n---\ndatabase: { schema: x }\n', 'a directive'],
    ['database: { schema: x }\n---\nclients: []\n', 'a second document'],
    ['"database": { schema: x }\n', 'a quoted key'],
    ['? database\n: { schema: x }\n', 'an explicit key'],
    ['\tdatabase: { schema: x }\n', 'a tab'],
    ['# only a comment\n', 'no key at all (an empty file is still called empty)'],
    ['', 'nothing'],
  ];
  for (const [yaml, why] of unsure) tt.equal(topLevelOnly(yaml, keys), undefined, why);
  // Quotes in comments, and quoted # and brackets, are no reason to read the whole file.
  tt.same(
    fastYaml(topLevelOnly(`database:   # the store's settings\n  url: "postgres://u:p#[x@h/d" # it's "quoted"\nclients: []  # don't\n`, keys)!)?.data,
    { database: { url: 'postgres://u:p#[x@h/d' } },
  );

  // Every YAML block of the documentation: what is left reads as the whole file's two entries.
  const docs = fileURLToPath(new URL('../docs/', import.meta.url));
  const files = ['README.md', ...readdirSync(docs).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  let compared = 0;
  for (const file of files) {
    const md = readFileSync(fileURLToPath(new URL(`../${file}`, import.meta.url)), 'utf8');
    for (const [n, m] of [...md.matchAll(/```ya?ml\n([\s\S]*?)```/g)].entries()) {
      const whole = fastYaml(m[1]!)?.data as Record<string, unknown> | undefined;
      const left = topLevelOnly(m[1]!, keys);
      if (!whole || typeof whole !== 'object' || left === undefined) continue;
      const read = (fastYaml(left)?.data ?? {}) as Record<string, unknown>;
      tt.same(read, Object.fromEntries(keys.filter((k) => k in whole).map((k) => [k, whole[k]])), `${file} block ${n}`);
      compared++;
    }
  }
  tt.ok(compared >= 5, `${compared} documentation blocks with top-level keys compared (most are indented fragments)`);

  // Through loadStoreSettings: a file the scan cannot place is read whole (no database: there).
  const dir = mkdtempSync(path.join(os.tmpdir(), 'backproof-store-only-'));
  tt.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const saved = process.env.DATABASE_URL;
  delete process.env.DATABASE_URL;
  tt.teardown(() => {
    if (saved === undefined) delete process.env.DATABASE_URL;
    else process.env.DATABASE_URL = saved;
  });
  const file = path.join(dir, 'backproof.yaml');
  writeFileSync(file, 'note: {a: 1,\ndatabase: 2}\nclients: []\n');
  tt.same(await loadStoreSettings(file), { database: { schema: 'backproof' } }, 'the database: inside a flow mapping is not the top-level one');
  // A YAML syntax error among the policies does not keep anyone from the evidence.
  writeFileSync(file, 'database: { schema: ev }\nclients:\n  - name: a\n   policies: []\n');
  await tt.rejects(loadConfig(file), ConfigError, 'the whole file has a syntax error (indentation)');
  tt.same(await loadStoreSettings(file), { database: { schema: 'ev' } }, 'a broken policy list is not read');
  // One in database: is reported as before, at its line in the file.
  writeFileSync(file, 'version: 1\nclients: []\ndatabase:\n  schema: ev\n   url: x\n');
  const err = await loadStoreSettings(file).catch((e: unknown) => e);
  tt.ok(err instanceof ConfigError, 'a syntax error in database: is a ConfigError');
  const whole = await loadConfig(file).catch((e: unknown) => e);
  tt.match((err as ConfigError).message, /backproof\.yaml:4:\d+: YAML syntax error/, 'at its line');
  tt.equal((err as ConfigError).message, (whole as ConfigError).message, 'as reading the whole file reports it');
  writeFileSync(file, 'version: 1\nclients:\n  - name: a\n\ndatabase:\n  schema: ev\n  url: "mysql://x@y/z"\n');
  const bad = await loadStoreSettings(file).catch((e: unknown) => e);
  tt.match((bad as ConfigError).message, /backproof\.yaml:7:\d+: database\.url: not a postgres:\/\/ URL/, 'a problem in what was read alone keeps its line in the file');
  writeFileSync(file, '# nothing yet\n');
  const empty = await loadStoreSettings(file).catch((e: unknown) => e);
  tt.match((empty as Error).message, /the file is empty/, 'an empty file is still called empty');
});
