import t from 'tap';
import { parseConfigText } from '../orchestrator/config/load.js';
import type { PolicyConfig } from '../orchestrator/core/config-types.js';
import { DEFAULTS } from '../orchestrator/core/defaults.js';
import { formatConfigProblem } from '../orchestrator/core/errors.js';
import { problemAt, problemsOf } from './helpers/config-problems.js';

// The restore kinds and their probes, as users write them: each kind's block with its defaults,
// probes that apply to the kind, and clear refusals for what does not fit.

const FILE = '/etc/backproof/backproof.yaml';
const P = 'clients[0].policies[0]';

function policy(body: string): string {
  return `clients:
  - name: acme
    policies:
      - name: acme-share
        source: { driver: local, path: /srv/backups }
${body}`;
}

function parse(body: string): PolicyConfig {
  return parseConfigText(policy(body), FILE, {}).policies[0]!;
}

t.test('kind files: limits with defaults, file probes', async (t) => {
  const p = parse(`        kind: files
        files: { maxBytes: 2g, maxRatio: 50 }
        probes:
          - files: ["docs/**", "finance/*.csv"]
          - files: { exist: [db/], minCount: 10, minTotalBytes: 5m, nonEmpty: true }
          - manifest: SHA256SUMS
          - encryptedLooking: { maxShare: 5% }
          - encryptedLooking: true
          - command: [cat, /restore/root/VERSION]
            matches: "^v\\\\d+"
          - command: [test, -d, /restore/root/docs]`);
  t.equal(p.kind, 'files');
  t.same(p.files, { maxBytes: 2 * 1024 ** 3, maxEntries: DEFAULTS.filesMaxEntries, maxRatio: 50, ratioFloorBytes: DEFAULTS.filesRatioFloorBytes, allowEmpty: false, ransomware: DEFAULTS.filesRansomware });
  t.match(p.probes, [
    { type: 'files', exist: ['docs/**', 'finance/*.csv'], nonEmpty: false },
    { type: 'files', exist: ['db/'], minCount: 10, minTotalBytes: 5 * 1024 ** 2, nonEmpty: true, name: 'files: db/, >= 10 files, >= 5m, none empty' },
    { type: 'manifest', path: 'SHA256SUMS' },
    { type: 'encryptedLooking', maxShare: 0.05 },
    { type: 'encryptedLooking', maxShare: DEFAULTS.encryptedMaxShare },
    { type: 'command', argv: ['cat', '/restore/root/VERSION'], exitCode: 0, expect: { op: 'matches', value: '^v\\d+' } },
    { type: 'command', argv: ['test', '-d', '/restore/root/docs'], exitCode: 0 },
  ]);
  t.notOk('expect' in p.probes[6]!, 'a command without an expectation checks the exit code only');
  t.same(p.sizeAnomaly, { minPercent: DEFAULTS.sizeAnomalyMinPercent, lastRuns: DEFAULTS.sizeAnomalyLastRuns, minHistory: DEFAULTS.sizeAnomalyMinHistory }, 'the size check is on by default');
});

t.test("a kind's defaults are the same for every policy that sets none, and cannot be changed through one", async (t) => {
  const a = parse('        kind: files');
  const b = parse('        kind: postgres\n        postgres: { database: other }');
  t.not(b.postgres, a.postgres, 'a block a policy sets is its own');
  t.equal(b.postgres.database, 'other');
  const c = parse('        kind: sqlite');
  t.equal(a.mysql, c.mysql, 'one shared object for the defaults');
  t.same(a.files, { maxBytes: DEFAULTS.filesMaxBytes, maxEntries: DEFAULTS.filesMaxEntries, maxRatio: DEFAULTS.filesMaxRatio, ratioFloorBytes: DEFAULTS.filesRatioFloorBytes, allowEmpty: false, ransomware: DEFAULTS.filesRansomware });
  t.throws(() => {
    (a.mysql as { database: string }).database = 'changed';
  }, TypeError);
  t.throws(() => {
    (a.files.ransomware as { enabled?: boolean }).enabled = false;
  }, TypeError, 'nested objects too');
  t.not(c.mysql.database, 'changed');
});

t.test('kind mysql and sqlite take SQL probes; size check settings', async (t) => {
  const my = parse(`        kind: mysql
        mysql: { database: shop }
        sizeAnomaly: { minPercent: 70, lastRuns: 5 }
        probes:
          - tablesExist: [orders]
          - freshness: { table: orders, column: created_at, within: 26h }`);
  t.match(my.mysql, { database: 'shop', allowEmpty: false, readinessTimeoutMs: DEFAULTS.readinessTimeoutMs });
  t.same(my.sizeAnomaly, { minPercent: 70, lastRuns: 5, minHistory: DEFAULTS.sizeAnomalyMinHistory });
  const lite = parse(`        kind: sqlite
        sizeAnomaly: false
        probes:
          - rowCount: { table: notes, atLeast: 3 }`);
  t.equal(lite.sizeAnomaly, false);
  t.same(lite.sqlite, { allowEmpty: false });
});

t.test('kind custom: image, commands and services (a pod); http probes', async (t) => {
  const p = parse(`        kind: custom
        custom:
          image: redis:7
          cmd: [redis-server, --dir, /restore, --dbfilename, backup, --bind, 127.0.0.1]
          user: "999:999"
          input: file
          decompress: false
          restore: [redis-check-rdb, /restore/backup]
          ready: [redis-cli, ping]
          readinessTimeout: 30s
          capAdd: [CAP_CHOWN]
          services:
            - name: app
              image: acme/app:2
              cmd: [/app/server]
              env: { REDIS_URL: "redis://127.0.0.1:6379" }
        probes:
          - http: { port: 8080, path: /health }
            matches: ok
          - command: [redis-cli, dbsize]
            atLeast: 100
          - command: [/app/selftest]
            service: app
            exitCode: 0`);
  t.match(p.custom, {
    image: 'redis:7',
    user: '999:999',
    input: 'file',
    decompress: false,
    restore: ['redis-check-rdb', '/restore/backup'],
    ready: ['redis-cli', 'ping'],
    readinessTimeoutMs: 30_000,
    readOnlyRoot: true,
    capAdd: ['CHOWN'],
    services: [{ name: 'app', image: 'acme/app:2', cmd: ['/app/server'], capAdd: [], env: { REDIS_URL: 'redis://127.0.0.1:6379' } }],
  });
  t.match(p.probes, [
    { type: 'http', port: 8080, path: '/health', status: 200, expect: { op: 'matches', value: 'ok' }, name: 'http: GET :8080/health -> 200' },
    { type: 'command', argv: ['redis-cli', 'dbsize'], expect: { op: 'atLeast', value: 100 } },
    { type: 'command', service: 'app', exitCode: 0 },
  ]);
});

t.test('misfits are refused with the key path and the fix', async (t) => {
  const problems = problemsOf(
    policy(`        kind: files
        postgres: { database: shop }
        probes:
          - tablesExist: [orders]
          - manifest: SHA256SUMS
            equals: 3
          - command: [ls]
            service: web
          - http: { port: 80 }
            atLeast: 3`),
  );
  const text = problems.map(formatConfigProblem).join('\n');
  t.match(problemAt(problems, `${P}.postgres`).fix, 'remove it, or set kind: postgres', text);
  t.match(problemAt(problems, `${P}.probes[0]`).problem, 'a tablesExist probe does not apply to kind: files');
  t.match(problemAt(problems, `${P}.probes[0]`).fix, 'use one of files, manifest, encryptedLooking, command, http');
  t.match(problemAt(problems, `${P}.probes[1].equals`).problem, 'equals applies only to sql, command and http probes');
  t.match(problemAt(problems, `${P}.probes[2].service`).problem, 'there is no service "web"');
  t.match(problemAt(problems, `${P}.probes[3]`).problem, 'http probes check the body with equals, matches or nonEmpty');

  const custom = problemsOf(policy('        kind: custom'));
  t.match(problemAt(custom, `${P}.custom`).fix, /add custom: /);

  const kind = problemsOf(policy('        kind: mongo'));
  t.match(problemAt(kind, `${P}.kind`).fix, 'use one of postgres, mysql, files, sqlite, custom');

  const empty = problemsOf(policy(`        kind: custom
        custom: { image: x, restore: [] }`));
  t.match(problemAt(empty, `${P}.custom.restore`).problem, 'the command is empty');

  const share = problemsOf(policy(`        kind: files
        probes:
          - encryptedLooking: { maxShare: 150% }`));
  t.match(problemAt(share, `${P}.probes[0].encryptedLooking.maxShare`).problem, 'between 0% and 100%');
});

t.test('an unquoted lone dash in a command list gets a hint', async (t) => {
  const problems = problemsOf(policy(`        kind: custom
        custom: { image: x, restore: [tar, -x, -f, -, -C, /restore] }`));
  t.match(problems[0]?.fix, 'quote a lone dash inside [ ]: [tar, -x, -f, "-"]');
});
