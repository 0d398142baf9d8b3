import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import t from 'tap';
import { selectNewest } from '../drivers/selection.js';
import { factsOf, providerChecksums, S3StorageDriver, type S3DriverOptions } from '../drivers/s3/s3-storage-driver.js';
import type { BackupEntry, StorageDriver } from '../drivers/storage-driver.js';
import type { SelectorConfig } from '../orchestrator/core/config-types.js';
import { VerificationError } from '../orchestrator/core/errors.js';
import { S3RVER_CREDENTIALS, startS3Server, type S3Server } from './helpers/s3-server.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';
import { readAll } from './helpers/bytes.js';
import { sha256 as sha } from './helpers/bytes.js';

// A real S3-compatible server (s3rver) on 127.0.0.1, reached through a TCP relay the tests can cut.
let s3: S3Server;
let proxy: TcpProxy;
const BUCKET = 'acme-backups';
const big = randomBytes(48 * 1024 * 1024);

t.before(async () => {
  s3 = await startS3Server();
  proxy = await startTcpProxy(s3.port);
  await s3.createBucket(BUCKET);
  await s3.put(BUCKET, 'big/shop.dump', big);
});
t.teardown(async () => {
  await proxy.close();
  await s3.stop();
});

function driver(extra: Partial<S3DriverOptions> = {}): StorageDriver {
  const d = new S3StorageDriver({
    bucket: BUCKET,
    endpoint: `http://127.0.0.1:${proxy.port}`,
    credentials: { ...S3RVER_CREDENTIALS, origin: 'source.credentials of policy acme-shop (${env:ACME_KEY}, ${env:ACME_SECRET})' },
    maxRetries: 3,
    retryBaseDelayMs: 20,
    requestTimeoutMs: 5_000,
    ...extra,
  });
  t.teardown(() => d.close());
  return d;
}

const selector = (over: Partial<SelectorConfig> = {}): SelectorConfig => ({ glob: '*.dump', timestamp: { from: 'name', timezone: 'UTC' }, settleMs: 0, ...over });

async function entryOf(d: StorageDriver, key: string): Promise<BackupEntry> {
  for await (const e of d.list()) if (e.key === key) return e;
  throw new Error(`${key} not listed`);
}


/**
 * Reads a stream to the end, running `actions[n]` once the n-th mark (a byte count) is passed;
 * returns the bytes read.
 */
async function readWith(stream: AsyncIterable<Buffer>, marks: Array<[number, () => unknown]>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  for await (const c of stream) {
    chunks.push(c);
    got += c.length;
    for (const [at, action] of marks) if (got > at && got - c.length <= at) await action();
  }
  return Buffer.concat(chunks);
}

const MiB = 1024 * 1024;

async function rejection(p: Promise<unknown>): Promise<VerificationError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof VerificationError)) throw new Error(`expected a VerificationError, got ${String(err)}`);
  return err;
}

t.test('2,500 objects under a prefix: listed page by page, the newest picked', async (t) => {
  const days = Array.from({ length: 2500 }, (_, i) => new Date(Date.UTC(2020, 0, 1) + i * 3_600_000 * 17));
  const keys = days.map((d) => `acme/shop/shop-${d.toISOString().replace(/[-:]/g, '').slice(0, 15)}Z.dump`);
  for (let i = 0; i < keys.length; i += 50) {
    await Promise.all(keys.slice(i, i + 50).map((k) => s3.put(BUCKET, k, `dump ${k}`)));
  }
  // Noise: another client's newer backups beside them.
  await s3.put(BUCKET, 'other/shop-20300101T000000Z.dump', 'not ours');
  const before = (proxy.sent().match(/list-type=2/g) ?? []).length;
  const d = driver({ prefix: 'acme/shop/' });
  const result = await selectNewest(d.list(), selector(), new Date('2030-06-01T00:00:00Z'));
  const pages = (proxy.sent().match(/list-type=2/g) ?? []).length - before;
  t.equal(result.seen, 2500, 'every object under the prefix, nothing outside it');
  t.equal(result.picked?.entry.key, keys.at(-1));
  t.equal(result.picked?.backupTime.toISOString(), days.at(-1)!.toISOString().replace(/\.\d{3}Z$/, '.000Z'));
  t.equal(pages, 3, '1,000 keys a request');
});

t.test('details: the single-part ETag is an MD5 to verify; sidecars; object lock and version recorded', async (t) => {
  const body = Buffer.from('a small dump');
  await s3.put(BUCKET, 'd/shop.dump', body);
  await s3.put(BUCKET, 'd/shop.dump.sha256', `${sha(body)}  shop.dump\n`);
  const d = driver({ prefix: 'd/' });
  const details = await d.details(await entryOf(d, 'd/shop.dump'));
  t.same(details.checksums, [
    { algorithm: 'sha256', hex: sha(body), source: 'sidecar shop.dump.sha256' },
    { algorithm: 'md5', hex: createHash('md5').update(body).digest('hex'), source: 'ETag (MD5 of a single-part upload)' },
  ]);
  t.same(details.unverifiable, []);
  t.equal(details.facts.etag, createHash('md5').update(body).digest('hex'));
  t.match(details.facts.objectLock, /^none reported/, 's3rver keeps no object lock: the evidence says so rather than nothing');
  t.equal(details.facts.legalHold, 'none reported');
});

t.test('which provider checksums can be verified (HEAD responses shaped as AWS sends them)', async (t) => {
  // s3rver keeps neither x-amz-checksum-* nor multipart ETags, so these HEAD outputs are written
  // as AWS S3 returns them; the parsing is what is under test.
  const sha256 = createHash('sha256').update('x').digest();
  const full = providerChecksums({ $metadata: {}, ETag: '"9dd4e461268c8034f5c8564e155c67a6"', ChecksumSHA256: sha256.toString('base64'), ChecksumType: 'FULL_OBJECT' });
  t.same(full.checksums, [
    { algorithm: 'sha256', hex: sha256.toString('hex'), source: 'x-amz-checksum-sha256' },
    { algorithm: 'md5', hex: '9dd4e461268c8034f5c8564e155c67a6', source: 'ETag (MD5 of a single-part upload)' },
  ]);
  const multipart = providerChecksums({ $metadata: {}, ETag: '"d41d8cd98f00b204e9800998ecf8427e-12"', ChecksumSHA256: `${sha256.toString('base64')}-12`, ChecksumType: 'COMPOSITE' });
  t.same(multipart.checksums, [], 'nothing to verify but the sha256 recorded');
  t.match(multipart.unverifiable, [/checksum of the parts of a multipart upload/, /ETag d41d8cd98f00b204e9800998ecf8427e-12 is of a multipart upload \(12 parts\)/]);
  const kms = providerChecksums({ $metadata: {}, ETag: '"9dd4e461268c8034f5c8564e155c67a6"', ServerSideEncryption: 'aws:kms' });
  t.same(kms.checksums, []);
  t.match(kms.unverifiable, [/SSE-KMS is not an MD5/]);
  const locked = factsOf(
    { $metadata: {}, ObjectLockMode: 'COMPLIANCE', ObjectLockRetainUntilDate: new Date('2027-11-28T00:00:00Z'), ObjectLockLegalHoldStatus: 'ON', VersionId: 'v3', ContentLength: 5 },
    { key: 'k', size: 5, modifiedAt: new Date() },
  );
  t.match(locked, { objectLock: 'COMPLIANCE until 2027-11-28T00:00:00.000Z', legalHold: 'ON', versionId: 'v3' });
});

t.test('a connection dropped mid-download is resumed with a Range request', async (t) => {
  const resumes: number[] = [];
  const d = driver({ onResume: (_key, offset) => resumes.push(offset) });
  const entry = await entryOf(d, 'big/shop.dump');
  await d.details(entry);
  const read = await readWith((await d.open(entry)) as AsyncIterable<Buffer>, [
    [8 * MiB, () => proxy.cut()],
    [30 * MiB, () => proxy.cut()],
  ]);
  t.equal(sha(read), sha(big), 'the bytes are whole and in order');
  t.equal(resumes.length, 2, 'resumed twice');
  t.ok(resumes.every((offset) => offset > 0 && offset < big.length), `resumed mid-object at ${resumes.join(', ')}`);
  t.match(proxy.sent(), new RegExp(`range: bytes=${resumes[0]}-`, 'i'), 'asked for the rest only');
});

t.test('a transfer that stalls times out and resumes; the evidence says so', async (t) => {
  const d = driver({ requestTimeoutMs: 1_000 }) as S3StorageDriver;
  const entry = await entryOf(d, 'big/shop.dump');
  await d.details(entry);
  const read = await readWith((await d.open(entry)) as AsyncIterable<Buffer>, [[16 * MiB, () => proxy.stall()]]);
  t.equal(sha(read), sha(big));
  t.match(d.transferFacts(entry), { resumed: /^1 time\(s\): at byte \d+ \(/ });
});

t.test('the server gone for good mid-download: an error with the cause, after bounded retries', async (t) => {
  const d = driver({ maxRetries: 2 });
  const entry = await entryOf(d, 'big/shop.dump');
  const err = await rejection(
    readWith((await d.open(entry)) as AsyncIterable<Buffer>, [
      [
        4 * MiB,
        () => {
          proxy.refuse();
          proxy.cut();
        },
      ],
    ]),
  );
  proxy.accept();
  t.equal(err.reason, 'source_unreachable');
  t.match(err.message, /reading s3:\/\/acme-backups\/big\/shop\.dump at http:\/\/127\.0\.0\.1:\d+ stopped at byte \d+ of 50331648 and failed 3 times in a row/);
  t.ok(err.cause, 'the network error is kept as the cause');
});

t.test('the object replaced while being read: source_changed, never two versions spliced', async (t) => {
  const original = randomBytes(24 * 1024 * 1024);
  await s3.put(BUCKET, 'swap/shop.dump', original);
  const d = driver({ prefix: 'swap/' });
  const entry = await entryOf(d, 'swap/shop.dump');
  await d.details(entry);
  const err = await rejection(
    readWith((await d.open(entry)) as AsyncIterable<Buffer>, [
      [
        4 * MiB,
        async () => {
          await s3.put(BUCKET, 'swap/shop.dump', randomBytes(24 * MiB));
          proxy.cut();
        },
      ],
    ]),
  );
  t.equal(err.reason, 'source_changed');
  t.match(err.message, /changed while it was being read/);
});

t.test('wrong credentials: source_denied naming the bucket and where the key came from, never the secret', async (t) => {
  const secret = 'wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY';
  const d = driver({ credentials: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: secret, origin: 'source.credentials of policy acme-shop (${env:ACME_SECRET})' } });
  const err = await rejection(selectNewest(d.list(), selector()));
  t.equal(err.reason, 'source_denied');
  t.match(err.message, /s3:\/\/acme-backups\/ at http:\/\/127\.0\.0\.1:\d+: access denied \(InvalidAccessKeyId 403/);
  t.match(err.message, /credentials from source\.credentials of policy acme-shop \(\$\{env:ACME_SECRET\}\)/);
  t.notMatch(err.message, secret);
});

t.test('a bucket that does not exist, a store that is not there', async (t) => {
  const missing = await rejection(selectNewest(driver({ bucket: 'no-such-bucket' }).list(), selector()));
  t.equal(missing.reason, 'source_unreachable');
  t.match(missing.message, /s3:\/\/no-such-bucket\/ .*the bucket does not exist/);
  const closed = await startTcpProxy(1);
  await closed.close(); // a port nobody listens on
  const down = await rejection(selectNewest(driver({ endpoint: `http://127.0.0.1:${closed.port}`, maxRetries: 1 }).list(), selector()));
  t.equal(down.reason, 'source_unreachable');
  t.match(down.message, /ECONNREFUSED|connect/i);
});

t.test('timestamp: metadata reads x-amz-meta-<key> of the candidates only', async (t) => {
  await s3.put(BUCKET, 'meta/a.dump', 'a', { Metadata: { 'backup-time': '2026-11-27T02:00:00Z' } });
  await s3.put(BUCKET, 'meta/b.dump', 'b', { Metadata: { 'backup-time': '1795831200' } }); // 2026-11-28T02:00:00Z
  await s3.put(BUCKET, 'meta/c.dump', 'c');
  await s3.put(BUCKET, 'meta/notes.txt', 'x', { Metadata: { 'backup-time': '2030-01-01T00:00:00Z' } });
  const d = driver({ prefix: 'meta/', metadataKey: 'backup-time' });
  // The real clock throughout: s3rver stamps LastModified with today's date, and a pinned "now"
  // before it would leave every object "still being written".
  const result = await selectNewest(d.list(), selector({ timestamp: { from: 'metadata', key: 'backup-time' } }), new Date(Date.now() + 60_000), undefined, (e) => d.takenAt!(e));
  t.equal(result.picked?.entry.key, 'meta/b.dump');
  t.equal(result.picked?.backupTime.toISOString(), '2026-11-28T02:00:00.000Z');
  t.equal(result.withoutTimestamp, 1, 'c.dump has no backup-time');
  t.equal(result.picked?.timestampSource, 'metadata');
});

t.test('SSE-C: the key goes with every request as the S3 headers, its value never into facts', async (t) => {
  const key = randomBytes(32).toString('base64');
  await s3.put(BUCKET, 'ssec/shop.dump', 'encrypted dump');
  const d = driver({ prefix: 'ssec/', sseCustomerKey: key });
  const entry = await entryOf(d, 'ssec/shop.dump');
  const details = await d.details(entry);
  t.equal((await readAll(await d.open(entry))).toString(), 'encrypted dump');
  const sent = proxy.sent();
  const keyMd5 = createHash('md5').update(Buffer.from(key, 'base64')).digest('base64');
  t.match(sent, /x-amz-server-side-encryption-customer-algorithm: AES256/i);
  t.match(sent, new RegExp(`x-amz-server-side-encryption-customer-key-md5: ${keyMd5.replace(/[+/]/g, '\\$&')}`, 'i'));
  t.notMatch(JSON.stringify(details), key);
});

t.test('a store that refuses SSE-C or throttles: the reasons are sorted', async (t) => {
  const { classifyS3Error } = await import('../drivers/s3/s3-errors.js');
  const ctx = { what: 's3://b/k', endpoint: 'https://s3.example', credentialOrigin: 'the environment' };
  // Shapes of real SDK errors (name and HTTP status), which s3rver cannot produce.
  const sdk = (name: string, status: number) => Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });
  t.equal(classifyS3Error(sdk('SlowDown', 503), ctx).reason, 'source_throttled');
  t.equal(classifyS3Error(sdk('AccessDenied', 403), ctx).reason, 'source_denied');
  t.equal(classifyS3Error(sdk('InvalidRequest', 400), ctx).reason, 'source_unreachable');
  const ssec = Object.assign(new Error('The object was stored using a form of Server Side Encryption. The correct parameters must be provided'), { name: 'InvalidRequest', $metadata: { httpStatusCode: 400 } });
  t.match(classifyS3Error(ssec, ctx).message, /set source\.sseCustomerKey/);
});

t.test('a zero-byte object is listed with size 0 (the runner fails it as empty)', async (t) => {
  await s3.put(BUCKET, 'zero/shop-20261127T020000Z.dump', Buffer.alloc(0));
  const d = driver({ prefix: 'zero/' });
  const result = await selectNewest(d.list(), selector(), new Date(Date.now() + 60_000));
  t.equal(result.picked?.entry.key, 'zero/shop-20261127T020000Z.dump');
  t.equal(result.picked?.entry.size, 0);
});

t.test('bytes damaged at rest: the stored ETag MD5 no longer matches what is read', async (t) => {
  const body = randomBytes(1024 * 1024);
  await s3.put(BUCKET, 'rot/shop.dump', body);
  const file = await s3.objectFile(BUCKET, 'rot/shop.dump');
  const handle = await fs.open(file, 'r+');
  await handle.write(Buffer.from([0xff ^ body[1000]!]), 0, 1, 1000);
  await handle.close();
  const d = driver({ prefix: 'rot/' });
  const entry = await entryOf(d, 'rot/shop.dump');
  const md5 = (await d.details(entry)).checksums.find((c) => c.algorithm === 'md5');
  const read = await readAll(await d.open(entry));
  t.equal(md5?.hex, createHash('md5').update(body).digest('hex'), 'the store still states the MD5 of what was written');
  t.not(createHash('md5').update(read).digest('hex'), md5?.hex, 'what comes back differs: the runner fails it as checksum_mismatch');
});
