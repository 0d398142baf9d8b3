import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { parseConfigText } from '../orchestrator/config/load.js';
import type { ResolvedConfig } from '../orchestrator/core/config-types.js';
import { DEFAULTS } from '../orchestrator/core/defaults.js';
import { problemAt, problemsOf } from './helpers/config-problems.js';

// The source union (local | s3 | restic), timestamp: metadata and expect: cron, as users write them.

const FILE = '/etc/backproof/backproof.yaml';
/** An empty file for a `${file:}` that adds nothing (a device such as /dev/null is refused). */
const EMPTY = path.join(mkdtempSync(path.join(os.tmpdir(), 'backproof-empty-')), 'empty');
writeFileSync(EMPTY, '');

function withSource(source: string): string {
  return `clients:
  - name: acme
    policies:
      - name: acme-db
        kind: postgres
        source:
${source}`;
}

function parse(text: string, env: NodeJS.ProcessEnv = {}): ResolvedConfig {
  return parseConfigText(text, FILE, env);
}

const problems = problemsOf;
const at = problemAt;

const SRC = 'clients[0].policies[0].source';

t.test('an S3 source resolves with defaults, and its secrets are known to the redactor', async (t) => {
  const key = 'q'.repeat(43) + '=';
  const config = parse(
    withSource(`          driver: s3
          bucket: acme-backups
          prefix: shop/
          endpoint: https://s3.eu-central-003.backblazeb2.com
          credentials:
            accessKeyId: \${env:ACME_KEY}
            secretAccessKey: \${file:${EMPTY}}x-secret-from-file
          sseCustomerKey: \${env:ACME_SSE}
          select: { timestamp: { from: metadata, key: Backup-Time }, expect: { cron: "30 1 * * 1-5", timezone: Europe/Berlin } }
`),
    { ACME_KEY: 'AKIA123', ACME_SSE: key },
  );
  const source = config.policies[0]!.source;
  t.match(source, {
    driver: 's3',
    bucket: 'acme-backups',
    prefix: 'shop/',
    forcePathStyle: true,
    sdkChecksums: 'when_required',
    maxRetries: DEFAULTS.s3MaxRetries,
    requestTimeoutMs: DEFAULTS.s3RequestTimeoutMs,
    sseCustomerKey: key,
    credentials: {
      accessKeyId: 'AKIA123',
      secretAccessKey: 'x-secret-from-file',
      origin: `source.credentials of policy acme-db in ${FILE} (\${env:ACME_KEY}, \${file:${EMPTY}})`,
    },
    select: {
      timestamp: { from: 'metadata', key: 'backup-time' },
      expect: { every: 'cron', cron: '30 1 * * 1-5', timezone: 'Europe/Berlin', graceMs: DEFAULTS.expectGraceMs },
    },
  });
  t.ok(config.secrets.includes('x-secret-from-file'), 'a secret partly written in the file is still redacted');
  t.ok(config.secrets.includes(key));
  const aws = parse(withSource('          driver: s3\n          bucket: acme-backups\n')).policies[0]!.source;
  t.match(aws, { forcePathStyle: false, prefix: '' }, 'AWS itself: virtual-hosted style, whole bucket');
});

t.test('S3 source problems name the key and the fix', async (t) => {
  const list = problems(
    withSource(`          driver: s3
          bucket: Acme_Backups
          endpoint: s3.example.com
          sseCustomerKey: short
          profile: acme
          credentials: { accessKeyId: a, secretAccessKey: b }
          sdkChecksum: when_required
`),
  );
  t.match(at(list, `${SRC}.bucket`), { problem: '"Acme_Backups" is not a bucket name', fix: /lowercase/ });
  t.match(at(list, `${SRC}.endpoint`), { fix: /https:\/\/host\[:port\]/ });
  t.match(at(list, `${SRC}.sseCustomerKey`), { fix: /base64/ });
  t.match(at(list, `${SRC}.sdkChecksum`), { problem: 'unknown key "sdkChecksum"', fix: 'did you mean "sdkChecksums"?' });
  t.match(at(list, `${SRC}.profile`), { problem: 'credentials and profile are both set' });
});

t.test('an unknown driver says which there are; a reference in a flow map says to quote it', async (t) => {
  const list = problems(withSource('          driver: ftp\n          path: /x\n'));
  t.match(at(list, `${SRC}.driver`), { problem: 'unknown or missing storage driver', fix: /local .*s3 .*restic/ });
  const flow = problems(withSource('          driver: s3\n          bucket: b12\n          credentials: { accessKeyId: ${env:K}, secretAccessKey: x }\n'), { K: 'k' });
  t.equal(flow.length, 1, 'one syntax error, not its cascade');
  t.match(flow[0], { line: 9, fix: /quote references inside \{ \} or \[ \]/ });
});

t.test('a restic source: password origin, relative repository, check subset', async (t) => {
  const config = parse(
    withSource(`          driver: restic
          repository: ../restic/acme
          password: \${env:RESTIC_PW}
          file: /var/backups/shop.dump
          tags: [shop, nightly]
          select: { timestamp: metadata }
`),
    { RESTIC_PW: 'pw-1' },
  );
  t.match(config.policies[0]!.source, {
    driver: 'restic',
    repository: '/etc/restic/acme',
    password: 'pw-1',
    passwordOrigin: `source.password of policy acme-db in ${FILE} (\${env:RESTIC_PW})`,
    tags: ['shop', 'nightly'],
    paths: [],
    checkSubset: DEFAULTS.resticCheckSubset,
    binary: 'restic',
  });
  t.ok(config.secrets.includes('pw-1'));
  const remote = parse(withSource('          driver: restic\n          repository: sftp:backup@nas:/srv/restic\n          password: p\n          file: /x.dump\n          check: false\n'));
  t.match(remote.policies[0]!.source, { repository: 'sftp:backup@nas:/srv/restic', checkSubset: false });
  const bad = problems(withSource('          driver: restic\n          repository: /r\n          password: p\n          file: x.dump\n          check: lots\n'));
  t.match(at(bad, `${SRC}.file`), { fix: /e\.g\. \/var\/backups\/shop\.dump/ });
  t.match(at(bad, `${SRC}.check`), { fix: /"5%".*"1\/10".*"500M"/ });
});

t.test('expect: cron is validated; metadata timestamps are not for folders', async (t) => {
  const cron = problems(withSource('          driver: local\n          path: /b\n          select: { expect: { cron: "61 * * * *" } }\n'));
  t.match(at(cron, `${SRC}.select.expect.cron`), { problem: /"61 \* \* \* \*" is not a cron expression/, fix: /minutes run 0-59/ });
  const fields = problems(withSource('          driver: local\n          path: /b\n          select: { expect: { cron: "0 2 * *" } }\n'));
  t.match(at(fields, `${SRC}.select.expect.cron`), { problem: /has 4 fields, not 5/ });
  const meta = problems(withSource('          driver: local\n          path: /b\n          select: { timestamp: metadata }\n'));
  t.match(at(meta, `${SRC}.select.timestamp`), { problem: /a folder keeps no backup time/, fix: 'use timestamp: name or timestamp: mtime' });
  const key = problems(withSource('          driver: local\n          path: /b\n          select: { timestamp: { from: name, key: x } }\n'));
  t.match(at(key, `${SRC}.select.timestamp.key`), { problem: 'key applies only to from: metadata' });
});

t.test('a pgbackrest source: relative repository, verify by default, only with kind postgres', async (t) => {
  const config = parse(withSource('          driver: pgbackrest\n          repository: ../pgbackrest\n          stanza: shop\n') + '        postgres: { recovery: { time: "2026-12-05T10:30:00+01:00" } }\n');
  t.match(config.policies[0]!.source, { driver: 'pgbackrest', repository: '/etc/pgbackrest', stanza: 'shop', check: 'verify', binary: 'pgbackrest' });
  t.same(config.policies[0]!.postgres?.recovery, { time: '2026-12-05T09:30:00.000Z' }, 'the time is kept as UTC');
  t.equal(parse(withSource('          driver: pgbackrest\n          repository: /r\n          stanza: shop\n') + '        postgres: { recovery: sampled }\n').policies[0]!.postgres?.recovery, 'sampled');
  const bad = problems(withSource('          driver: pgbackrest\n          repository: /r\n          stanza: "shop main"\n          check: full\n') + '        postgres: { recovery: { time: "2026-12-05 10:30" } }\n');
  t.match(at(bad, `${SRC}.stanza`), { fix: /as pgbackrest info lists it/ });
  t.match(at(bad, `${SRC}.check`), { fix: /verify or false/ });
  t.match(at(bad, 'clients[0].policies[0].postgres.recovery.time'), { problem: 'not a time with its zone', fix: /Z or an offset/ });
  const files = problems(withSource('          driver: pgbackrest\n          repository: /r\n          stanza: shop\n').replace('kind: postgres', 'kind: files'));
  t.match(at(files, `${SRC}.driver`), { problem: /holds PostgreSQL clusters/, fix: /kind: postgres/ });
  const dump = problems(withSource('          driver: local\n          path: /srv/backups\n') + '        postgres: { recovery: immediate }\n');
  t.match(at(dump, 'clients[0].policies[0].postgres.recovery'), { fix: /source driver pgbackrest/ });
});

t.test('a mariabackup source: relative path, only with kind mysql', async (t) => {
  const text = withSource('          driver: mariabackup\n          path: ../mariabackup/shop\n').replace('kind: postgres', 'kind: mysql');
  t.match(parse(text).policies[0]!.source, { driver: 'mariabackup', path: '/etc/mariabackup/shop' });
  const wrong = problems(withSource('          driver: mariabackup\n          path: /srv/mb\n'));
  t.match(at(wrong, `${SRC}.driver`), { problem: /MariaDB data directories/, fix: /kind: mysql/ });
  // A time (or a sampled one) is reached by replaying binary logs: a source without them cannot.
  const sampled = parse(text.replace('path: ../mariabackup/shop\n', 'path: ../mariabackup/shop\n          binlogs: ../binlogs\n') + '        mysql: { recovery: sampled }\n');
  t.equal(sampled.policies[0]!.mysql?.recovery, 'sampled');
  const noLogs = problems(text + '        mysql: { recovery: sampled }\n');
  t.match(at(noLogs, 'clients[0].policies[0].mysql.recovery'), { problem: /ships none/, fix: /source.binlogs/ });
  const dump = problems(withSource('          driver: local\n          path: /srv/backups\n').replace('kind: postgres', 'kind: mysql') + '        mysql: { recovery: { time: "2026-12-05T10:30:00Z" } }\n');
  t.match(at(dump, 'clients[0].policies[0].mysql.recovery'), { fix: /source driver mariabackup/ });
});

t.test('a barman source: relative path, wals check by default, only with kind postgres', async (t) => {
  const config = parse(withSource('          driver: barman\n          path: ../barman/pg\n') + '        postgres: { recovery: immediate }\n');
  t.match(config.policies[0]!.source, { driver: 'barman', path: '/etc/barman/pg', check: 'wals' });
  const bad = problems(withSource('          driver: barman\n          path: /b\n          check: all\n').replace('kind: postgres', 'kind: mysql'));
  t.match(at(bad, `${SRC}.check`), { fix: /wals or false/ });
  t.match(at(bad, `${SRC}.driver`), { problem: /barman server holds PostgreSQL clusters/ });
});
