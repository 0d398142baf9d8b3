import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { LocalStorageDriver } from '../drivers/local/local-storage-driver.js';
import type { BackupEntry } from '../drivers/storage-driver.js';
import { collect, verificationErrorOf } from './helpers/outcomes.js';
import { openEmbeddedStore, policyFromYaml, tempDir, verify } from './helpers/harness.js';
import { readAll } from './helpers/bytes.js';

// A backup folder is written by client machines, which may be compromised. Whatever they leave in
// it (links out of it, links swapped in between listing and reading, FIFOs), backproof reads no
// byte outside the folder, and the run fails with `unsafe_source` naming what it found.

const SECRET = 'CANARY-host-secret-4f1d9a77';

async function hostSecret(t: Test): Promise<string> {
  const dir = await tempDir('host');
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'evidence-key.pem');
  await fs.writeFile(file, `-----BEGIN PRIVATE KEY-----\n${SECRET}\n-----END PRIVATE KEY-----\n`, { mode: 0o600 });
  return file;
}

async function backupFolder(t: Test): Promise<string> {
  const dir = await tempDir('confined');
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}


t.test('a link out of the folder is listed as unsafe, by its own size, and never opened', async (t) => {
  const secret = await hostSecret(t);
  const dir = await backupFolder(t);
  await fs.writeFile(path.join(dir, 'shop-20261201.sql'), 'SELECT 1;\n');
  await fs.symlink(secret, path.join(dir, 'shop-20261203.sql'));
  await fs.symlink('shop-20261201.sql', path.join(dir, 'latest.sql')); // inside: followed
  const driver = new LocalStorageDriver({ path: dir });
  const entries = await collect(driver.list());
  const link = entries.find((e) => e.key === 'shop-20261203.sql');
  t.match(link?.unsafe, /a link to .*evidence-key\.pem, outside the source folder/);
  t.equal(link?.size, secret.length, "the link's own size: nothing about the target is learnt");
  t.equal(entries.find((e) => e.key === 'latest.sql')?.unsafe, undefined, 'a link inside the folder is a backup like any other');
  t.equal((await readAll(await driver.open(entries.find((e) => e.key === 'latest.sql')!))).toString(), 'SELECT 1;\n');

  const opened = await verificationErrorOf(driver.open(link!));
  t.equal(opened.reason, 'unsafe_source');
  t.notMatch(opened.message, SECRET);
  t.equal((await verificationErrorOf(driver.details(link!))).reason, 'unsafe_source');
});

t.test('a file swapped for a link between listing and reading is refused at open', async (t) => {
  const secret = await hostSecret(t);
  const dir = await backupFolder(t);
  const file = path.join(dir, 'shop.sql');
  await fs.writeFile(file, 'SELECT 1;\n');
  const driver = new LocalStorageDriver({ path: dir });
  const [entry] = await collect(driver.list());
  t.equal(entry?.unsafe, undefined);
  await fs.rm(file);
  await fs.symlink(secret, file);
  const err = await verificationErrorOf(driver.open(entry!));
  t.equal(err.reason, 'unsafe_source');
  t.match(err.message, /outside the source folder/);
});

t.test('a sub-folder swapped for a link out of the folder is refused (recursive listing)', async (t) => {
  const secret = await hostSecret(t);
  const dir = await backupFolder(t);
  await fs.mkdir(path.join(dir, 'daily'));
  await fs.writeFile(path.join(dir, 'daily', 'evidence-key.pem'), 'a backup\n');
  const driver = new LocalStorageDriver({ path: dir, recursive: true });
  const [entry] = await collect(driver.list());
  t.equal(entry?.key, 'daily/evidence-key.pem');
  await fs.rm(path.join(dir, 'daily'), { recursive: true });
  await fs.symlink(path.dirname(secret), path.join(dir, 'daily'));
  t.same(await collect(driver.list()), [], 'a linked folder is not walked');
  t.equal((await verificationErrorOf(driver.open(entry!))).reason, 'unsafe_source', 'and not read through either');
});

t.test('a sidecar or SHA256SUMS that leads out of the folder fails the run instead of being read', async (t) => {
  const secret = await hostSecret(t);
  const dir = await backupFolder(t);
  await fs.writeFile(path.join(dir, 'shop.sql'), 'SELECT 1;\n');
  await fs.symlink(secret, path.join(dir, 'shop.sql.sha256'));
  const driver = new LocalStorageDriver({ path: dir });
  const entry = (await collect(driver.list())).find((e) => e.key === 'shop.sql')!;
  const err = await verificationErrorOf(driver.details(entry));
  t.equal(err.reason, 'unsafe_source');
  t.notMatch(err.message, SECRET);

  const other = await backupFolder(t);
  await fs.writeFile(path.join(other, 'shop.sql'), 'SELECT 1;\n');
  await fs.symlink(secret, path.join(other, 'SHA256SUMS'));
  const sums = new LocalStorageDriver({ path: other });
  t.equal((await verificationErrorOf(sums.details((await collect(sums.list())).find((e) => e.key === 'shop.sql')!))).reason, 'unsafe_source');
});

t.test('a FIFO never hangs the listing or the read', async (t) => {
  const dir = await backupFolder(t);
  await promisify(execFile)('mkfifo', [path.join(dir, 'shop.sql')]);
  await fs.symlink('shop.sql', path.join(dir, 'shop-link.sql'));
  const driver = new LocalStorageDriver({ path: dir });
  t.same(await collect(driver.list()), [], 'a FIFO is not a backup, nor a link to one');
  const forged: BackupEntry = { key: 'shop.sql', size: 10, modifiedAt: new Date() };
  const err = await verificationErrorOf(driver.open(forged));
  t.equal(err.reason, 'unsafe_source');
  t.match(err.message, /not a regular file/);
});

t.test('a run whose newest backup links to a host file fails unsafe_source and records none of its bytes', async (t) => {
  const secret = await hostSecret(t);
  const dir = await backupFolder(t);
  const old = path.join(dir, 'shop-20261201.sql');
  await fs.writeFile(old, '-- PostgreSQL database dump\nSELECT 1;\n');
  await fs.utimes(old, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
  await fs.symlink(secret, path.join(dir, 'shop-20261203.sql'));
  const linkTime = new Date(Date.now() - 60_000);
  await fs.lutimes(path.join(dir, 'shop-20261203.sql'), linkTime, linkTime);
  const { store, dataDir } = await openEmbeddedStore();
  t.teardown(async () => {
    await store.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  });
  const run = await verify(policyFromYaml({ folder: dir, glob: 'shop-*.sql' }), store);
  t.equal(run.verdict, 'fail');
  t.same(run.reasons.map((r) => r.code), ['unsafe_source']);
  t.match(run.reasons[0]?.message, /shop-20261203\.sql is a link to .*outside the source folder/);
  t.equal(run.phases.find((p) => p.name === 'select')?.outcome, 'fail');
  t.equal(run.sandbox, null, 'no sandbox was started');
  const recorded = await store.get(run.id);
  t.equal(recorded?.verdict, 'fail', 'recorded');
  t.notMatch(JSON.stringify(recorded), SECRET, 'none of the host file is in the evidence');
});
