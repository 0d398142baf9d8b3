import t from 'tap';
import { leftoversOf, tempDir } from './helpers/harness.js';
import { startHttpReceiver } from './helpers/http-receiver.js';
import { startPgCluster } from './helpers/pg-cluster.js';
import { startSmtpReceiver } from './helpers/smtp-receiver.js';
import { CANARY, daemonHeader, filesPolicy, goodArchive, startDaemon, subjectsFor, waitFor, type DaemonUnderTest } from './helpers/daemon-harness.js';
import type { RunRecord } from '../orchestrator/core/domain.js';

// Scheduling: limits on concurrent runs hold when many runs are due at once (judged from the
// recorded runs' own start and end times); runs missed while the daemon was down are caught up
// at start, and raise "overdue" only when catch-up is off.

const cluster = await startPgCluster();
t.teardown(() => cluster.stop());
const pgUrl = await cluster.createDatabase('daemon_schedule');
const smtp = await startSmtpReceiver({ user: 'alerts', pass: CANARY.smtpPass });
t.teardown(() => smtp.close());
const hook = await startHttpReceiver();
t.teardown(() => hook.close());
const daemons: DaemonUnderTest[] = [];
t.teardown(async () => {
  for (const d of daemons) await d.stop(0);
});

/** Most runs overlapping at any instant, among `runs`. */
function maxOverlap(runs: RunRecord[]): number {
  const edges = runs.flatMap((r) => [
    { at: Date.parse(r.startedAt), d: 1 },
    { at: Date.parse(r.finishedAt!), d: -1 },
  ]);
  edges.sort((a, b) => a.at - b.at || a.d - b.d);
  let now = 0;
  let max = 0;
  for (const e of edges) max = Math.max(max, (now += e.d));
  return max;
}

t.test('limits hold under many due runs: 6 policies due every second, at most 2 at once and 1 per client', async (t) => {
  const policies: string[] = [];
  for (const client of ['north', 'south']) {
    const lines: string[] = [];
    for (let i = 1; i <= 3; i++) {
      const folder = await tempDir('backups');
      await goodArchive(folder, 'share-1.tar.gz');
      lines.push(filesPolicy({ name: `${client}-${i}`, folder, schedule: 'every 1s' }));
      policies.push(`${client}-${i}`);
    }
    policies.push(`  - name: ${client}\n    policies:\n${lines.join('\n')}`);
  }
  const schema = 'sched_limits';
  const d = await startDaemon({
    pgUrl,
    schema,
    yaml: `${daemonHeader({ pgUrl, schema, smtpPort: smtp.port, hookUrl: hook.url('/hook') }).replace('concurrency: 4, perClient: 4', 'concurrency: 2, perClient: 1')}
clients:
${policies.filter((p) => p.startsWith('  - name')).join('\n')}`,
  });
  daemons.push(d);
  await waitFor('12 finished runs', () => d.runs.length >= 12, 120_000);
  await d.stop();
  const runs = d.runs.filter((r) => r.finishedAt);
  t.ok(runs.every((r) => r.verdict === 'pass'), 'every run passed');
  t.equal(maxOverlap(runs), 2, 'at most 2 runs at once overall (and the limit was used)');
  for (const client of ['north', 'south']) t.equal(maxOverlap(runs.filter((r) => r.client === client)), 1, `at most 1 run at once for ${client}`);
  t.equal(d.daemon.peak.overall, 2);
  t.ok([...d.daemon.peak.perClient.values()].every((n) => n === 1));
  t.equal(new Set(runs.map((r) => r.policy)).size, 6, 'every policy got its turn: queued, not starved');
  for (const r of runs) t.equal(await leftoversOf(r.id), 0);
});

/** Resolves at the first multiple of `periodMs` plus `offsetMs` (wall clock) at least `minWaitMs` away. */
async function alignTo(periodMs: number, offsetMs: number, minWaitMs = 0): Promise<void> {
  const now = Date.now();
  let target = Math.floor(now / periodMs) * periodMs + offsetMs;
  while (target < now + minWaitMs) target += periodMs;
  await new Promise((r) => setTimeout(r, target - now));
}

t.test('a daemon down for longer than a period catches up at start; with catch-up off the missed run is overdue', async (t) => {
  const folder = await tempDir('backups');
  await goodArchive(folder, 'share-1.tar.gz');
  const dir = await tempDir('catchup');
  const schema = 'sched_catchup';
  const yaml = (catchUp: boolean): string => `${daemonHeader({ pgUrl, schema, smtpPort: smtp.port, hookUrl: hook.url('/hook'), daemon: `catchUp: ${catchUp}` })}
clients:
  - name: gamma
    policies:
${filesPolicy({ name: 'gamma-db', folder, schedule: '*/10 * * * * *' }).replace('schedule: "*/10 * * * * *"', 'schedule: { when: "*/10 * * * * *", grace: 2s }')}`;

  // First start: the daemon learns the policy; stopped right after a scheduled time has passed.
  await alignTo(10_000, 500);
  const first = await startDaemon({ pgUrl, schema, dir, yaml: yaml(true) });
  daemons.push(first);
  await first.stop(60_000);

  // Down across the next scheduled time; back 3 s after it with catch-up on.
  await alignTo(10_000, 3_000, 5_000);
  const second = await startDaemon({ pgUrl, schema, dir, yaml: yaml(true) });
  daemons.push(second);
  const startedAt = Date.now();
  await waitFor('the catch-up run', () => second.runs.length >= 1, 30_000);
  const catchUp = second.runs[0]!;
  t.ok(Date.parse(catchUp.startedAt) - startedAt < 4_000, 'it ran at start, before the next scheduled time');
  t.ok(second.logs.some((l) => l.includes('catching up now')), 'the log says it caught up');
  await new Promise((r) => setTimeout(r, 2_500)); // a check passes the grace: no overdue
  t.equal(subjectsFor(smtp, 'gamma-db').filter((s) => s.includes('OVERDUE')).length, 0, 'no overdue alert with catch-up');
  await second.stop(60_000);

  // Down again across a scheduled time; back with catch-up off: overdue, then resolved by the next scheduled run.
  await alignTo(10_000, 3_000, 5_000);
  const third = await startDaemon({ pgUrl, schema, dir, yaml: yaml(false) });
  daemons.push(third);
  await waitFor('the overdue alert', () => subjectsFor(smtp, 'gamma-db').some((s) => s.includes('OVERDUE')), 5_000);
  t.equal(third.runs.length, 0, 'no run at start');
  t.ok(third.logs.some((l) => l.includes('catch-up is off')));
  const overdue = smtp.messages.find((m) => (m.parsed.subject ?? '').includes('OVERDUE gamma'))!;
  t.match(overdue.parsed.text, /has not verified gamma-db/);
  await waitFor('the next scheduled run', () => third.runs.length >= 1, 15_000);
  await waitFor('the overdue resolved', () => subjectsFor(smtp, 'gamma-db').some((s) => s.includes('RESOLVED')), 10_000);
  t.equal(subjectsFor(smtp, 'gamma-db').filter((s) => s.includes('OVERDUE')).length, 1, 'one overdue alert');
  await third.stop(60_000);
});

t.test('jitter: each scheduled run starts at a random delay of up to the jitter after its time', async (t) => {
  const folder = await tempDir('backups');
  await goodArchive(folder, 'share-1.tar.gz');
  const schema = 'sched_jitter';
  const d = await startDaemon({
    pgUrl,
    schema,
    yaml: `${daemonHeader({ pgUrl, schema, smtpPort: smtp.port, hookUrl: hook.url('/hook') })}
clients:
  - name: eps
    policies:
${filesPolicy({ name: 'eps-share', folder }).replace('schedule: "every 2s"', 'schedule: { when: "every 4s", jitter: 2s }')}`,
  });
  daemons.push(d);
  await waitFor('5 runs', () => d.runs.length >= 5, 60_000);
  await d.stop();
  // Offsets after each 4-second mark (runs start a few ms after the queue takes them).
  const offsets = d.runs.map((r) => Date.parse(r.startedAt) % 4_000);
  t.ok(offsets.every((o) => o < 2_500), `within the jitter (${offsets.join(', ')} ms)`);
  t.ok(offsets.some((o) => o > 150), 'actually delayed');
  t.ok(new Set(offsets.map((o) => Math.round(o / 100))).size > 1, 'by different amounts');
});
