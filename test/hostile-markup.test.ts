import { randomUUID } from 'node:crypto';
import path from 'node:path';
import t, { type Test } from 'tap';
import { createAlert } from '../orchestrator/alerts/alert.js';
import { renderHtml as renderAlertHtml } from '../orchestrator/alerts/render.js';
import { parseConfigText } from '../orchestrator/config/load.js';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { Logger } from '../orchestrator/core/logger.js';
import { AlertStore } from '../orchestrator/evidence/alert-store.js';
import { EvidenceChain } from '../orchestrator/evidence/chain.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { startWebServer } from '../orchestrator/web/server.js';
import { TokenStore } from '../orchestrator/web/token-store.js';
import { buildMonthlyReport, renderMonthlyReport } from '../reports/monthly/index.js';
import { tempDir } from './helpers/harness.js';
import { MONTH, reportConfigYaml, seedMonth } from './helpers/report-fixtures.js';
import { buildWebFixture, CONFIG_TEXT, NOW } from './helpers/web-fixtures.js';

// Hostile text from evidence or config (a client or policy name, a run's reason, a backup key)
// reaches every HTML producer (the dashboard's pages, the monthly HTML report, the alert mail)
// only escaped: no tag of it survives. The names come through the store, which (unlike the
// config's schema) does not restrict them: a record written by another installation or by hand.

const SCRIPT = '<script>alert(1)</script>';
const IMG = '"><img src=x onerror=alert(1)>';
const SCRIPT_ESCAPED = '&lt;script&gt;alert(1)&lt;/script&gt;';
const IMG_ESCAPED = '&quot;&gt;&lt;img src=x onerror=alert(1)&gt;';

function noLiveTag(t: Test, page: string, where: string): void {
  t.notMatch(page, /<script/i, `${where}: no <script`);
  t.notMatch(page, /<img src=x/i, `${where}: no <img from the input`);
  t.notMatch(page, /onerror=alert\(1\)>/, `${where}: no attribute broken out of`);
}

t.test('the dashboard: board, runs, a run, a policy, reports', async (t) => {
  const fx = await buildWebFixture();
  t.teardown(() => fx.close());
  // A display name is free text in the config: the hostile one goes there.
  const config = parseConfigText(CONFIG_TEXT.replace(/displayName: 'ACME[^\n]*/, `displayName: ${JSON.stringify(`ACME ${SCRIPT} ${IMG}`)}`), path.join(fx.dir, 'backproof.yaml'), {});
  const base = fx.runs.acmeFilesFailed;
  const record = async (over: Partial<RunRecord>): Promise<RunRecord> => {
    const run: RunRecord = { ...base, id: randomUUID(), startedAt: new Date(NOW.getTime() - 60_000).toISOString(), ...over };
    await fx.store.recordStart({ ...run, status: 'running', verdict: null, finishedAt: null, durationMs: null });
    await fx.store.finalize(run);
    return run;
  };
  const hostileRun = await record({
    client: `evil${SCRIPT}`,
    policy: `p${IMG}`,
    reasons: [{ code: 'probe_failed', message: `reason ${SCRIPT} ${IMG}` }],
    backup: { ...base.backup!, key: `key${SCRIPT}${IMG}` },
  });
  const acmeRun = await record({
    client: 'acme',
    policy: 'acme-files',
    reasons: [{ code: 'probe_failed', message: `reason ${SCRIPT}` }],
    backup: { ...base.backup!, key: `files/${IMG}.tar` },
  });

  const tokens = new TokenStore(fx.store.executor, fx.store.schema);
  const admin = await tokens.create({ scope: { kind: 'admin' }, name: 'ops' });
  const server = await startWebServer({ config, runs: fx.store, alerts: fx.alerts, logger: new Logger({ json: true, level: 'error', write: () => undefined }), host: '127.0.0.1', port: 0, now: () => NOW });
  t.teardown(() => server.close());
  const get = async (p: string): Promise<string> => {
    const res = await fetch(`http://127.0.0.1:${server.port}${p}`, { headers: { authorization: `Bearer ${admin.token}` } });
    t.equal(res.status, 200, `${p} answers`);
    return res.text();
  };

  const pages: Record<string, string> = {
    board: await get('/'),
    runs: await get('/runs?limit=500'),
    'the hostile run': await get(`/runs/${hostileRun.id}`),
    'an acme run': await get(`/runs/${acmeRun.id}`),
    policy: await get('/policies/acme-files'),
    reports: await get('/reports'),
    'not found': await (await fetch(`http://127.0.0.1:${server.port}/runs/${encodeURIComponent(SCRIPT)}`, { headers: { authorization: `Bearer ${admin.token}` } })).text(),
  };
  for (const [where, page] of Object.entries(pages)) noLiveTag(t, page, where);
  t.ok(pages.board!.includes(`ACME ${SCRIPT_ESCAPED} ${IMG_ESCAPED}`), 'the board shows the display name, escaped');
  t.ok(pages.runs!.includes(`evil${SCRIPT_ESCAPED}`) && pages.runs!.includes(`p${IMG_ESCAPED}`), 'the runs page shows client and policy, escaped');
  t.ok(pages.runs!.includes(`/policies/${encodeURIComponent(`p${IMG}`).replace(/'/g, '&#39;')}`), 'a link to the policy, its name encoded');
  const run = pages['the hostile run']!;
  for (const shown of [`reason ${SCRIPT_ESCAPED} ${IMG_ESCAPED}`, `key${SCRIPT_ESCAPED}${IMG_ESCAPED}`, `evil${SCRIPT_ESCAPED}`]) t.ok(run.includes(shown), `the run page shows ${shown}`);
  t.ok(pages['an acme run']!.includes(`files/${IMG_ESCAPED}.tar`), 'the backup key, escaped');
});

t.test('the monthly HTML report', async (t) => {
  const dir = await tempDir('hostile-report');
  const store = await RunStore.open({ dataDir: path.join(dir, 'data'), schema: 'backproof' });
  t.teardown(() => store.close());
  const alerts = new AlertStore(store.executor, store.schema);
  await seedMonth(store, alerts);
  const config = parseConfigText(reportConfigYaml({ displayName: `ACME ${SCRIPT} ${IMG}` }), path.join(dir, 'backproof.yaml'), {});
  const report = await buildMonthlyReport({ runs: store, alerts, chain: new EvidenceChain(store.executor, store.schema), config }, { client: 'acme', month: MONTH, now: new Date('2026-12-02T06:00:00Z') });
  // The model as a record with hostile names would give it (the store does not restrict them).
  const policy = `shop${IMG}`;
  const old = report.policies[0]!.policy;
  report.policies[0]!.policy = policy;
  for (const r of report.runs.filter((x) => x.policy === old)) {
    r.policy = policy;
    r.backupKey = `key${SCRIPT}`;
    r.reasons = [{ code: 'probe_failed', message: `reason ${SCRIPT} ${IMG}` }];
  }
  for (const f of report.failures) f.policy = policy;
  for (const i of report.incidents) i.summary = `summary ${SCRIPT}`;

  const page = (await renderMonthlyReport(report, 'html')).toString('utf8');
  noLiveTag(t, page, 'monthly report');
  for (const shown of [`ACME ${SCRIPT_ESCAPED} ${IMG_ESCAPED}`, `shop${IMG_ESCAPED}`, `key${SCRIPT_ESCAPED}`, `reason ${SCRIPT_ESCAPED} ${IMG_ESCAPED}`, `summary ${SCRIPT_ESCAPED}`]) {
    t.ok(page.includes(shown), `shows ${shown}`);
  }
  t.equal((page.match(/<svg /g) ?? []).length, 2, 'the charts (with the policy in their legend) are still inline SVG');
});

t.test('the alert mail', async (t) => {
  const alert = createAlert({
    id: `acme/x/fail/${SCRIPT}`,
    condition: 'fail',
    state: 'firing',
    client: { name: `evil${SCRIPT}`, displayName: `ACME ${IMG}` },
    policy: `p${IMG}`,
    kind: 'postgres',
    occurredAt: '2026-11-27T02:10:42.000Z',
    summary: `summary ${SCRIPT}`,
    reasons: [{ code: 'checksum_mismatch', message: `reason ${SCRIPT} ${IMG}` }],
    run: {
      id: 'r-1',
      verdict: 'fail',
      startedAt: '2026-11-27T02:10:00.000Z',
      durationMs: 44_720,
      phases: [{ name: `phase${SCRIPT}`, durationMs: 120, outcome: 'fail' }],
      backup: { key: `key${IMG}`, size: 10, backupTime: '2026-11-27T02:00:00.000Z', ageMs: 600_000 },
      metrics: {},
    },
  });
  const mail = renderAlertHtml(alert);
  noLiveTag(t, mail, 'alert mail');
  for (const shown of [`evil${SCRIPT_ESCAPED}`, `p${IMG_ESCAPED}`, `summary ${SCRIPT_ESCAPED}`, `reason ${SCRIPT_ESCAPED} ${IMG_ESCAPED}`, `key${IMG_ESCAPED}`, `phase${SCRIPT_ESCAPED}`]) {
    t.ok(mail.includes(shown), `shows ${shown}`);
  }
});
