import t from 'tap';
import { judgeRun } from '../orchestrator/alerts/run-conditions.js';
import { parseConfigText } from '../orchestrator/config/load.js';
import type { CoverageConfig } from '../orchestrator/core/config-types.js';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { budgetPeriodStart, planCoverage, type PointProofView, type RestorePoint } from '../orchestrator/runner/coverage-plan.js';
import { policyCoverage, renderCoverage } from '../reports/coverage-status.js';
import { sampleRun } from './helpers/store-backends.js';

// Retention coverage (issue 19, part 1): which older restore points a run plans, the budget's
// period, the coverage table, the alert conditions and the config. "Now" is pinned and every
// time compared with it is derived from it, so these pass on any date.

const NOW = new Date('2027-03-15T06:00:00Z');
const DAY = 86_400_000;
const ago = (days: number): Date => new Date(NOW.getTime() - days * DAY);
const iso = (days: number): string => ago(days).toISOString();
const config = (over: Partial<CoverageConfig> = {}): CoverageConfig => ({ everyMs: 30 * DAY, points: 2, per: 'run', sample: 0, ...over });

/** 30 dailies, 12 monthlies (keys say which). */
function retention(): RestorePoint[] {
  const points: RestorePoint[] = [];
  for (let d = 0; d < 30; d++) points.push({ key: `daily-${String(d).padStart(2, '0')}`, backupTime: ago(d) });
  for (let m = 1; m <= 12; m++) points.push({ key: `monthly-${String(m).padStart(2, '0')}`, backupTime: ago(30 * m + 1) });
  return points;
}

t.test('never-verified points first, oldest first; the newest is never planned', async (t) => {
  const points = retention();
  const plan = planCoverage({ points, newestKey: 'daily-00', proofs: new Map(), now: NOW, config: config(), budget: 2 });
  t.same(plan.planned, [{ key: 'monthly-12', why: 'never' }, { key: 'monthly-11', why: 'never' }]);
  t.equal(plan.points, 42);
  t.equal(plan.proven, 0);
  t.equal(plan.neverVerified, 42);
  t.equal(plan.everyMs, 30 * DAY);
  t.notOk('target' in plan, 'no target unless the policy sets one');
});

t.test('then the points whose last verification is oldest; points verified within every are not due, whatever the verdict', async (t) => {
  const points = retention().slice(0, 5); // daily-00..04
  const proofs = new Map<string, PointProofView>([
    ['daily-01', { verdict: 'pass', at: iso(40), passedAt: iso(40) }],
    ['daily-02', { verdict: 'pass', at: iso(35), passedAt: iso(35) }],
    ['daily-03', { verdict: 'fail', at: iso(2) }],
    ['daily-04', { verdict: 'pass', at: iso(1), passedAt: iso(1) }],
  ]);
  const plan = planCoverage({ points, newestKey: 'daily-00', proofs, now: NOW, config: config({ points: 5 }), budget: 5 });
  t.same(plan.planned, [{ key: 'daily-01', why: 'oldest' }, { key: 'daily-02', why: 'oldest' }], 'a failure 2 days ago is not retried every run');
  t.equal(plan.proven, 1, 'only daily-04 passed within 30 days');
  t.equal(plan.neverVerified, 1, 'the newest was never verified');
});

t.test('the budget bounds the due points; the sample is drawn among the rest', async (t) => {
  const points = retention().slice(0, 6);
  const proofs = new Map<string, PointProofView>(points.slice(1).map((p) => [p.key, { verdict: 'pass', at: iso(1), passedAt: iso(1) }]));
  const none = planCoverage({ points, newestKey: 'daily-00', proofs, now: NOW, config: config(), budget: 0 });
  t.same(none.planned, [], 'nothing due, budget 0');
  let calls = 0;
  const sampled = planCoverage({ points, newestKey: 'daily-00', proofs, now: NOW, config: config({ sample: 2 }), budget: 2, random: () => [0.99, 0][calls++]! });
  t.same(sampled.planned, [{ key: 'daily-05', why: 'sample' }, { key: 'daily-01', why: 'sample' }], 'random picks, never the newest, never twice');
  const all = planCoverage({ points, newestKey: 'daily-00', proofs, now: NOW, config: config({ sample: 50 }), budget: 0, random: () => 0.5 });
  t.equal(all.planned.length, 5, 'a sample larger than the rest takes the rest');
  t.equal(new Set(all.planned.map((p) => p.key)).size, 5);
});

t.test('points pruned from storage leave the plan: only listed points are planned or counted', async (t) => {
  const proofs = new Map<string, PointProofView>([['gone', { verdict: 'fail', at: iso(60) }]]);
  const plan = planCoverage({ points: [{ key: 'a', backupTime: ago(0) }, { key: 'b', backupTime: ago(1) }], newestKey: 'a', proofs, now: NOW, config: config(), budget: 5 });
  t.same(plan.planned, [{ key: 'b', why: 'never' }]);
  t.equal(plan.points, 2);
});

t.test('the budget period: the UTC day, or the ISO week from Monday', async (t) => {
  t.equal(budgetPeriodStart('day', new Date('2027-03-17T23:59:00Z')).toISOString(), '2027-03-17T00:00:00.000Z');
  t.equal(budgetPeriodStart('week', new Date('2027-03-17T10:00:00Z')).toISOString(), '2027-03-15T00:00:00.000Z', 'a Wednesday: that Monday');
  t.equal(budgetPeriodStart('week', new Date('2027-03-21T23:00:00Z')).toISOString(), '2027-03-15T00:00:00.000Z', 'a Sunday: the Monday before');
  t.equal(budgetPeriodStart('week', new Date('2027-03-15T00:00:00Z')).toISOString(), '2027-03-15T00:00:00.000Z', 'a Monday: itself');
});

t.test('the coverage table: states, share, what needs attention', async (t) => {
  const points = [{ key: 'd0', backupTime: ago(0) }, { key: 'd1', backupTime: ago(1) }, { key: 'm1', backupTime: ago(31) }, { key: 'y1', backupTime: ago(365) }];
  const proofs = new Map([
    ['d0', { runId: 'aaaaaaaa-0000-4000-8000-000000000000', verdict: 'pass' as const, at: iso(0.1), passedAt: iso(0.1) }],
    ['d1', { runId: 'bbbbbbbb-0000-4000-8000-000000000000', verdict: 'pass' as const, at: iso(45), passedAt: iso(45) }],
    ['m1', { runId: 'cccccccc-0000-4000-8000-000000000000', verdict: 'fail' as const, at: iso(3), passedAt: iso(20) }],
  ]);
  const c = policyCoverage({ name: 'shop', client: 'acme' }, '/srv/backups', { everyMs: 30 * DAY, target: 0.75 }, points, proofs, NOW);
  t.same(
    c.rows.map((r) => [r.key, r.state, r.newest]),
    [['d0', 'proven', true], ['d1', 'due', false], ['m1', 'failed', false], ['y1', 'never', false]],
  );
  t.equal(c.proven, 2, 'd0, and m1 whose pass 20 days ago still counts');
  t.equal(c.share, 0.5);
  t.equal(c.failed, 1);
  t.equal(c.never, 1);
  t.ok(c.attention);
  const text = renderCoverage(c);
  t.match(text, /2 of 4 restore points proven within 30.0d \(50%, target 75%\); 1 failed; 1 never verified/);
  t.match(text, /m1 +\S+ \S+ +FAILED +fail /);
  t.match(text, /y1 .* never verified/);
  const fine = policyCoverage({ name: 'shop', client: 'acme' }, '/srv', { everyMs: 30 * DAY }, points.slice(0, 1), proofs, NOW);
  t.notOk(fine.attention, 'all proven, no target');
});

function coverageRun(over: Partial<RunRecord>): RunRecord {
  return sampleRun(iso(0), { status: 'finished', ...over });
}

t.test('alerts: a failing older point opens its own incident; its pass closes it; nothing of the newest is touched', async (t) => {
  const point = { key: 'monthly-03', why: 'oldest' as const, everyMs: 30 * DAY, planRunId: 'p' };
  const failed = judgeRun(coverageRun({ verdict: 'fail', reasons: [{ code: 'corrupt_compression', message: 'gzip CRC mismatch' }], coverage: { point } }));
  t.same(failed.firing.map((f) => [f.condition, f.key]), [['coverage', 'monthly-03']]);
  t.match(failed.firing[0]!.summary, /older restore point monthly-03 does not restore: /);
  t.notOk(failed.resolved.includes('fail') || failed.resolved.includes('stale') || failed.resolved.includes('missing'), 'says nothing of the newest backup');
  const passed = judgeRun(coverageRun({ verdict: 'pass', reasons: [], coverage: { point } }));
  t.same(passed.resolvedKeys, [{ condition: 'coverage', key: 'monthly-03' }]);
  t.same(passed.firing, []);
  const errored = judgeRun(coverageRun({ verdict: 'error', reasons: [{ code: 'docker_unreachable', message: 'engine gone' }], coverage: { point } }));
  t.same(errored.firing.map((f) => f.condition), ['error']);
});

t.test('alerts: a plan below its target fires coverage; at or above resolves it', async (t) => {
  const plan = { everyMs: 30 * DAY, points: 40, proven: 10, target: 0.5, neverVerified: 30, planned: [] };
  const low = judgeRun(coverageRun({ verdict: 'pass', reasons: [], coverage: { plan } }));
  t.same(low.firing.map((f) => [f.condition, f.key ?? '']), [['coverage', '']]);
  t.match(low.firing[0]!.summary, /retention coverage 25%: 10 of 40 restore points proven within 30.0d, below the target of 50%/);
  const ok = judgeRun(coverageRun({ verdict: 'pass', reasons: [], coverage: { plan: { ...plan, proven: 20 } } }));
  t.ok(ok.resolved.includes('coverage'));
  const untargeted = judgeRun(coverageRun({ verdict: 'pass', reasons: [], coverage: { plan: { ...plan, target: undefined } } }));
  t.notOk(untargeted.firing.length || untargeted.resolved.includes('coverage'), 'no target: no share alert');
});

t.test('config: coverage with defaults, every unit, per, target; bad values named with their fix', async (t) => {
  const yaml = (cov: string): string => `
clients:
  - name: acme
    policies:
      - name: shop
        kind: files
        source: { driver: local, path: /srv/backups }
        coverage: ${cov}
`;
  const parse = (cov: string) => parseConfigText(yaml(cov), '/etc/backproof.yaml', {}).policies[0]!.coverage;
  t.same(parse('{}'), { everyMs: 30 * DAY, points: 1, per: 'run', sample: 0 });
  t.same(parse('{ every: 7d, points: 3, per: week, sample: 1, target: "90%" }'), { everyMs: 7 * DAY, points: 3, per: 'week', sample: 1, target: 0.9 });
  t.throws(() => parse('{ per: month }'), /coverage\.per.*run, day or week/s);
  t.throws(() => parse('{ points: -1 }'), /coverage\.points/);
  t.throws(() => parse('{ target: 2 }'), /coverage\.target/);
  t.throws(() => parse('{ evry: 7d }'), /coverage.*evry/s);
  const budgeted = parseConfigText(yaml('{}').replace('  - name: acme\n', '  - name: acme\n    budget: { monthly: 25, currency: EUR }\n'), '/etc/backproof.yaml', {});
  t.same(budgeted.clients[0]!.budget, { monthly: 25, currency: 'EUR' });
  t.same(budgeted.policies[0]!.budget, { monthly: 25, currency: 'EUR' }, "each policy carries its client's budget");
  t.throws(() => parseConfigText(yaml('{}').replace('  - name: acme\n', '  - name: acme\n    budget: { monthly: 25, currency: euro }\n'), '/etc/backproof.yaml', {}), /budget\.currency.*three capital letters/s);
  const defaults = parseConfigText(`${yaml('{ points: 2 }').replace('clients:', 'defaults:\n  coverage: { every: 14d }\nclients:')}`, '/etc/backproof.yaml', {});
  t.equal(defaults.policies[0]!.coverage?.points, 2, "the policy's own coverage replaces the default's keys it sets");
});
