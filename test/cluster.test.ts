import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { slotRunId, queueFor, satisfies } from '../orchestrator/cluster/slots.js';
import { parseLabels } from '../orchestrator/cli/cluster-command.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { goodArchive, waitFor } from './helpers/daemon-harness.js';
import { startPrivateDockerd } from './helpers/private-dockerd.js';
import { tempDir } from './helpers/harness.js';
import { startPgCluster, type PgCluster } from './helpers/pg-cluster.js';

// Cluster mode as operators run it: `backproof scheduler` and `backproof worker`, each its own
// process (the installed entry point), on one real PostgreSQL (evidence store and pg-boss job
// queue) and the real Docker engine. Each scheduled slot of a policy is recorded exactly once,
// however many schedulers run; a killed worker's run is aborted, its sandbox removed, and the slot
// run once more by another worker.

const BIN = path.resolve('bin/backproof.js');
let pg: PgCluster;
t.before(async () => {
  pg = await startPgCluster();
});
t.teardown(() => pg?.stop());

interface Node {
  child: ChildProcess;
  log: () => string;
  exited: Promise<number | null>;
}

function spawnNode(t: Test, dir: string, args: string[]): Node {
  const child = spawn(process.execPath, [BIN, ...args, '--config', path.join(dir, 'backproof.yaml'), '--data-dir', path.join(dir, 'data')], {
    env: { ...process.env, BACKPROOF_LOG_LEVEL: 'debug' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  child.stdout!.resume();
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (process.env.BACKPROOF_TEST_LOG_DIR) await fs.writeFile(path.join(process.env.BACKPROOF_TEST_LOG_DIR, `${args[0]}-${child.pid}.log`), log);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, log: () => log, exited };
}

/** SIGTERM, then the exit code must be 0; if not, the node's last log lines say why. */
async function stopsCleanly(t: Test, node: Node, what = 'it stops cleanly'): Promise<void> {
  if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill('SIGTERM');
  t.equal(await node.exited, 0, what, { log: node.log().split('\n').slice(-15).join('\n') });
}

interface Cluster {
  dir: string;
  schema: string;
  store: RunStore;
}

/** A config of `policies` files-kind policies (each its own folder with one good archive), on its own schema. */
async function cluster(t: Test, policies: Array<{ name: string; schedule: string; requires?: string; slow?: boolean; coverage?: string }>): Promise<Cluster> {
  const dir = await tempDir('cluster');
  const schema = `c_${Math.random().toString(36).slice(2, 10)}`;
  const key = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  await fs.writeFile(path.join(dir, 'evidence-key.pem'), key, { mode: 0o600 });
  const blocks: string[] = [];
  for (const p of policies) {
    const folder = path.join(dir, 'backups', p.name);
    await fs.mkdir(folder, { recursive: true });
    await goodArchive(folder, 'share-1.tar.gz', 2);
    if (p.coverage) {
      // Two older restore points, a day and two days old; the older one cut in half.
      for (const [name, days] of [['share-0b.tar.gz', 1], ['share-0a.tar.gz', 2]] as const) {
        const file = await goodArchive(folder, name, 2);
        if (days === 2) await fs.truncate(file, Math.floor((await fs.stat(file)).size / 2));
        const at = new Date(Date.now() - days * 86_400_000);
        await fs.utimes(file, at, at);
      }
    }
    blocks.push(`      - name: ${p.name}
        kind: ${p.slow ? 'custom' : 'files'}
        source: { driver: local, path: ${JSON.stringify(folder)}, select: { glob: "*.tar.gz", settle: 0s } }
        targets: { rpo: 1h }
        sizeAnomaly: false
        sandbox: { memory: 256m, timeout: 2m }
        schedule: ${JSON.stringify(p.schedule)}
${p.requires ? `        requires: ${p.requires}\n` : ''}${p.coverage ? `        coverage: ${p.coverage}\n` : ''}${
      p.slow
        ? `        custom:
          image: backproof/files
          restore: [sh, -c, "cat > /dev/null; sleep 12"]
`
        : `        probes:
          - files: { exist: ["docs/*.txt"] }
`
    }`);
  }
  await fs.writeFile(
    path.join(dir, 'backproof.yaml'),
    `database: { url: ${JSON.stringify(pg.url)}, schema: ${schema} }
evidence: { signingKey: "\${file:evidence-key.pem}" }
daemon: { checkEvery: 1s, concurrency: 20, perClient: 20, shutdownGrace: 5s, catchUp: false }
clients:
  - name: acme
    policies:
${blocks.join('')}`,
  );
  const store = await RunStore.open({ url: pg.url, dataDir: path.join(dir, 'data'), schema, signingKey: key });
  t.teardown(() => store.close());
  return { dir, schema, store };
}

interface SlotRow {
  run_id: string;
  policy: string;
  slot: Date;
  attempt: number;
  status: string | null;
  verdict: string | null;
}

async function slots(c: Cluster): Promise<SlotRow[]> {
  const { rows } = await c.store.executor.query<SlotRow>(
    `SELECT s.run_id, s.policy, s.slot, s.attempt, r.status, r.verdict FROM ${c.schema}.run_slots s LEFT JOIN ${c.schema}.runs r ON r.id = s.run_id ORDER BY s.policy, s.slot, s.attempt`,
  );
  return rows;
}

/** Every slot has exactly one record per attempt, and every run recorded belongs to a slot. */
async function assertExactlyOnce(t: Test, c: Cluster): Promise<SlotRow[]> {
  const rows = await slots(c);
  const { rows: runs } = await c.store.executor.query<{ id: string; n: number }>(`SELECT id, count(*) OVER (PARTITION BY policy, started_at) AS n FROM ${c.schema}.runs`);
  const slotIds = new Set(rows.map((r) => r.run_id));
  t.same(runs.filter((r) => !slotIds.has(r.id)).map((r) => r.id), [], 'no run outside a scheduled slot');
  const keys = rows.map((r) => `${r.policy}@${new Date(r.slot).toISOString()}#${r.attempt}`);
  t.equal(new Set(keys).size, keys.length, 'one row per (policy, slot, attempt)');
  for (const r of rows) t.equal(r.run_id, slotRunId(r.policy, new Date(r.slot), Number(r.attempt)), 'the run id is the slot\'s');
  const verification = await c.store.evidenceChain().verify();
  t.equal(verification.ok, true, `evidence verify: ${JSON.stringify(verification).slice(0, 300)}`);
  return rows;
}

t.test('slots, queues and labels', async (t) => {
  const slot = new Date('2026-12-03T02:00:00Z');
  t.equal(slotRunId('shop', slot, 1), slotRunId('shop', new Date(slot), 1), 'the same slot, the same id');
  t.not(slotRunId('shop', slot, 1), slotRunId('shop', slot, 2), 'another attempt, another id');
  t.match(slotRunId('shop', slot, 1), /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.equal(queueFor({}), 'restore');
  t.equal(queueFor({ site: 'berlin', kvm: 'true' }), 'restore.kvm=true.site=berlin');
  t.ok(satisfies({ site: 'berlin', kvm: 'true' }, { site: 'berlin' }));
  t.notOk(satisfies({ site: 'paris' }, { site: 'berlin' }));
  t.same(parseLabels(['site=berlin', 'kvm=true']), { site: 'berlin', kvm: 'true' });
  t.throws(() => parseLabels(['site']), /is not key=value/);
});

t.test('one scheduler, three workers on two Docker engines: 60 runs over 20 policies, every slot recorded exactly once', async (t) => {
  const engine = await startPrivateDockerd();
  t.teardown(() => engine.destroy());
  await engine.loadImage('backproof/files');
  const names = Array.from({ length: 20 }, (_, i) => `p${i}`);
  const c = await cluster(
    t,
    names.map((name) => ({ name, schedule: 'every 5s' })),
  );
  const workers = [
    spawnNode(t, c.dir, ['worker', '--concurrency', '2']),
    spawnNode(t, c.dir, ['worker', '--concurrency', '2']),
    spawnNode(t, c.dir, ['worker', '--concurrency', '2', '--docker-host', engine.host]),
  ];
  const scheduler = spawnNode(t, c.dir, ['scheduler', '--takeover', '1s']);
  await waitFor('60 finished runs', async () => (await slots(c)).filter((r) => r.status === 'finished').length >= 60, 240_000);
  await stopsCleanly(t, scheduler, 'the scheduler stops cleanly');
  // What was queued is finished by the workers before they stop.
  await waitFor('the queue to drain', async () => (await slots(c)).every((r) => r.status !== null && r.status !== 'running'), 120_000);
  for (const w of workers) await stopsCleanly(t, w, 'a worker stops cleanly');
  const rows = await assertExactlyOnce(t, c);
  t.ok(rows.every((r) => r.verdict === 'pass'), `every run passed: ${JSON.stringify(rows.filter((r) => r.verdict !== 'pass'))}`);
  const ran = workers.map((w) => (w.log().match(/"msg":"running p\d+/g) ?? []).length);
  t.ok(ran.filter((n) => n > 0).length >= 2, `runs spread over the workers (${ran.join(', ')})`);
  t.ok(ran[2]! > 0, `the worker on the second engine ran ${ran[2]} of them`);
  t.match(workers[2]!.log(), new RegExp(`on ${engine.host.replace(/[/.]/g, '\\$&')}`), 'and says which engine it drives');
  t.same(await engine.docker.listContainers({ all: true }), [], 'nothing left on the second engine');
  t.match(scheduler.log(), /is now the active one/);
});

t.test('two schedulers at once: one active, exactly one run per slot; kill it and the other takes over', async (t) => {
  const c = await cluster(t, [
    { name: 'q0', schedule: 'every 3s' },
    { name: 'q1', schedule: 'every 3s' },
  ]);
  const worker = spawnNode(t, c.dir, ['worker', '--concurrency', '4']);
  const a = spawnNode(t, c.dir, ['scheduler', '--takeover', '1s']);
  const b = spawnNode(t, c.dir, ['scheduler', '--takeover', '1s']);
  await waitFor('an active scheduler', () => /is now the active one/.test(a.log() + b.log()), 30_000);
  await waitFor('6 finished runs', async () => (await slots(c)).filter((r) => r.status === 'finished').length >= 6, 90_000);
  const [active, standby] = /is now the active one/.test(a.log()) ? [a, b] : [b, a];
  t.notMatch(standby.log(), /is now the active one/, 'only one is active');
  active.child.kill('SIGKILL');
  await active.exited;
  const killedAt = Date.now();
  await waitFor('the standby to take over', () => /is now the active one/.test(standby.log()), 60_000);
  t.ok(Date.now() - killedAt < 60_000, `took over in ${Date.now() - killedAt} ms`);
  const before = (await slots(c)).length;
  await waitFor('runs scheduled by the new active one', async () => (await slots(c)).filter((r) => r.status === 'finished').length >= before + 2, 90_000);
  await stopsCleanly(t, standby);
  await waitFor('the queue to drain', async () => (await slots(c)).every((r) => r.status !== null && r.status !== 'running'), 60_000);
  await stopsCleanly(t, worker);
  await assertExactlyOnce(t, c);
});

t.test('a worker killed mid-restore: its run aborted, its sandbox removed, the slot run once more elsewhere', async (t) => {
  // A schedule that cannot fire while the test runs (12 hours away, UTC): the only runs are the
  // slot enqueued below and its retry. With `every 1h`, a test that crossed the hour saw a third.
  const farAway = `daily at ${String((new Date().getUTCHours() + 12) % 24).padStart(2, '0')}:00`;
  const c = await cluster(t, [{ name: 'slow', schedule: farAway, slow: true }]);
  const first = spawnNode(t, c.dir, ['worker', '--concurrency', '1', '--heartbeat', '1s']);
  // Seed one slot through the scheduler's catch-up-free path: start it and let it enqueue the next slot by hand.
  const scheduler = spawnNode(t, c.dir, ['scheduler', '--takeover', '1s', '--stale-worker', '3s']);
  await waitFor('an active scheduler', () => /is now the active one/.test(scheduler.log()), 30_000);
  const { enqueueAttempt } = await import('../orchestrator/cluster/dispatcher.js');
  const { JobQueue } = await import('../orchestrator/cluster/job-queue.js');
  const { WorkerRegistry } = await import('../orchestrator/cluster/worker-registry.js');
  const { loadConfig } = await import('../orchestrator/config/load.js');
  const { Logger } = await import('../orchestrator/core/logger.js');
  const config = await loadConfig(path.join(c.dir, 'backproof.yaml'));
  const queue = await JobQueue.open({ url: pg.url, schema: c.schema });
  t.teardown(() => queue.stop());
  const slot = new Date(Math.floor(Date.now() / 60_000) * 60_000);
  const runId = await enqueueAttempt({ queue, registry: new WorkerRegistry(c.store.executor, c.schema), logger: new Logger({ write: () => undefined }) }, config.policies[0]!, slot, 1);
  const runtime = new DockerRuntime();
  await waitFor('the restore to be under way', async () => (await c.store.get(runId))?.status === 'running' && (await runtime.leftovers(runId)).containers.length > 0, 60_000);
  first.child.kill('SIGKILL');
  await first.exited;
  const killedAt = Date.now();
  // No other worker yet: only the scheduler's heartbeat sweep can notice.
  await waitFor('the killed run to be aborted', async () => (await c.store.get(runId))?.status === 'aborted', 60_000);
  t.ok(Date.now() - killedAt < 20_000, `aborted ${Date.now() - killedAt} ms after the kill`);
  const aborted = await c.store.get(runId);
  t.match(aborted?.reasons[0]?.message, /stopped sending heartbeats for over 3 s during this run; its sandbox is removed and the slot is run once more \(found at \S+; last progress at \S+\)/);
  // The record keeps what the worker had stored as it went: finishedAt is its last progress.
  t.ok(aborted?.backup?.key, 'the backup it had picked');
  t.equal(aborted?.phases.filter((p) => p.outcome === 'unfinished').length, 1, 'the phase under way is unfinished');
  t.ok(Date.parse(aborted!.finishedAt!) <= killedAt, 'finishedAt: its last progress, before the kill, not when the sweep found it');
  await waitFor('its sandbox to be removed', async () => {
    const l = await runtime.leftovers(runId);
    return l.containers.length + l.volumes.length === 0;
  }, 60_000);
  const second = spawnNode(t, c.dir, ['worker', '--concurrency', '1', '--heartbeat', '1s']);
  const retry = slotRunId('slow', slot, 2);
  await waitFor('the slot to be run once more and finish', async () => (await c.store.get(retry))?.status === 'finished', 90_000);
  t.equal((await c.store.get(retry))?.verdict, 'pass');
  t.match(second.log(), new RegExp(`running slow .*attempt 2, run ${retry}`));
  await stopsCleanly(t, scheduler);
  await stopsCleanly(t, second);
  const rows = await assertExactlyOnce(t, c);
  t.same(rows.map((r) => [r.attempt, r.status]), [[1, 'aborted'], [2, 'finished']], 'two attempts, no third');
});

t.test('a policy requiring a label no live worker has is reported; a worker with it clears that', async (t) => {
  const c = await cluster(t, [{ name: 'berlin-share', schedule: 'every 3s', requires: '{ site: berlin }' }]);
  const paris = spawnNode(t, c.dir, ['worker', '--label', 'site=paris']);
  await waitFor('the paris worker', () => /worker [0-9a-f]{8} started/.test(paris.log()), 30_000);
  const scheduler = spawnNode(t, c.dir, ['scheduler', '--takeover', '1s']);
  await waitFor('the report', () => /no live worker can run berlin-share/.test(scheduler.log()), 30_000);
  const incident = async (): Promise<{ summary: string; resolved_at: Date | null } | undefined> =>
    (await c.store.executor.query<{ summary: string; resolved_at: Date | null }>(`SELECT summary, resolved_at FROM ${c.schema}.incidents WHERE policy = 'berlin-share' AND condition = 'no_worker' ORDER BY opened_at DESC LIMIT 1`)).rows[0];
  await waitFor('the no_worker alert', async () => (await incident()) !== undefined, 30_000);
  t.match((await incident())?.summary, /no live worker carries site=berlin \(the 1 live worker\(s\) have: site=paris\)/);
  await new Promise((r) => setTimeout(r, 4_000));
  t.equal((await slots(c)).filter((r) => r.status !== null).length, 0, 'the paris worker takes none of its runs');
  const status = JSON.parse(
    (await promisify(execFile)(process.execPath, [BIN, 'status', '--json', '--config', path.join(c.dir, 'backproof.yaml'), '--data-dir', path.join(c.dir, 'data')])).stdout,
  ) as { cluster: { workers: Array<{ labels: Record<string, string>; alive: boolean; sameConfig: boolean; capacity: number }>; waiting: number; oldestWaitingSince: string } };
  t.match(status.cluster.workers, [{ labels: { site: 'paris' }, alive: true, sameConfig: true, capacity: 2 }], 'status shows the worker');
  t.ok(status.cluster.waiting >= 1, `and the runs waiting for a worker (${status.cluster.waiting})`);
  t.ok(Date.parse(status.cluster.oldestWaitingSince) <= Date.now());
  const { renderMetrics } = await import('../orchestrator/web/metrics.js');
  const { AlertStore } = await import('../orchestrator/evidence/alert-store.js');
  const { loadConfig } = await import('../orchestrator/config/load.js');
  const config = await loadConfig(path.join(c.dir, 'backproof.yaml'));
  const deps = { config: () => config, runs: c.store, alerts: new AlertStore(c.store.executor, c.schema), now: () => new Date() } as unknown as Parameters<typeof renderMetrics>[0];
  const metrics = await renderMetrics(deps, { tokenId: 't', tokenName: 'ops', scope: { kind: 'admin' } });
  t.match(metrics, /backproof_worker_alive\{worker="[0-9a-f]{8}",host="[^"]+",labels="site=paris"\} 1/);
  t.match(metrics, /backproof_queue_waiting_runs\{\} [1-9]/);
  t.match(metrics, /backproof_queue_oldest_waiting_seconds\{\} \d/);
  const scoped = await renderMetrics(deps, { tokenId: 't', tokenName: 'acme', scope: { kind: 'client', client: 'acme' } });
  t.notMatch(scoped, /backproof_worker_/, "a client's token does not see the workers");
  const { boardPage } = await import('../orchestrator/web/pages.js');
  const board = (scope: { kind: 'admin' } | { kind: 'client'; client: string }) =>
    boardPage({ url: new URL('http://127.0.0.1/'), params: [], principal: { tokenId: 't', tokenName: 'n', scope }, deps } as unknown as Parameters<typeof boardPage>[0]);
  const html = await board({ kind: 'admin' });
  t.match(html, /<h2>Workers<\/h2><p>1 of 1 worker\(s\) alive\. [1-9]\d* run\(s\) waiting for a worker/, 'the board shows the workers and the queue');
  t.match(html, /<td>site=paris<\/td>/);
  t.notMatch(await board({ kind: 'client', client: 'acme' }), /<h2>Workers/, 'not to a client');
  const berlin = spawnNode(t, c.dir, ['worker', '--label', 'site=berlin']);
  await waitFor('the report to clear', () => /every scheduled policy has a live worker again/.test(scheduler.log()), 30_000);
  await waitFor('the alert to resolve', async () => (await incident())?.resolved_at != null, 30_000);
  await waitFor('a berlin run', async () => (await slots(c)).some((r) => r.status === 'finished'), 60_000);
  await stopsCleanly(t, scheduler);
  await waitFor('the queue to drain', async () => (await slots(c)).every((r) => r.status !== null && r.status !== 'running'), 60_000);
  await stopsCleanly(t, berlin);
  await stopsCleanly(t, paris);
  t.notMatch(paris.log(), /running berlin-share/);
  await assertExactlyOnce(t, c);
});

t.test("coverage runs in cluster mode: the slot's worker runs them in its job; the scheduler alerts on an older point that fails", async (t) => {
  const c = await cluster(t, [{ name: 'cov', schedule: 'every 5s', coverage: '{ points: 2 }' }]);
  const worker = spawnNode(t, c.dir, ['worker', '--concurrency', '1']);
  const scheduler = spawnNode(t, c.dir, ['scheduler', '--takeover', '1s']);
  const s = c.schema;
  const incident = async () =>
    (await c.store.executor.query<{ key: string; run_id: string }>(`SELECT "key", run_id FROM ${s}.incidents WHERE policy = 'cov' AND condition = 'coverage' AND resolved_at IS NULL`)).rows;
  await waitFor('the coverage incident of the damaged point', async () => (await incident()).length > 0, 180_000);
  await stopsCleanly(t, scheduler);
  await waitFor('the queue to drain', async () => (await slots(c)).every((r) => r.status !== null && r.status !== 'running'), 120_000);
  await stopsCleanly(t, worker);
  const { rows } = await c.store.executor.query<{ id: string; key: string; verdict: string; plan_run: string | null }>(
    `SELECT id, backup->>'key' AS key, verdict, coverage->'point'->>'planRunId' AS plan_run FROM ${s}.runs WHERE coverage ? 'point' ORDER BY started_at`,
  );
  const first = rows.slice(0, 2);
  t.same(first.map((r) => [r.key, r.verdict]), [['share-0a.tar.gz', 'fail'], ['share-0b.tar.gz', 'pass']], 'the oldest point first; the damaged one fails');
  const slotIds = new Set((await slots(c)).map((r) => r.run_id));
  t.ok(first.every((r) => r.plan_run !== null && slotIds.has(r.plan_run)), 'each planned by a slot run');
  const [open] = await incident();
  t.equal(open?.key, 'share-0a.tar.gz', 'the incident names the point');
  t.equal(open?.run_id, first[0]!.id, 'and its coverage run');
  const latest = await c.store.latestSummaryPerPolicy();
  t.ok(slotIds.has(latest.get('cov')!.id), "the policy's latest run is a slot's run of the newest backup");
  t.ok((await c.store.evidenceChain().verify()).ok, 'the chain verifies');
});
