import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { leftoversOf, tempDir } from './helpers/harness.js';
import { startHttpReceiver } from './helpers/http-receiver.js';
import { startPgCluster } from './helpers/pg-cluster.js';
import { startSmtpReceiver } from './helpers/smtp-receiver.js';
import { ageFile, brokenArchive, CANARY, daemonHeader, filesPolicy, goodArchive, startDaemon, subjectsFor, waitFor, type DaemonUnderTest } from './helpers/daemon-harness.js';

// The daemon's alerts end to end: real scheduled runs (seconds-level schedules) in real Docker
// sandboxes, a real SMTP server that receives and parses every mail, real HTTP receivers for
// webhooks and heartbeats, the evidence in a real PostgreSQL. Each condition fires once, is not
// repeated while it lasts (dedup), is reminded, and resolves with a recovery message.

const cluster = await startPgCluster();
t.teardown(() => cluster.stop());
const pgUrl = await cluster.createDatabase('daemon_alerts');
const smtp = await startSmtpReceiver({ user: 'alerts', pass: CANARY.smtpPass });
t.teardown(() => smtp.close());
const hook = await startHttpReceiver();
t.teardown(() => hook.close());
const heartbeat = await startHttpReceiver();
t.teardown(() => heartbeat.close());

const daemons: DaemonUnderTest[] = [];
t.teardown(async () => {
  for (const d of daemons) await d.stop(0);
});

function hookBodiesFor(policy: string): Array<{ alert: { condition: string; state: string; id: string; policy: string } }> {
  return hook.requests
    .map((r) => JSON.parse(r.body) as { alert: { condition: string; state: string; id: string; policy: string } })
    .filter((b) => b.alert.policy === policy);
}

t.test('a failing policy on a 2-second schedule: one alert, a reminder, a recovery, heartbeats', async (t) => {
  const folder = await tempDir('backups');
  await brokenArchive(folder, 'share-1.tar.gz');
  const hb = heartbeat.url(`/ping/${CANARY.heartbeat}`);
  const d = await startDaemon({
    pgUrl,
    schema: 'alerts_fail',
    yaml: `${daemonHeader({ pgUrl, schema: 'alerts_fail', smtpPort: smtp.port, hookUrl: hook.url('/hook') })}
clients:
  - name: acme
    displayName: ACME Corp
    alerts: { to: [it@acme.example] }
    policies:
${filesPolicy({ name: 'acme-share', folder, extra: `        heartbeat: ${hb}\n        alerts: { reminderAfter: 4s }` })}`,
  });
  daemons.push(d);

  await waitFor('three failed runs', () => d.runs.filter((r) => r.verdict === 'fail').length >= 3, 60_000);
  await waitFor('a reminder mail', () => subjectsFor(smtp, 'acme-share').some((s) => s.includes('REMINDER FAIL')), 30_000);
  const failing = d.runs.filter((r) => r.verdict === 'fail');
  t.match(failing[0]!.reasons.map((r) => r.code), ['corrupt_compression']);
  const gaps = failing.slice(1).map((r, i) => Date.parse(r.startedAt) - Date.parse(failing[i]!.startedAt));
  t.ok(gaps.every((g) => g >= 1_500 && g < 15_000), `runs follow the schedule (gaps ${gaps.join(', ')} ms)`);

  let subjects = subjectsFor(smtp, 'acme-share');
  t.equal(subjects.filter((s) => /\] FAIL acme \/ acme-share: corrupt_compression/.test(s)).length, 1, `one firing mail for ${failing.length}+ failed runs: ${subjects.join(' | ')}`);
  const firing = smtp.messages.find((m) => /\] FAIL acme/.test(m.parsed.subject ?? ''))!;
  t.same(firing.envelope.to.sort(), ['it@acme.example', 'ops@msp.example'], 'to the channel and the client contact');
  t.match(firing.parsed.text, /corrupt|cut short|damaged/i, 'the text body says what is wrong');
  t.match(firing.parsed.text, /Next steps/);
  t.match(String(firing.parsed.html), /acme-share/);
  t.equal(hookBodiesFor('acme-share').filter((b) => b.alert.condition === 'fail' && b.alert.state === 'firing').length, 1, 'one firing webhook');

  // Repair: a newer, good backup. The next run passes and the incident resolves.
  await goodArchive(folder, 'share-2.tar.gz');
  await waitFor('a recovery mail', () => subjectsFor(smtp, 'acme-share').some((s) => s.includes('RESOLVED')), 30_000);
  subjects = subjectsFor(smtp, 'acme-share');
  t.equal(subjects.filter((s) => s.includes('RESOLVED')).length, 1, 'one recovery mail');
  const bodies = hookBodiesFor('acme-share');
  const ids = new Set(bodies.map((b) => b.alert.id));
  t.equal(ids.size, 1, 'firing, reminder and recovery share one alert id (threading)');
  t.ok(bodies.some((b) => b.alert.condition === 'recovery' && b.alert.state === 'resolved'));

  // Still passing: no more mails for this policy.
  const passes = d.runs.filter((r) => r.verdict === 'pass').length;
  await waitFor('two more passing runs', () => d.runs.filter((r) => r.verdict === 'pass').length >= passes + 2, 30_000);
  t.same(subjectsFor(smtp, 'acme-share'), subjects, 'no alert while it keeps passing');

  // Heartbeats: /fail while failing, the plain URL on pass.
  const pings = heartbeat.requests.map((r) => r.url);
  t.ok(pings.some((u) => u === `/ping/${CANARY.heartbeat}/fail`), 'fail pings');
  t.ok(pings.some((u) => u === `/ping/${CANARY.heartbeat}`), 'pass pings');

  // Evidence: deliveries recorded, incident resolved.
  const deliveries = await d.alerts.deliveries({ policy: 'acme-share', limit: 500 });
  t.ok(deliveries.filter((x) => x.kind === 'alert').every((x) => x.ok), 'every alert delivery succeeded');
  t.ok(deliveries.some((x) => x.kind === 'heartbeat' && x.condition === 'fail'));
  const incidents = await d.alerts.incidents({ policy: 'acme-share' });
  t.equal(incidents.filter((i) => i.condition === 'fail').length, 1);
  t.ok(incidents.find((i) => i.condition === 'fail')!.resolvedAt, 'resolved');

  await d.stop();
  for (const r of d.runs) t.equal(await leftoversOf(r.id), 0, `nothing left of run ${r.id.slice(0, 8)}`);

  // The canaries: in no log line, mail or webhook body, nor in the evidence.
  const everything = [
    ...d.logs,
    ...smtp.messages.map((m) => m.raw),
    ...hook.requests.map((r) => r.body),
    JSON.stringify(deliveries),
    JSON.stringify(incidents),
  ].join('\n');
  for (const [name, canary] of Object.entries(CANARY)) t.notOk(everything.includes(canary), `${name} never appears`);
});

t.test('each condition fires once, dedups and recovers: error, missing, stale, size anomaly, rto, delivery failure', async (t) => {
  const base = await tempDir('conditions');
  const dir = (n: string): string => path.join(base, n);
  for (const n of ['missing', 'stale', 'size', 'rto', 'idle']) await fs.mkdir(dir(n));
  // idle: no schedule at all; its backup is stale, found by the checks between runs.
  await ageFile(await goodArchive(dir('idle'), 'share-old.tar.gz'), 2 * 3_600_000);
  // error: the source folder does not exist yet (source_unreachable).
  // missing: an empty folder (no_backup).
  // stale: a backup older than the RPO (1h).
  await ageFile(await goodArchive(dir('stale'), 'share-old.tar.gz'), 3 * 3_600_000);
  // size: two passing runs of a big archive, then a small one.
  await goodArchive(dir('size'), 'share-1.tar.gz', 256);
  // rto: a target no restore can meet.
  await goodArchive(dir('rto'), 'share-1.tar.gz');

  const failing = await startHttpReceiver();
  t.teardown(() => failing.close());
  failing.answer(...Array.from({ length: 100 }, () => ({ status: 500, body: 'down for maintenance' })));

  const schema = 'alerts_conditions';
  const d = await startDaemon({
    pgUrl,
    schema,
    yaml: `${daemonHeader({
      pgUrl,
      schema,
      smtpPort: smtp.port,
      hookUrl: hook.url('/hook'),
      channels: `    - name: flaky
      type: webhook
      url: ${failing.url('/flaky')}
      conditions: [rto_exceeded]
`,
    })
      .replace('concurrency: 4, perClient: 4', 'concurrency: 5, perClient: 5')
      .replace('reminderAfter: 0s', 'reminderAfter: 5s')}
clients:
  - name: beta
    policies:
${filesPolicy({ name: 'beta-error', folder: dir('error'), schedule: 'every 3s' })}
${filesPolicy({ name: 'beta-missing', folder: dir('missing'), schedule: 'every 3s' })}
${filesPolicy({ name: 'beta-stale', folder: dir('stale'), schedule: 'every 3s' })}
${filesPolicy({ name: 'beta-size', folder: dir('size'), schedule: 'every 3s' }).replace('sizeAnomaly: false', 'sizeAnomaly: { minPercent: 50, lastRuns: 3, minHistory: 2 }')}
${filesPolicy({ name: 'beta-rto', folder: dir('rto'), schedule: 'every 3s', rto: '1ms' })}
${filesPolicy({ name: 'beta-idle', folder: dir('idle') }).replace(/^ +schedule: .*\n/m, '')}`,
  });
  daemons.push(d);

  const expectFiring: Array<[string, RegExp]> = [
    ['beta-error', /\] ERROR beta \/ beta-error: source_unreachable/],
    ['beta-missing', /\] MISSING beta \/ beta-missing/],
    ['beta-stale', /\] STALE beta \/ beta-stale/],
    ['beta-rto', /\] RTO EXCEEDED beta \/ beta-rto/],
    ['beta-idle', /\] STALE beta \/ beta-idle/],
  ];
  for (const [policy, re] of expectFiring) {
    await waitFor(`the ${policy} alert`, () => subjectsFor(smtp, policy).some((s) => re.test(s)), 45_000);
  }
  // The size check needs two passing runs first; then the backup shrinks.
  await waitFor('two passing runs of beta-size', () => d.runs.filter((r) => r.policy === 'beta-size' && r.verdict === 'pass').length >= 2, 45_000);
  await fs.rm(path.join(dir('size'), 'share-1.tar.gz'));
  await goodArchive(dir('size'), 'share-2.tar.gz', 8);
  await waitFor('the size anomaly alert', () => subjectsFor(smtp, 'beta-size').some((s) => /SIZE ANOMALY/.test(s)), 45_000);
  expectFiring.push(['beta-size', /\] SIZE ANOMALY beta \/ beta-size/]);

  // The flaky webhook failed the rto alert: a delivery_failed alert went out over the other channels.
  await waitFor('the delivery failure alert', () => subjectsFor(smtp, 'beta-rto').some((s) => /DELIVERY FAILED/.test(s)), 30_000);
  const failed = (await d.alerts.deliveries({ policy: 'beta-rto', failedOnly: true })).filter((x) => x.channel === 'flaky');
  t.ok(failed.length >= 1 && failed[0]!.retryPending, 'the failed delivery is recorded and pending retry');
  t.match(failed[0]!.error, /HTTP 500/);

  // Let every policy run at least twice more in its condition: still one alert each.
  const counts = new Map(d.runs.map((r) => [r.policy, 0]));
  for (const r of d.runs) counts.set(r.policy, (counts.get(r.policy) ?? 0) + 1);
  const before = new Map(counts);
  await waitFor('two more runs of every policy', () => {
    const now = new Map<string, number>();
    for (const r of d.runs) now.set(r.policy, (now.get(r.policy) ?? 0) + 1);
    return ['beta-error', 'beta-missing', 'beta-stale', 'beta-size', 'beta-rto'].every((p) => (now.get(p) ?? 0) >= (before.get(p) ?? 0) + 2);
  }, 60_000);
  for (const [policy, re] of expectFiring) {
    t.equal(subjectsFor(smtp, policy).filter((s) => re.test(s)).length, 1, `${policy}: one alert while the condition lasts`);
    const reminder = new RegExp(re.source.replace('\\] ', '\\] REMINDER '));
    await waitFor(`a reminder for ${policy}`, () => subjectsFor(smtp, policy).some((s) => reminder.test(s)), 15_000);
  }

  // Fix everything.
  await fs.mkdir(dir('error'));
  await goodArchive(dir('error'), 'share-1.tar.gz');
  await goodArchive(dir('missing'), 'share-1.tar.gz');
  await goodArchive(dir('stale'), 'share-new.tar.gz');
  await goodArchive(dir('idle'), 'share-new.tar.gz');
  await fs.rm(path.join(dir('size'), 'share-2.tar.gz'));
  await goodArchive(dir('size'), 'share-3.tar.gz', 256);
  failing.reset(); // the flaky webhook works again: the pending delivery is retried and succeeds
  await fs.writeFile(d.configFile, (await fs.readFile(d.configFile, 'utf8')).replace('rto: 1ms', 'rto: 10m'));
  t.ok(await d.daemon.reload(), 'reloaded with a reachable rto target');

  t.equal(d.runs.filter((r) => r.policy === 'beta-idle').length, 0, 'beta-idle never ran: its alerts came from the checks between runs');
  for (const policy of ['beta-error', 'beta-missing', 'beta-stale', 'beta-size', 'beta-rto', 'beta-idle']) {
    await waitFor(`${policy} resolved`, () => subjectsFor(smtp, policy).some((s) => /RESOLVED/.test(s) && !/delivery/i.test(s)), 45_000);
  }
  await waitFor('the delivery failure resolved', async () => (await d.alerts.openIncidents({ policy: 'beta-rto' })).length === 0, 30_000);
  const retried = (await d.alerts.deliveries({ policy: 'beta-rto', limit: 200 })).find((x) => x.id === failed[0]!.id)!;
  t.ok(retried.ok, 'the failed delivery succeeded on a later round');
  t.ok(retried.rounds >= 2);
  t.ok(failing.requests.length >= 1, "the retry reached the webhook");

  const error = smtp.messages.find((m) => /\] ERROR beta \/ beta-error/.test(m.parsed.subject ?? ''))!;
  t.match(error.parsed.text, /does not exist/, 'the error mail names the problem');
  const stale = smtp.messages.find((m) => /\] STALE beta \/ beta-stale/.test(m.parsed.subject ?? ''))!;
  t.match(stale.parsed.text, /RPO|rpo/);
  t.same(await d.alerts.openIncidents({ client: 'beta' }), [], 'no open incident left');
  await d.stop();
});
