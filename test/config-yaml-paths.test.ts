import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseDocument } from 'yaml';
import { fastYaml, parseSource } from '../orchestrator/config/config-sources.js';
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
