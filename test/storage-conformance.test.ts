import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { BorgStorageDriver } from '../drivers/borg/borg-storage-driver.js';
import { LocalStorageDriver } from '../drivers/local/local-storage-driver.js';
import { ResticStorageDriver } from '../drivers/restic/restic-storage-driver.js';
import { S3StorageDriver } from '../drivers/s3/s3-storage-driver.js';
import { selectNewest } from '../drivers/selection.js';
import type { BackupEntry, StorageDriver } from '../drivers/storage-driver.js';
import { STORAGE_DRIVERS, type SelectorConfig, type StorageDriverName, type TimestampSource } from '../orchestrator/core/config-types.js';
import { VerificationError } from '../orchestrator/core/errors.js';
import { S3RVER_CREDENTIALS, startS3Server, type S3Server } from './helpers/s3-server.js';
import { digestHex as sha } from './helpers/bytes.js';

/**
 * One conformance suite for the storage seam, run against every driver with its real
 * counterpart: a folder, an S3-compatible server (s3rver) on 127.0.0.1, a restic repository.
 */
const run = promisify(execFile);

interface Store {
  /** Stores a backup whose time, as the driver reports it, is `at`. */
  put(data: Buffer, at: Date): Promise<void>;
  driver(): StorageDriver;
  /** A driver for a location that does not exist. */
  unreachable(): StorageDriver;
  timestamp: TimestampSource;
}

interface Fixture {
  name: string;
  make(t: Test): Promise<Store>;
}

const stamp = (d: Date): string => d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');

async function tempDir(t: Test, prefix: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `backproof-conf-${prefix}-`));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

const local: Fixture = {
  name: 'local folder',
  async make(t) {
    const dir = await tempDir(t, 'local');
    return {
      timestamp: { from: 'mtime' },
      async put(data, at) {
        const file = path.join(dir, `shop-${stamp(at)}.dump`);
        await fs.writeFile(file, data);
        await fs.writeFile(`${file}.sha256`, `${sha(data)}  ${path.basename(file)}\n`);
        await fs.utimes(file, at, at);
      },
      driver: () => new LocalStorageDriver({ path: dir }),
      unreachable: () => new LocalStorageDriver({ path: path.join(dir, 'not-mounted') }),
    };
  },
};

let s3: S3Server | undefined;
let buckets = 0;
const s3Fixture: Fixture = {
  name: 's3 (s3rver)',
  async make() {
    s3 ??= await startS3Server();
    const server = s3;
    const bucket = `conformance-${++buckets}`;
    await server.createBucket(bucket);
    const make = (b: string) => new S3StorageDriver({ bucket: b, prefix: 'acme/', endpoint: server.endpoint, credentials: { ...S3RVER_CREDENTIALS, origin: 'test' }, maxRetries: 1, retryBaseDelayMs: 10 });
    return {
      timestamp: { from: 'name', timezone: 'UTC' },
      async put(data, at) {
        const key = `acme/shop-${stamp(at)}.dump`;
        await server.put(bucket, key, data);
        await server.put(bucket, `${key}.sha256`, `${sha(data)}  shop-${stamp(at)}.dump\n`);
      },
      driver: () => make(bucket),
      unreachable: () => make('no-such-bucket'),
    };
  },
};

const restic: Fixture = {
  name: 'restic repository',
  async make(t) {
    const dir = await tempDir(t, 'restic');
    const repo = path.join(dir, 'repo');
    const src = path.join(dir, 'src');
    await fs.mkdir(src);
    const env = { ...process.env, RESTIC_PASSWORD: 'conformance-pw', RESTIC_REPOSITORY: repo };
    await run('restic', ['init', '--repository-version', '2'], { env });
    const options = { password: 'conformance-pw', passwordOrigin: 'test', file: path.join(src, 'shop.dump'), checkSubset: false as const };
    return {
      timestamp: { from: 'metadata', key: 'backup-time' },
      async put(data, at) {
        await fs.writeFile(path.join(src, 'shop.dump'), data);
        const time = at.toISOString().replace('T', ' ').slice(0, 19);
        await run('restic', ['backup', '--no-cache', '--host', 'db1', '--time', time, src], { env: { ...env, TZ: 'UTC' } });
      },
      driver: () => new ResticStorageDriver({ repository: repo, ...options }),
      unreachable: () => new ResticStorageDriver({ repository: path.join(dir, 'gone'), ...options }),
    };
  },
};

const borg: Fixture = {
  name: 'borg repository',
  async make(t) {
    const dir = await tempDir(t, 'borg');
    const repo = path.join(dir, 'repo');
    const src = path.join(dir, 'src');
    await fs.mkdir(path.join(src, 'var', 'backups'), { recursive: true });
    const env = { ...process.env, BORG_PASSPHRASE: 'conformance-pw', BORG_BASE_DIR: path.join(dir, 'borg-home'), TZ: 'UTC' };
    await run('borg', ['init', '--encryption', 'repokey-blake2', repo], { env });
    const options = { passphrase: 'conformance-pw', passphraseOrigin: 'test', file: 'var/backups/shop.dump', check: false as const, lockWaitSeconds: 1 };
    let n = 0;
    return {
      timestamp: { from: 'metadata', key: 'backup-time' },
      async put(data, at) {
        await fs.writeFile(path.join(src, 'var', 'backups', 'shop.dump'), data);
        await run('borg', ['create', '--timestamp', at.toISOString().slice(0, 19), `${repo}::shop-${++n}`, 'var'], { env, cwd: src });
      },
      driver: () => new BorgStorageDriver({ repository: repo, ...options }),
      unreachable: () => new BorgStorageDriver({ repository: path.join(dir, 'gone'), ...options }),
    };
  },
};

t.teardown(async () => {
  await s3?.stop();
});

// Relative to the real clock: an S3 store stamps its own (real) modification times, which must
// not be in the selector's future.
const TODAY = new Date();
const day = (n: number): Date => new Date(Date.UTC(TODAY.getUTCFullYear(), TODAY.getUTCMonth(), TODAY.getUTCDate() - n, 2, 0, 0));
const NOW = new Date(Math.max(TODAY.getTime() + 60_000, Date.UTC(TODAY.getUTCFullYear(), TODAY.getUTCMonth(), TODAY.getUTCDate(), 12, 0, 0)));

// One fixture per name of STORAGE_DRIVERS that stores a backup as a file: a new driver does not
// compile without its own. A pgBackRest set, a barman backup and a mariadb-backup directory are
// folders of files the driver streams as one tar (no bytes "put" to read back);
// test/pgbackrest.test.ts, test/barman.test.ts and test/mariabackup.test.ts hold those drivers to the same listing, newest, unreachable and close
// contract against real backups.
type FileDriverName = Exclude<StorageDriverName, 'pgbackrest' | 'barman' | 'mariabackup'>;
const FIXTURES: Record<FileDriverName, Fixture> = { local, s3: s3Fixture, restic, borg };

for (const name of STORAGE_DRIVERS.filter((d): d is FileDriverName => d !== 'pgbackrest' && d !== 'barman' && d !== 'mariabackup')) {
  const fixture = FIXTURES[name];
  t.test(fixture.name, async (t) => {
    const selector = (store: Store, extra: Partial<SelectorConfig> = {}): SelectorConfig => ({
      glob: 'shop*.dump',
      timestamp: store.timestamp,
      settleMs: 0,
      ...extra,
    });
    const pick = async (store: Store, d: StorageDriver, extra: Partial<SelectorConfig> = {}) =>
      selectNewest(d.list(), selector(store, extra), NOW, undefined, d.takenAt ? (e: BackupEntry) => d.takenAt!(e) : undefined);
    const withDriver = (store: Store): StorageDriver => {
      const d = store.driver();
      t.teardown(() => d.close());
      return d;
    };

    t.test('lists every backup with its size and picks the newest', async (t) => {
      const store = await fixture.make(t);
      const sizes = [3000, 1000, 2000];
      for (const [i, n] of [3, 1, 2].entries()) await store.put(randomBytes(sizes[i]!), day(n));
      const d = withDriver(store);
      const listed: BackupEntry[] = [];
      for await (const e of d.list()) if (!/\.sha256$/.test(e.key)) listed.push(e);
      t.equal(listed.length, 3);
      t.same(listed.map((e) => e.size).sort(), [1000, 2000, 3000]);
      const result = await pick(store, d);
      t.equal(result.picked?.backupTime.toISOString(), day(1).toISOString());
      t.equal(result.picked?.entry.size, 1000);
    });

    t.test('opens exactly the bytes, and every checksum it reports verifies', async (t) => {
      const store = await fixture.make(t);
      const data = randomBytes(6 * 1024 * 1024 + 17);
      await store.put(data, day(1));
      const d = withDriver(store);
      const { picked } = await pick(store, d);
      const chunks: Buffer[] = [];
      for await (const c of await d.open(picked!.entry)) chunks.push(c as Buffer);
      const read = Buffer.concat(chunks);
      t.equal(read.length, data.length);
      t.equal(sha(read), sha(data));
      const details = await d.details(picked!.entry);
      for (const c of details.checksums) t.equal(c.hex, sha(data, c.algorithm), `${c.source} matches the bytes`);
      if (fixture !== restic && fixture !== borg) t.ok(details.checksums.length > 0, 'the sidecar is found'); // both hash every chunk instead
      t.ok(Object.values(details.facts).every((v) => typeof v === 'string'));
    });

    t.test('expect: daily: a missing day fails with its date even though older backups exist', async (t) => {
      const store = await fixture.make(t);
      await store.put(randomBytes(100), day(3));
      await store.put(randomBytes(100), day(2));
      const d = withDriver(store);
      const result = await pick(store, d, { expect: { every: 'daily', timezone: 'UTC' } });
      t.equal(result.picked?.backupTime.toISOString(), day(2).toISOString());
      t.equal(result.missingPeriod, day(1).toISOString().slice(0, 10));
      await store.put(randomBytes(100), day(1));
      const covered = await pick(store, withDriver(store), { expect: { every: 'daily', timezone: 'UTC' } });
      t.equal(covered.missingPeriod, undefined);
    });

    t.test('a zero-byte backup is listed with size 0', async (t) => {
      const store = await fixture.make(t);
      await store.put(randomBytes(100), day(2));
      await store.put(Buffer.alloc(0), day(1));
      const { picked } = await pick(store, withDriver(store));
      t.equal(picked?.backupTime.toISOString(), day(1).toISOString());
      t.equal(picked?.entry.size, 0);
    });

    t.test('a location that is not there: source_unreachable, an error verdict', async (t) => {
      const store = await fixture.make(t);
      const d = store.unreachable();
      t.teardown(() => d.close());
      const err = await pick(store, d).then(
        () => undefined,
        (e: unknown) => e,
      );
      t.ok(err instanceof VerificationError, String(err));
      t.equal((err as VerificationError).reason, 'source_unreachable');
    });

    t.test('listing stops when its signal aborts; close() twice is harmless', async (t) => {
      const store = await fixture.make(t);
      await store.put(randomBytes(100), day(1));
      const d = store.driver();
      const controller = new AbortController();
      controller.abort(new Error('stop'));
      const err = await (async () => {
        for await (const e of d.list(controller.signal)) void e;
      })().then(
        () => undefined,
        (e: unknown) => e,
      );
      t.ok(err, 'rejected');
      await d.close();
      await d.close();
    });
  });
}
