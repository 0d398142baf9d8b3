import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { migrate, loadMigrations } from '../orchestrator/evidence/migrate.js';
import { createPgExecutor } from '../orchestrator/evidence/pg-executor.js';
import { createPgliteExecutor, isPidAlive } from '../orchestrator/evidence/pglite-executor.js';
import { RunStore, statisticsStale } from '../orchestrator/evidence/run-store.js';
import { seedFromTemplate } from '../orchestrator/evidence/store-template.js';
import { startPgCluster } from './helpers/pg-cluster.js';
import { appliedOnFirstOpen, templateIsCurrent } from './helpers/store-template.js';
import { startStoreHolder } from './helpers/store-holder.js';
import { OpenStores, backproofConnections, bothBackends, sampleRun as runAt, type Backend } from './helpers/store-backends.js';

/**
 * One conformance suite for the evidence store, run against a real PostgreSQL 15 server (its own
 * cluster, a fresh schema for this file), against embedded PGlite (a temp data dir), and against
 * embedded PGlite held by another process and used through its socket (pglite-shared).
 */
const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const latest = loadMigrations().at(-1)?.version ?? 0;
const base = Date.UTC(2026, 10, 1, 3, 0, 0, 123);
const at = (offsetMs: number): string => new Date(base + offsetMs).toISOString();

const cluster = await startPgCluster();
t.teardown(() => cluster.stop());
const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-evidence-test-'));
t.teardown(() => fs.rm(tmp, { recursive: true, force: true }));
const pgUrl = await cluster.createDatabase('evidence_test');
const pgSchema = `evidence_${process.pid}`;
const liteDir = path.join(tmp, 'lite');

const storeRegister = new OpenStores();
const track = (p: Promise<RunStore>): Promise<RunStore> => storeRegister.track(p);
const release = (store: RunStore): Promise<void> => storeRegister.release(store);

// The embedded store held by another process (as the daemon holds it), used through its socket.
const sharedDir = path.join(tmp, 'shared');
const holder = await startStoreHolder(sharedDir);
t.teardown(async () => {
  await holder.stop();
});

const backends = bothBackends(storeRegister, { pgUrl, pgSchema, dataDir: tmp, liteDir, sharedDir });

function sampleRun(over: Partial<RunRecord> = {}): RunRecord {
  return runAt(at(0), over);
}

/** A run as the runner finalizes it: every field filled in, numbers past 2^32, odd text. */
function finished(run: RunRecord): RunRecord {
  const started = Date.parse(run.startedAt);
  const t0 = (ms: number): string => new Date(started + ms).toISOString();
  return {
    ...run,
    status: 'finished',
    verdict: 'fail',
    reasons: [{ code: 'probe_failed', message: "probe 'orders' expected >= 1000 rows, got 12; it's \"wrong\" (ü)" }],
    finishedAt: t0(93_456),
    durationMs: 93_456,
    backup: {
      driver: 's3',
      location: 's3://acme-backups/pg/',
      key: 'pg/acme-2026-10-31T23-00.dump.gz',
      size: 5_368_709_120,
      modifiedAt: t0(-3_600_000),
      backupTime: t0(-3_700_000),
      timestampSource: 'name',
      ageMs: 3_700_000,
      sha256: 'a'.repeat(64),
      bytesRead: 5_368_709_120,
      checksums: [{ algorithm: 'sha256', expected: 'a'.repeat(64), source: 'sidecar', verified: true }],
      provider: { versionId: 'v1', objectLock: 'COMPLIANCE until 2027-01-01T00:00:00.000Z' },
      format: 'pg_dump_custom',
      compression: 'gzip',
      header: { serverVersion: '15.4', database: 'shop', dumpedAt: '2026-10-31 23:00:01' },
    },
    phases: [
      { name: 'select', startedAt: t0(0), endedAt: t0(120), durationMs: 120, outcome: 'ok' },
      { name: 'sandbox', startedAt: t0(120), endedAt: t0(3_120), durationMs: 3_000, outcome: 'ok', detail: 'container abc123' },
      { name: 'fetch_restore', startedAt: t0(3_120), endedAt: t0(80_000), durationMs: 76_880, outcome: 'ok' },
      { name: 'readiness', startedAt: t0(80_000), endedAt: t0(81_000), durationMs: 1_000, outcome: 'ok' },
      { name: 'probes', startedAt: t0(81_000), endedAt: t0(90_000), durationMs: 9_000, outcome: 'fail', detail: "x'; DROP TABLE runs; --" },
      { name: 'teardown', startedAt: t0(90_000), endedAt: t0(93_456), durationMs: 3_456, outcome: 'ok' },
    ],
    probes: [
      { name: 'orders', type: 'sql_rowcount', expected: '>= 1000', actual: '12', pass: false, durationMs: 8_000 },
      { name: 'login', type: 'sql', expected: 'ok', actual: '', pass: false, durationMs: 1_000, error: 'relation "users" does not exist' },
    ],
    metrics: { rpoTargetMs: 86_400_000, rpoMeasuredMs: 3_700_000, rpoMet: true, rtoTargetMs: 60_000, rtoMeasuredMs: 77_880, rtoMet: false, fetchBytesPerSec: 69_835_000.5 },
    sandbox: {
      runtime: 'docker',
      image: 'backproof/postgres:15',
      imageId: 'sha256:' + 'b'.repeat(64),
      containerId: 'c'.repeat(64),
      limits: { memoryBytes: 2_147_483_648, cpus: 2, network: 'none' },
      serverVersion: '15.18',
      logTail: 'LOG:  database system is ready to accept connections\n',
    },
    restored: { database: 'shop', tables: 42, rows_orders: 12 },
  };
}

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((r) => child.once('exit', r));
  if (child.pid === undefined) throw new Error('no pid');
  return child.pid;
}

async function rejectsCode(tt: Tap, p: Promise<unknown>, code: string, msg: string): Promise<Error | undefined> {
  try {
    await p;
    tt.fail(`${msg}: expected ${code}, but it succeeded`);
    return undefined;
  } catch (err) {
    tt.equal((err as { code?: string }).code, code, msg);
    return err as Error;
  }
}
/** The part of a tap Test the helper uses (subtests have a different class than the root). */
interface Tap {
  fail(message: string): unknown;
  equal(found: unknown, wanted: unknown, message: string): unknown;
}

const liveChild = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)'], { stdio: 'ignore' });
t.teardown(() => {
  liveChild.kill();
});

const stores: Partial<Record<Backend['name'], RunStore>> = {};

for (const backend of backends) {
  t.test(`${backend.name}: evidence store conformance`, async (tt) => {
    await tt.test('migrations apply once; opening twice is a no-op', async (t2) => {
      const first = await backend.open();
      // A new embedded store starts from the template npm run build made (initdb and every
      // migration already applied); the template's own test is below.
      t2.same(first.migration, { applied: await appliedOnFirstOpen(backend.engine), version: latest }, 'first open leaves the schema current');
      t2.equal(first.kind, backend.engine);
      await release(first);
      const second = await backend.open();
      t2.same(second.migration, { applied: [], version: latest }, 'second open applies nothing');
      const { rows } = await second.executor.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${second.schema}.schema_migrations`);
      t2.equal(rows[0]?.n, loadMigrations().length);
      stores[backend.name] = second;
    });

    await tt.test('recordStart / finalize / get round trip', async (t2) => {
      const store = stores[backend.name]!;
      const run = sampleRun();
      await store.recordStart(run);
      t2.strictSame(await store.get(run.id), run, 'running record reads back as written');
      await rejectsCode(t2, store.recordStart(run), 'run_exists', 'the same id twice is refused');
      const done = finished(run);
      await store.finalize(done);
      t2.strictSame(await store.get(run.id), done, 'finalized record reads back deep-equal');
      t2.equal(await store.get(randomUUID()), null, 'unknown id gives null');
    });

    await tt.test('list: filters, newest first, limit, since', async (t2) => {
      const store = stores[backend.name]!;
      const client = `list-${backend.name}`;
      const seeded: RunRecord[] = [];
      for (let i = 0; i < 5; i++) {
        const run = sampleRun({ client, policy: `${client}-${i % 2 ? 'odd' : 'even'}`, startedAt: at(86_400_000 + i * 60_000) });
        await store.recordStart(run);
        const done = finished(run);
        await store.finalize(done);
        seeded.push(done);
      }
      const newestFirst = [...seeded].reverse();
      t2.strictSame(await store.list({ client }), newestFirst, 'by client, newest first');
      t2.strictSame(await store.list({ policy: `${client}-odd` }), newestFirst.filter((r) => r.policy.endsWith('odd')), 'by policy');
      t2.strictSame(await store.list({ client, limit: 2 }), newestFirst.slice(0, 2), 'limit');
      t2.strictSame(await store.list({ client, since: at(86_400_000 + 2 * 60_000) }), newestFirst.slice(0, 3), 'since is inclusive');
      t2.strictSame(await store.list({ client, policy: `${client}-even`, limit: 1 }), [newestFirst[0]], 'filters combine');
      t2.strictSame(await store.list({ client: 'nobody' }), []);
      const all = await store.list({});
      t2.ok(all.length >= 6, 'no filter lists every run');
      t2.ok(all.every((r, i) => i === 0 || all[i - 1]!.startedAt >= r.startedAt), 'ordered by startedAt desc');
      await rejectsCode(t2, store.list({ limit: 0 }), 'list_limit_invalid', 'limit 0 is refused');
    });

    await tt.test('latestPerPolicy: each policy\'s newest run, and newest of a verdict; ties broken by id', async (t2) => {
      const store = stores[backend.name]!;
      const prefix = `latest-${backend.name}`;
      const seeded: RunRecord[] = [];
      // Three policies; the second has two runs at the same instant (the id decides), the third none that passed.
      const plan: [string, number, 'pass' | 'fail' | 'error'][] = [
        [`${prefix}-a`, 1, 'pass'], [`${prefix}-a`, 2, 'fail'], [`${prefix}-a`, 3, 'error'],
        [`${prefix}-b`, 1, 'pass'], [`${prefix}-b`, 5, 'pass'], [`${prefix}-b`, 5, 'fail'],
        [`${prefix}-c`, 4, 'fail'], [`${prefix}-c`, 7, 'error'],
      ];
      for (const [policy, minute, verdict] of plan) {
        const run = sampleRun({ policy, startedAt: at(5 * 86_400_000 + minute * 60_000) });
        await store.recordStart(run);
        const done = { ...finished(run), verdict, reasons: verdict === 'pass' ? [] : finished(run).reasons };
        await store.finalize(done);
        seeded.push(done);
      }
      const newest = (runs: RunRecord[]): RunRecord | undefined =>
        [...runs].sort((x, y) => (x.startedAt === y.startedAt ? (x.id < y.id ? 1 : -1) : x.startedAt < y.startedAt ? 1 : -1))[0];
      const mine = (m: Map<string, { id: string }>): Record<string, string> =>
        Object.fromEntries([...m].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k, v.id]));
      const expect = (verdict?: string): Record<string, string> =>
        Object.fromEntries(
          [`${prefix}-a`, `${prefix}-b`, `${prefix}-c`]
            .map((p) => [p, newest(seeded.filter((r) => r.policy === p && (!verdict || r.verdict === verdict)))?.id] as const)
            .filter((e): e is [string, string] => e[1] !== undefined),
        );
      t2.strictSame(mine(await store.latestPerPolicy()), expect(), 'newest run of each policy');
      t2.strictSame(mine(await store.latestPerPolicy('pass')), expect('pass'), 'newest passing run; none for a policy that never passed');
      t2.strictSame(mine(await store.latestPerPolicy('error')), expect('error'), 'newest error');
      const full = (await store.latestPerPolicy()).get(`${prefix}-c`);
      t2.strictSame(full, seeded.find((r) => r.id === expect()[`${prefix}-c`]), 'whole records come back');

      // What status and the board read: the same runs, a few fields of each.
      t2.strictSame(mine(await store.latestSummaryPerPolicy()), expect(), 'summaries: the same newest runs');
      t2.strictSame(mine(await store.latestSummaryPerPolicy('pass')), expect('pass'), 'summaries: the same newest passing runs');
      const summary = (await store.latestSummaryPerPolicy()).get(`${prefix}-c`);
      const { id, policy, status, verdict, reasons, startedAt, backup } = full!;
      t2.strictSame(summary, { id, policy, status, verdict, reasons, startedAt, backup }, "a summary is the record's id, policy, status, verdict, reasons, start and backup");
      // Named policies and a condition: one probe each; a policy without runs is absent.
      const rows = await store.newestPerPolicy('r.policy, r.id', { policies: [`${prefix}-a`, `${prefix}-c`, `${prefix}-none`], where: "r.verdict <> 'error'" });
      const notError = (p: string): string | undefined => newest(seeded.filter((r) => r.policy === p && r.verdict !== 'error'))?.id;
      t2.strictSame(
        Object.fromEntries(rows.map((r) => [String(r.policy), String(r.id)])),
        { [`${prefix}-a`]: notError(`${prefix}-a`), [`${prefix}-c`]: notError(`${prefix}-c`) },
        "named policies' newest run that matches the condition",
      );
      t2.strictSame(await store.newestPerPolicy('r.id', { policies: [] }), [], 'no policies named: no rows, no query');
    });

    await tt.test('passingBackupSizes: the policy\'s passing runs only, newest first, limited', async (t2) => {
      const store = stores[backend.name]!;
      const policy = `sizes-${backend.name}`;
      const sizes = [100, 200, 300, 400, 5_368_709_120];
      for (const [i, size] of sizes.entries()) {
        const run = sampleRun({ policy, startedAt: at(2 * 86_400_000 + i * 60_000) });
        await store.recordStart(run);
        const done = finished(run);
        await store.finalize({ ...done, verdict: i === 2 ? 'fail' : 'pass', reasons: i === 2 ? done.reasons : [], backup: { ...done.backup!, size } });
      }
      const noBackup = sampleRun({ policy, startedAt: at(3 * 86_400_000) });
      await store.recordStart(noBackup);
      await store.finalize({ ...noBackup, status: 'finished', verdict: 'error', reasons: [{ code: 'source_unreachable', message: 'down' }], finishedAt: at(3 * 86_400_000 + 1) });
      t2.strictSame(await store.passingBackupSizes(policy, 10), [5_368_709_120, 400, 200, 100], 'passing only, newest first, sizes past 2^32 intact');
      t2.strictSame(await store.passingBackupSizes(policy, 2), [5_368_709_120, 400]);
      t2.strictSame(await store.passingBackupSizes('nobody', 5), []);
    });

    await tt.test("lastPassingArtifact: the newest passing run's artifact of that name, of that policy only", async (t2) => {
      const store = stores[backend.name]!;
      const policy = `lists-${backend.name}`;
      const ids: string[] = [];
      for (const [i, verdict] of (['pass', 'pass', 'fail', 'pass'] as const).entries()) {
        const run = sampleRun({ policy, startedAt: at(4 * 86_400_000 + i * 60_000) });
        ids.push(run.id);
        await store.recordStart(run);
        const done = finished(run);
        // The newest passing run keeps no list: the one before it is the baseline.
        const artifacts = i === 3 ? [] : [{ name: 'files.json.gz', mediaType: 'application/gzip', bytes: Buffer.from(`list ${i}`) }];
        await store.finalize({ ...done, verdict, reasons: verdict === 'pass' ? [] : done.reasons }, artifacts);
      }
      const last = await store.lastPassingArtifact(policy, 'files.json.gz');
      t2.equal(last?.runId, ids[1], 'the newest passing run that kept one (not the failed run after it)');
      t2.equal(last?.bytes.toString(), 'list 1', 'with its bytes');
      t2.equal(last?.startedAt, at(4 * 86_400_000 + 60_000), 'and its start');
      t2.equal(await store.lastPassingArtifact(policy, 'other.bin'), null, 'another name: none');
      t2.equal(await store.lastPassingArtifact('nobody', 'files.json.gz'), null, 'another policy: none');

      // A baseline artifact: stored by a passing run only, and only the newest passing copy kept.
      const base = `baselines-${backend.name}`;
      const runs: string[] = [];
      for (const [i, verdict] of (['pass', 'pass', 'fail'] as const).entries()) {
        const run = sampleRun({ policy: base, startedAt: at(5 * 86_400_000 + i * 60_000) });
        runs.push(run.id);
        await store.recordStart(run);
        const done = finished(run);
        await store.finalize({ ...done, verdict, reasons: verdict === 'pass' ? [] : done.reasons }, [{ name: 'files.json.gz', mediaType: 'application/gzip', bytes: Buffer.from(`base ${i}`), baseline: true }]);
      }
      t2.equal(await store.artifact(runs[0]!, 'files.json.gz'), null, "the older passing run's copy is gone");
      t2.equal((await store.artifact(runs[1]!, 'files.json.gz'))?.bytes.toString(), 'base 1', "the newest passing run's is kept");
      t2.equal(await store.artifact(runs[2]!, 'files.json.gz'), null, 'a failed run stores none');
      t2.equal((await store.lastPassingArtifact(base, 'files.json.gz'))?.runId, runs[1]);
      t2.equal((await store.artifact(ids[0]!, 'files.json.gz'))?.bytes.toString(), 'list 0', "another policy's copies are untouched, and a plain artifact is never pruned");
    });

    await tt.test('get by id prefix, like git', async (t2) => {
      const store = stores[backend.name]!;
      const stem = backend.name === 'postgres' ? 'abcdef01' : 'abcdef02';
      const a = sampleRun({ id: `${stem}-0000-4000-8000-a00000000000` });
      const b = sampleRun({ id: `${stem}-0000-4000-8000-b00000000000` });
      const c = sampleRun({ id: `${stem.replace('abc', 'fed')}-1111-4000-8000-000000000001` });
      for (const r of [a, b, c]) {
        await store.recordStart(r);
        await store.finalize(finished(r));
      }
      t2.equal((await store.get(c.id.slice(0, 8)))?.id, c.id, '8-char unique prefix');
      t2.equal((await store.get(c.id.slice(0, 8).toUpperCase()))?.id, c.id, 'case-insensitive');
      t2.equal((await store.get(a.id.slice(0, 25)))?.id, a.id, 'longer prefix with dashes');
      const err = await rejectsCode(t2, store.get(stem), 'run_id_ambiguous', 'shared prefix is ambiguous');
      t2.match(err?.message ?? '', a.id);
      t2.equal(await store.get('0123abcd'), null, 'prefix matching nothing gives null');
      await rejectsCode(t2, store.get('abc'), 'run_id_invalid', 'under 8 chars is refused');
      await rejectsCode(t2, store.get("abcdef01' OR 1=1"), 'run_id_invalid', 'non-hex is refused');
    });

    await tt.test('finalize refuses a run that is not running', async (t2) => {
      const store = stores[backend.name]!;
      const run = sampleRun();
      await store.recordStart(run);
      await store.finalize(finished(run));
      const err = await rejectsCode(t2, store.finalize({ ...finished(run), verdict: 'pass' }), 'run_not_running', 'second finalize throws');
      t2.match(err?.message ?? '', 'finished');
      t2.equal((await store.get(run.id))?.verdict, 'fail', 'the stored record is unchanged');
      await rejectsCode(t2, store.finalize(finished(sampleRun())), 'run_not_found', 'unknown run throws');
    });

    await tt.test('markAbortedRuns: dead pid marked, live pid and other hosts left alone', async (t2) => {
      let store = stores[backend.name]!;
      const host = os.hostname();
      const dead = sampleRun({ host, pid: await deadPid() });
      const live = sampleRun({ host, pid: liveChild.pid! });
      const elsewhere = sampleRun({ host: 'another-host', pid: dead.pid });
      for (const r of [dead, live, elsewhere]) await store.recordStart(r);
      // The dead run had stored its progress: select done, the backup picked, sandbox under way.
      const after = (ms: number): string => new Date(Date.parse(dead.startedAt) + ms).toISOString();
      const backup = { driver: 'local', location: '/backups', key: 'shop.dump', size: 10, modifiedAt: after(-5000), backupTime: after(-5000), timestampSource: 'mtime', ageMs: 5000 } as const;
      await store.recordProgress(dead.id, {
        at: after(2000),
        phases: [
          { name: 'select', startedAt: after(0), endedAt: after(1000), durationMs: 1000, outcome: 'ok' },
          { name: 'sandbox', startedAt: after(2000), endedAt: after(2000), durationMs: 0, outcome: 'unfinished' },
        ],
        backup,
        metrics: { rpoMeasuredMs: 5000 },
      });
      const progressed = await store.get(dead.id);
      t2.equal(progressed?.status, 'running', 'progress keeps it running');
      t2.same(progressed?.backup, backup, 'progress stores the backup');
      const foundAfter = Date.now();
      const marked = await store.markAbortedRuns();
      t2.same(marked.map((r) => r.id), [dead.id], 'only the dead-pid run on this host');
      const got = await store.get(dead.id);
      t2.equal(got?.status, 'aborted');
      t2.equal(got?.verdict, 'error');
      t2.match(got?.reasons, [
        {
          code: 'aborted',
          message: new RegExp(`^the backproof process \\(pid ${dead.pid}\\) ended without finishing this run; its sandbox is reaped at the next run \\(found at \\S+; last progress at ${after(2000).replace(/\./g, '\\.')}\\)$`),
        },
      ]);
      t2.equal(got?.reasons.length, 1);
      const found = Date.parse(/found at (\S+);/.exec(got!.reasons[0]!.message)![1]!);
      t2.ok(found >= foundAfter - 1000, 'the reason says when it was found');
      t2.equal(got?.finishedAt, after(2000), 'finishedAt is the last progress, not when it was found');
      t2.equal(got?.durationMs, 2000);
      t2.same(got?.backup, backup, 'the backup it had picked');
      t2.same(got?.metrics, { rpoMeasuredMs: 5000 });
      t2.same(
        got?.phases.map((p) => [p.name, p.outcome]),
        [
          ['select', 'ok'],
          ['storage_check', 'skipped'],
          ['sandbox', 'unfinished'],
          ['fetch_restore', 'skipped'],
          ['readiness', 'skipped'],
          ['probes', 'skipped'],
          ['teardown', 'skipped'],
        ],
        'its phases: the one under way unfinished, those never reached skipped',
      );
      t2.strictSame(marked[0], got, 'returns the records as stored');
      t2.equal((await store.get(live.id))?.status, 'running', 'live pid untouched');
      t2.equal((await store.get(elsewhere.id))?.status, 'running', 'other host untouched');
      t2.same((await store.running()).map((r) => r.id).sort(), [live.id, elsewhere.id].sort(), 'running() lists the rest');
      await rejectsCode(t2, store.finalize(finished(dead)), 'run_not_running', 'an aborted run cannot be finalized');

      // Our own pid in a running row on this host is a reused pid: marked at the next open.
      const reused = sampleRun({ host, pid: process.pid });
      await store.recordStart(reused);
      await release(store);
      store = await backend.open();
      stores[backend.name] = store;
      t2.same(store.abortedAtOpen.map((r) => r.id), [reused.id], 'open marks the reused-pid run');
      await store.finalize(finished(live));
      await store.finalize(finished(elsewhere));
    });

    await tt.test('a schema newer than this code is refused', async (t2) => {
      const store = stores[backend.name]!;
      await store.executor.query(`INSERT INTO ${store.schema}.schema_migrations (version, name, applied_at) VALUES (9999, '9999_future', now())`);
      const err = await rejectsCode(t2, migrate(store.executor, store.schema), 'store_too_new', 'store_too_new');
      t2.match(err?.message ?? '', '9999');
      await store.executor.query(`DELETE FROM ${store.schema}.schema_migrations WHERE version = 9999`);
    });
  });
}

t.test('pglite: one holder at a time (lock file); other processes join it', async (tt) => {
  const store = stores.pglite!;
  const lockPath = path.join(liteDir, 'evidence.lock');
  const lock = JSON.parse(await fs.readFile(lockPath, 'utf8')) as { pid: number; host: string; startedAt: string };
  tt.same({ pid: lock.pid, host: lock.host }, { pid: process.pid, host: os.hostname() }, 'lock names this process');

  const openElsewhere = async (opts: string): Promise<{ code?: string; message?: string; opened?: boolean; via?: string; runs?: number }> => {
    const code = `
      const { createPgliteExecutor } = await import(${JSON.stringify(new URL('../orchestrator/evidence/pglite-executor.ts', import.meta.url).href)});
      try {
        const e = await createPgliteExecutor(${JSON.stringify(liteDir)}, ${opts});
        const { rows } = await e.query('SELECT count(*)::int AS n FROM backproof.runs');
        await e.close();
        console.log(JSON.stringify({ opened: true, via: e.constructor.name, runs: rows[0].n }));
      } catch (err) { console.log(JSON.stringify({ code: err.code, message: err.message })); }`;
    const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) =>
      execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: repoRoot }, (err, out) =>
        err ? reject(err) : resolve({ stdout: out }),
      ),
    );
    return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { code?: string; message?: string };
  };
  const { rows: here } = await store.executor.query<{ n: number }>('SELECT count(*)::int AS n FROM backproof.runs');
  const joined = await openElsewhere('{}');
  tt.same(joined, { opened: true, via: 'SocketExecutor', runs: here[0]!.n }, 'another process uses the store through this one');
  const result = await openElsewhere('{ join: false }');
  tt.equal(result.code, 'store_locked', 'a second process that must hold the store itself (the daemon, serve) cannot open it');
  tt.match(result.message ?? '', `pid ${process.pid}`, 'message names the holder');
  tt.match(result.message ?? '', 'database.url', 'message names the fix');

  await rejectsCode(tt, createPgliteExecutor(liteDir), 'store_locked', 'a second open in this process is refused too');

  await release(store);
  tt.notOk(existsSync(lockPath), 'close releases the lock');

  const stale = { pid: await deadPid(), host: os.hostname(), startedAt: at(0) };
  await fs.writeFile(lockPath, JSON.stringify(stale));
  const reopened = await backends[1]!.open();
  stores.pglite = reopened;
  const taken = JSON.parse(await fs.readFile(lockPath, 'utf8')) as { pid: number };
  tt.equal(taken.pid, process.pid, 'a stale lock (dead pid) is taken over');
  await release(reopened);
  tt.notOk(existsSync(lockPath));

  await fs.writeFile(lockPath, JSON.stringify({ pid: 1, host: 'other-host', startedAt: at(0) }));
  const err = await rejectsCode(tt, createPgliteExecutor(liteDir), 'store_locked', 'a lock from another host is respected');
  tt.match(err?.message ?? '', 'other-host');
  await fs.rm(lockPath);
  stores.pglite = await backends[1]!.open();
});

t.test("pglite: a failed exec's ROLLBACK runs before the next caller's statement, which never lands in the failed script's transaction", async (tt) => {
  const { executor } = stores.pglite!;
  // Called together: the query waits for the one connection while the script fails after its BEGIN.
  const failing = executor.exec('BEGIN; SELECT 1/0;');
  const next = executor.query<{ one: number }>('SELECT 1 AS one');
  await tt.rejects(failing, /division by zero/);
  tt.same((await next).rows, [{ one: 1 }], 'the waiting query ran after the ROLLBACK (before: 25P02, current transaction is aborted)');
});

t.test('pglite: a new data dir starts from the pre-built template, the same store initdb and the migrations make', async (tt) => {
  tt.ok(await templateIsCurrent(), 'npm run build made a template from these migrations (dist/store-template.json)');
  const fromTemplate = path.join(tmp, 'from-template');
  const fromInitdb = path.join(tmp, 'from-initdb');
  const seeded = await createPgliteExecutor(fromTemplate);
  const built = await createPgliteExecutor(fromInitdb, { template: false });
  try {
    tt.same(await migrate(seeded, 'backproof'), { applied: [], version: latest }, 'the template holds every migration');
    tt.same(await migrate(built, 'backproof'), { applied: loadMigrations().map((m) => m.version), version: latest }, 'without it, initdb and every migration');
    // The whole catalogue of the store's schema: tables, columns, types, defaults, indexes, constraints.
    const shape = async (e: typeof seeded): Promise<unknown> => ({
      columns: (await e.query(`SELECT table_name, column_name, data_type, column_default, is_nullable FROM information_schema.columns WHERE table_schema = 'backproof' ORDER BY 1, 2`)).rows,
      indexes: (await e.query(`SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'backproof' ORDER BY 1, 2`)).rows,
      constraints: (await e.query(`SELECT conname, pg_get_constraintdef(c.oid) AS def FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'backproof' ORDER BY 1`)).rows,
      migrations: (await e.query(`SELECT version, name FROM backproof.schema_migrations ORDER BY 1`)).rows,
      encoding: (await e.query(`SELECT pg_encoding_to_char(encoding) AS enc, datcollate FROM pg_database WHERE datname = current_database()`)).rows,
    });
    tt.same(await shape(seeded), await shape(built), 'the same schema either way');
  } finally {
    await seeded.close();
    await built.close();
  }
  const modes = await fs.stat(path.join(fromTemplate, 'evidence', 'PG_VERSION'));
  tt.equal(modes.mode & 0o077, 0, 'the copy is private like any store');
  const leftovers = (await fs.readdir(fromTemplate)).filter((n) => n.includes('.seed-'));
  tt.same(leftovers, [], 'no staging folder left behind');
});

t.test('pglite: the template unpacks byte for byte as tar unpacks it, its pages of zeros left as holes', async (tt) => {
  const seeded = path.join(tmp, 'sparse-seed', 'evidence');
  const byTar = path.join(tmp, 'sparse-tar');
  await fs.mkdir(path.dirname(seeded));
  await fs.mkdir(byTar);
  tt.ok(await seedFromTemplate(seeded), 'seeded from the template');
  await new Promise<void>((resolve, reject) =>
    execFile('tar', ['-x', '-z', '-f', path.join(repoRoot, 'dist', 'store-template.tar.gz'), '-C', byTar], (err) => (err ? reject(err) : resolve())),
  );
  const files = async (dir: string, rel = ''): Promise<string[]> =>
    (await fs.readdir(path.join(dir, rel), { withFileTypes: true })).flatMap((d) => [path.join(rel, d.name), d.isDirectory() ? '/' : ''].join('')).sort();
  const walk = async (dir: string): Promise<string[]> => {
    const out: string[] = [];
    const queue = [''];
    while (queue.length > 0) {
      const rel = queue.shift()!;
      for (const name of await files(dir, rel)) {
        out.push(name);
        if (name.endsWith('/')) queue.push(name);
      }
    }
    return out.sort();
  };
  const names = await walk(byTar);
  tt.same(await walk(seeded), names, 'the same files and folders');
  const differing: string[] = [];
  let sparse = 0;
  for (const name of names.filter((n) => !n.endsWith('/'))) {
    const [a, b] = await Promise.all([fs.readFile(path.join(seeded, name)), fs.readFile(path.join(byTar, name))]);
    if (!a.equals(b)) differing.push(name);
    const st = await fs.stat(path.join(seeded, name));
    if (st.blocks * 512 < st.size) sparse++;
  }
  tt.ok(names.length > 500, `a whole cluster (${names.length} entries)`);
  tt.same(differing, [], 'every file holds the same bytes, holes read as zeros');
  const wal = (await fs.readdir(path.join(seeded, 'pg_wal'))).find((n) => /^[0-9A-F]{24}$/.test(n))!;
  const st = await fs.stat(path.join(seeded, 'pg_wal', wal));
  tt.equal(st.size, 16 * 1024 * 1024, 'the WAL segment keeps its full length');
  tt.ok(st.blocks * 512 < st.size, `its zero pages take no space (${Math.round((st.blocks * 512) / 1024 / 1024)} of 16 MiB written; ${sparse} sparse files)`);
});

t.test('pglite: a damaged template is an error, not a crash, and leaves nothing half-made (the open then runs initdb)', async (tt) => {
  const from = path.join(tmp, 'damaged-template');
  await fs.mkdir(from);
  const whole = await fs.readFile(path.join(repoRoot, 'dist', 'store-template.tar.gz'));
  await fs.writeFile(path.join(from, 'store-template.tar.gz'), whole.subarray(0, Math.floor(whole.length / 2)));
  await fs.copyFile(path.join(repoRoot, 'dist', 'store-template.json'), path.join(from, 'store-template.json'));
  const target = path.join(tmp, 'damaged-seed', 'evidence');
  await fs.mkdir(path.dirname(target));
  await tt.rejects(seedFromTemplate(target, from), /unexpected end of file|Z_BUF_ERROR|truncated/i, 'a truncated tarball is an error, not a crash');
  tt.notOk(existsSync(target), 'no half cluster where the store goes');
  tt.same((await fs.readdir(path.dirname(target))).filter((n) => n.includes('.seed-')), [], 'no staging folder left');
  await fs.writeFile(path.join(from, 'store-template.json'), JSON.stringify({ key: 'another' }));
  tt.equal(await seedFromTemplate(target, from), false, 'a template built from other migrations is not used');
});

t.test('pglite: a process that changed runs vacuums the store (no autovacuum); finished runs stop costing every open', async (tt) => {
  const dir = path.join(tmp, 'vacuum');
  const store = await track(RunStore.open({ dataDir: dir, schema: 'backproof' }));
  for (let i = 0; i < 400; i++) {
    const run = sampleRun({ policy: 'vac', startedAt: at(9 * 86_400_000 + i * 1000) });
    await store.recordStart(run);
    await store.finalize(finished(run));
  }
  // What every open asks (markAbortedRuns): the runs still running on this host.
  const plan = async (): Promise<string> =>
    (await store.executor.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) SELECT id FROM backproof.runs WHERE status = 'running' AND host = 'h'`)).rows
      .map((r) => r['QUERY PLAN'])
      .join('\n');
  const heapBlocks = (text: string): number => Number(/Heap Blocks: exact=(\d+)/.exec(text)?.[1] ?? 0);
  const before = await plan();
  tt.ok(heapBlocks(before) >= 50, `before: the index still leads to every finalized run's old version (${heapBlocks(before)} heap blocks read)`);
  tt.equal(await store.maintain(), true, 'maintain vacuums after runs changed');
  tt.equal(await store.maintain(), false, 'and not again until more change');
  const statistics = await store.executor.query<{ n: number | string }>(`SELECT count(*) AS n FROM pg_stats WHERE schemaname = 'backproof' AND tablename = 'runs'`);
  tt.ok(Number(statistics.rows[0]!.n) > 0, 'the planner got statistics for the runs it had none for');
  const after = await plan();
  tt.ok(heapBlocks(after) <= 1, `after: ${heapBlocks(after)} heap blocks`);
  const run = sampleRun({ policy: 'vac', startedAt: at(10 * 86_400_000) });
  await store.recordStart(run);
  await store.finalize(finished(run));
  await release(store); // close() maintains too
  const again = await track(RunStore.open({ dataDir: dir, schema: 'backproof' }));
  tt.equal(await again.maintain(), false, 'nothing changed in this process yet');
  await release(again);
  const pg = stores.postgres!;
  tt.equal(await pg.maintain(), false, 'a PostgreSQL server vacuums itself');
});

t.test('planner statistics are renewed when a table crosses a 10% step of its size, not at every close', async (tt) => {
  tt.equal(statisticsStale(undefined, 10), true, 'a table not seen before');
  tt.equal(statisticsStale(-1, 10), true, 'never vacuumed nor analyzed');
  tt.equal(statisticsStale(0, 1), true, 'its first row');
  tt.equal(statisticsStale(100_000, 100_001), false, 'one run more of 100,000');
  tt.equal(statisticsStale(100_000, 100_000), false, 'runs finalized, none added');
  tt.equal(statisticsStale(100_000, 115_000), true, '15% more');
  tt.equal(statisticsStale(100_000, 80_000), true, 'a fifth pruned');
  let analyses = 0;
  for (let rows = 1000; rows < 100_000; rows++) if (statisticsStale(rows, rows + 1)) analyses++;
  tt.ok(analyses > 40 && analyses < 60, `one run at a time from 1,000 to 100,000 runs: ${analyses} analyses, not 99,000`);
});

t.test('postgres: concurrent opens migrate once; errors never show the password', async (tt) => {
  const schema = `evidence_race_${process.pid}`;
  const many = await Promise.all([1, 2, 3, 4].map(() => track(RunStore.open({ url: pgUrl, dataDir: tmp, schema }))));
  tt.same(many.flatMap((s) => s.migration.applied).sort((a, b) => a - b), loadMigrations().map((m) => m.version), 'each migration applied by exactly one opener');
  tt.equal((await cluster.psql(`SELECT count(*) FROM ${schema}.schema_migrations`, 'evidence_test')).trim(), String(loadMigrations().length));
  await Promise.all(many.map(release));

  const url = `postgres://backproof:s3cr%21t-pw@127.0.0.1:${cluster.port + 1}/nowhere`;
  const err = await rejectsCode(tt, createPgExecutor(url), 'store_unreachable', 'closed port gives store_unreachable');
  tt.match(err?.message ?? '', `127.0.0.1:${cluster.port + 1}/nowhere`);
  tt.notMatch(err?.message ?? '', /s3cr/, 'no password in the message');
  const noDb = await rejectsCode(tt, createPgExecutor(cluster.urlFor('missing_db')), 'store_unreachable', 'missing database too');
  tt.match(noDb?.message ?? '', 'missing_db');
  await rejectsCode(tt, RunStore.open({ url: pgUrl, dataDir: tmp, schema: 'Bad-Name' }), 'store_schema_invalid', 'schema name validated');
});

t.test('postgres and pglite give deep-equal records for the same input', async (tt) => {
  const run = finished(sampleRun({ client: 'cross', startedAt: at(7 * 86_400_000) }));
  const pgStore = stores.postgres!;
  const liteStore = stores.pglite!;
  for (const s of [pgStore, liteStore]) {
    await s.recordStart({ ...run, status: 'running' });
    await s.finalize(run);
  }
  const fromPg = await pgStore.get(run.id);
  const fromLite = await liteStore.get(run.id);
  tt.strictSame(fromPg, fromLite, 'same record from both backends');
  tt.strictSame(fromLite, run, 'and equal to what was written');
  tt.strictSame(await pgStore.list({ client: 'cross' }), await liteStore.list({ client: 'cross' }));
});

t.test('leak check: every store closed, no connection left, cluster stopped', async (tt) => {
  for (const s of Object.values(stores)) if (s) await release(s);
  tt.equal(storeRegister.open.size, 0, 'no store left open');
  tt.equal(await backproofConnections(cluster), 0, 'no backproof connection left on the server');
  tt.notOk(existsSync(path.join(liteDir, 'evidence.lock')), 'no PGlite lock left');
  await cluster.stop();
  tt.notOk(isPidAlive(cluster.pid), 'postgres server process gone');
  tt.notOk(existsSync(cluster.dataDir), 'cluster files removed');
});
