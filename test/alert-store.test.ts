import { randomUUID } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { AlertStore, type DeliveryInput, type DeliveryRow, type IncidentInput } from '../orchestrator/evidence/alert-store.js';
import { loadMigrations } from '../orchestrator/evidence/migrate.js';
import { isPidAlive } from '../orchestrator/evidence/pglite-executor.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { startPgCluster } from './helpers/pg-cluster.js';
import { appliedOnFirstOpen } from './helpers/store-template.js';
import { startStoreHolder } from './helpers/store-holder.js';
import { OpenStores, backproofConnections, bothBackends, type Backend } from './helpers/store-backends.js';

/**
 * One conformance suite for the alert store (incidents, deliveries, policy_state), run against a
 * real PostgreSQL 15 server (its own cluster, a fresh schema for this file) and against embedded
 * PGlite (a temp data dir).
 */
const latest = loadMigrations().at(-1)?.version ?? 0;
const base = Date.UTC(2026, 10, 1, 3, 0, 0, 123);
const at = (offsetMs: number): string => new Date(base + offsetMs).toISOString();
const MIN = 60_000;

const cluster = await startPgCluster();
t.teardown(() => cluster.stop());
const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-alert-store-test-'));
t.teardown(() => fs.rm(tmp, { recursive: true, force: true }));
const pgUrl = await cluster.createDatabase('alert_store_test');
const pgSchema = `alerts_${process.pid}`;
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

function incidentInput(over: Partial<IncidentInput> = {}): IncidentInput {
  return {
    client: 'acme',
    policy: 'acme-nightly-pg',
    condition: 'fail',
    openedAt: at(0),
    summary: "acme-nightly-pg: probe 'orders' failed (ü)",
    reasons: [{ code: 'probe_failed', message: "probe 'orders' expected >= 1000 rows, got 12; it's \"wrong\"" }],
    runId: randomUUID(),
    since: at(-3_600_000),
    ...over,
  };
}

function deliveryInput(over: Partial<DeliveryInput> = {}): DeliveryInput {
  return {
    id: randomUUID(),
    incidentId: null,
    kind: 'alert',
    client: 'acme',
    policy: 'acme-nightly-pg',
    channel: 'ops-webhook',
    condition: 'fail',
    state: 'firing',
    runId: randomUUID(),
    ok: true,
    attempts: 1,
    rounds: 1,
    error: null,
    detail: 'HTTP 200',
    createdAt: at(0),
    at: at(1_234),
    durationMs: 1_234,
    retryPending: false,
    payload: {
      id: randomUUID(),
      condition: 'fail',
      state: 'firing',
      client: { name: 'acme', displayName: 'ACME Corp' },
      reasons: [{ code: 'probe_failed', message: "x'; DROP TABLE deliveries; --" }],
      run: { backup: { key: 'pg/acme.dump.gz', size: 5_368_709_120 } },
      nextSteps: ['check the backup job'],
    },
    ...over,
  };
}

/** The row recordDelivery should give back for `input`. */
function rowOf(input: DeliveryInput): DeliveryRow {
  return {
    id: input.id!,
    incidentId: input.incidentId ?? null,
    kind: input.kind,
    client: input.client,
    policy: input.policy,
    channel: input.channel,
    condition: input.condition ?? null,
    state: input.state ?? null,
    runId: input.runId ?? null,
    ok: input.ok,
    attempts: input.attempts,
    rounds: input.rounds ?? 1,
    error: input.error ?? null,
    detail: input.detail ?? null,
    createdAt: input.createdAt,
    at: input.at,
    durationMs: input.durationMs,
    retryPending: input.retryPending ?? false,
    payload: input.payload ?? null,
  };
}

async function rejectsCode(tt: Tap, p: Promise<unknown>, code: string, msg: string): Promise<void> {
  try {
    await p;
    tt.fail(`${msg}: expected ${code}, but it succeeded`);
  } catch (err) {
    tt.equal((err as { code?: string }).code, code, msg);
  }
}
interface Tap {
  fail(message: string): unknown;
  equal(found: unknown, wanted: unknown, message: string): unknown;
}

const stores: Partial<Record<Backend['name'], RunStore>> = {};
const alertsOf = (name: Backend['name']): AlertStore => {
  const store = stores[name]!;
  return new AlertStore(store.executor, store.schema);
};

for (const backend of backends) {
  t.test(`${backend.name}: alert store conformance`, async (tt) => {
    await tt.test('migration 0002 applies on a fresh store; reopening is a no-op', async (t2) => {
      t2.ok(loadMigrations().some((m) => m.version === 2 && m.name === '0002_alerts'), '0002_alerts is a known migration');
      t2.equal(latest, Math.max(...loadMigrations().map((m) => m.version)), 'the store ends at the newest migration (2 or later)');
      t2.ok(latest >= 2, 'which is 2 or later');
      const first = await backend.open();
      // A new embedded store starts from the build's template, its migrations already applied.
      t2.same(first.migration, { applied: await appliedOnFirstOpen(backend.engine), version: latest }, 'a fresh store ends current');
      await release(first);
      const second = await backend.open();
      t2.same(second.migration, { applied: [], version: latest }, 'reopening applies nothing');
      const { rows } = await second.executor.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = $1 AND table_name IN ('incidents', 'deliveries', 'policy_state')`,
        [second.schema],
      );
      t2.equal(rows[0]?.n, 3, 'the three tables exist');
      stores[backend.name] = second;
    });

    await tt.test('openIncident: once per (policy, condition, key); resolve; reopen', async (t2) => {
      const alerts = alertsOf(backend.name);
      const input = incidentInput({ policy: `open-${backend.name}` });
      const first = await alerts.openIncident(input);
      t2.equal(first.created, true, 'first open creates');
      t2.strictSame(
        first.incident,
        {
          id: first.incident.id,
          client: input.client,
          policy: input.policy,
          condition: 'fail',
          key: '',
          openedAt: input.openedAt,
          resolvedAt: null,
          lastNotifiedAt: null,
          notifications: 0,
          summary: input.summary,
          reasons: input.reasons,
          runId: input.runId,
          since: input.since,
          resolvedRunId: null,
        },
        'reads back as written',
      );
      t2.match(first.incident.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);

      const second = await alerts.openIncident({ ...input, openedAt: at(MIN), summary: 'another summary' });
      t2.equal(second.created, false, 'second open does not create');
      t2.strictSame(second.incident, first.incident, 'and returns the existing incident unchanged');
      t2.strictSame(await alerts.openIncidentFor(input.policy, 'fail'), first.incident, 'openIncidentFor finds it');
      t2.equal(await alerts.openIncidentFor(input.policy, 'error'), null, 'another condition has none');

      const other = await alerts.openIncident({ ...input, condition: 'stale', runId: null, since: null });
      t2.equal(other.created, true, 'another condition of the policy is its own incident');
      t2.equal(other.incident.runId, null);
      t2.equal(other.incident.since, null);

      const resolvedRun = randomUUID();
      t2.equal(await alerts.resolveIncident(first.incident.id, at(2 * MIN), resolvedRun), true, 'resolve returns true');
      t2.equal(await alerts.resolveIncident(first.incident.id, at(3 * MIN)), false, 'a second resolve returns false');
      t2.equal(await alerts.resolveIncident(randomUUID(), at(3 * MIN)), false, 'an unknown id returns false');
      t2.equal(await alerts.openIncidentFor(input.policy, 'fail'), null, 'no open fail incident now');
      const [resolved] = await alerts.incidents({ policy: input.policy, since: at(0), limit: 10 }).then((all) => all.filter((i) => i.id === first.incident.id));
      t2.strictSame(resolved, { ...first.incident, resolvedAt: at(2 * MIN), resolvedRunId: resolvedRun }, 'resolvedAt and resolvedRunId recorded, once');

      const again = await alerts.openIncident({ ...input, openedAt: at(4 * MIN) });
      t2.equal(again.created, true, 'after resolving, a new open creates');
      t2.not(again.incident.id, first.incident.id, 'a new incident id');
      t2.equal(await alerts.resolveIncident(again.incident.id, at(5 * MIN)), true);
      t2.equal((await alerts.incidents({ policy: input.policy })).find((i) => i.id === again.incident.id)?.resolvedRunId, null, 'resolve without a run');
    });

    await tt.test('different keys are separate incidents', async (t2) => {
      const alerts = alertsOf(backend.name);
      const policy = `keys-${backend.name}`;
      const mk = (key?: string): Promise<{ created: boolean }> =>
        alerts.openIncident(incidentInput({ policy, condition: 'delivery_failed', ...(key === undefined ? {} : { key }), reasons: [] }));
      t2.equal((await mk('ops-webhook')).created, true);
      t2.equal((await mk('ops-email')).created, true);
      t2.equal((await mk()).created, true, 'the default key is its own');
      t2.equal((await mk('')).created, false, "'' is the default key");
      t2.equal((await mk('ops-webhook')).created, false);
      t2.equal((await alerts.openIncidentFor(policy, 'delivery_failed', 'ops-email'))?.key, 'ops-email');
      t2.same((await alerts.openIncidents({ policy })).map((i) => i.key).sort(), ['', 'ops-email', 'ops-webhook']);
    });

    await tt.test('markNotified counts; updateIncident only while open', async (t2) => {
      const alerts = alertsOf(backend.name);
      const { incident } = await alerts.openIncident(incidentInput({ policy: `notify-${backend.name}` }));
      await alerts.markNotified(incident.id, at(MIN));
      await alerts.markNotified(incident.id, at(61 * MIN));
      let got = await alerts.openIncidentFor(incident.policy, 'fail');
      t2.equal(got?.notifications, 2, 'two notifications');
      t2.equal(got?.lastNotifiedAt, at(61 * MIN), 'last notified at the second');

      const newRun = randomUUID();
      await alerts.updateIncident(incident.id, { summary: 'still failing', reasons: [{ code: 'restore_failed', message: 'pg_restore: error' }], runId: newRun });
      got = await alerts.openIncidentFor(incident.policy, 'fail');
      t2.strictSame(
        got,
        { ...incident, notifications: 2, lastNotifiedAt: at(61 * MIN), summary: 'still failing', reasons: [{ code: 'restore_failed', message: 'pg_restore: error' }], runId: newRun },
        'given fields changed, since untouched',
      );
      await alerts.updateIncident(incident.id, { since: null });
      t2.equal((await alerts.openIncidentFor(incident.policy, 'fail'))?.since, null, 'null clears');
      await alerts.updateIncident(incident.id, {});

      await alerts.resolveIncident(incident.id, at(62 * MIN));
      await alerts.updateIncident(incident.id, { summary: 'too late' });
      const [after] = (await alerts.incidents({ policy: incident.policy })).filter((i) => i.id === incident.id);
      t2.equal(after?.summary, 'still failing', 'a resolved incident is not updated');
    });

    await tt.test('openIncidents and incidents: filters and ordering', async (t2) => {
      const alerts = alertsOf(backend.name);
      const client = `filters-${backend.name}`;
      const opened = [];
      for (let i = 0; i < 5; i++) {
        const policy = `${client}-${i % 2 ? 'odd' : 'even'}`;
        // Opened newest-first in insertion order, so order comes from opened_at, not from insertion.
        const { incident } = await alerts.openIncident(incidentInput({ client, policy, condition: i < 2 ? 'fail' : 'stale', key: `k${i}`, openedAt: at(86_400_000 - i * MIN) }));
        opened.push(incident);
      }
      const oldestFirst = [...opened].reverse();
      t2.strictSame(await alerts.openIncidents({ client }), oldestFirst, 'open incidents oldest first');
      t2.strictSame(await alerts.openIncidents({ policy: `${client}-odd` }), oldestFirst.filter((i) => i.policy.endsWith('odd')), 'by policy');
      t2.strictSame(await alerts.openIncidents({ client, policy: `${client}-even` }), oldestFirst.filter((i) => i.policy.endsWith('even')), 'filters combine');
      t2.ok((await alerts.openIncidents()).length >= 5, 'no filter lists every open incident');

      await alerts.resolveIncident(opened[0]!.id, at(86_400_000 + MIN));
      t2.equal((await alerts.openIncidents({ client })).length, 4, 'a resolved incident is no longer open');
      const history = await alerts.incidents({ client });
      t2.same(history.map((i) => i.id), opened.map((i) => i.id), 'history newest first, resolved included');
      t2.equal(history[0]?.resolvedAt, at(86_400_000 + MIN));
      t2.same((await alerts.incidents({ client, limit: 2 })).map((i) => i.id), opened.slice(0, 2).map((i) => i.id), 'limit');
      t2.same((await alerts.incidents({ client, since: at(86_400_000 - 2 * MIN) })).map((i) => i.id), opened.slice(0, 3).map((i) => i.id), 'since is inclusive');
      t2.same((await alerts.incidents({ policy: `${client}-odd` })).map((i) => i.id), [opened[1]!.id, opened[3]!.id], 'by policy');
      t2.strictSame(await alerts.incidents({ client: 'nobody' }), []);
      await rejectsCode(t2, alerts.incidents({ limit: 0 }), 'list_limit_invalid', 'limit 0 is refused');
    });

    await tt.test('the database refuses an unknown condition', async (t2) => {
      const alerts = alertsOf(backend.name);
      await rejectsCode(
        t2,
        alerts.openIncident(incidentInput({ policy: `bad-${backend.name}`, condition: 'recovery' as never })),
        '23514',
        'check violation',
      );
    });

    await tt.test('deliveries: round trip, update, pending, failedOnly, filters', async (t2) => {
      const alerts = alertsOf(backend.name);
      const policy = `deliv-${backend.name}`;
      const { incident } = await alerts.openIncident(incidentInput({ policy }));

      const okInput = deliveryInput({ policy, incidentId: incident.id, createdAt: at(0), at: at(1_234) });
      t2.strictSame(await alerts.recordDelivery(okInput), rowOf(okInput), 'recordDelivery returns the row deep-equal');

      const failedInput = deliveryInput({
        policy,
        incidentId: incident.id,
        channel: 'ops-email',
        ok: false,
        attempts: 3,
        error: 'smtp: 451 4.7.1 try again later',
        detail: null,
        createdAt: at(MIN),
        at: at(MIN + 45_678),
        durationMs: 45_678,
        retryPending: true,
      });
      await alerts.recordDelivery(failedInput);

      const heartbeat: DeliveryInput = {
        kind: 'heartbeat',
        client: 'acme',
        policy,
        channel: 'healthchecks',
        ok: false,
        attempts: 2,
        error: 'HTTP 503',
        createdAt: at(2 * MIN),
        at: at(2 * MIN + 9_000_000_000),
        durationMs: 9_000_000_000,
      };
      const hbRow = await alerts.recordDelivery(heartbeat);
      t2.match(hbRow.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'an id is generated when absent');
      t2.strictSame(hbRow, rowOf({ ...heartbeat, id: hbRow.id }), 'defaults: rounds 1, retryPending false, nulls; bigint duration intact');

      const pendingBefore = await alerts.pendingDeliveries();
      t2.same(pendingBefore.filter((d) => d.policy === policy).map((d) => d.id), [failedInput.id], 'pending: the failed one with retry_pending');

      const olderPending = deliveryInput({ policy, channel: 'pager', ok: false, attempts: 1, error: 'refused', createdAt: at(-MIN), at: at(-MIN + 10), durationMs: 10, retryPending: true });
      await alerts.recordDelivery(olderPending);
      t2.same(
        (await alerts.pendingDeliveries()).filter((d) => d.policy === policy).map((d) => d.id),
        [olderPending.id, failedInput.id],
        'pending oldest first',
      );

      await alerts.updateDelivery(failedInput.id!, { ok: true, attempts: 4, rounds: 2, detail: 'delivered on retry', at: at(10 * MIN), durationMs: 46_000, retryPending: false });
      const updated = (await alerts.deliveries({ policy })).find((d) => d.id === failedInput.id);
      t2.strictSame(
        updated,
        { ...rowOf(failedInput), ok: true, attempts: 4, rounds: 2, error: null, detail: 'delivered on retry', at: at(10 * MIN), durationMs: 46_000, retryPending: false },
        'updateDelivery replaces the outcome, keeps the rest (payload included)',
      );
      t2.same((await alerts.pendingDeliveries()).filter((d) => d.policy === policy).map((d) => d.id), [olderPending.id], 'no longer pending');

      const all = await alerts.deliveries({ policy });
      t2.same(all.map((d) => d.id), [hbRow.id, failedInput.id, okInput.id, olderPending.id], 'newest first by createdAt');
      t2.same((await alerts.deliveries({ policy, failedOnly: true })).map((d) => d.id), [hbRow.id, olderPending.id], 'failedOnly');
      t2.same((await alerts.deliveries({ policy, since: at(0) })).map((d) => d.id), [hbRow.id, failedInput.id, okInput.id], 'since is inclusive');
      t2.same((await alerts.deliveries({ policy, limit: 1 })).map((d) => d.id), [hbRow.id], 'limit');
      t2.same((await alerts.deliveries({ client: 'acme', policy, failedOnly: true, limit: 1 })).map((d) => d.id), [hbRow.id], 'filters combine');
      t2.strictSame(await alerts.deliveries({ client: 'nobody' }), []);
      await rejectsCode(t2, alerts.deliveries({ limit: 1.5 }), 'list_limit_invalid', 'a fractional limit is refused');
    });

    await tt.test('policy state: touchPolicy keeps first_seen_at; recordBackupCheck upserts', async (t2) => {
      const alerts = alertsOf(backend.name);
      const policy = `state-${backend.name}`;
      t2.equal(await alerts.policyState(policy), null, 'unknown policy: null');
      const empty = { newestBackupAt: null, newestBackupKey: null, newestBackupSize: null, checkedAt: null, checkError: null };
      t2.strictSame(await alerts.touchPolicy(policy, 'acme', at(0)), { policy, client: 'acme', firstSeenAt: at(0), ...empty }, 'first touch creates');
      t2.strictSame(await alerts.touchPolicy(policy, 'acme', at(MIN)), { policy, client: 'acme', firstSeenAt: at(0), ...empty }, 'a later touch keeps first_seen_at');

      await alerts.recordBackupCheck(policy, 'acme', { checkedAt: at(2 * MIN), newestBackupAt: at(-3_600_000), newestBackupKey: 'pg/acme-2026-10-31.dump.gz', newestBackupSize: 5_368_709_120 });
      const good = { policy, client: 'acme', firstSeenAt: at(0), newestBackupAt: at(-3_600_000), newestBackupKey: 'pg/acme-2026-10-31.dump.gz', newestBackupSize: 5_368_709_120, checkedAt: at(2 * MIN), checkError: null };
      t2.strictSame(await alerts.policyState(policy), good, 'a check records the newest backup (bigint intact)');

      await alerts.recordBackupCheck(policy, 'acme', { checkedAt: at(3 * MIN), error: 'source_unreachable: connect ETIMEDOUT', newestBackupKey: 'ignored' });
      t2.strictSame(await alerts.policyState(policy), { ...good, checkedAt: at(3 * MIN), checkError: 'source_unreachable: connect ETIMEDOUT' }, 'an error keeps the previous backup facts');

      await alerts.recordBackupCheck(policy, 'acme', { checkedAt: at(4 * MIN), newestBackupAt: at(3 * MIN), newestBackupKey: 'pg/acme-2026-11-01.dump.gz', newestBackupSize: 42 });
      t2.strictSame(
        await alerts.policyState(policy),
        { ...good, newestBackupAt: at(3 * MIN), newestBackupKey: 'pg/acme-2026-11-01.dump.gz', newestBackupSize: 42, checkedAt: at(4 * MIN) },
        'the next good check replaces them and clears the error',
      );
      await alerts.recordBackupCheck(policy, 'acme', { checkedAt: at(5 * MIN) });
      t2.strictSame(await alerts.policyState(policy), { ...good, ...empty, checkedAt: at(5 * MIN) }, 'a good check that found nothing clears them');

      const fresh = `state-new-${backend.name}`;
      await alerts.recordBackupCheck(fresh, 'globex', { checkedAt: at(6 * MIN), error: 'denied' });
      t2.strictSame(
        await alerts.policyState(fresh),
        { policy: fresh, client: 'globex', firstSeenAt: at(6 * MIN), ...empty, checkedAt: at(6 * MIN), checkError: 'denied' },
        'a check of an unknown policy creates it, first_seen_at = checkedAt',
      );
      t2.equal((await alerts.touchPolicy(fresh, 'globex', at(7 * MIN))).firstSeenAt, at(6 * MIN), 'touch after a check keeps first_seen_at');

      const states = await alerts.policyStates();
      t2.same(states.filter((s) => s.policy.startsWith('state-')).map((s) => s.policy), [`state-new-${backend.name}`, policy].sort(), 'policyStates by policy');
    });
  });
}

t.test('postgres: concurrent openIncident and resolveIncident', async (tt) => {
  const alerts = alertsOf('postgres');
  // A second pool too, so the race spans connections of two stores.
  const other = await track(RunStore.open({ url: pgUrl, dataDir: tmp, schema: pgSchema }));
  const alerts2 = new AlertStore(other.executor, other.schema);
  for (let round = 0; round < 5; round++) {
    const input = incidentInput({ policy: `race-${round}` });
    const results = await Promise.all([0, 1, 2, 3, 4].map((i) => (i % 2 ? alerts2 : alerts).openIncident({ ...input, openedAt: at(i) })));
    tt.equal(results.filter((r) => r.created).length, 1, `round ${round}: exactly one created`);
    tt.equal(new Set(results.map((r) => r.incident.id)).size, 1, `round ${round}: all got the same incident`);
    const id = results[0]!.incident.id;
    const resolved = await Promise.all([0, 1, 2, 3, 4].map((i) => (i % 2 ? alerts2 : alerts).resolveIncident(id, at(MIN + i))));
    tt.equal(resolved.filter(Boolean).length, 1, `round ${round}: exactly one resolve returns true`);
    tt.equal((await alerts.incidents({ policy: input.policy })).length, 1, `round ${round}: one incident stored`);
  }
  await release(other);
});

t.test('postgres and pglite give deep-equal records for the same input', async (tt) => {
  const pg = alertsOf('postgres');
  const lite = alertsOf('pglite');
  const delivery = deliveryInput({ policy: 'cross' });
  const fromPg = await pg.recordDelivery(delivery);
  const fromLite = await lite.recordDelivery(delivery);
  tt.strictSame(fromPg, fromLite, 'same delivery from both');
  tt.strictSame(fromLite, rowOf(delivery), 'and equal to what was written');
  const input = incidentInput({ policy: 'cross' });
  const a = (await pg.openIncident(input)).incident;
  const b = (await lite.openIncident(input)).incident;
  tt.strictSame({ ...a, id: '' }, { ...b, id: '' }, 'same incident from both, ids aside');
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
