import { execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { collect, verificationErrorOf } from './helpers/outcomes.js';
import { BorgStorageDriver, type BorgDriverOptions } from '../drivers/borg/borg-storage-driver.js';
import type { BackupEntry } from '../drivers/storage-driver.js';
import { craftTar } from './helpers/archive-fixtures.js';
import { readAll, seededBytes, sha256 } from './helpers/bytes.js';
import { codes, leftoversOf, openEmbeddedStore, policyFromYaml, tempDir, verify } from './helpers/harness.js';

// The borg driver against real repositories made by borg 1.2 (Debian's borgbackup): archives as
// backups, the file streamed by borg extract, borg check in the storage_check phase, and each
// failure (damage, wrong passphrase, a lock held by a running backup) with its own reason.

const run = promisify(execFile);
const PASSPHRASE = 'borg-test-passphrase-7f3a';
const FILE = 'var/backups/shop.dump';

interface Repo {
  dir: string;
  repo: string;
  env: NodeJS.ProcessEnv;
  /** Makes archive `name` holding `data` as var/backups/shop.dump (or without it), taken at `at`. */
  archive(name: string, at: Date, data?: Buffer): Promise<void>;
  driver(extra?: Partial<BorgDriverOptions>): BorgStorageDriver;
}

async function makeRepo(encryption = 'repokey-blake2'): Promise<Repo> {
  const dir = await tempDir('borg');
  const repo = path.join(dir, 'repo');
  const env = { ...process.env, BORG_PASSPHRASE: PASSPHRASE, BORG_BASE_DIR: path.join(dir, 'home'), TZ: 'UTC' };
  await run('borg', ['init', '--encryption', encryption, repo], { env });
  const drivers: BorgStorageDriver[] = [];
  t.teardown(async () => {
    await Promise.all(drivers.map((d) => d.close()));
    await fs.rm(dir, { recursive: true, force: true });
  });
  return {
    dir,
    repo,
    env,
    async archive(name, at, data) {
      const src = path.join(dir, `src-${name}`);
      await fs.mkdir(path.join(src, 'var', 'backups'), { recursive: true });
      if (data) await fs.writeFile(path.join(src, FILE), data);
      else await fs.writeFile(path.join(src, 'var', 'backups', 'other.txt'), 'not the dump\n');
      await run('borg', ['create', '--timestamp', at.toISOString().slice(0, 19), `${repo}::${name}`, 'var'], { env, cwd: src });
    },
    driver(extra = {}) {
      const d = new BorgStorageDriver({ repository: repo, passphrase: encryption === 'none' ? undefined : PASSPHRASE, passphraseOrigin: 'test', file: FILE, lockWaitSeconds: 1, ...extra });
      drivers.push(d);
      return d;
    },
  };
}

const listAll = (d: BorgStorageDriver): Promise<BackupEntry[]> => collect(d.list());
const failureOf = verificationErrorOf;

const day = (n: number): Date => new Date(Date.UTC(2026, 10, 20 + n, 2, 0, 0));

t.test('list: one entry per archive, newest first, with size and time; an archive without the file has a note; --glob-archives applies', async (t) => {
  const r = await makeRepo();
  await r.archive('db1-a', day(1), seededBytes(1000, 'a'));
  await r.archive('db1-b', day(2));
  await r.archive('db2-c', day(3), seededBytes(3000, 'c'));
  const all = await listAll(r.driver());
  t.same(all.map((e) => [e.key, e.size, e.takenAt?.toISOString()]), [
    [`db2-c/${FILE}`, 3000, day(3).toISOString()],
    [`db1-b/${FILE}`, 0, day(2).toISOString()],
    [`db1-a/${FILE}`, 1000, day(1).toISOString()],
  ]);
  t.match(all[1]?.note, /archive db1-b does not contain var\/backups\/shop\.dump/);
  const db1 = await listAll(r.driver({ archives: 'db1-*' }));
  t.same(db1.map((e) => e.key.split('/')[0]), ['db1-b', 'db1-a']);
  const slash = await listAll(r.driver({ file: `/${FILE}` }));
  t.equal(slash[0]?.size, 3000, 'a leading "/" in file is borg\'s path all the same');
});

t.test('open streams exactly the file; details carry the archive facts', async (t) => {
  const r = await makeRepo();
  const data = seededBytes(3 * 1024 * 1024 + 5, 'open');
  await r.archive('db1-a', day(1), data);
  const d = r.driver();
  const [entry] = await listAll(d);
  t.equal(sha256(await readAll(await d.open(entry!))), sha256(data));
  const details = await d.details(entry!);
  t.same(details.checksums, [], 'borg hashes every chunk; no whole-file checksum');
  t.equal(details.facts.archive, 'db1-a');
  t.equal(details.facts.archiveTime, day(1).toISOString());
  t.match(details.facts.borg, /^borg 1\./);
  t.match(details.facts.archiveId, /^[0-9a-f]{64}$/);
});

t.test('an unencrypted repository is read without a passphrase', async (t) => {
  const r = await makeRepo('none');
  await r.archive('db1-a', day(1), seededBytes(500, 'plain'));
  const d = r.driver();
  const [entry] = await listAll(d);
  t.equal((await readAll(await d.open(entry!))).length, 500);
});

t.test('a wrong passphrase, or none for an encrypted repository: source_denied, naming where it came from, never the passphrase', async (t) => {
  const r = await makeRepo();
  await r.archive('db1-a', day(1), seededBytes(100, 'x'));
  const wrong = await failureOf(listAll(r.driver({ passphrase: 'wrong-passphrase-c0ffee', passphraseOrigin: 'source.passphrase (${env:BORG_PW})' })));
  t.equal(wrong.reason, 'source_denied');
  t.match(wrong.message, /rejected the passphrase from source\.passphrase \(\$\{env:BORG_PW\}\)/);
  t.notMatch(wrong.message, /wrong-passphrase-c0ffee/);
  const none = await failureOf(listAll(r.driver({ passphrase: undefined })));
  t.equal(none.reason, 'source_denied');
});

t.test('no repository at the path: source_unreachable; BORG_* of the environment are ignored', async (t) => {
  const r = await makeRepo();
  await r.archive('db1-a', day(1), seededBytes(100, 'y'));
  const gone = await failureOf(listAll(r.driver({ repository: path.join(r.dir, 'gone') })));
  t.equal(gone.reason, 'source_unreachable');
  t.match(gone.message, /there is no borg repository at/);
  const stray = await listAll(r.driver({ env: { ...process.env, BORG_PASSPHRASE: 'stray', BORG_REPO: '/nowhere', BORG_PASSCOMMAND: 'false' } }));
  t.equal(stray.length, 1);
});

t.test('a lock held by a running backup: source_throttled saying so, after the lock wait', async (t) => {
  const r = await makeRepo();
  await r.archive('db1-a', day(1), seededBytes(100, 'z'));
  // borg with-lock holds the repository's exclusive lock while its command runs, as borg create does.
  const holder = spawn('borg', ['with-lock', r.repo, 'sleep', '60'], { env: r.env, stdio: 'ignore' });
  t.teardown(() => {
    if (holder.exitCode === null) holder.kill('SIGTERM');
  });
  const lockFile = path.join(r.repo, 'lock.exclusive');
  for (let i = 0; i < 100 && !(await fs.stat(lockFile).then(() => true, () => false)); i++) await new Promise((res) => setTimeout(res, 100));
  const locked = await failureOf(listAll(r.driver()));
  t.equal(locked.reason, 'source_throttled');
  t.match(locked.message, /is locked .*a backup, prune or check holds it/);
  holder.kill('SIGTERM');
  await new Promise((res) => holder.once('exit', res));
});

t.test('a damaged segment: extract fails and check finds it, both repository_damaged / problems', async (t) => {
  const r = await makeRepo('none');
  // Incompressible data: the largest segment file holds its chunks, the manifest sits apart.
  await r.archive('db1-a', day(1), seededBytes(2 * 1024 * 1024, 'damage'));
  const segments = path.join(r.repo, 'data', '0');
  const files = await Promise.all((await fs.readdir(segments)).map(async (f) => ({ f, size: (await fs.stat(path.join(segments, f))).size })));
  const largest = files.sort((a, b) => b.size - a.size)[0]!;
  const fd = await fs.open(path.join(segments, largest.f), 'r+');
  await fd.write(Buffer.alloc(64, 0xff), 0, 64, Math.floor(largest.size / 2));
  await fd.close();
  const d = r.driver({ check: 'repository' });
  const [entry] = await listAll(d);
  const check = await d.check!(entry!);
  t.equal(check.what, 'borg check --repository-only');
  t.ok(check.problems.length > 0, `check reports problems: ${check.problems.join(' / ')}`);
  t.notOk(check.problems.some((p) => /Traceback|File "/.test(p)), 'no Python traceback in the problems');
  const read = await failureOf(readAll(await d.open(entry!)));
  t.equal(read.reason, 'repository_damaged');
  t.match(read.message, /is damaged: borg extract/);
});

t.test('check of a sound archive finds nothing; a missing binary says how to install borg', async (t) => {
  const r = await makeRepo();
  await r.archive('db1-a', day(1), seededBytes(100, 'sound'));
  const d = r.driver({ check: 'archive' });
  const [entry] = await listAll(d);
  t.same(await d.check!(entry!), { what: 'borg check --archives-only ::db1-a', problems: [], summary: 'no problems found' });
  const missing = await failureOf(listAll(r.driver({ binary: path.join(r.dir, 'no-borg') })));
  t.match(missing.message, /apt-get install borgbackup/);
});

t.test('close() stops a running extract, and nothing of borg is left', async (t) => {
  const r = await makeRepo('none');
  await r.archive('db1-a', day(1), seededBytes(8 * 1024 * 1024, 'big'));
  const d = r.driver();
  const [entry] = await listAll(d);
  const stream = await d.open(entry!);
  stream.pause();
  const ended = new Promise<Error>((resolve) => stream.once('error', resolve));
  t.ok(d.childPids.length > 0, 'borg extract runs');
  await d.close();
  t.same(d.childPids, [], 'no borg left');
  t.match((await ended).message, /was stopped \(the driver was closed\)/, 'the reader learns why');
});

t.test('a policy with driver borg: the newest archive restores and passes, with the check in the evidence', async (t) => {
  const { store } = await openEmbeddedStore();
  t.teardown(() => store.close());
  const r = await makeRepo();
  const tarFile = path.join(await tempDir('borg-tar'), 'share.tar');
  await craftTar(tarFile, [{ name: 'share/readme.txt', data: 'borg end to end\n'.repeat(50) }]);
  await r.archive('share-1', new Date(Date.now() - 3_600_000), await fs.readFile(tarFile));
  const folder = await tempDir('borg-policy');
  const policy = policyFromYaml({
    folder,
    kind: 'files',
    env: { BORG_PW: PASSPHRASE },
    source: `          driver: borg
          repository: ${JSON.stringify(r.repo)}
          passphrase: \${env:BORG_PW}
          file: /${FILE}
          check: archive
          select: { glob: "*.dump", timestamp: metadata, settle: 0s }`,
    probes: '          []',
  });
  const result = await verify(policy, store);
  t.equal(result.verdict, 'pass', JSON.stringify(result.reasons));
  t.same(codes(result), []);
  t.equal(result.backup?.provider?.archive, 'share-1');
  t.equal(result.phases.find((p) => p.name === 'storage_check')?.outcome, 'ok');
  t.notMatch(JSON.stringify(result), new RegExp(PASSPHRASE), 'the passphrase is in no record');
  t.equal(await leftoversOf(result.id), 0);
});
