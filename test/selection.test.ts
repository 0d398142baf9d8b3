import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { LocalStorageDriver } from '../drivers/local/local-storage-driver.js';
import { parseChecksumFile } from '../drivers/sidecars.js';
import { nameMatcher, selectNewest, timestampFromName, zonedToUtc } from '../drivers/selection.js';
import type { BackupEntry, ExpectedChecksum, StorageDriver } from '../drivers/storage-driver.js';
import type { SelectorConfig, TimestampFromName } from '../orchestrator/core/config-types.js';
import { VerificationError } from '../orchestrator/core/errors.js';
import { sha256 as sha } from './helpers/bytes.js';

const run = promisify(execFile);
type Tap = Pick<typeof t, 'ok' | 'equal' | 'match' | 'teardown'>;
const NOW = new Date('2026-12-01T12:00:00Z');
const iso = (d: Date | undefined): string | undefined => d?.toISOString();
const byName = (extra: Partial<TimestampFromName> = {}): TimestampFromName => ({ from: 'name', timezone: 'UTC', ...extra });
const select = (extra: Partial<SelectorConfig> = {}): SelectorConfig => ({ glob: '*', timestamp: { from: 'mtime' }, settleMs: 0, ...extra });
const entry = (key: string, modified: string, size = 100): BackupEntry => ({ key, size, modifiedAt: new Date(modified) });

async function* listOf(entries: BackupEntry[]): AsyncIterable<BackupEntry> {
  yield* entries;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** A fresh folder for one test, removed afterwards. */
async function checksumOf(driver: StorageDriver, e: BackupEntry): Promise<ExpectedChecksum | undefined> {
  return (await driver.details(e)).checksums[0];
}

async function tempDir(tt: Tap): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-select-'));
  tt.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

async function put(dir: string, rel: string, modified: string, content: string | Buffer = `backup ${rel}`): Promise<string> {
  const file = path.join(dir, rel);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, content);
  const when = new Date(modified);
  await fs.utimes(file, when, when);
  return file;
}

async function rejectsWith(tt: Tap, p: Promise<unknown>, reason: string, message: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  tt.ok(err instanceof VerificationError, `a VerificationError (${reason})`);
  tt.equal((err as VerificationError).reason, reason);
  tt.match((err as Error).message, message);
}

t.test('timestampFromName reads the naming conventions found in the wild (UTC)', async (t) => {
  const cases: [string, string | undefined][] = [
    ['db_2026-11-27_02-30-00.sql.gz', '2026-11-27T02:30:00.000Z'],
    ['shop-20261127T023000Z.dump', '2026-11-27T02:30:00.000Z'],
    ['shop-2026-11-27T02:30:00.123Z.dump', '2026-11-27T02:30:00.000Z'],
    ['pgdump-20261127-0230.custom', '2026-11-27T02:30:00.000Z'],
    ['backup.2026-11-27.tar', '2026-11-27T00:00:00.000Z'],
    ['mydb_2026_11_27_02_30_00.sql', '2026-11-27T02:30:00.000Z'],
    ['shop.2026.11.27.dump', '2026-11-27T00:00:00.000Z'],
    ['shop 2026-11-27 02:30.sql', '2026-11-27T02:30:00.000Z'],
    ['dump-20261127023000.sql', '2026-11-27T02:30:00.000Z'],
    ['nightly-2026-11-27T02:30:00+01:00.dump', '2026-11-27T01:30:00.000Z'],
    ['nightly-20261127T023000-0500.dump', '2026-11-27T07:30:00.000Z'],
    ['prod_1764210600.dump', '2025-11-27T02:30:00.000Z'],
    ['prod_1795746600123.dump', '2026-11-27T02:30:00.000Z'], // epoch milliseconds
    ['daily/2025-01-01/shop-2026-11-27.dump', '2026-11-27T00:00:00.000Z'], // only the file name counts
    // Digits before the date that are not a date: a version, a release number, a pg major.
    ['app-v2-20261127.dump', '2026-11-27T00:00:00.000Z'],
    ['app-1234-20261127.dump', '2026-11-27T00:00:00.000Z'],
    ['app-v2.3.1-2026-11-27_0230.dump', '2026-11-27T02:30:00.000Z'],
    ['pg15-shop-20261127-0230.dump', '2026-11-27T02:30:00.000Z'],
    ['build-17120101-20261127.dump', '2026-11-27T00:00:00.000Z'], // year 1712 is no backup's date
    // Digits after the time are a sequence number or pid, not a -48:21 UTC offset.
    ['db_2026-11-27_02-30-00-4821.dump', '2026-11-27T02:30:00.000Z'],
    // Two dates: the first one wins (a pattern picks the other, below).
    ['shop_2026-11-27_since_2026-11-20.dump', '2026-11-27T00:00:00.000Z'],
    // No date at all.
    ['db-2026-11-31.dump', undefined], // no 31 November
    ['app-v10.2.3.dump', undefined],
    ['base_000000010000000000000002', undefined], // a WAL segment-like name
    ['shop-latest.dump', undefined],
    ['shop-123456789.dump', undefined],
  ];
  for (const [name, want] of cases) t.equal(iso(timestampFromName(name, byName())), want, name);
});

t.test('an explicit format reads day-first and other layouts, skipping digits that are not a date', async (t) => {
  const at = (name: string, format: string, timezone = 'UTC'): string | undefined => iso(timestampFromName(name, byName({ format, timezone })));
  t.equal(at('shop_27.11.2026_0230.dump', 'DD.MM.YYYY_HHmm'), '2026-11-27T02:30:00.000Z');
  t.equal(at('app-12345678-20261127.dump', 'YYYYMMDD'), '2026-11-27T00:00:00.000Z', 'the first 8 digits are no date; the next run is');
  t.equal(at('shop-27112026.dump', 'YYYYMMDD'), undefined, 'DDMMYYYY digits do not read as YYYYMMDD');
  t.equal(at('shop-20261127.dump', 'YYYY-MM-DD'), undefined, 'the separators of the format are required');
  t.equal(at('shop-2026-11-27-0230.dump', 'YYYY-MM-DD-HHmm', 'Europe/Berlin'), '2026-11-27T01:30:00.000Z');
});

t.test('wall-clock times in a zone become the right instant across DST changes', async (t) => {
  const berlin = (name: string): string | undefined => iso(timestampFromName(name, byName({ timezone: 'Europe/Berlin' })));
  const newYork = (name: string): string | undefined => iso(timestampFromName(name, byName({ timezone: 'America/New_York' })));
  t.equal(berlin('db_2026-03-29_01-30-00.dump'), '2026-03-29T00:30:00.000Z', 'CET, just before spring forward');
  t.equal(berlin('db_2026-03-29_03-30-00.dump'), '2026-03-29T01:30:00.000Z', 'CEST, just after');
  t.equal(berlin('db_2026-07-01_02-30-00.dump'), '2026-07-01T00:30:00.000Z', 'summer');
  t.equal(berlin('db_2026-10-25_01-30-00.dump'), '2026-10-24T23:30:00.000Z', 'CEST, before falling back');
  t.equal(berlin('db_2026-10-25_03-30-00.dump'), '2026-10-25T02:30:00.000Z', 'CET, after');
  t.match(berlin('db_2026-10-25_02-30-00.dump'), /^2026-10-25T0[01]:30:00\.000Z$/, 'the repeated hour is one of its two instants');
  t.match(berlin('db_2026-03-29_02-30-00.dump'), /^2026-03-29T0[01]:30:00\.000Z$/, 'a skipped wall time still lands in the gap');
  t.equal(berlin('shop-20261127T023000Z.dump'), '2026-11-27T02:30:00.000Z', 'an explicit Z beats the configured zone');
  t.equal(berlin('nightly-2026-07-01T02:30:00-04:00.dump'), '2026-07-01T06:30:00.000Z', 'so does an explicit offset');
  t.equal(newYork('db_2026-11-27_02-30-00.dump'), '2026-11-27T07:30:00.000Z', 'EST');
  t.equal(newYork('db_2026-07-04_02-30-00.dump'), '2026-07-04T06:30:00.000Z', 'EDT');
  t.equal(newYork('db_2026-03-08_03-30-00.dump'), '2026-03-08T07:30:00.000Z', 'EDT, right after spring forward');
  t.equal(newYork('db_2026-03-08_01-30-00.dump'), '2026-03-08T06:30:00.000Z', 'EST, right before');
  t.match(newYork('db_2026-11-01_01-30-00.dump'), /^2026-11-01T0[56]:30:00\.000Z$/, 'the repeated hour');
  t.equal(iso(zonedToUtc([2026, 3, 29, 3, 30, 0], 'Europe/Berlin')), '2026-03-29T01:30:00.000Z');
  t.equal(iso(zonedToUtc([2026, 11, 27, 2, 30, 0], 'UTC')), '2026-11-27T02:30:00.000Z');
  t.equal(iso(zonedToUtc([2026, 12, 31, 23, 30, 0], 'Asia/Kolkata')), '2026-12-31T18:00:00.000Z', 'a half-hour zone');
});

t.test('a pattern picks the part of the name that holds the time', async (t) => {
  const name = 'shop_2026-11-27_since_2026-11-20.dump';
  t.equal(iso(timestampFromName(name, byName({ pattern: 'since_(?<ts>[\\d-]+)' }))), '2026-11-20T00:00:00.000Z', 'named group ts');
  t.equal(iso(timestampFromName('x-1764210600-20261127.dump', byName({ pattern: '\\d{8}(?=\\.dump)' }))), '2026-11-27T00:00:00.000Z', 'the whole match without a ts group');
  t.equal(timestampFromName('shop-latest.dump', byName({ pattern: '(?<ts>\\d{8})' })), undefined, 'no match, no time');
  t.equal(
    iso(timestampFromName('shop-27-11-2026_0230.dump', byName({ pattern: 'shop-(?<ts>[\\d_-]+)', format: 'DD-MM-YYYY_HHmm', timezone: 'America/New_York' }))),
    '2026-11-27T07:30:00.000Z',
    'pattern, format and zone together',
  );
  const documented = byName({ pattern: 'shop-(?<ts>.+)\\.dump', format: 'YYYYMMDD-HHmmss', timezone: 'Europe/Berlin' });
  t.equal(iso(timestampFromName('daily/shop-20261127-023000.dump', documented)), '2026-11-27T01:30:00.000Z', 'the example config');
});

t.test('nameMatcher: globs and regexes on the file name, slashes on the whole key', async (t) => {
  const star = nameMatcher({ glob: '*.dump' });
  t.ok(star('shop.dump'));
  t.ok(star('daily/sub/shop.dump'), 'a glob without a slash matches in subfolders');
  t.notOk(star('shop.dump.gz'));
  t.notOk(nameMatcher({ glob: '*' })('.shop.dump'), 'dotfiles are not matched by *');
  const daily = nameMatcher({ glob: 'daily/*.dump' });
  t.ok(daily('daily/shop.dump'));
  t.notOk(daily('weekly/shop.dump'));
  t.notOk(daily('daily/sub/shop.dump'));
  t.notOk(daily('shop.dump'));
  t.ok(nameMatcher({ glob: 'shop-*.{dump,sql.gz}' })('shop-1.sql.gz'), 'braces');
  const re = nameMatcher({ regex: '^shop-.*\\.dump$' });
  t.ok(re('shop-20261127.dump'));
  t.ok(re('daily/shop-20261127.dump'), 'a regex without a slash is on the file name, like a glob');
  t.notOk(re('old-shop-20261127.dump'));
  t.notOk(re('shop-20261127.dump.sha256'));
  const slash = nameMatcher({ regex: '^daily/[^/]+\\.dump$' });
  t.ok(slash('daily/shop.dump'));
  t.notOk(slash('weekly/shop.dump'));
  t.ok(nameMatcher({})('anything.bin'), 'no filter: every name');
});

t.test('selectNewest never picks sidecars, partial uploads or dotfiles', async (t) => {
  const r = await selectNewest(
    listOf([
      entry('shop.dump', '2026-11-27T02:30:00Z'),
      entry('shop.dump.sha256', '2026-11-27T02:31:00Z'),
      entry('shop.dump.sha512', '2026-11-27T02:31:00Z'),
      entry('shop.dump.md5', '2026-11-27T02:31:00Z'),
      entry('shop.dump.sig', '2026-11-27T02:31:00Z'),
      entry('SHA256SUMS', '2026-11-27T02:32:00Z'),
      entry('sha256sums.txt', '2026-11-27T02:32:00Z'),
      entry('daily/MD5SUMS', '2026-11-27T02:32:00Z'),
      entry('shop2.dump.part', '2026-11-28T02:30:00Z'),
      entry('shop2.dump.tmp', '2026-11-28T02:30:00Z'),
      entry('shop2.dump.filepart', '2026-11-28T02:30:00Z'),
      entry('.shop2.dump.Xy12Ab', '2026-11-28T02:30:00Z'), // rsync's temporary name
      entry('daily/.hidden.dump', '2026-11-28T02:30:00Z'),
    ]),
    select(),
    NOW,
  );
  t.equal(r.picked?.entry.key, 'shop.dump');
  t.equal(r.seen, 13);
  t.equal(r.matched, 1);
  t.equal(r.explanation, 'picked shop.dump: newest by modification time of 1 candidates');
});

t.test('selectNewest: time from the name beats mtime; ties break on mtime, then name, in any order', async (t) => {
  const list = [
    entry('shop-2026-11-26.dump', '2026-11-28T00:00:00Z'), // copied late: newest mtime, older backup
    entry('shop-2026-11-27.dump', '2026-11-27T01:00:00Z'),
    entry('shop-latest.dump', '2026-11-29T00:00:00Z'), // no time in the name
  ];
  const byNameSel = select({ timestamp: byName() });
  const r = await selectNewest(listOf(list), byNameSel, NOW);
  t.equal(r.picked?.entry.key, 'shop-2026-11-27.dump');
  t.equal(r.picked?.timestampSource, 'name');
  t.equal(iso(r.picked?.backupTime), '2026-11-27T00:00:00.000Z');
  t.equal(r.withoutTimestamp, 1);
  t.equal(r.explanation, 'picked shop-2026-11-27.dump: newest by timestamp in name of 2 candidates');
  const m = await selectNewest(listOf(list), select(), NOW);
  t.equal(m.picked?.entry.key, 'shop-latest.dump', 'by mtime the newest file wins');
  t.equal(iso(m.picked?.backupTime), '2026-11-29T00:00:00.000Z');

  const tied = [entry('a-20261127.dump', '2026-11-27T03:00:00Z'), entry('b-20261127.dump', '2026-11-27T04:00:00Z'), entry('c-20261127.dump', '2026-11-27T03:00:00Z')];
  for (const order of [tied, [...tied].reverse()]) {
    t.equal((await selectNewest(listOf(order), byNameSel, NOW)).picked?.entry.key, 'b-20261127.dump', 'same name time: newer mtime');
  }
  const same = [entry('a.dump', '2026-11-27T03:00:00Z'), entry('b.dump', '2026-11-27T03:00:00Z')];
  for (const order of [same, [...same].reverse()]) {
    t.equal((await selectNewest(listOf(order), select(), NOW)).picked?.entry.key, 'b.dump', 'same mtime: the later name');
  }
});

t.test('selectNewest explains why nothing was picked', async (t) => {
  const list = [entry('a.sql', '2026-11-27T00:00:00Z'), entry('b.txt', '2026-11-27T00:00:00Z'), entry('shop.dump.sha256', '2026-11-27T00:00:00Z')];
  const none = await selectNewest(listOf(list), select({ glob: '*.dump' }), NOW);
  t.equal(none.picked, undefined);
  t.equal(none.explanation, 'no backup found: 3 files, none matches glob "*.dump"');
  t.equal((await selectNewest(listOf(list), select({ glob: undefined, regex: '^x$' }), NOW)).explanation, 'no backup found: 3 files, none matches regex /^x$/');
  t.equal((await selectNewest(listOf([]), select(), NOW)).explanation, 'no backup found: 0 files, none matches glob "*"');

  const mixed = [entry('shop-latest.dump', '2026-11-01T00:00:00Z'), entry('shop-20261201T115930Z.dump', '2026-12-01T11:59:30Z')];
  const r = await selectNewest(listOf(mixed), select({ glob: 'shop-*', timestamp: byName(), settleMs: 60_000 }), NOW);
  t.equal(r.picked, undefined);
  t.same([r.seen, r.matched, r.settling, r.withoutTimestamp], [2, 2, 1, 1]);
  t.equal(r.explanation, 'no backup found: 2 match glob "shop-*", 1 still being written (younger than the settle time), 1 without a timestamp in the name');
});

t.test('LocalStorageDriver lists folders lazily, recursively when asked, and selection works on the keys', async (t) => {
  const dir = await tempDir(t);
  await put(dir, 'top.dump', '2026-11-20T00:00:00Z');
  await put(dir, 'daily/shop-a.dump', '2026-11-26T00:00:00Z');
  await put(dir, 'daily/sub/shop-b.dump', '2026-11-27T00:00:00Z');
  await put(dir, 'weekly/shop-c.dump', '2026-11-25T00:00:00Z');
  await put(dir, 'daily/shop-d.dump.sha256', '2026-11-30T00:00:00Z');
  await fs.symlink(path.join(dir, 'daily'), path.join(dir, 'loop')); // a linked folder is not followed
  await fs.symlink(path.join(dir, 'top.dump'), path.join(dir, 'link.dump'));
  await fs.symlink(path.join(dir, 'gone.dump'), path.join(dir, 'dangling.dump'));

  const flat = new LocalStorageDriver({ path: dir });
  t.same((await collect(flat.list())).map((e) => e.key).sort(), ['link.dump', 'top.dump'], 'top level only; a file link is listed, a dangling one not');
  const deep = new LocalStorageDriver({ path: dir, recursive: true });
  const all = await collect(deep.list());
  t.same(all.map((e) => e.key).sort(), ['daily/shop-a.dump', 'daily/shop-d.dump.sha256', 'daily/sub/shop-b.dump', 'link.dump', 'top.dump', 'weekly/shop-c.dump']);
  const a = all.find((e) => e.key === 'daily/shop-a.dump');
  t.equal(a?.size, 'backup daily/shop-a.dump'.length);
  t.equal(iso(a?.modifiedAt), '2026-11-26T00:00:00.000Z');

  t.equal((await selectNewest(deep.list(), select({ glob: 'shop-*.dump' }), NOW)).picked?.entry.key, 'daily/sub/shop-b.dump');
  t.equal((await selectNewest(deep.list(), select({ glob: 'daily/*.dump' }), NOW)).picked?.entry.key, 'daily/shop-a.dump');
  t.equal((await selectNewest(deep.list(), select({ glob: undefined, regex: '^shop-[a-c]\\.dump$' }), NOW)).picked?.entry.key, 'daily/sub/shop-b.dump');

  const picked = (await selectNewest(deep.list(), select({ glob: '*.dump' }), NOW)).picked;
  t.ok(picked);
  if (picked) {
    const chunks: Buffer[] = [];
    for await (const c of await deep.open(picked.entry)) chunks.push(c as Buffer);
    t.equal(Buffer.concat(chunks).toString(), 'backup daily/sub/shop-b.dump', 'open reads the picked file');
  }
  await rejectsWith(t, deep.open(entry('../outside.dump', '2026-11-27T00:00:00Z')), 'source_unreachable', /leaves the source folder/);
  await deep.close();
});

t.test('settle time skips files still being written, by their real mtime', async (t) => {
  const dir = await tempDir(t);
  const now = new Date();
  await put(dir, 'shop-old.dump', new Date(now.getTime() - 3_600_000).toISOString());
  await put(dir, 'shop-new.dump', new Date(now.getTime() - 5_000).toISOString());
  const driver = new LocalStorageDriver({ path: dir });
  const r = await selectNewest(driver.list(), select({ settleMs: 60_000 }), now);
  t.equal(r.picked?.entry.key, 'shop-old.dump');
  t.equal(r.settling, 1);
  t.equal((await selectNewest(driver.list(), select({ settleMs: 0 }), now)).picked?.entry.key, 'shop-new.dump', 'settle 0 takes it');
});

t.test('a missing folder or a file instead of a folder is source_unreachable', async (t) => {
  const dir = await tempDir(t);
  const file = await put(dir, 'shop.dump', '2026-11-27T00:00:00Z');
  await rejectsWith(t, collect(new LocalStorageDriver({ path: path.join(dir, 'nope') }).list()), 'source_unreachable', /does not exist.*mounted/);
  await rejectsWith(t, collect(new LocalStorageDriver({ path: file }).list()), 'source_unreachable', /is not a folder/);
  await rejectsWith(t, selectNewest(new LocalStorageDriver({ path: path.join(dir, 'nope') }).list(), select(), NOW), 'source_unreachable', /does not exist/);
});

t.test('expectedChecksum reads the sidecars that real tools write', async (t) => {
  const dir = await tempDir(t);
  const driver = new LocalStorageDriver({ path: dir, recursive: true });
  const sum = async (args: string[], stdinFile?: string): Promise<string> => {
    if (!stdinFile) return (await run('sha256sum', args, { cwd: dir })).stdout;
    return (await run('sh', ['-c', 'sha256sum < "$1"', 'sh', stdinFile], { cwd: dir })).stdout;
  };
  const check = async (rel: string, sidecar: string | undefined, want: string | undefined, source?: string): Promise<void> => {
    const content = `backup ${rel}`;
    await put(dir, rel, '2026-11-27T00:00:00Z', content);
    if (sidecar !== undefined) await fs.writeFile(path.join(dir, `${rel}.sha256`), sidecar);
    const got = await checksumOf(driver, entry(rel, '2026-11-27T00:00:00Z'));
    t.equal(got?.hex, want === 'own' ? sha(content) : want, `${rel}: ${JSON.stringify(sidecar)}`);
    if (source) t.equal(got?.source, source);
  };
  await put(dir, 'a.dump', '2026-11-27T00:00:00Z', 'backup a.dump');
  await check('a.dump', await sum(['a.dump']), 'own', 'sidecar a.dump.sha256');
  await check('b.dump', undefined, undefined);
  await put(dir, 'c.dump', '2026-11-27T00:00:00Z', 'backup c.dump');
  await check('c.dump', await sum(['-b', 'c.dump']), 'own'); // `HEX *c.dump`
  await put(dir, 'd.dump', '2026-11-27T00:00:00Z', 'backup d.dump');
  await check('d.dump', await sum([], 'd.dump'), 'own'); // `HEX  -` from sha256sum < file
  await put(dir, 'e.dump', '2026-11-27T00:00:00Z', 'backup e.dump');
  await check('e.dump', await sum(['--tag', 'e.dump']), 'own'); // `SHA256 (e.dump) = HEX`
  await put(dir, 'f.dump', '2026-11-27T00:00:00Z', 'backup f.dump');
  await check('f.dump', (await sum([path.join(dir, 'f.dump')])).replace('\n', '\r\n'), 'own'); // absolute path, CRLF
  await check('g.dump', `${sha('backup g.dump').toUpperCase()}\n`, 'own'); // bare, uppercase
  await check('h.dump', `\ufeff${sha('backup h.dump')}  ./backups/h.dump\r\n`, 'own'); // BOM, path prefix
  await put(dir, 'daily/i.dump', '2026-11-27T00:00:00Z', 'backup daily/i.dump');
  await check('daily/i.dump', await sum(['daily/i.dump']), 'own', 'sidecar i.dump.sha256');

  await put(dir, 'j.dump', '2026-11-27T00:00:00Z');
  await fs.writeFile(path.join(dir, 'j.dump.sha256'), `${sha('other')}  k.dump\n`);
  await rejectsWith(t, checksumOf(driver, entry('j.dump', '2026-11-27T00:00:00Z')), 'sidecar_invalid', /j\.dump\.sha256 holds no sha256 for j\.dump/);
  await fs.writeFile(path.join(dir, 'j.dump.sha256'), 'not a checksum\n');
  await rejectsWith(t, checksumOf(driver, entry('j.dump', '2026-11-27T00:00:00Z')), 'sidecar_invalid', /holds no sha256/);
  await fs.writeFile(path.join(dir, 'j.dump.sha256'), '');
  await rejectsWith(t, checksumOf(driver, entry('j.dump', '2026-11-27T00:00:00Z')), 'sidecar_invalid', /holds no sha256/);
});

t.test('SHA256SUMS beside the files covers several of them', async (t) => {
  const dir = await tempDir(t);
  const driver = new LocalStorageDriver({ path: dir, recursive: true });
  for (const n of ['x.dump', 'y.dump']) await put(dir, `weekly/${n}`, '2026-11-27T00:00:00Z', `content ${n}`);
  await put(dir, 'weekly/z.dump', '2026-11-27T00:00:00Z');
  const sums = (await run('sha256sum', ['x.dump', 'y.dump'], { cwd: path.join(dir, 'weekly') })).stdout;
  await fs.writeFile(path.join(dir, 'weekly', 'SHA256SUMS'), sums);
  const x = await checksumOf(driver, entry('weekly/x.dump', '2026-11-27T00:00:00Z'));
  t.same(x, { algorithm: 'sha256', hex: sha('content x.dump'), source: 'SHA256SUMS' });
  t.equal((await checksumOf(driver, entry('weekly/y.dump', '2026-11-27T00:00:00Z')))?.hex, sha('content y.dump'));
  t.equal(await checksumOf(driver, entry('weekly/z.dump', '2026-11-27T00:00:00Z')), undefined, 'a file the list does not name has no checksum');
  await fs.writeFile(path.join(dir, 'weekly', 'y.dump.sha256'), `${sha('own sidecar')}  y.dump\n`);
  t.equal((await checksumOf(driver, entry('weekly/y.dump', '2026-11-27T00:00:00Z')))?.source, 'sidecar y.dump.sha256', 'the own sidecar comes first');
});

t.test('parseChecksumFile: bare and stdin digests only from a file\'s own single-line sidecar', async (t) => {
  const hex = 'ab'.repeat(32);
  t.equal(parseChecksumFile(`${hex}\n`, 'a.dump', true), hex);
  t.equal(parseChecksumFile(`${hex}\n`, 'a.dump', false), undefined, 'a bare digest in SHA256SUMS names no file');
  t.equal(parseChecksumFile(`${hex}  -\n`, 'a.dump', true), hex);
  t.equal(parseChecksumFile(`${hex}  -\n`, 'a.dump', false), undefined);
  t.equal(parseChecksumFile(`${hex}  -\n${'cd'.repeat(32)}  b.dump\n`, 'a.dump', true), undefined, 'two lines: which one?');
  t.equal(parseChecksumFile(`SHA2-256(a.dump)= ${hex.toUpperCase()}\n`, 'a.dump', false), hex, "openssl dgst's form");
  t.equal(parseChecksumFile(`${hex}  C:\\backups\\a.dump\r\n`, 'a.dump', false), hex, 'a Windows path');
  t.equal(parseChecksumFile(`${hex}  my backup.dump\n`, 'my backup.dump', false), hex, 'a name with a space');
  t.equal(parseChecksumFile(`${hex.slice(2)}  a.dump\n`, 'a.dump', true), undefined, 'too short to be sha256');
  t.equal(parseChecksumFile(`${hex}  a.dump.gz\n`, 'a.dump', true), undefined, 'a different file');
});
