import { DeleteObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import path from 'node:path';
import t from 'tap';
import { PgbackrestStorageDriver } from '../drivers/pgbackrest/pgbackrest-storage-driver.js';
import type { PolicyConfig } from '../orchestrator/core/config-types.js';
import type { RunStore } from '../orchestrator/evidence/run-store.js';
import { collect, tarMemberNames, verificationErrorOf } from './helpers/outcomes.js';
import { makePgbackrestRepo, type PgbackrestRepo } from './helpers/pgbackrest-fixtures.js';
import { startS3Server, S3RVER_CREDENTIALS, type S3Server } from './helpers/s3-server.js';
import { codes, leftoversOf, openEmbeddedStore, policyFromYaml, tempDir, verify } from './helpers/harness.js';

// A pgBackRest repository in a bucket (repo1-type=s3), as most pgBackRest users keep it: Debian's
// pgbackrest 2.45 pushes a real PostgreSQL 15's WAL and backups itself into a real S3-compatible
// server (s3rver over HTTPS, its certificate from a CA of the test's own: pgBackRest talks to S3
// over HTTPS only). backproof lists and reads the repository with the AWS SDK, runs `pgbackrest
// verify` against the bucket, and restores the set in the sandbox as from a folder.

const BUCKET = 'pgbackrest-repo';
let s3: S3Server;
let fixture: PgbackrestRepo;
let store: RunStore;
t.before(async () => {
  s3 = await startS3Server(0, { tls: true });
  await s3.createBucket(BUCKET);
  fixture = await makePgbackrestRepo({ s3: { port: s3.port, bucket: BUCKET, caFile: s3.caFile! } });
  store = (await openEmbeddedStore()).store;
});
t.teardown(async () => {
  await store?.close();
  await s3?.stop();
});

const LATE = "SELECT count(*) FROM orders WHERE note = 'late'";

function s3Options(over: { accessKeyId?: string; caFile?: string | null } = {}) {
  return {
    bucket: BUCKET,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: over.accessKeyId ?? S3RVER_CREDENTIALS.accessKeyId, secretAccessKey: S3RVER_CREDENTIALS.secretAccessKey, origin: 'the test' },
    ...(over.caFile === null ? {} : { caFile: over.caFile ?? s3.caFile! }),
    sdkChecksums: 'when_required' as const,
    maxRetries: 0,
    requestTimeoutMs: 10_000,
  };
}

async function policyFor(extra: { lateRows?: number; check?: string } = {}): Promise<PolicyConfig> {
  return policyFromYaml({
    folder: await tempDir('pgbackrest-s3-policy'),
    kind: 'postgres',
    source: `          driver: pgbackrest
          repository: /pgbackrest
          stanza: main
          check: ${extra.check ?? 'false'}
          s3:
            bucket: ${BUCKET}
            endpoint: ${s3.endpoint}
            caFile: ${JSON.stringify(s3.caFile)}
            credentials: { accessKeyId: S3RVER, secretAccessKey: S3RVER }
          select: { settle: 0s }`,
    probes: `          - rowCount: { table: orders, atLeast: 1000 }
          - sql: "${LATE}"
            equals: ${extra.lateRows ?? 100}`,
    rpo: '1h',
  });
}

t.test('the driver lists the sets in the bucket and streams what a restore needs, as from a folder', async (t) => {
  const [full, incr] = fixture.sets;
  const driver = new PgbackrestStorageDriver({ repository: fixture.repo, stanza: 'main', s3: s3Options() });
  t.teardown(() => driver.close());
  const listed = await collect(driver.list());
  t.same(listed.map((e) => e.key), [incr!.label, full!.label], 'newest first');
  t.match(driver.location, new RegExp(`s3://${BUCKET}/pgbackrest at https://127\\.0\\.0\\.1:\\d+`));
  const names = await tarMemberNames(await driver.open(listed[0]!));
  t.equal(names[0], 'archive/main/archive.info', 'archive.info first');
  t.ok(names.some((n) => n.startsWith(`backup/main/${full!.label}/`)), 'the full set the incremental takes files from');
  t.ok(names.some((n) => /^archive\/main\/15-1\/[0-9A-F]{16}\/[0-9A-F]{24}-/.test(n)), 'the archived WAL');
  const used = driver.usage!();
  t.ok(used.requests.list >= 2 && used.requests.get > names.length - 1 && used.bytes > 0, `requests and bytes are counted: ${JSON.stringify(used)}`);
});

t.test('wrong keys: source_denied; no CA for the certificate: source_unreachable; the secret in no message', async (t) => {
  const denied = new PgbackrestStorageDriver({ repository: fixture.repo, stanza: 'main', s3: s3Options({ accessKeyId: 'WRONGKEY' }) });
  t.teardown(() => denied.close());
  const err = await verificationErrorOf(collect(denied.list()));
  t.equal(err?.reason, 'source_denied', err?.message);
  t.notMatch(err?.message ?? '', S3RVER_CREDENTIALS.secretAccessKey.repeat(1) + ' ', 'no secret');
  const untrusted = new PgbackrestStorageDriver({ repository: fixture.repo, stanza: 'main', s3: s3Options({ caFile: null }) });
  t.teardown(() => untrusted.close());
  const tls = await verificationErrorOf(collect(untrusted.list()));
  t.equal(tls?.reason, 'source_unreachable', tls?.message);
  t.match(tls?.message ?? '', /certificate/i);
  const elsewhere = new PgbackrestStorageDriver({ repository: '/not-here', stanza: 'main', s3: s3Options() });
  t.teardown(() => elsewhere.close());
  const missing = await verificationErrorOf(collect(elsewhere.list()));
  t.equal(missing?.reason, 'source_unreachable');
  t.match(missing?.message ?? '', /no backup\/main\/backup\.info/);
});

t.test('pgbackrest verify runs against the bucket: the keys in its environment, the CA file named', async (t) => {
  const driver = new PgbackrestStorageDriver({ repository: fixture.repo, stanza: 'main', check: 'verify', s3: s3Options() });
  t.teardown(() => driver.close());
  const check = await driver.check!((await collect(driver.list()))[0]!);
  t.same(check.problems, [], check.summary);
  t.match(check.summary, /backup: \d{8}-\d{6}F_\d{8}-\d{6}I/, "pgBackRest's own words");
  const plain = new PgbackrestStorageDriver({ repository: fixture.repo, stanza: 'main', check: 'verify', s3: { ...s3Options(), endpoint: s3.endpoint.replace('https:', 'http:') } });
  t.teardown(() => plain.close());
  const refused = await verificationErrorOf(plain.check!({ key: fixture.sets[1]!.label, size: 0, modifiedAt: new Date() }));
  t.equal(refused?.reason, 'source_unreachable');
  t.match(refused?.message ?? '', /HTTPS only/);
});

t.test('recovery latest from the bucket: the newest set restores and replays every segment pushed there', async (t) => {
  const run = await verify(await policyFor({ check: 'verify' }), store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  const [, incr] = fixture.sets;
  t.equal(run.backup?.format, 'pgbackrest');
  t.equal(run.backup?.header?.backupLabel, incr!.label);
  t.ok(Date.parse(String(run.restored?.lastReplayedCommit ?? '')) > Date.parse(fixture.betweenBatches), 'the late rows are replayed');
  t.equal(run.phases.find((p) => p.name === 'storage_check')?.outcome, 'ok');
  t.ok((run.metrics.storage?.requests.get ?? 0) > 0, `the run records what it read: ${JSON.stringify(run.metrics.storage)}`);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a WAL segment deleted from the bucket: fail, wal_gap, naming it', async (t) => {
  const [, incr] = fixture.sets;
  const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'pgbackrest/archive/main/' }));
  const after = (listed.Contents ?? [])
    .map((o) => o.Key!)
    .filter((k) => /\/[0-9A-F]{24}-[0-9a-f]{40}/.test(k) && path.basename(k).slice(0, 24) > incr!.archiveStop)
    .sort();
  t.ok(after.length >= 3, 'segments pushed after the last backup');
  await s3.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: after[1]! }));
  const run = await verify(await policyFor({ lateRows: 0 }), store);
  t.equal(run.verdict, 'fail');
  t.ok(codes(run).includes('wal_gap'), JSON.stringify(run.reasons));
  t.match(run.reasons.find((r) => r.code === 'wal_gap')?.message, path.basename(after[1]!).slice(0, 24), 'the missing segment is named');
});
