import { promises as fs } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { AlertEngine, type AlertEngineDeps, type StorageFact } from '../orchestrator/alerts/alert-engine.js';
import { channelsFromConfig, closeChannels } from '../orchestrator/alerts/channels-from-config.js';
import { conditionOfReason, judgeRun } from '../orchestrator/alerts/run-conditions.js';
import { parseConfigText } from '../orchestrator/config/load.js';
import type { PolicyConfig, ResolvedConfig } from '../orchestrator/core/config-types.js';
import { ERROR_CODES, FAIL_CODES, type ReasonCode, type RunRecord, type Verdict } from '../orchestrator/core/domain.js';
import { AlertStore } from '../orchestrator/evidence/alert-store.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { Logger } from '../orchestrator/core/logger.js';
import { tempDir } from './helpers/harness.js';
import { startHttpReceiver, type HttpReceiver } from './helpers/http-receiver.js';
import { sampleRun } from './helpers/store-backends.js';

// The alert engine without Docker: hand-made run records in a real embedded evidence store
// (PGlite), real webhook channels posting to real HTTP receivers, and an injected clock. Each
// test uses its own policy names, so it only sees its own incidents.

const MIN = 60_000;
const HOUR = 60 * MIN;
const BASE = Date.UTC(2026, 10, 1, 3, 0, 0);
const iso = (ms: number): string => new Date(ms).toISOString();

const dataDir = await tempDir('alert-engine');
const folder = await tempDir('alert-engine-backups');
const store = await RunStore.open({ dataDir, schema: 'backproof' });
const alerts = new AlertStore(store.executor, store.schema);
const hook = await startHttpReceiver();
const other = await startHttpReceiver();
t.teardown(async () => {
  await store.close();
  await hook.close();
  await other.close();
  await fs.rm(dataDir, { recursive: true, force: true });
  await fs.rm(folder, { recursive: true, force: true });
});
const logs: string[] = [];
const logger = new Logger({ level: 'info', json: true, write: (line) => logs.push(line) });

interface Body {
  version: number;
  alert: { id: string; condition: string; state: string; policy: string; summary: string; since?: string; reasons: { code: string }[]; run?: { id: string } };
}
const bodies = (r: HttpReceiver, policy: string): Body[] => r.requests.map((q) => JSON.parse(q.body) as Body).filter((b) => b.alert.policy === policy);
const sent = (r: HttpReceiver, policy: string): string[] => bodies(r, policy).map((b) => `${b.alert.condition}/${b.alert.state}`);

function policyYaml(name: string, extra = ''): string {
  return `      - name: ${name}
        kind: files
        source: { driver: local, path: ${JSON.stringify(folder)}, select: { glob: "*.tar.gz", settle: 0s } }
        targets: { rpo: 1h, rto: 10m }
        sizeAnomaly: false
        probes: []
${extra ? `        ${extra}\n` : ''}`;
}

function configOf(...policies: string[]): ResolvedConfig {
  const yaml = `alerts:
  maxAttempts: 1
  reminderAfter: 0s
  channels:
    - { name: hook, type: webhook, url: ${JSON.stringify(hook.url('/hook'))} }
    - { name: other, type: webhook, url: ${JSON.stringify(other.url('/other'))} }
clients:
  - name: acme
    displayName: ACME Corp
    policies:
${policies.join('')}`;
  return parseConfigText(yaml, path.join(folder, 'backproof.yaml'), {});
}

interface Rig {
  engine: AlertEngine;
  policy: PolicyConfig;
  now(): number;
  advance(ms: number): void;
}

/** An engine over the shared store with its own clock (starting at BASE + `start`) and channels. */
function rig(t: Test, policies: string[], deps: Partial<AlertEngineDeps> = {}, start = 0): Rig {
  let now = BASE + start;
  const config = configOf(...policies);
  const channels = channelsFromConfig(config.alerts, config.secrets, logger);
  t.teardown(() => closeChannels(channels));
  const engine = new AlertEngine({ alerts, runs: store, logger, now: () => new Date(now), ...deps });
  engine.configure(config, channels);
  return { engine, policy: config.policies[0]!, now: () => now, advance: (ms) => void (now += ms) };
}

const reason = (code: ReasonCode, message = `${code}: what went wrong`): { code: ReasonCode; message: string } => ({ code, message });

function runOf(policy: string, startedAt: number, verdict: Verdict | null, reasons: RunRecord['reasons'] = [], over: Partial<RunRecord> = {}): RunRecord {
  const backupTime = iso(startedAt - 10 * MIN);
  return sampleRun(iso(startedAt), {
    policy,
    kind: 'files',
    status: 'finished',
    verdict,
    reasons,
    finishedAt: iso(startedAt + MIN),
    durationMs: MIN,
    pid: process.pid,
    backup: verdict === 'error' ? null : { driver: 'local', location: folder, key: 'share.tar.gz', size: 4096, modifiedAt: backupTime, backupTime, timestampSource: 'mtime', ageMs: 10 * MIN },
    ...over,
  });
}

/** Records the run as the runner would (start, then finalize) and returns it. */
async function recorded(run: RunRecord): Promise<RunRecord> {
  await store.recordStart({ ...run, status: 'running', verdict: null });
  await store.finalize(run);
  return run;
}

t.test('judgeRun: reasons map to conditions; a run resolves only what it looked at', async (t) => {
  const special: Record<string, string> = { no_backup: 'missing', missing_backup: 'missing', stale_backup: 'stale', size_anomaly: 'size_anomaly' };
  for (const code of FAIL_CODES) t.equal(conditionOfReason(code), special[code] ?? 'fail', code);
  for (const code of ERROR_CODES) t.equal(conditionOfReason(code), 'error', code);

  const judge = (verdict: Verdict | null, codes: ReasonCode[], over: Partial<RunRecord> = {}) =>
    judgeRun(runOf('p-judge', BASE, verdict, codes.map((c) => reason(c)), over));
  const firing = (j: ReturnType<typeof judgeRun>): string[] => j.firing.map((o) => o.condition).sort();
  const resolved = (j: ReturnType<typeof judgeRun>): string[] => [...j.resolved].sort();

  const several = judge('fail', ['checksum_mismatch', 'probe_failed', 'stale_backup', 'size_anomaly', 'no_backup']);
  t.same(firing(several), ['fail', 'missing', 'size_anomaly', 'stale'], 'several conditions at once');
  const fail = several.firing.find((o) => o.condition === 'fail')!;
  t.same(fail.reasons.map((r) => r.code), ['checksum_mismatch', 'probe_failed'], 'a condition gathers its reasons');
  t.equal(fail.summary, 'checksum_mismatch: what went wrong (+1 more)');
  t.equal(several.firing.find((o) => o.condition === 'stale')!.since, iso(BASE - 10 * MIN), 'stale: since the backup time');
  t.same(resolved(several), ['error'], 'what fires is not also resolved');

  const both = judge('error', ['source_unreachable', 'probe_failed']);
  t.same(firing(both), ['error', 'fail']);
  t.same(resolved(both), [], 'an error run resolves nothing (not fail, and without a backup not missing/stale)');

  t.same(resolved(judge('error', ['sandbox_failed'], { backup: runOf('x', BASE, 'pass').backup })), ['missing', 'stale'], 'an error run that found a backup: missing and stale are over, fail is not');
  t.same(resolved(judge('fail', ['probe_failed'])), ['error', 'missing', 'stale'], 'a fail run resolves error, not fail');
  t.same(resolved(judge('pass', [])), ['error', 'fail', 'missing', 'stale'], 'a pass run');
  t.same(firing(judge('pass', [])), []);
  const noBackup = judge('fail', ['no_backup'], { backup: null });
  t.same([firing(noBackup), resolved(noBackup)], [['missing'], ['error']], 'a run without a backup does not resolve missing or stale');

  const probe = (name: string, pass: boolean) => ({ name, type: 'sizeAnomaly', expected: '>= 50%', actual: '90%', pass, durationMs: 1 });
  t.ok(judge('pass', [], { probes: [probe('size vs history', true)] }).resolved.includes('size_anomaly'), 'the size probe passing resolves size_anomaly');
  t.notOk(judge('pass', [], { probes: [probe('size vs history', false)] }).resolved.includes('size_anomaly'));
  t.notOk(judge('pass', [], { probes: [probe('rows', true)] }).resolved.includes('size_anomaly'), 'another probe says nothing about size');

  const slow = judge('pass', [], { metrics: { rtoMet: false, rtoMeasuredMs: 900_000, rtoTargetMs: 600_000 } });
  t.same(firing(slow), ['rto_exceeded'], 'rtoMet false with measured and target');
  t.match(slow.firing[0]!.reasons, [{ code: 'rto_exceeded', message: /targets\.rto/ }]);
  t.notOk(slow.resolved.includes('rto_exceeded'));
  t.same(firing(judge('pass', [], { metrics: { rtoMet: false } })), [], 'without the measurement: no rto_exceeded');
  t.ok(judge('pass', [], { metrics: { rtoMet: true, rtoMeasuredMs: 1, rtoTargetMs: 600_000 } }).resolved.includes('rto_exceeded'));

  t.same(judge('error', ['cancelled'], { status: 'cancelled' }), { firing: [], resolved: [] }, 'a cancelled run says nothing');
  t.same(judge(null, [], { status: 'running' }), { firing: [], resolved: [] }, 'no verdict: nothing');
  t.same(firing(judge('error', ['aborted'], { status: 'aborted' })), ['error'], 'an aborted run is an error');
});

t.test('dedup: a lasting condition is notified once; the incident follows the newest run', async (t) => {
  const r = rig(t, [policyYaml('p-dedup')]);
  const run1 = await recorded(runOf('p-dedup', r.now(), 'fail', [reason('probe_failed', "probe 'orders' expected >= 1000 rows, got 12")]));
  await r.engine.afterRun(r.policy, run1);
  t.same(sent(hook, 'p-dedup'), ['fail/firing']);
  const [firing] = bodies(hook, 'p-dedup');
  t.equal(firing!.version, 1);
  t.match(firing!.alert, { condition: 'fail', state: 'firing', summary: /got 12/, reasons: [{ code: 'probe_failed' }], run: { id: run1.id } });
  const incident = (await alerts.openIncidentFor('p-dedup', 'fail'))!;
  t.match(incident, { id: firing!.alert.id, runId: run1.id, notifications: 1, openedAt: iso(BASE) });

  r.advance(5 * MIN);
  const run2 = await recorded(runOf('p-dedup', r.now(), 'fail', [reason('probe_failed', "probe 'orders' expected >= 1000 rows, got 3")]));
  await r.engine.afterRun(r.policy, run2);
  t.same(sent(hook, 'p-dedup'), ['fail/firing'], 'no second firing');
  t.match(await alerts.openIncidentFor('p-dedup', 'fail'), { id: incident.id, runId: run2.id, summary: /got 3/, notifications: 1 }, 'updated to the newest run');
  const deliveries = await alerts.deliveries({ policy: 'p-dedup' });
  t.same(deliveries.map((d) => `${d.channel} ${d.state} ${d.ok}`).sort(), ['hook firing true', 'other firing true'], 'one delivery per channel');
});

t.test('reminders: after reminderAfter, not before, and again an interval later', async (t) => {
  const r = rig(t, [policyYaml('p-remind', 'alerts: { reminderAfter: 1h }')]);
  const run = await recorded(runOf('p-remind', r.now(), 'fail', [reason('empty_restore')]));
  await r.engine.afterRun(r.policy, run);
  const step = async (ms: number): Promise<string[]> => {
    r.advance(ms);
    await r.engine.check();
    return sent(hook, 'p-remind');
  };
  t.same(await step(30 * MIN), ['fail/firing'], '30m: nothing');
  t.same(await step(31 * MIN), ['fail/firing', 'fail/reminder'], '61m: a reminder');
  t.same(await step(10 * MIN), ['fail/firing', 'fail/reminder'], '+10m: nothing');
  t.same(await step(61 * MIN), ['fail/firing', 'fail/reminder', 'fail/reminder'], '+61m: another');
  const [firing, reminder] = bodies(hook, 'p-remind');
  t.match(reminder!.alert, { id: firing!.alert.id, run: { id: run.id }, reasons: [{ code: 'empty_restore' }] }, 'the reminder carries the incident and its run');
  t.match(await alerts.openIncidentFor('p-remind', 'fail'), { notifications: 3, lastNotifiedAt: iso(r.now()) });
});

t.test('recovery: a passing run resolves the incident under the same alert id', async (t) => {
  const r = rig(t, [policyYaml('p-recover')]);
  await r.engine.afterRun(r.policy, await recorded(runOf('p-recover', r.now(), 'fail', [reason('truncated_dump')])));
  r.advance(HOUR);
  const pass = await recorded(runOf('p-recover', r.now(), 'pass'));
  await r.engine.afterRun(r.policy, pass);
  t.same(sent(hook, 'p-recover'), ['fail/firing', 'recovery/resolved']);
  const [firing, recovery] = bodies(hook, 'p-recover');
  t.equal(recovery!.alert.id, firing!.alert.id, 'one id for the firing and its recovery');
  t.match(recovery!.alert, { summary: new RegExp(`verifies again: run ${pass.id.slice(0, 8)} passed`), reasons: [], run: { id: pass.id } });
  const [incident] = await alerts.incidents({ policy: 'p-recover' });
  t.match(incident, { id: firing!.alert.id, resolvedAt: iso(r.now()), resolvedRunId: pass.id });
  r.advance(HOUR);
  await r.engine.afterRun(r.policy, await recorded(runOf('p-recover', r.now(), 'pass')));
  t.equal(sent(hook, 'p-recover').length, 2, 'passing again sends nothing');
});

t.test('error, then fail, then pass: each run moves the incidents on', async (t) => {
  const r = rig(t, [policyYaml('p-flip')]);
  await r.engine.afterRun(r.policy, await recorded(runOf('p-flip', r.now(), 'error', [reason('source_unreachable')])));
  t.same(sent(hook, 'p-flip'), ['error/firing']);
  r.advance(HOUR);
  await r.engine.afterRun(r.policy, await recorded(runOf('p-flip', r.now(), 'fail', [reason('checksum_mismatch')])));
  t.same(sent(hook, 'p-flip'), ['error/firing', 'fail/firing', 'recovery/resolved'], 'fail opens and error resolves');
  let b = bodies(hook, 'p-flip');
  t.equal(b[2]!.alert.id, b[0]!.alert.id, 'the recovery is the error incident');
  t.match(b[2]!.alert.summary, /ended fail \(was error: source_unreachable/);
  r.advance(HOUR);
  await r.engine.afterRun(r.policy, await recorded(runOf('p-flip', r.now(), 'pass')));
  b = bodies(hook, 'p-flip');
  t.same(sent(hook, 'p-flip').slice(3), ['recovery/resolved']);
  t.equal(b[3]!.alert.id, b[1]!.alert.id, 'the second recovery is the fail incident');
  t.same(await alerts.openIncidents({ policy: 'p-flip' }), []);
});

t.test('storage between runs: stale, missing, and a failing listing', async (t) => {
  let fact: StorageFact | Error = {};
  const r = rig(t, [policyYaml('p-storage')], {
    checkStorage: async (policy) => {
      t.equal(policy.name, 'p-storage');
      if (fact instanceof Error) throw fact;
      return fact;
    },
  });
  const STEP = 5 * MIN;
  /** The newest backup `ageMs` old at the next check. */
  const newest = (ageMs: number, key = 'share-1.tar.gz'): StorageFact => ({ newest: { key, size: 2048, backupTime: iso(r.now() + STEP - ageMs) } });
  const check = async (f: StorageFact | Error): Promise<string[]> => {
    fact = f;
    r.advance(STEP);
    await r.engine.check();
    return sent(hook, 'p-storage');
  };

  t.same(await check(newest(2 * HOUR)), ['stale/firing'], 'older than the RPO');
  const stale = bodies(hook, 'p-storage')[0]!.alert;
  t.match(stale, { since: iso(r.now() - 2 * HOUR), reasons: [{ code: 'stale_backup' }], summary: /share-1\.tar\.gz is 2\.0h old; the RPO target is 1\.0h/ });
  t.same(await check(newest(2 * HOUR + 5 * MIN)), ['stale/firing'], 'once across checks');
  t.match(await alerts.policyState('p-storage'), { newestBackupKey: 'share-1.tar.gz', newestBackupSize: 2048, checkedAt: iso(r.now()), checkError: null });

  t.same(await check(new Error('EACCES: permission denied, scandir /backups')), ['stale/firing'], 'a failed listing changes nothing');
  t.ok(await alerts.openIncidentFor('p-storage', 'stale'), 'stale stays open');
  t.match(await alerts.policyState('p-storage'), { checkError: 'EACCES: permission denied, scandir /backups', newestBackupKey: 'share-1.tar.gz', checkedAt: iso(r.now()) });

  t.same(await check(newest(10 * MIN, 'share-2.tar.gz')), ['stale/firing', 'stale/resolved'], 'a fresh backup resolves stale');
  t.match(await alerts.policyState('p-storage'), { checkError: null, newestBackupKey: 'share-2.tar.gz' });

  t.same((await check({ nothing: 'no file in /backups matches *.tar.gz' })).slice(2), ['missing/firing'], 'nothing found: missing');
  t.match(await alerts.openIncidentFor('p-storage', 'missing'), { reasons: [{ code: 'no_backup' }] });
  t.same((await check({ missing: 'no backup for 2026-10-31 (daily)' })).slice(2), ['missing/firing'], 'still missing: no repeat');
  t.match(await alerts.openIncidentFor('p-storage', 'missing'), { summary: 'no backup for 2026-10-31 (daily)', reasons: [{ code: 'missing_backup' }] });
  t.same((await check(newest(10 * MIN, 'share-3.tar.gz'))).slice(2), ['missing/firing', 'missing/resolved'], 'back to normal');
  t.same(await alerts.openIncidents({ policy: 'p-storage' }), []);
});

t.test('overdue: a scheduled time passes (plus grace) without a run', async (t) => {
  const r = rig(t, [policyYaml('p-overdue', 'schedule: { when: "every 1h", grace: 10m }')], {}, 5 * MIN);
  await r.engine.check();
  t.match(await alerts.policyState('p-overdue'), { firstSeenAt: iso(BASE + 5 * MIN) }, 'first seen at 03:05');
  r.advance(64 * MIN); // 04:09: 04:00 is still within its grace
  await r.engine.check();
  t.same(sent(hook, 'p-overdue'), []);
  r.advance(2 * MIN); // 04:11
  await r.engine.check();
  r.advance(MIN);
  await r.engine.check();
  t.same(sent(hook, 'p-overdue'), ['overdue/firing'], 'fires once across checks');
  t.match(bodies(hook, 'p-overdue')[0]!.alert.summary, /scheduled at 2026-11-01 04:00 UTC \(every 1h, grace 10m\); it has never run/);
  await recorded(runOf('p-overdue', BASE + 75 * MIN, 'pass')); // started 04:15
  r.advance(4 * MIN);
  await r.engine.check();
  t.same(sent(hook, 'p-overdue'), ['overdue/firing', 'overdue/resolved'], 'a run after the scheduled time resolves it');
});

t.test('delivery failures: delivery_failed over the other channels, retries, permanent refusals', async (t) => {
  const r = rig(t, [policyYaml('p-deliver')]);
  hook.answer({ status: 500, body: 'down for maintenance' });
  await r.engine.afterRun(r.policy, await recorded(runOf('p-deliver', r.now(), 'fail', [reason('restore_failed')])));
  t.same(sent(hook, 'p-deliver'), ['fail/firing'], 'hook was tried');
  t.same(sent(other, 'p-deliver').sort(), ['delivery_failed/firing', 'fail/firing'], 'delivery_failed goes over other');
  const failed = (await alerts.deliveries({ policy: 'p-deliver', failedOnly: true }))[0]!;
  t.match(failed, { channel: 'hook', ok: false, retryPending: true, rounds: 1, attempts: 1, error: /HTTP 500/ });
  t.match(await alerts.openIncidentFor('p-deliver', 'delivery_failed', 'hook'), { summary: /to hook could not be delivered/, notifications: 1 });

  r.advance(5 * MIN); // the receiver answers 200 again
  await r.engine.check();
  t.same(sent(hook, 'p-deliver'), ['fail/firing', 'fail/firing'], 'retried');
  const [first, retry] = hook.requests.filter((q) => q.body.includes('"p-deliver"'));
  t.equal(retry!.headers['idempotency-key'], first!.headers['idempotency-key'], 'the same delivery, recognisable');
  t.match((await alerts.deliveries({ policy: 'p-deliver' })).find((d) => d.id === failed.id), { ok: true, rounds: 2, attempts: 2, retryPending: false, error: null });
  t.equal(await alerts.openIncidentFor('p-deliver', 'delivery_failed', 'hook'), null, 'delivery_failed resolved');
  t.same(sent(other, 'p-deliver').slice(2), ['delivery_failed/resolved']);
  t.notOk(sent(hook, 'p-deliver').some((s) => s.startsWith('delivery_failed')), 'never told over the failing channel');

  hook.answer({ status: 400, body: 'bad payload' });
  r.advance(HOUR);
  await r.engine.afterRun(r.policy, await recorded(runOf('p-deliver', r.now(), 'error', [reason('docker_unreachable')])));
  const refused = (await alerts.deliveries({ policy: 'p-deliver', failedOnly: true }))[0]!;
  t.match(refused, { channel: 'hook', condition: 'error', ok: false, retryPending: false, error: /HTTP 400.*permanent/ });
  t.ok(await alerts.openIncidentFor('p-deliver', 'delivery_failed', 'hook'), 'a refusal opens delivery_failed too');
  const before = hook.requests.length;
  r.advance(5 * MIN);
  await r.engine.check();
  t.equal(hook.requests.length, before, 'a permanent failure is not retried');
});

t.test('a failed firing is not resent after its incident resolved', async (t) => {
  const r = rig(t, [policyYaml('p-superseded')]);
  hook.answer({ status: 503 });
  await r.engine.afterRun(r.policy, await recorded(runOf('p-superseded', r.now(), 'fail', [reason('probe_failed')])));
  r.advance(HOUR);
  await r.engine.afterRun(r.policy, await recorded(runOf('p-superseded', r.now(), 'pass')));
  r.advance(5 * MIN);
  await r.engine.check();
  t.same(sent(hook, 'p-superseded').slice(0, 2), ['fail/firing', 'recovery/resolved']);
  // Known bug: retryDeliveries resends the failed firing after the recovery went out.
  t.same(sent(hook, 'p-superseded'), ['fail/firing', 'recovery/resolved'], 'the receiver does not end on a firing');
});

t.test('a policy removed from the config: its open incidents close silently', async (t) => {
  const r = rig(t, [policyYaml('p-keep'), policyYaml('p-gone')]);
  const config = configOf(policyYaml('p-keep'), policyYaml('p-gone'));
  for (const p of config.policies) await r.engine.afterRun(p, await recorded(runOf(p.name, r.now(), 'fail', [reason('empty_backup')])));
  t.same([sent(hook, 'p-keep'), sent(hook, 'p-gone')], [['fail/firing'], ['fail/firing']]);

  const reduced = configOf(policyYaml('p-keep'));
  const channels = channelsFromConfig(reduced.alerts, reduced.secrets, logger);
  t.teardown(() => closeChannels(channels));
  r.engine.configure(reduced, channels);
  r.advance(10 * MIN);
  const requests = hook.requests.length + other.requests.length;
  const deliveries = (await alerts.deliveries({ limit: 1000 })).length;
  await r.engine.check();
  t.match(await alerts.incidents({ policy: 'p-gone' }), [{ condition: 'fail', resolvedAt: iso(r.now()), resolvedRunId: null }], 'closed');
  t.ok(await alerts.openIncidentFor('p-keep', 'fail'), 'the kept policy keeps its incident');
  t.equal(hook.requests.length + other.requests.length, requests, 'nothing sent');
  t.equal((await alerts.deliveries({ limit: 1000 })).length, deliveries, 'nothing recorded');
  t.ok(logs.some((l) => l.includes('closed the fail incident of p-gone')), 'logged');
});

t.test('the engine logged no errors', async (t) => {
  t.same(logs.filter((l) => (JSON.parse(l) as { level: string }).level === 'error'), []);
});
