import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { archiveState, restoreRequest } from '../drivers/s3/s3-archive.js';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { storageMetrics } from '../orchestrator/runner/storage-cost.js';
import { runWithCoverage } from '../orchestrator/runner/coverage-runs.js';
import { driverFor, restorerFor } from '../orchestrator/cli/plugins.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { storageCosts, storageCostText } from '../reports/monthly/cost-section.js';
import type { RunStore } from '../orchestrator/evidence/run-store.js';
import { archive, makeShareTree } from './helpers/archive-fixtures.js';
import { stampedName } from './helpers/fixtures.js';
import { codes, leftoversOf, openEmbeddedStore, policyFromYaml, quietLogger, tempDir, verify } from './helpers/harness.js';
import { startS3Server, type S3Server } from './helpers/s3-server.js';

// What verification costs (issue 19, part 2). s3rver cannot model storage classes, so the
// archive-tier decisions are tested against S3's recorded answers (HeadObject headers, served by
// a loopback HTTP server that answers as S3 does) and the request and byte accounting against
// s3rver. Times are relative to the real clock.

let store: RunStore;
let backup: Buffer;
t.before(async () => {
  store = (await openEmbeddedStore()).store;
  const tree = await tempDir('cost-tree');
  await makeShareTree(tree);
  const file = path.join(await tempDir('cost-archive'), 'share.tar.gz');
  await archive(tree, file, 'tar.gz');
  backup = await fs.readFile(file);
});
t.teardown(() => store.close());

t.test('archive state from recorded HeadObject answers', async (t) => {
  t.same(archiveState({ StorageClass: 'STANDARD' }), { state: 'readable' });
  t.same(archiveState({}), { state: 'readable' }, 'no class header: STANDARD');
  t.same(archiveState({ StorageClass: 'GLACIER_IR' }), { state: 'readable' }, 'Glacier Instant Retrieval reads at once');
  t.same(archiveState({ StorageClass: 'STANDARD_IA' }), { state: 'readable' });
  t.same(archiveState({ StorageClass: 'GLACIER' }), { state: 'archived', storageClass: 'GLACIER' });
  t.same(archiveState({ StorageClass: 'DEEP_ARCHIVE' }), { state: 'archived', storageClass: 'DEEP_ARCHIVE' });
  t.same(archiveState({ StorageClass: 'DEEP_ARCHIVE', Restore: 'ongoing-request="true"' }), { state: 'restoring', storageClass: 'DEEP_ARCHIVE' });
  t.same(archiveState({ StorageClass: 'GLACIER', Restore: 'ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"' }), {
    state: 'restored',
    storageClass: 'GLACIER',
    expiry: '2012-12-21T00:00:00.000Z',
  });
  t.same(archiveState({ StorageClass: 'INTELLIGENT_TIERING', ArchiveStatus: 'DEEP_ARCHIVE_ACCESS' }), { state: 'archived', storageClass: 'INTELLIGENT_TIERING DEEP_ARCHIVE_ACCESS' });
  t.same(archiveState({ StorageClass: 'INTELLIGENT_TIERING' }), { state: 'readable' }, 'frequent or infrequent access tiers read at once');
  t.same(restoreRequest({ storageClass: 'DEEP_ARCHIVE' }, 'bulk', 2), { Days: 2, GlacierJobParameters: { Tier: 'Bulk' } });
  t.same(restoreRequest({ storageClass: 'INTELLIGENT_TIERING ARCHIVE_ACCESS' }, 'standard', 1), {}, 'an Intelligent-Tiering archive object takes no Days');
});

t.test('the cost estimate from a price table', async (t) => {
  const usage = { requests: { list: 2, head: 3, get: 1000, restore: 1 }, bytes: 5e9, retrieval: { bytes: 2e9, storageClass: 'DEEP_ARCHIVE', tier: 'bulk' } };
  const m = storageMetrics(usage, 'DEEP_ARCHIVE', { currency: 'EUR', egressPerGB: 0.09, per1000Requests: 0.0004, per1000Lists: 0.005, retrievalPerGB: { DEEP_ARCHIVE: 0.0025 } });
  // 5 GB x 0.09 + 1004 x 0.0004/1000 + 2 x 0.005/1000 + 2 GB x 0.0025
  t.equal(m.cost?.amount, Math.round((0.45 + 0.0004016 + 0.00001 + 0.005) * 1e6) / 1e6);
  t.equal(m.cost?.currency, 'EUR');
  t.match(m.cost?.lines.join('\n'), /5\.000 GB downloaded at 0\.09\/GB: 0\.4500 EUR\n1004 GET\/HEAD\/restore request\(s\) at 0\.0004\/1,000: 0\.000402 EUR\n2 LIST request\(s\) at 0\.005\/1,000: 0\.000010 EUR\n2\.000 GB retrieved from DEEP_ARCHIVE \(bulk\) at 0\.0025\/GB: 0\.005000 EUR/);
  t.same(storageMetrics(usage, undefined, undefined), { requests: usage.requests, bytes: 5e9, retrieval: usage.retrieval }, 'no prices: the counts only');
  const unpriced = storageMetrics(usage, 'DEEP_ARCHIVE', { currency: 'USD', egressPerGB: 0, per1000Requests: 0, per1000Lists: 0, retrievalPerGB: {} });
  t.same(unpriced.cost, { currency: 'USD', amount: 0, lines: ['retrieval from DEEP_ARCHIVE: no price in prices.retrievalPerGB'] });
});

t.test('s3rver: each run records its LIST, HEAD and GET requests, the bytes downloaded, and their cost', async (t) => {
  const s3: S3Server = await startS3Server();
  t.teardown(() => s3.stop());
  await s3.createBucket('costs');
  const key = stampedName('share', new Date(Date.now() - 3_600_000), '.tar.gz');
  await s3.put('costs', `share/${key}`, backup);
  const source = `          driver: s3
          bucket: costs
          prefix: share/
          endpoint: ${s3.endpoint}
          credentials: { accessKeyId: "\${env:K}", secretAccessKey: "\${env:K}" }
          prices: { currency: USD, egressPerGB: 0.09, per1000Requests: 0.4, per1000Lists: 5 }
          select: { glob: "share-*", timestamp: name, settle: 0s }`;
  const run = await verify(policyFromYaml({ folder: await tempDir('cost-s3'), kind: 'files', source, probes: '          []', env: { K: 'S3RVER' } }), store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  const m = run.metrics.storage!;
  t.equal(m.requests.list, 1, 'one page of keys');
  t.equal(m.requests.head, 1, 'one HEAD of the picked backup');
  t.ok(m.requests.get >= 2, `the backup, and the sidecars looked for beside it (${m.requests.get} GETs)`);
  t.equal(m.requests.restore, 0);
  t.equal(m.bytes, backup.length, 'the backup downloaded once, no sidecar there');
  t.equal(m.storageClass, undefined, 's3rver names no storage class');
  const expected = (backup.length / 1e9) * 0.09 + ((m.requests.get + 1) / 1000) * 0.4 + (1 / 1000) * 5;
  t.equal(m.cost?.amount, Math.round(expected * 1e6) / 1e6);
  t.equal(m.cost?.lines.length, 3);
  t.same((await store.get(run.id))?.metrics.storage, m, 'recorded with the run');
});

interface Answer {
  storageClass?: string;
  restore?: string;
}

/** Answers as S3 does for one object in a bucket "vault" (path style), from recorded headers; counts the RestoreObject requests it gets. */
async function recordedS3(answer: Answer): Promise<{ endpoint: string; restores: string[]; stop(): Promise<void> }> {
  const key = `share/${stampedName('share', new Date(Date.now() - 3_600_000), '.tar.gz')}`;
  const modified = new Date(Date.now() - 3_600_000).toUTCString();
  const restores: string[] = [];
  const etag = `"${createHash('md5').update(backup).digest('hex')}"`;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const objectKey = decodeURIComponent(url.pathname.replace(/^\/vault\/?/, ''));
      const headers: Record<string, string> = { 'x-amz-request-id': 'REC0RDED', etag, 'last-modified': modified };
      if (answer.storageClass) headers['x-amz-storage-class'] = answer.storageClass;
      if (answer.restore) headers['x-amz-restore'] = answer.restore;
      if (req.method === 'GET' && url.searchParams.get('list-type') === '2') {
        res.writeHead(200, { 'content-type': 'application/xml' });
        res.end(
          `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>vault</Name><Prefix>share/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Contents><Key>${key}</Key><LastModified>${new Date(Date.now() - 3_600_000).toISOString()}</LastModified><ETag>${etag}</ETag><Size>${backup.length}</Size><StorageClass>${answer.storageClass ?? 'STANDARD'}</StorageClass></Contents></ListBucketResult>`,
        );
      } else if (objectKey === key && req.method === 'POST' && url.searchParams.has('restore')) {
        restores.push(body);
        res.writeHead(202, { 'x-amz-request-id': 'REC0RDED' });
        res.end();
      } else if (objectKey === key && req.method === 'HEAD') {
        res.writeHead(200, { ...headers, 'content-length': String(backup.length) });
        res.end();
      } else if (objectKey === key && req.method === 'GET') {
        if (answer.storageClass && !/ongoing-request="false"/.test(answer.restore ?? '')) {
          res.writeHead(403, { 'content-type': 'application/xml' });
          res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidObjectState</Code><Message>The operation is not valid for the object\'s storage class</Message></Error>');
          return;
        }
        res.writeHead(200, { ...headers, 'content-length': String(backup.length) });
        res.end(backup);
      } else {
        res.writeHead(404, { 'content-type': 'application/xml' });
        res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    restores,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function verifyAt(endpoint: string, extra = ''): Promise<RunRecord> {
  const source = `          driver: s3
          bucket: vault
          prefix: share/
          endpoint: ${endpoint}
          credentials: { accessKeyId: "\${env:K}", secretAccessKey: "\${env:K}" }
          maxRetries: 0
          prices: { egressPerGB: 0.09, retrievalPerGB: { DEEP_ARCHIVE: 0.02, GLACIER: 0.01 } }${extra}
          select: { glob: "share-*", timestamp: name, settle: 0s }`;
  return verify(policyFromYaml({ folder: await tempDir('cost-rec'), kind: 'files', source, probes: '          []', env: { K: 'AKIAEXAMPLE' } }), store);
}

t.test('an object in DEEP_ARCHIVE without archiveRetrieval: an error naming the fix; nothing is requested', async (t) => {
  const s3 = await recordedS3({ storageClass: 'DEEP_ARCHIVE' });
  t.teardown(() => s3.stop());
  const run = await verifyAt(s3.endpoint);
  t.equal(run.verdict, 'error', 'not a bad backup: it could not be read');
  t.same(codes(run), ['source_archived']);
  t.match(run.reasons[0]!.message, /is in DEEP_ARCHIVE: it cannot be read until it is restored; set archiveRetrieval: \{ tier: bulk, days: 1 \} on the source/);
  t.same(s3.restores, []);
  t.equal(run.metrics.storage?.storageClass, undefined, 'no details recorded: the run stopped at them');
  t.equal(run.metrics.storage?.requests.get, 0, 'no GET of an unreadable object');
  t.equal(await leftoversOf(run.id), 0);
});

t.test('with archiveRetrieval the restore is requested (tier, days), its retrieval cost estimated; a run during the restore waits; a restored copy is verified', async (t) => {
  const s3 = await recordedS3({ storageClass: 'DEEP_ARCHIVE' });
  t.teardown(() => s3.stop());
  const requested = await verifyAt(s3.endpoint, '\n          archiveRetrieval: { tier: bulk, days: 2 }');
  t.equal(requested.verdict, 'error');
  t.same(codes(requested), ['source_archived']);
  t.match(requested.reasons[0]!.message, /is in DEEP_ARCHIVE: restore requested \(tier bulk, [\d.]+ KiB, readable for 2 day\(s\); within 48 hours\); a later run verifies the copy/);
  t.equal(s3.restores.length, 1, 'one RestoreObject');
  t.match(s3.restores[0], /<Days>2<\/Days>/);
  t.match(s3.restores[0], /<Tier>Bulk<\/Tier>/);
  const m = requested.metrics.storage!;
  t.same(m.retrieval, { bytes: backup.length, storageClass: 'DEEP_ARCHIVE', tier: 'bulk' });
  t.equal(m.requests.restore, 1);
  t.match(m.cost?.lines.join('\n'), /GB retrieved from DEEP_ARCHIVE \(bulk\) at 0\.02\/GB/);

  const busy = await recordedS3({ storageClass: 'DEEP_ARCHIVE', restore: 'ongoing-request="true"' });
  t.teardown(() => busy.stop());
  const waiting = await verifyAt(busy.endpoint, '\n          archiveRetrieval: { tier: bulk, days: 2 }');
  t.same(codes(waiting), ['source_archived']);
  t.match(waiting.reasons[0]!.message, /restore is still in progress/);
  t.same(busy.restores, [], 'not requested twice');

  const ready = await recordedS3({ storageClass: 'DEEP_ARCHIVE', restore: `ongoing-request="false", expiry-date="${new Date(Date.now() + 86_400_000).toUTCString()}"` });
  t.teardown(() => ready.stop());
  const verified = await verifyAt(ready.endpoint, '\n          archiveRetrieval: { tier: bulk, days: 2 }');
  t.equal(verified.verdict, 'pass', JSON.stringify(verified.reasons));
  t.equal(verified.backup?.provider?.storageClass, 'DEEP_ARCHIVE');
  t.equal(verified.metrics.storage?.storageClass, 'DEEP_ARCHIVE');
  t.equal(verified.metrics.storage?.bytes, backup.length);
  t.same(ready.restores, []);
});

t.test("a client's monthly budget: once spent, no more coverage runs are planned; the report shows spend against it", async (t) => {
  const s3: S3Server = await startS3Server();
  t.teardown(() => s3.stop());
  await s3.createBucket('budget');
  for (const h of [1, 25, 49]) await s3.put('budget', stampedName('share', new Date(Date.now() - h * 3_600_000), '.tar.gz'), backup);
  const source = `          driver: s3
          bucket: budget
          endpoint: ${s3.endpoint}
          credentials: { accessKeyId: "\${env:K}", secretAccessKey: "\${env:K}" }
          prices: { currency: EUR, egressPerGB: 100 }
          select: { glob: "share-*", timestamp: name, settle: 0s }`;
  const base = policyFromYaml({ folder: await tempDir('budget'), kind: 'files', source, probes: '          []', extra: '        coverage: { points: 1 }\n', env: { K: 'S3RVER' } });
  // Each run downloads the archive once: at 100 EUR/GB that is backup.length / 1e7 EUR.
  const perRun = (backup.length / 1e9) * 100;
  const policy = { ...base, client: 'budget-client', name: 'budget-share', budget: { monthly: perRun * 1.5, currency: 'EUR' } };
  const deps = { store, runtime: new DockerRuntime(), driverFor, restorerFor, logger: quietLogger() };
  const first = await runWithCoverage(policy, deps);
  t.same(first.map((r) => r.verdict), ['pass', 'pass'], 'within budget: the newest and one older point');
  t.same(first[0]!.coverage?.plan?.budget, { monthly: perRun * 1.5, spent: 0, currency: 'EUR', exhausted: false });
  t.ok(first.every((r) => (r.metrics.storage?.cost?.amount ?? 0) >= perRun * 0.99), 'each run cost its download');
  const second = await runWithCoverage(policy, deps);
  t.equal(second.length, 1, 'the budget is spent: only the newest is verified');
  t.equal(second[0]!.verdict, 'pass');
  t.equal(second[0]!.coverage?.plan?.budget?.exhausted, true);
  t.same(second[0]!.coverage?.plan?.planned, []);
  t.ok((second[0]!.coverage?.plan?.budget?.spent ?? 0) >= perRun * 2 * 0.99, 'the month so far: two runs');
  const [cost] = storageCosts([...first, ...second], policy.budget);
  t.equal(cost?.runs, 3);
  t.equal(cost?.byPolicy[0]?.policy, 'budget-share');
  t.equal(cost?.budget?.over, true);
  t.match(storageCostText(cost!), /^Storage cost \(estimated from the sources' prices\): [\d.]+ EUR over 3 runs \(coverage runs [\d.]+ EUR\); budget [\d.]+ EUR a month: OVER BUDGET$/);
});
