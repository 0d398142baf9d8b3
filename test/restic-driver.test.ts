import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { promisify } from 'node:util';
import t from 'tap';
import { ResticStorageDriver, type ResticDriverOptions } from '../drivers/restic/restic-storage-driver.js';
import type { BackupEntry } from '../drivers/storage-driver.js';
import { VerificationError } from '../orchestrator/core/errors.js';
import { readAll } from './helpers/bytes.js';
import { sha256 } from './helpers/bytes.js';

/**
 * The restic driver against the real restic binary and real local repositories. One repository
 * holds three snapshots with fixed times (TZ=UTC), made once for the whole file:
 * - A 2026-11-25 02:00 host db1, tags daily,db: shop.dump of 100 kB
 * - B 2026-11-26 02:00 host db1, tags daily,db: shop.dump of 20 MB
 * - C 2026-11-27 02:00 host db2, no tags: no shop.dump at all
 */

const exec = promisify(execFile);
type Tap = Pick<typeof t, 'ok' | 'equal' | 'match' | 'notMatch'>;

const PASSWORD = 'correct-horse-battery-staple';
const ORIGIN = 'source.password of policy shop (${env:RESTIC_PW})';
const BIG = 20 * 1024 * 1024;
const SMALL = 100_000;

const root = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-restic-'));
t.teardown(() => fs.rm(root, { recursive: true, force: true }));
const repo = path.join(root, 'repo');
const src = path.join(root, 'src');
const file = path.join(src, 'var', 'backups', 'shop.dump');

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { TZ: 'UTC' };
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RESTIC_')) env[k] = v;
  return { ...env, ...extra };
}

async function restic(repository: string, args: string[]): Promise<string> {
  const env = cleanEnv({ RESTIC_REPOSITORY: repository, RESTIC_PASSWORD: PASSWORD });
  const { stdout } = await exec('restic', ['--no-cache', ...args], { env, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

async function backup(time: string, host: string, tags: string[]): Promise<void> {
  await restic(repo, ['backup', '--quiet', '--time', time, '--host', host, ...tags.flatMap((tag) => ['--tag', tag]), src]);
}


await restic(repo, ['init']);
await fs.mkdir(path.dirname(file), { recursive: true });
await fs.writeFile(path.join(src, 'var', 'backups', 'other.txt'), 'not the backup\n');
await fs.writeFile(file, randomBytes(SMALL));
await backup('2026-11-25 02:00:00', 'db1', ['daily', 'db']);
const bigBytes = randomBytes(BIG);
const bigSha = sha256(bigBytes);
await fs.writeFile(file, bigBytes);
await fs.utimes(file, new Date('2026-11-26T01:30:00Z'), new Date('2026-11-26T01:30:00Z'));
await backup('2026-11-26 02:00:00', 'db1', ['daily', 'db']);
await fs.rm(file);
await backup('2026-11-27 02:00:00', 'db2', []);

interface Snap {
  id: string;
  short_id: string;
  time: string;
}
const snaps = (JSON.parse(await restic(repo, ['snapshots', '--json'])) as Snap[]).sort((a, b) => a.time.localeCompare(b.time));
const [A, B, C] = snaps as [Snap, Snap, Snap];

const drivers: ResticStorageDriver[] = [];
t.teardown(() => Promise.all(drivers.map((d) => d.close())));
function driver(extra: Partial<ResticDriverOptions> = {}): ResticStorageDriver {
  const d = new ResticStorageDriver({ repository: repo, password: PASSWORD, passwordOrigin: ORIGIN, file, env: cleanEnv({}), ...extra });
  drivers.push(d);
  return d;
}

async function collect(d: ResticStorageDriver, signal?: AbortSignal): Promise<BackupEntry[]> {
  const out: BackupEntry[] = [];
  for await (const e of d.list(signal)) out.push(e);
  return out;
}


async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
}

function isVerificationError(tt: Tap, err: unknown, reason: string, message: RegExp): void {
  tt.ok(err instanceof VerificationError, `a VerificationError, got ${String(err)}`);
  tt.equal((err as VerificationError).reason, reason);
  tt.match((err as Error).message, message);
  tt.notMatch((err as Error).message, PASSWORD, 'the password is never in a message');
}

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as { code?: string }).code === 'ESRCH';
  }
}

const entryB = (): BackupEntry => ({ key: `${B.short_id}${file}`, size: BIG, modifiedAt: new Date(B.time), version: B.id });

t.test('list yields one entry per snapshot, with the file size; host and tag filters apply', async (tt) => {
  const all = await collect(driver());
  tt.same(
    all.map((e) => ({ key: e.key, size: e.size, version: e.version, takenAt: e.takenAt?.toISOString(), modifiedAt: e.modifiedAt.toISOString() })),
    [
      { key: `${A.short_id}${file}`, size: SMALL, version: A.id, takenAt: '2026-11-25T02:00:00.000Z', modifiedAt: '2026-11-25T02:00:00.000Z' },
      { key: `${B.short_id}${file}`, size: BIG, version: B.id, takenAt: '2026-11-26T02:00:00.000Z', modifiedAt: '2026-11-26T02:00:00.000Z' },
      { key: `${C.short_id}${file}`, size: 0, version: C.id, takenAt: '2026-11-27T02:00:00.000Z', modifiedAt: '2026-11-27T02:00:00.000Z' },
    ],
  );
  tt.match(A.id, /^[0-9a-f]{64}$/);
  const versions = async (extra: Partial<ResticDriverOptions>): Promise<string[]> => (await collect(driver(extra))).map((e) => e.version ?? '');
  tt.same(await versions({ host: 'db1' }), [A.id, B.id], 'host db1');
  tt.same(await versions({ host: 'db2' }), [C.id], 'host db2');
  tt.same(await versions({ tags: ['db'] }), [A.id, B.id], 'tag db');
  tt.same(await versions({ tags: ['daily', 'db'] }), [A.id, B.id], 'all of daily,db');
  tt.same(await versions({ tags: ['db', 'weekly'] }), [], 'all tags must match');
  tt.same(await versions({ host: 'db1', paths: [src] }), [A.id, B.id], 'path');
  tt.same(await versions({ paths: ['/elsewhere'] }), [], 'another path');
  tt.equal(driver().location, `restic repository ${repo}, file ${file}`);
});

t.test('a snapshot without the file is listed with size 0 and a note', async (tt) => {
  const c = (await collect(driver({ host: 'db2' })))[0];
  tt.equal(c?.size, 0);
  tt.equal(c?.note, `snapshot ${C.short_id} does not contain ${file}`);
  const b = (await collect(driver())).find((e) => e.version === B.id);
  tt.equal(b?.note, undefined);
});

t.test('open streams exactly the bytes of the file in the snapshot', async (tt) => {
  const d = driver();
  const bytes = await readAll(await d.open(entryB()));
  tt.equal(bytes.length, BIG);
  tt.equal(sha256(bytes), bigSha);
  tt.same(d.childPids, [], 'restic has exited');
});

t.test('details carries the snapshot facts', async (tt) => {
  const d = driver();
  const entries = await collect(d);
  const b = entries.find((e) => e.version === B.id)!;
  const details = await d.details(b);
  tt.same(details.checksums, []);
  tt.same(details.unverifiable, []);
  tt.match(details.facts.restic, /^restic 0\.\d+\.\d+/);
  const { restic: _version, ...facts } = details.facts;
  tt.same(facts, {
    snapshot: B.id,
    snapshotTime: '2026-11-26T02:00:00.000Z',
    host: 'db1',
    paths: src,
    tags: 'daily,db',
    fileModifiedAt: '2026-11-26T01:30:00.000Z',
  });
  const c = (await d.details(entries.find((e) => e.version === C.id)!)).facts;
  tt.equal(c.host, 'db2');
  tt.equal(c.tags, undefined, 'no tags, no fact');
  tt.equal(c.fileModifiedAt, undefined, 'no file, no mtime');
  // A driver that did not list asks restic about the one snapshot.
  const fresh = (await driver().details(entryB())).facts;
  tt.equal(fresh.fileModifiedAt, '2026-11-26T01:30:00.000Z');
  tt.equal(fresh.tags, 'daily,db');
});

t.test('a wrong password is source_denied and names where the password came from', async (tt) => {
  const d = driver({ password: 'not-the-password-42' });
  const err = await rejection(collect(d));
  isVerificationError(tt, err, 'source_denied', /wrong password or no key found/);
  tt.ok((err as Error).message.includes(ORIGIN), 'names the password origin');
  tt.ok((err as Error).message.includes(repo), 'names the repository');
  tt.notMatch((err as Error).message, 'not-the-password-42');
  const streamErr = await rejection(readAll(await d.open(entryB())));
  isVerificationError(tt, streamErr, 'source_denied', /rejected the password/);
});

t.test('a repository that does not exist is source_unreachable', async (tt) => {
  const missing = path.join(root, 'no-such-repo');
  const err = await rejection(collect(driver({ repository: missing })));
  isVerificationError(tt, err, 'source_unreachable', new RegExp(`no restic repository at ${missing}`));
});

t.test('a missing restic binary is source_unreachable with an install hint', async (tt) => {
  const d = driver({ binary: '/nonexistent/restic' });
  isVerificationError(tt, await rejection(collect(d)), 'source_unreachable', /restic is not installed or not on PATH.*apt-get install restic/);
  isVerificationError(tt, await rejection(d.open(entryB())), 'source_unreachable', /apt-get install restic/);
});

t.test('RESTIC_* variables of the base environment are ignored', async (tt) => {
  const env = cleanEnv({ RESTIC_REPOSITORY: '/nonexistent', RESTIC_PASSWORD_COMMAND: 'false', RESTIC_PASSWORD: 'wrong' });
  tt.equal((await collect(driver({ env }))).length, 3);
});

t.test('the password of a repository URL is not in the location', async (tt) => {
  const d = new ResticStorageDriver({ repository: 'rest:https://backup:s3cr3t@rest.example:8000/shop', password: PASSWORD, passwordOrigin: ORIGIN, file: '/var/backups/shop.dump' });
  tt.equal(d.location, 'restic repository rest:https://backup@rest.example:8000/shop, file /var/backups/shop.dump');
  tt.equal(d.check, undefined, 'no check without a subset');
  tt.equal(driver({ checkSubset: false }).check, undefined, 'no check with checkSubset: false');
});

t.test('check on a sound repository finds no problems', async (tt) => {
  const d = driver({ checkSubset: '5%' });
  const result = await d.check!(entryB());
  tt.same(result, { what: 'restic check --read-data-subset=5%', problems: [], summary: 'no errors were found' });
});

t.test('a damaged pack: check reports it and the dump fails with repository_damaged', async (tt) => {
  const damaged = path.join(root, 'damaged');
  await fs.cp(repo, damaged, { recursive: true });
  // The biggest pack holds data blobs of the 20 MB file (trees go to packs of their own).
  const packs: Array<{ file: string; size: number }> = [];
  for (const dir of await fs.readdir(path.join(damaged, 'data'))) {
    for (const name of await fs.readdir(path.join(damaged, 'data', dir))) {
      const p = path.join(damaged, 'data', dir, name);
      packs.push({ file: p, size: (await fs.stat(p)).size });
    }
  }
  const biggest = packs.sort((a, b) => b.size - a.size)[0]!;
  tt.ok(biggest.size > 1024 * 1024, 'a data pack');
  await fs.chmod(biggest.file, 0o600);
  const fh = await fs.open(biggest.file, 'r+');
  await fh.write(Buffer.alloc(64, 0xa5), 0, 64, Math.floor(biggest.size / 2));
  await fh.close();

  const d = driver({ repository: damaged, checkSubset: '100%' });
  const result = await d.check!(entryB());
  tt.equal(result.what, 'restic check --read-data-subset=100%');
  tt.ok(result.problems.length > 0, 'problems found');
  tt.match(result.problems.join('\n'), /Pack ID does not match/);
  tt.equal(result.summary, 'repository contains errors');

  const err = await rejection(readAll(await d.open(entryB())));
  isVerificationError(tt, err, 'repository_damaged', /is damaged.*ciphertext verification failed/);
  tt.same(d.childPids, []);
});

t.test('close() stops a running dump', async (tt) => {
  const d = driver();
  const stream = await d.open(entryB());
  await new Promise((resolve) => stream.once('readable', resolve));
  tt.ok((stream.read() as Buffer | null)?.length, 'read one chunk');
  const pids = d.childPids;
  tt.equal(pids.length, 1, 'restic dump is running, held by backpressure');
  const ended = finished(stream).then(
    () => 'ended',
    (e: unknown) => e,
  );
  await d.close();
  const outcome = await ended;
  tt.ok(outcome instanceof VerificationError && outcome.reason === 'cancelled', 'the stream errors as cancelled');
  tt.ok(processGone(pids[0]!), `restic (pid ${pids[0]}) is gone`);
  tt.same(d.childPids, []);
  await d.close(); // idempotent
  isVerificationError(tt, await rejection(collect(d)), 'cancelled', /closed/);
});

t.test('an abort kills restic and rejects with the abort reason', async (tt) => {
  const d = driver();
  const ac = new AbortController();
  const stream = await d.open(entryB(), ac.signal);
  await new Promise((resolve) => stream.once('readable', resolve));
  const [pid] = d.childPids;
  const reason = new Error('stop now');
  ac.abort(reason);
  tt.equal(await rejection(finished(stream)), reason);
  await new Promise((resolve) => setTimeout(resolve, 200));
  tt.ok(pid !== undefined && processGone(pid), 'restic dump is gone');

  const listing = new AbortController();
  const p = rejection(collect(d, listing.signal));
  setTimeout(() => listing.abort(new Error('listing stopped')), 50);
  tt.match(await p, { message: 'listing stopped' });
  await new Promise((resolve) => setTimeout(resolve, 200));
  tt.same(d.childPids, [], 'no restic left');
});
