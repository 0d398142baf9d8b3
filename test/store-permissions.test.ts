import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { loadOrCreateSigningKey, SIGNING_KEY_FILE } from '../orchestrator/evidence/signing-key.js';
import { sampleRun } from './helpers/store-backends.js';

// The embedded evidence store's data dir is private to its owner: PGlite writes most of its files
// 0666 whatever the umask (pg_control and WAL included), so without care any local user could
// truncate pg_control and break every later command. Loose modes found at open are fixed (owned
// by us, with a warning) or refused (owned by another user).

const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-perms-'));
t.teardown(() => fs.rm(tmp, { recursive: true, force: true }));
// A path that does not exist yet: backproof makes it, as on a first run.
const dataDir = path.join(tmp, 'data', '.backproof');
const open = (): Promise<RunStore> => RunStore.open({ dataDir, schema: 'backproof' });

/** Every file and directory under `root` (root included) with a group or other permission bit. */
async function loosePaths(root: string): Promise<string[]> {
  const loose: string[] = [];
  const visit = async (p: string): Promise<void> => {
    const st = await fs.lstat(p);
    if (st.isSymbolicLink()) return;
    if ((st.mode & 0o077) !== 0) loose.push(`${(st.mode & 0o777).toString(8)} ${path.relative(root, p) || '.'}`);
    if (st.isDirectory()) for (const name of await fs.readdir(p)) await visit(path.join(p, name));
  };
  await visit(root);
  return loose;
}

const modeOf = async (p: string): Promise<number> => (await fs.stat(p)).mode & 0o777;

/** Process warnings emitted while `fn` runs. */
async function warningsDuring<T>(fn: () => Promise<T>): Promise<{ result: T; warnings: (Error & { code?: string })[] }> {
  const warnings: (Error & { code?: string })[] = [];
  const listener = (w: Error): void => void warnings.push(w);
  process.on('warning', listener);
  try {
    const result = await fn();
    // emitWarning delivers on the next tick.
    await new Promise((r) => setImmediate(r));
    return { result, warnings };
  } finally {
    process.off('warning', listener);
  }
}

function finishedRun(): RunRecord {
  const started = new Date(Date.now() - 5_000).toISOString();
  return sampleRun(started, { status: 'finished', verdict: 'pass', finishedAt: new Date().toISOString(), durationMs: 5_000, host: os.hostname(), pid: process.pid });
}

let runId = '';

t.test('a fresh store: nothing in the data dir is group- or world-accessible, open or closed', async (t) => {
  const store = await open();
  try {
    const run = finishedRun();
    runId = run.id;
    await store.recordStart({ ...run, status: 'running', verdict: null, finishedAt: null, durationMs: null });
    await store.finalize(run); // signs: creates evidence-key.pem
    t.same(await loosePaths(dataDir), [], 'private while open');
  } finally {
    await store.close();
  }
  t.same(await loosePaths(dataDir), [], 'private once closed');
  t.equal(await modeOf(dataDir), 0o700, 'the data dir is 0700');
  t.equal(await modeOf(path.join(dataDir, SIGNING_KEY_FILE)), 0o600, 'the signing key is 0600');
  t.equal(await modeOf(path.join(dataDir, 'evidence', 'global', 'pg_control')), 0o600, 'pg_control is 0600');
});

t.test('loose modes of our own data dir are fixed at open, with a warning', async (t) => {
  const pgControl = path.join(dataDir, 'evidence', 'global', 'pg_control');
  const walDir = path.join(dataDir, 'evidence', 'pg_wal');
  const wal = (await fs.readdir(walDir)).find((n) => /^[0-9A-F]{24}$/.test(n));
  t.ok(wal, 'a WAL segment exists');
  await fs.chmod(dataDir, 0o777);
  await fs.chmod(path.join(dataDir, 'evidence'), 0o777);
  await fs.chmod(pgControl, 0o666);
  await fs.chmod(path.join(walDir, wal!), 0o666);
  await fs.chmod(path.join(dataDir, SIGNING_KEY_FILE), 0o644);
  t.not((await loosePaths(dataDir)).length, 0, 'loosened by hand');

  const { result: store, warnings } = await warningsDuring(open);
  try {
    t.equal((await store.get(runId))?.verdict, 'pass', 'the store still works');
    t.same(await loosePaths(dataDir), [], 'every mode fixed at open');
  } finally {
    await store.close();
  }
  const warning = warnings.find((w) => w.code === 'data_dir_permissions_fixed');
  t.ok(warning, `a warning with a stable code (got ${JSON.stringify(warnings.map((w) => w.code))})`);
  t.match(warning?.message, dataDir, 'it names the data dir');
  t.match(warning?.message, /was accessible to other local users \(mode 777\)/);
  t.match(warning?.message, /directories 0700, files 0600/);
  t.same(await loosePaths(dataDir), [], 'still private once closed');
});

t.test('inside a private data dir, a loose file is tightened without a warning', async (t) => {
  // Nobody else can reach it through a 0700 directory: no alarm, just the fix.
  const pgControl = path.join(dataDir, 'evidence', 'global', 'pg_control');
  await fs.chmod(pgControl, 0o666);
  const { result: store, warnings } = await warningsDuring(open);
  await store.close();
  t.equal(await modeOf(pgControl), 0o600);
  t.same(warnings.map((w) => w.code), []);
});

t.test('a loose signing key of ours is made 0600 when read, with a warning to rotate it', async (t) => {
  const key = path.join(dataDir, SIGNING_KEY_FILE);
  await fs.chmod(key, 0o644);
  const { warnings } = await warningsDuring(() => loadOrCreateSigningKey(dataDir));
  t.equal(await modeOf(key), 0o600);
  const warning = warnings.find((w) => w.code === 'evidence_key_permissions_fixed');
  t.ok(warning, 'warned');
  t.match(warning?.message, key);
  t.match(warning?.message, /rotate it/);
});

const root = process.getuid?.() === 0;
t.test('a data dir or key owned by another user and open to others is refused with the path and the fix', { skip: root ? false : 'needs root to chown' }, async (t) => {
  await fs.chown(dataDir, 65534, 65534);
  await fs.chmod(dataDir, 0o777);
  try {
    const err = (await open().then(
      async (s) => {
        await s.close();
        return undefined;
      },
      (e: unknown) => e,
    )) as (Error & { code?: string }) | undefined;
    t.equal(err?.code, 'data_dir_insecure', String(err));
    t.match(err?.message, `the backproof data dir ${dataDir} is owned by uid 65534`, 'names the directory and its owner');
    t.match(err?.message, `chown -R 0 ${dataDir} && chmod -R go-rwx ${dataDir}`, 'says how to fix it');
    t.equal(await modeOf(dataDir), 0o777, 'another user’s directory is left as it is');
  } finally {
    await fs.chown(dataDir, 0, 0);
    await fs.chmod(dataDir, 0o700);
  }

  const key = path.join(dataDir, SIGNING_KEY_FILE);
  await fs.chown(key, 65534, 65534);
  await fs.chmod(key, 0o640);
  try {
    const err = (await loadOrCreateSigningKey(dataDir).then(
      () => undefined,
      (e: unknown) => e,
    )) as (Error & { code?: string }) | undefined;
    t.equal(err?.code, 'evidence_key_insecure', String(err));
    t.match(err?.message, key);
    t.match(err?.message, /chmod 600/);
    t.match(err?.message, /rotate it/);
  } finally {
    await fs.chown(key, 0, 0);
  }
  // Taken back (chown to us): the next open fixes the key's mode and works.
  const store = await open();
  await store.close();
  t.same(await loosePaths(dataDir), []);
});

t.test('another user’s file inside the private data dir is left alone, not refused', { skip: root ? false : 'needs root to chown' }, async (t) => {
  // As `sudo backproof images build` leaves dockerd.log in the data dir.
  const log = path.join(dataDir, 'dockerd.log');
  await fs.writeFile(log, 'engine log\n', { mode: 0o644 });
  await fs.chmod(log, 0o644);
  await fs.chown(log, 65534, 65534);
  const store = await open();
  await store.close();
  t.equal(await modeOf(log), 0o644, 'not ours to change');
  t.same(await loosePaths(dataDir), ['644 dockerd.log'], 'everything else stays private');
  await fs.rm(log);
});
