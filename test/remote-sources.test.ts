import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { createShopDatabase, dumpDatabase, stampedName } from './helpers/fixtures.js';
import { codes, leftoversOf, policyFromYaml, tempDir, useRestoreEnv, verify } from './helpers/harness.js';
import { startS3Server, type S3Server } from './helpers/s3-server.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';

// Real pg_dump output in a real S3-compatible server and a real restic repository, verified end
// to end: selection, provider checksums, the store's own check, restore in a Docker sandbox.

const run = promisify(execFile);
const env = useRestoreEnv(t);
let s3: S3Server;
t.before(async () => {
  s3 = await startS3Server();
  await s3.createBucket('acme-backups');
});
t.teardown(() => s3?.stop());

const s3Source = (prefix: string, extra = '', endpoint = s3.endpoint) => `          driver: s3
          bucket: acme-backups
          prefix: ${prefix}
          endpoint: ${endpoint}
          credentials: { accessKeyId: "\${env:ACME_KEY}", secretAccessKey: "\${env:ACME_SECRET}" }
          maxRetries: 1
          select: { glob: "shop-*.dump", timestamp: name, settle: 0s${extra} }`;
const s3Env = { ACME_KEY: 'S3RVER', ACME_SECRET: 'S3RVER' };

/** Fixtures are small: a Buffer body lets the SDK retry when s3rver drops a kept-alive socket. */
async function upload(key: string, file: string): Promise<void> {
  await s3.put('acme-backups', key, await fs.readFile(file));
}

t.test('a dump in S3 restores and passes; the ETag MD5 is verified; object lock is on record', async (t) => {
  const folder = await tempDir('s3-good');
  const file = path.join(folder, 'shop.dump');
  const hex = await dumpDatabase(env.cluster, await createShopDatabase(env.cluster), file, 'custom');
  const now = Date.now();
  await upload(`pass/${stampedName('shop', new Date(now - 3_600_000), '.dump')}`, file);
  await upload(`pass/${stampedName('shop', new Date(now - 30 * 3_600_000), '.dump')}`, file);
  const run = await verify(policyFromYaml({ folder, source: s3Source('pass/'), env: s3Env }), env.store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.backup?.driver, 's3');
  t.match(run.backup?.location, /^s3:\/\/acme-backups\/pass\/ at http:\/\/127\.0\.0\.1:\d+$/);
  t.equal(run.backup?.key, `pass/${stampedName('shop', new Date(now - 3_600_000), '.dump')}`);
  t.equal(run.backup?.sha256, hex);
  t.match(run.backup?.checksums, [{ algorithm: 'md5', source: 'ETag (MD5 of a single-part upload)', verified: true }]);
  t.match(run.backup?.provider, { objectLock: /^none reported/, legalHold: 'none reported' });
  t.equal(await leftoversOf(run.id), 0);
});

t.test('S3: bytes damaged at rest fail as checksum_mismatch against the ETag', async (t) => {
  const folder = await tempDir('s3-rot');
  const file = path.join(folder, 'shop.dump');
  await dumpDatabase(env.cluster, await createShopDatabase(env.cluster, { orders: 50 }), file, 'plain');
  const key = `rot/${stampedName('shop', new Date(Date.now() - 3_600_000), '.dump')}`;
  await upload(key, file);
  // Flip bytes inside a COPY row: the restore may still succeed; only the checksum can tell.
  const stored = await s3.objectFile('acme-backups', key);
  const text = await fs.readFile(stored, 'latin1');
  const at = text.indexOf('\t', text.indexOf('COPY public.orders')) + 1;
  const h = await fs.open(stored, 'r+');
  await h.write(Buffer.from('9'), 0, 1, at);
  await h.close();
  const run = await verify(policyFromYaml({ folder, source: s3Source('rot/'), env: s3Env, probes: '          []' }), env.store);
  t.equal(run.verdict, 'fail');
  t.equal(codes(run)[0], 'checksum_mismatch', JSON.stringify(run.reasons));
  t.match(run.reasons[0]?.message, /md5 of the backup's bytes is [0-9a-f]{16}…, but ETag \(MD5 of a single-part upload\) says/);
});

t.test('S3: a zero-byte newest object fails as empty; a missing day fails with its date', async (t) => {
  const folder = await tempDir('s3-empty');
  const file = path.join(folder, 'shop.dump');
  await dumpDatabase(env.cluster, await createShopDatabase(env.cluster, { orders: 50 }), file, 'custom');
  const now = new Date();
  const twoDaysAgo = new Date(now.getTime() - 50 * 3_600_000);
  await upload(`gap/${stampedName('shop', twoDaysAgo, '.dump')}`, file);
  const gap = await verify(policyFromYaml({ folder, source: s3Source('gap/', ', expect: daily'), env: s3Env, rpo: '72h', probes: '          []' }), env.store);
  const yesterday = new Date(now.getTime() - 86_400_000).toISOString().slice(0, 10);
  t.equal(gap.verdict, 'fail');
  t.same(codes(gap), ['missing_backup']);
  t.match(gap.reasons[0]?.message, `no backup for ${yesterday} (expect: daily, UTC)`);

  await s3.put('acme-backups', `empty/${stampedName('shop', new Date(now.getTime() - 3_600_000), '.dump')}`, Buffer.alloc(0));
  const empty = await verify(policyFromYaml({ folder, source: s3Source('empty/'), env: s3Env }), env.store);
  t.equal(empty.verdict, 'fail');
  t.same(codes(empty), ['empty_backup']);
  t.equal(empty.phases.find((p) => p.name === 'sandbox')?.outcome, 'skipped', 'no sandbox for an empty object');
});

t.test('S3: wrong credentials are an error naming the bucket and the reference, not the secret', async (t) => {
  const folder = await tempDir('s3-denied');
  const run = await verify(policyFromYaml({ folder, source: s3Source('pass/'), env: { ACME_KEY: 'AKIAWRONG', ACME_SECRET: 'not-the-secret-123' } }), env.store);
  t.equal(run.verdict, 'error');
  t.same(codes(run), ['source_denied']);
  t.match(run.reasons[0]?.message, /s3:\/\/acme-backups\/pass\/ .*access denied .*\(\$\{env:ACME_KEY\}, \$\{env:ACME_SECRET\}\)/);
  t.notMatch(JSON.stringify(run), 'not-the-secret-123');
});

t.test('S3: a connection dropped mid-restore resumes and passes; a store gone for good is an error', async (t) => {
  const proxy = await startTcpProxy(s3.port);
  t.teardown(() => proxy.close());
  const folder = await tempDir('s3-drop');
  const file = path.join(folder, 'shop.sql');
  const hex = await dumpDatabase(env.cluster, await createShopDatabase(env.cluster, { orders: 50_000 }), file, 'plain');
  const size = (await fs.stat(file)).size;
  await upload(`drop/${stampedName('shop', new Date(Date.now() - 3_600_000), '.dump')}`, file);
  const policy = policyFromYaml({ folder, source: s3Source('drop/', '', `http://127.0.0.1:${proxy.port}`), env: s3Env });

  proxy.cutAfter(Math.floor(size / 3));
  const resumed = await verify(policy, env.store);
  t.equal(resumed.verdict, 'pass', JSON.stringify(resumed.reasons));
  t.equal(resumed.backup?.sha256, hex, 'every byte once, in order');
  t.match(resumed.backup?.provider?.resumed, /^1 time\(s\): at byte \d+ \(/);

  proxy.cutAfter(Math.floor(size / 3), { refuse: true });
  const gone = await verify(policy, env.store);
  proxy.accept();
  t.equal(gone.verdict, 'error', 'the store failed, not the backup');
  t.same(codes(gone), ['source_unreachable'], JSON.stringify(gone.reasons));
  t.match(gone.reasons[0]?.message, /stopped at byte \d+ of \d+ and failed 2 times in a row/);
  t.equal(gone.phases.find((p) => p.name === 'fetch_restore')?.outcome, 'error');
  t.equal((await env.store.get(gone.id))?.verdict, 'error', 'recorded');
  t.equal(await leftoversOf(gone.id), 0, 'the sandbox is gone');
});

t.test('restic: the newest snapshot restores after restic check; a damaged repository fails', async (t) => {
  const dir = await tempDir('restic');
  const repo = path.join(dir, 'repo');
  const src = path.join(dir, 'var', 'backups');
  await fs.mkdir(src, { recursive: true });
  const resticEnv = { ...process.env, RESTIC_REPOSITORY: repo, RESTIC_PASSWORD: 'restic-pw-42', TZ: 'UTC' };
  await run('restic', ['init'], { env: resticEnv });
  const dump = path.join(src, 'shop.dump');
  await dumpDatabase(env.cluster, await createShopDatabase(env.cluster, { orders: 10 }), dump, 'custom');
  const at = (h: number) => new Date(Date.now() - h * 3_600_000).toISOString().replace('T', ' ').slice(0, 19);
  await run('restic', ['backup', '--no-cache', '--host', 'db1', '--tag', 'shop', '--time', at(30), src], { env: resticEnv });
  const hex = await dumpDatabase(env.cluster, await createShopDatabase(env.cluster), dump, 'custom');
  await run('restic', ['backup', '--no-cache', '--host', 'db1', '--tag', 'shop', '--time', at(2), src], { env: resticEnv });
  const source = `          driver: restic
          repository: ${JSON.stringify(repo)}
          password: \${env:SHOP_RESTIC_PW}
          file: ${JSON.stringify(dump)}
          host: db1
          tags: [shop]
          check: "100%"
          select: { timestamp: metadata, settle: 0s }`;
  const policy = policyFromYaml({ folder: dir, source, env: { SHOP_RESTIC_PW: 'restic-pw-42' } });
  const good = await verify(policy, env.store);
  t.equal(good.verdict, 'pass', JSON.stringify(good.reasons));
  t.equal(good.backup?.driver, 'restic');
  t.equal(good.backup?.sha256, hex, 'the newer snapshot');
  t.equal(good.backup?.timestampSource, 'metadata');
  t.match(good.backup?.storageCheck, { what: 'restic check --read-data-subset=100%', problems: [] });
  t.equal(good.phases.find((p) => p.name === 'storage_check')?.outcome, 'ok');
  t.match(good.backup?.provider, { host: 'db1', tags: 'shop' });
  t.notMatch(JSON.stringify(good), 'restic-pw-42');

  // Damage the biggest pack file (the dump's data; tree packs are small): restic check finds
  // it, and the dump cannot be read back.
  const packs: Array<{ file: string; size: number }> = [];
  for (const sub of await fs.readdir(path.join(repo, 'data'))) {
    for (const f of await fs.readdir(path.join(repo, 'data', sub))) {
      const file = path.join(repo, 'data', sub, f);
      packs.push({ file, size: (await fs.stat(file)).size });
    }
  }
  const biggest = packs.sort((a, b) => b.size - a.size)[0]!;
  const h = await fs.open(biggest.file, 'r+');
  await h.write(Buffer.alloc(64, 0x41), 0, 64, Math.floor(biggest.size / 3));
  await h.close();
  const bad = await verify(policy, env.store);
  t.equal(bad.verdict, 'fail', JSON.stringify(bad.reasons));
  t.equal(codes(bad)[0], 'repository_damaged');
  t.equal(bad.phases.find((p) => p.name === 'storage_check')?.outcome, 'fail');
  t.ok((bad.backup?.storageCheck?.problems.length ?? 0) > 0);
  t.equal(await leftoversOf(bad.id), 0);
});
