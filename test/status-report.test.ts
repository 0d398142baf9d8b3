import t from 'tap';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { AlertStore } from '../orchestrator/evidence/alert-store.js';
import { buildStatus, renderStatus } from '../reports/status-report.js';
import { openEmbeddedStore, policyFromYaml, tempDir } from './helpers/harness.js';
import { buildRun } from './helpers/report-fixtures.js';

// `status` while a run is in progress: the last verdict is the newest finished run's, and the run
// in progress is shown beside it (a daemon on a short schedule is nearly always running one).
t.test('a run in progress does not hide the last verdict', async (t) => {
  const { store } = await openEmbeddedStore();
  t.teardown(() => store.close());
  const policy = policyFromYaml({ folder: await tempDir('status') });
  const alerts = new AlertStore(store.executor, store.schema);
  const now = Date.now();
  const at = (agoMs: number): string => new Date(now - agoMs).toISOString();
  const spec = { client: policy.client, policy: policy.name, kind: 'postgres', size: 1000, ageMs: 3_600_000, restoreMs: 2_000 };

  const passed = buildRun({ ...spec, startedAt: at(60_000), verdict: 'pass' });
  await store.recordStart({ ...passed, status: 'running', verdict: null });
  await store.finalize(passed);
  const inProgress: RunRecord = { ...buildRun({ ...spec, startedAt: at(5_000), verdict: 'fail' }), status: 'running', verdict: null, finishedAt: null, durationMs: null, backup: null };
  await store.recordStart(inProgress);

  const during = await buildStatus({ policies: [policy] }, store, alerts, new Date(now));
  const p = during.policies[0]!;
  t.equal(p.lastRun?.id, passed.id, 'the last verdict is the finished run');
  t.equal(p.lastRun?.verdict, 'pass');
  t.same(p.inProgress, { id: inProgress.id, startedAt: inProgress.startedAt }, 'the run in progress beside it');
  t.ok(p.newestBackup, 'the newest backup known from the finished run');
  t.match(renderStatus(during), /pass 1m ago; running for 5(\.0)?s/);

  const failed: RunRecord = { ...inProgress, status: 'finished', verdict: 'fail', reasons: [{ code: 'restore_failed', message: 'pg_restore failed' }], finishedAt: at(1_000), durationMs: 4_000 };
  await store.finalize(failed);
  const after = (await buildStatus({ policies: [policy] }, store, alerts, new Date(now))).policies[0]!;
  t.equal(after.lastRun?.id, failed.id, 'once finished, it is the last run');
  t.equal(after.lastRun?.verdict, 'fail');
  t.equal(after.inProgress, undefined);
});
