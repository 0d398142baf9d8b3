import path from 'node:path';
import t from 'tap';

type Tap = Pick<typeof t, 'ok' | 'equal' | 'match'>;
import { DEFAULTS } from '../orchestrator/core/defaults.js';
import { ConfigError, formatConfigProblem, type ConfigProblem } from '../orchestrator/core/errors.js';
import { formatDuration, parseDuration } from '../orchestrator/config/duration.js';
import { loadConfig, parseConfigText } from '../orchestrator/config/load.js';
import { problemAt, problemsOf } from './helpers/config-problems.js';
import { configJsonSchema, parseSize } from '../orchestrator/config/schema.js';
import type { Expectation, PolicyConfig, ProbeConfig, ResolvedConfig } from '../orchestrator/core/config-types.js';

const FILE = '/etc/backproof/backproof.yaml';

type Want = Partial<Record<keyof ConfigProblem, string | number | RegExp>>;

/** Each wanted field equals exactly, or matches when given a RegExp. */
function expectProblem(t: Tap, problem: ConfigProblem | undefined, want: Want): void {
  t.ok(problem, 'a problem');
  for (const [key, value] of Object.entries(want)) {
    const actual = problem?.[key as keyof ConfigProblem];
    if (value instanceof RegExp) t.match(actual, value, key);
    else t.equal(actual, value, key);
  }
}

/** One client, one policy; `extra` lines (indented 8 spaces) follow `path:` on line 8. */
function minimalWith(extra = ''): string {
  return `clients:
  - name: acme
    policies:
      - name: acme-db
        kind: postgres
        source:
          driver: local
          path: ./backups
${extra}`;
}

const timeoutMs = DEFAULTS.probeTimeoutMs;

/** An sql probe as resolved with a derived name and the default timeout. */
/** The blocks of the kinds a postgres policy does not use, with their defaults. */
const KIND_DEFAULTS = {
  mysql: { database: 'restore', allowEmpty: false, readinessTimeoutMs: DEFAULTS.readinessTimeoutMs, recovery: 'latest' },
  files: {
    maxBytes: DEFAULTS.filesMaxBytes,
    maxEntries: DEFAULTS.filesMaxEntries,
    maxRatio: DEFAULTS.filesMaxRatio,
    ratioFloorBytes: DEFAULTS.filesRatioFloorBytes,
    allowEmpty: false,
    ransomware: DEFAULTS.filesRansomware,
  },
  sqlite: { allowEmpty: false },
  sizeAnomaly: { minPercent: DEFAULTS.sizeAnomalyMinPercent, lastRuns: DEFAULTS.sizeAnomalyLastRuns, minHistory: DEFAULTS.sizeAnomalyMinHistory },
} as const;

function sqlProbe(sql: string, expect: Expectation): ProbeConfig {
  return { type: 'sql', name: `sql: ${sql}`, sql, expect, timeoutMs };
}

/** What a file without daemon: and alerts: resolves to. */
const DAEMON_AND_ALERT_DEFAULTS = {
  daemon: {
    concurrency: DEFAULTS.daemon.concurrency,
    perClient: DEFAULTS.daemon.perClient,
    catchUp: DEFAULTS.daemon.catchUp,
    shutdownGraceMs: DEFAULTS.daemon.shutdownGraceMs,
    checkEveryMs: DEFAULTS.daemon.checkEveryMs,
    timezone: DEFAULTS.daemon.timezone,
    overdueGraceMs: DEFAULTS.daemon.overdueGraceMs,
    liveness: { host: DEFAULTS.daemon.livenessHost },
  },
  alerts: { channels: [], reminderAfterMs: DEFAULTS.alert.reminderAfterMs, maxAttempts: DEFAULTS.alert.maxAttempts, retryForMs: DEFAULTS.alert.retryForMs },
};

/** A policy's alert routing when nothing routes it. */
const NO_ROUTING = { channels: [], to: [], reminderAfterMs: DEFAULTS.alert.reminderAfterMs };

const defaultSandbox = {
  memoryBytes: DEFAULTS.sandboxMemoryBytes,
  cpus: DEFAULTS.sandboxCpus,
  pids: DEFAULTS.sandboxPids,
  tmpBytes: DEFAULTS.sandboxTmpBytes,
  timeoutMs: DEFAULTS.runTimeoutMs,
};

t.test('durations', async (t) => {
  t.equal(parseDuration('26h'), 26 * 3_600_000);
  t.equal(parseDuration('30m'), 1_800_000);
  t.equal(parseDuration('90s'), 90_000);
  t.equal(parseDuration('2d'), 2 * 86_400_000);
  t.equal(parseDuration('1w'), 7 * 86_400_000);
  t.equal(parseDuration('500ms'), 500);
  t.equal(parseDuration('1h30m'), 5_400_000);
  t.equal(parseDuration('1h 30m'), 5_400_000);
  t.equal(parseDuration('2.5s'), 2500);
  t.equal(parseDuration('0s'), 0);
  t.throws(() => parseDuration('30'), /no unit/);
  t.throws(() => parseDuration('26x'), /not a duration/);
  t.throws(() => parseDuration(''), /empty/);
  t.throws(() => parseDuration('-5m'), /not a duration/);
  t.throws(() => parseDuration('h'), /not a duration/);
  t.equal(formatDuration(500), '500ms');
  t.equal(formatDuration(2500), '2.5s');
  t.equal(formatDuration(90_000), '1m 30s');
  t.equal(formatDuration(5_400_000), '1h 30m');
  t.equal(formatDuration(26 * 3_600_000), '26h');
  t.equal(formatDuration(3 * 86_400_000 + 4 * 3_600_000), '3d 4h');
  t.equal(parseDuration(formatDuration(5_400_000)), 5_400_000);
});

t.test('sizes', async (t) => {
  t.equal(parseSize('512m'), 512 * 1024 ** 2);
  t.equal(parseSize('2g'), 2 * 1024 ** 3);
  t.equal(parseSize('2GiB'), 2 * 1024 ** 3);
  t.equal(parseSize('1024mb'), 1024 ** 3);
  t.equal(parseSize(1_048_576), 1_048_576);
  t.equal(parseSize('1048576'), 1_048_576);
  t.equal(parseSize('2x'), undefined);
  t.equal(parseSize(0), undefined);
  t.equal(parseSize(-1), undefined);
});

t.test('a full valid file resolves to the exact config', async (t) => {
  const dir = t.testdir({ secrets: { 'db-password': 's3cret-pw\n' } });
  const file = path.join(dir, 'backproof.yaml');
  const text = `version: 1
database:
  url: postgres://backproof:\${file:secrets/db-password}@db.internal:5432/evidence
  schema: evidence_v1
docker:
  host: unix:///var/run/docker.sock
clients:
  - name: acme
    displayName: ACME Corp
    policies:
      - name: acme-shop-db
        kind: postgres
        source:
          driver: local
          path: ./backups
          recursive: true
          select:
            regex: "^shop-.*\\\\.dump$"
            timestamp: { from: name, pattern: "shop-(?<ts>.+)\\\\.dump", format: YYYYMMDD-HHmmss, timezone: Europe/Berlin }
            settle: 2m
        targets:
          rpo: 26h
          rto: 30m
        sandbox:
          image: postgres:16
          memory: 4g
          cpus: 1.5
          pids: 256
          tmp: 1GiB
          timeout: 1h30m
        postgres:
          database: shop
          allowEmpty: true
          readinessTimeout: 90s
        probes:
          - sql: SELECT count(*) FROM orders
            atLeast: 1000
          - sql: SELECT max(id) FROM orders
            atMost: 5000000
            name: ids in range
            timeout: 10s
          - sql: SELECT current_setting('server_version_num')
            equals: 160004
          - sql: SELECT status FROM shop_state
            matches: "^(open|closed)$"
          - sql: SELECT note FROM shop_state
            nonEmpty: true
          - tablesExist: [orders, public.customers]
          - rowCount: { table: orders, atLeast: 1000 }
          - freshness: { table: orders, column: created_at, within: 2d }
  - name: globex
    policies:
      - name: globex-crm
        kind: postgres
        source:
          driver: local
          path: /srv/dumps/globex
          select:
            glob: "crm-*.dump"
            timestamp: name
            settle: 0s
`;
  const config = parseConfigText(text, file, { PATH: '/usr/bin' });
  const shop: PolicyConfig = {
    requires: {},
    name: 'acme-shop-db',
    client: 'acme',
    kind: 'postgres',
    source: {
      driver: 'local',
      path: path.join(dir, 'backups'),
      recursive: true,
      select: {
        regex: '^shop-.*\\.dump$',
        timestamp: { from: 'name', pattern: 'shop-(?<ts>.+)\\.dump', format: 'YYYYMMDD-HHmmss', timezone: 'Europe/Berlin' },
        settleMs: 120_000,
      },
    },
    targets: { rpoMs: 26 * 3_600_000, rtoMs: 30 * 60_000 },
    sandbox: { image: 'postgres:16', memoryBytes: 4 * 1024 ** 3, cpus: 1.5, pids: 256, tmpBytes: 1024 ** 3, timeoutMs: 5_400_000 },
    postgres: { database: 'shop', allowEmpty: true, readinessTimeoutMs: 90_000, recovery: 'latest', recoveryTimeoutMs: DEFAULTS.recoveryTimeoutMs },
    ...KIND_DEFAULTS,
    alerts: NO_ROUTING,
    probes: [
      sqlProbe('SELECT count(*) FROM orders', { op: 'atLeast', value: 1000 }),
      { ...sqlProbe('SELECT max(id) FROM orders', { op: 'atMost', value: 5_000_000 }), name: 'ids in range', timeoutMs: 10_000 },
      sqlProbe("SELECT current_setting('server_version_num')", { op: 'equals', value: '160004' }),
      sqlProbe('SELECT status FROM shop_state', { op: 'matches', value: '^(open|closed)$' }),
      sqlProbe('SELECT note FROM shop_state', { op: 'nonEmpty' }),
      { type: 'tablesExist', name: 'tablesExist: orders, public.customers', tables: ['orders', 'public.customers'], timeoutMs },
      { type: 'rowCount', name: 'rowCount: orders >= 1000', table: 'orders', atLeast: 1000, timeoutMs },
      {
        type: 'freshness',
        name: 'freshness: orders.created_at within 48h',
        table: 'orders',
        column: 'created_at',
        withinMs: 2 * 86_400_000,
        timeoutMs,
      },
    ],
  };
  const crm: PolicyConfig = {
    requires: {},
    name: 'globex-crm',
    client: 'globex',
    kind: 'postgres',
    source: {
      driver: 'local',
      path: '/srv/dumps/globex',
      recursive: false,
      select: { glob: 'crm-*.dump', timestamp: { from: 'name', timezone: 'UTC' }, settleMs: 0 },
    },
    targets: {},
    sandbox: defaultSandbox,
    postgres: { database: 'restore', allowEmpty: false, readinessTimeoutMs: DEFAULTS.readinessTimeoutMs, recovery: 'latest', recoveryTimeoutMs: DEFAULTS.recoveryTimeoutMs },
    ...KIND_DEFAULTS,
    alerts: NO_ROUTING,
    probes: [],
  };
  const expected: ResolvedConfig = {
    file,
    database: { url: 'postgres://backproof:s3cret-pw@db.internal:5432/evidence', schema: 'evidence_v1' },
    docker: { host: 'unix:///var/run/docker.sock' },
    clients: [
      { name: 'acme', displayName: 'ACME Corp', alerts: {}, policies: [shop] },
      { name: 'globex', displayName: 'globex', alerts: {}, policies: [crm] },
    ],
    ...DAEMON_AND_ALERT_DEFAULTS,
    policies: [shop, crm],
    // database.url is declared secret (its password, and the URL itself, as for DATABASE_URL).
    secrets: ['s3cret-pw', 'postgres://backproof:s3cret-pw@db.internal:5432/evidence'],
  };
  t.strictSame(config, expected);
});

t.test('a minimal file gets every default', async (t) => {
  const config = parseConfigText(minimalWith(), 'conf/backproof.yaml', {});
  const policy: PolicyConfig = {
    requires: {},
    name: 'acme-db',
    client: 'acme',
    kind: 'postgres',
    source: {
      driver: 'local',
      path: path.resolve('conf/backups'),
      recursive: false,
      select: { glob: '*', timestamp: { from: 'mtime' }, settleMs: DEFAULTS.settleMs },
    },
    targets: {},
    sandbox: defaultSandbox,
    postgres: { database: 'restore', allowEmpty: false, readinessTimeoutMs: DEFAULTS.readinessTimeoutMs, recovery: 'latest', recoveryTimeoutMs: DEFAULTS.recoveryTimeoutMs },
    ...KIND_DEFAULTS,
    alerts: NO_ROUTING,
    probes: [],
  };
  t.strictSame(config, {
    file: path.resolve('conf/backproof.yaml'),
    database: { schema: DEFAULTS.schema },
    docker: {},
    clients: [{ name: 'acme', displayName: 'acme', alerts: {}, policies: [policy] }],
    ...DAEMON_AND_ALERT_DEFAULTS,
    policies: [policy],
    secrets: [],
  });
});

t.test('DATABASE_URL is used when the file names no database', async (t) => {
  const url = 'postgres://app:pw-from-env@db:5432/evidence';
  const config = parseConfigText(minimalWith(), FILE, { DATABASE_URL: url });
  t.strictSame(config.database, { url, schema: DEFAULTS.schema });
  t.ok(config.secrets.includes(url), 'the URL is a secret');
  t.ok(config.secrets.includes('pw-from-env'), 'and so is its password');

  const fromFile = parseConfigText(`database:\n  url: postgres://h/other\n${minimalWith()}`, FILE, { DATABASE_URL: url });
  t.equal(fromFile.database.url, 'postgres://h/other', 'the file wins over DATABASE_URL');

  const bad = problemsOf(minimalWith(), { DATABASE_URL: 'mysql://x@y/z' });
  t.equal(bad.length, 1);
  expectProblem(t, bad[0], { path: 'database.url', problem: 'environment variable DATABASE_URL is not a postgres:// URL' });
  t.notMatch(formatConfigProblem(bad[0]!), /mysql/, 'the value is not printed');
});

t.test('a bad duration names file, key path, line and fix', async (t) => {
  const problems = problemsOf(minimalWith('        targets:\n          rpo: 26x\n'));
  t.equal(problems.length, 1);
  const p = problemAt(problems, 'clients[0].policies[0].targets.rpo');
  expectProblem(t, p, { file: FILE, line: 10, column: 16, problem: '"26x" is not a duration', fix: 'use a number and a unit: 26h, 30m, 90s, 2d' });
  t.equal(
    formatConfigProblem(p),
    `${FILE}:10:16: clients[0].policies[0].targets.rpo: "26x" is not a duration; fix: use a number and a unit: 26h, 30m, 90s, 2d`,
  );
  const bare = problemAt(problemsOf(minimalWith('        targets:\n          rto: 30\n')), 'clients[0].policies[0].targets.rto');
  expectProblem(t, bare, { line: 10, problem: '30 is not a duration', fix: 'add a unit: 30s, 30m or 30h' });
});

t.test('an unknown key gets a suggestion, else the allowed keys', async (t) => {
  const near = problemAt(problemsOf(minimalWith('        targets:\n          rop: 26h\n')), 'clients[0].policies[0].targets.rop');
  expectProblem(t, near, { line: 10, column: 11, problem: 'unknown key "rop"', fix: 'did you mean "rpo"?' });
  const far = problemAt(problemsOf(minimalWith('        targets:\n          latency: 26h\n')), 'clients[0].policies[0].targets.latency');
  expectProblem(t, far, { line: 10, problem: 'unknown key "latency"', fix: 'remove it; allowed keys: rpo, rto' });
  const top = problemAt(problemsOf(`${minimalWith()}dokcer: {}\n`), 'dokcer');
  expectProblem(t, top, { line: 9, column: 1, fix: 'did you mean "docker"?' });
});

t.test('a missing required key points at its parent', async (t) => {
  const text = `clients:
  - name: acme
    policies:
      - name: acme-db
        kind: postgres
        source:
          driver: local
`;
  const p = problemAt(problemsOf(text), 'clients[0].policies[0].source.path');
  expectProblem(t, p, { line: 7, problem: 'missing required key "path"' });
  t.match(p.fix, /^add path: under clients\[0\]\.policies\[0\]\.source \(Folder holding the backups/);
  const noClients = problemAt(problemsOf('version: 1\n'), 'clients');
  expectProblem(t, noClients, { line: 1, problem: 'missing required key "clients"', fix: /^add clients: under the top level/ });
});

t.test('a value of the wrong type', async (t) => {
  const problems = problemsOf(minimalWith('          recursive: "yes"\n        sandbox:\n          cpus: two\n'));
  expectProblem(t, problemAt(problems, 'clients[0].policies[0].source.recursive'), {
    line: 9,
    problem: 'expected a boolean, got text "yes"',
    fix: /^write true or false/,
  });
  expectProblem(t, problemAt(problems, 'clients[0].policies[0].sandbox.cpus'), {
    line: 11,
    problem: 'expected a number, got text "two"',
    fix: /^write a number without quotes/,
  });
  expectProblem(t, problemAt(problemsOf('clients: acme\n'), 'clients'), { line: 1, column: 10, problem: 'expected a list, got text "acme"' });
  expectProblem(t, problemAt(problemsOf('- a\n'), ''), { line: 1, problem: 'expected a mapping (key: value pairs), got a list' });
});

t.test('an invalid regex in select.regex', async (t) => {
  const p = problemAt(problemsOf(minimalWith('          select:\n            regex: "shop-(.*"\n')), 'clients[0].policies[0].source.select.regex');
  expectProblem(t, p, { line: 10, column: 20, problem: /^"shop-\(\.\*" is not a valid regular expression \(Unterminated group\)$/, fix: /^correct the expression/ });
});

t.test('an invalid IANA time zone', async (t) => {
  const text = minimalWith('          select:\n            timestamp: { from: name, timezone: Europe/Atlantis }\n');
  const p = problemAt(problemsOf(text), 'clients[0].policies[0].source.select.timestamp.timezone');
  expectProblem(t, p, { line: 10, column: 48, problem: '"Europe/Atlantis" is not an IANA time zone', fix: 'use a name such as UTC, Europe/Berlin or America/New_York' });
  const badForm = problemAt(problemsOf(minimalWith('          select:\n            timestamp: ctime\n')), 'clients[0].policies[0].source.select.timestamp');
  expectProblem(t, badForm, { line: 10, problem: '"ctime" is not a timestamp source', fix: 'use mtime, name, metadata, or { from: name, pattern, format, timezone }' });
});

t.test('glob and regex together', async (t) => {
  const text = minimalWith('          select:\n            glob: "shop-*.dump"\n            regex: "^shop-"\n');
  const problems = problemsOf(text);
  t.equal(problems.length, 1);
  expectProblem(t, problemAt(problems, 'clients[0].policies[0].source.select.regex'), {
    line: 11,
    problem: 'glob and regex are both set',
    fix: /^keep one: glob for shell-style patterns/,
  });
});

t.test('a glob that can never match: an absolute path or a "." / ".." part', async (t) => {
  const absolute = problemAt(problemsOf(minimalWith('          select:\n            glob: "/mnt/nas/shop-*.dump"\n')), 'clients[0].policies[0].source.select.glob');
  expectProblem(t, absolute, { line: 10, problem: /starts with "\/", but names are relative to the source/, fix: /^put the folder in source\.path/ });
  const climbing = problemAt(problemsOf(minimalWith('          select:\n            glob: "../other/shop-*.dump"\n')), 'clients[0].policies[0].source.select.glob');
  expectProblem(t, climbing, { line: 10, problem: /has a "\." or "\.\." part/, fix: /^point source\.path at the folder/ });
  t.doesNotThrow(() => parseConfigText(minimalWith('          select:\n            glob: "daily/shop-*.dump"\n'), '/etc/backproof/backproof.yaml', {}), 'a folder inside the source is fine');
});

t.test('probe shape problems', async (t) => {
  const text = minimalWith(`        probes:
          - sql: SELECT count(*) FROM orders
            atLeast: 1
            equals: 5
          - sql: SELECT 1
          - name: nothing to check
          - tablesExist: [orders]
            rowCount: { table: orders }
          - rowCount: { table: orders }
            atLeast: 3
          - tablesExist: []
`);
  const problems = problemsOf(text);
  expectProblem(t, problemAt(problems, 'clients[0].policies[0].probes[0]'), {
    line: 10,
    problem: 'sql probe has several expectations (equals, atLeast)',
    fix: 'keep exactly one, or split into separate probes',
  });
  expectProblem(t, problemAt(problems, 'clients[0].policies[0].probes[1]'), {
    line: 13,
    problem: 'sql probe has no expectation',
    fix: 'add exactly one of equals, atLeast, atMost, matches, nonEmpty: true',
  });
  expectProblem(t, problemAt(problems, 'clients[0].policies[0].probes[2]'), {
    line: 14,
    problem: 'probe has no check',
    fix: 'add exactly one of sql, tablesExist, rowCount, freshness, randomValues, files, manifest, encryptedLooking, command, http',
  });
  expectProblem(t, problemAt(problems, 'clients[0].policies[0].probes[3]'), {
    line: 15,
    problem: 'probe has several checks (tablesExist, rowCount)',
    fix: 'split them into separate probes, one check each',
  });
  expectProblem(t, problemAt(problems, 'clients[0].policies[0].probes[4].atLeast'), { line: 18, problem: 'atLeast applies only to sql, command and http probes' });
  expectProblem(t, problemAt(problems, 'clients[0].policies[0].probes[5].tablesExist'), { line: 19, problem: 'the list is empty', fix: 'add at least 1 item' });
  t.equal(problems.length, 6, 'one problem each, all reported at once');
});

t.test('shape problems are reported beside problems inside the same item', async (t) => {
  const problems = problemsOf(minimalWith('        probes:\n          - { sql: SELECT 1, tablesExist: [orders], timeout: 5 }\n'));
  t.strictSame(
    problems.map((p) => [p.path, p.line, p.problem]),
    [
      ['clients[0].policies[0].probes[0]', 10, 'probe has several checks (sql, tablesExist)'],
      ['clients[0].policies[0].probes[0].timeout', 10, '5 is not a duration'],
    ],
  );
});

t.test('duplicate names', async (t) => {
  const text = `clients:
  - name: acme
    policies:
      - { name: shop, kind: postgres, source: { driver: local, path: a } }
  - name: globex
    policies:
      - { name: shop, kind: postgres, source: { driver: local, path: b } }
  - name: acme
    policies:
      - { name: crm, kind: postgres, source: { driver: local, path: c } }
`;
  const problems = problemsOf(text);
  expectProblem(t, problemAt(problems, 'clients[1].policies[0].name'), {
    line: 7,
    problem: 'policy name "shop" is already used by clients[0].policies[0]',
    fix: /^give each policy a name unique across all clients/,
  });
  expectProblem(t, problemAt(problems, 'clients[2].name'), { line: 8, problem: 'client name "acme" is already used by clients[0]' });
  t.equal(problems.length, 2);
});

t.test('references', async (t) => {
  const dir = t.testdir({ token: 'tok-123\n\n', 'pw.txt': 'pw-456' });
  const file = path.join(dir, 'backproof.yaml');
  const text = `database:
  url: postgres://app:\${env:PGPASS}@db/\${file:pw.txt}
docker:
  host: tcp://\${file:token}:2376
${minimalWith(`        probes:
          - sql: SELECT '$\${literal}'
            equals: \${env:EXPECTED}
`)}`;
  const config = parseConfigText(text, file, { PGPASS: 'pg-pass', EXPECTED: '42' });
  t.equal(config.database.url, 'postgres://app:pg-pass@db/pw-456');
  t.equal(config.docker.host, 'tcp://tok-123\n:2376', 'one trailing newline removed, not more');
  const probe = config.policies[0]!.probes[0]!;
  t.match(probe, { type: 'sql', sql: "SELECT '${literal}'", expect: { op: 'equals', value: '42' } });
  t.strictSame([...config.secrets].sort(), ['42', 'pg-pass', 'pw-456', 'tok-123\n', 'postgres://app:pg-pass@db/pw-456'].sort());
});

t.test('a missing environment variable', async (t) => {
  const problems = problemsOf(`database:\n  url: postgres://app:\${env:PGPASS}@db/x\n${minimalWith()}`);
  t.equal(problems.length, 1);
  expectProblem(t, problemAt(problems, 'database.url'), {
    file: FILE,
    line: 2,
    column: 8,
    problem: 'environment variable PGPASS is not set',
    fix: 'export PGPASS=... or remove the reference',
  });
});

t.test('a missing referenced file', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'backproof.yaml');
  const problems = problemsOf(`database:\n  url: \${file:secrets/db-url}\n${minimalWith()}`, {}, file);
  t.equal(problems.length, 1);
  expectProblem(t, problemAt(problems, 'database.url'), {
    file,
    line: 2,
    problem: `file ${path.join(dir, 'secrets/db-url')} does not exist`,
    fix: /^create it or correct the path \(relative paths start at /,
  });
});

t.test('problems never print referenced values', async (t) => {
  const problems = problemsOf(minimalWith('        targets:\n          rpo: ${env:RPO}\n'), { RPO: 'hunter2x' });
  expectProblem(t, problemAt(problems, 'clients[0].policies[0].targets.rpo'), { line: 10, problem: '"***" is not a duration' });
});

t.test('a YAML syntax error', async (t) => {
  const problems = problemsOf('clients:\n  - name: acme\n   policies: []\n');
  t.equal(problems.length, 1);
  expectProblem(t, problems[0], { file: FILE, path: '', line: 3, problem: /^YAML syntax error: /, fix: /\S/ });
  const dup = problemsOf('version: 1\nversion: 1\n');
  expectProblem(t, dup[0], { line: 2, problem: 'YAML syntax error: map keys must be unique', fix: 'remove or rename the repeated key' });
  expectProblem(t, problemsOf('')[0], { problem: 'the file is empty' });
});

t.test('every problem is reported, in file order', async (t) => {
  const problems = problemsOf(
    minimalWith('        kind2: x\n        targets:\n          rpo: 1y\n        sandbox:\n          pids: 8\n          memory: lots\n'),
  );
  t.strictSame(
    problems.map((p) => [p.path, p.line]),
    [
      ['clients[0].policies[0].kind2', 9],
      ['clients[0].policies[0].targets.rpo', 11],
      ['clients[0].policies[0].sandbox.pids', 13],
      ['clients[0].policies[0].sandbox.memory', 14],
    ],
  );
  expectProblem(t, problemAt(problems, 'clients[0].policies[0].sandbox.pids'), { problem: '8 is too small', fix: 'use a number of at least 32' });
});

t.test('loadConfig', async (t) => {
  const dir = t.testdir({ 'backproof.yaml': minimalWith() });
  const config = await loadConfig(path.join(dir, 'backproof.yaml'));
  t.equal(config.file, path.join(dir, 'backproof.yaml'));
  t.match(config.policies[0]!.source, { driver: 'local', path: path.join(dir, 'backups') });

  const missing = path.join(dir, 'nope.yaml');
  const err = await loadConfig(missing).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof ConfigError, 'a ConfigError');
  const configError = err as ConfigError;
  t.equal(configError.code, 'config_invalid');
  t.equal(configError.problems.length, 1);
  expectProblem(t, configError.problems[0], { file: missing, path: '', problem: 'file not found' });
  t.match(configError.problems[0]!.fix, /--config PATH/);
  t.match(configError.problems[0]!.fix, /BACKPROOF_CONFIG/);
});

t.test('the JSON schema describes the file for editors', async (t) => {
  const schema = configJsonSchema() as {
    type: string;
    properties: Record<string, { description?: string; items?: { properties: Record<string, unknown> } }>;
  };
  t.equal(schema.type, 'object');
  t.ok(schema.properties.clients, 'has properties.clients');
  t.match(schema.properties.clients!.description, /clients/);
  const client = schema.properties.clients!.items!.properties;
  t.strictSame(Object.keys(client), ['name', 'displayName', 'alerts', 'policies', 'reports', 'budget']);
  const policy = (client.policies as { items: { properties: Record<string, { properties?: Record<string, { description?: string; type?: string }> }> } })
    .items.properties;
  t.match(policy.targets!.properties!.rpo, { type: 'string', description: /duration/ });
  t.match(policy.sandbox!.properties!.memory!.description, /512m/);
});
