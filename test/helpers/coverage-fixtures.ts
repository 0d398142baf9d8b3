import type { CoveragePlan, CoverageWhy, Reason, RunRecord, Verdict } from '../../orchestrator/core/domain.js';
import type { RunStore } from '../../orchestrator/evidence/run-store.js';
import { buildRun } from './report-fixtures.js';

/**
 * Retention coverage evidence, written by hand as the runner would record it (the runner that
 * makes them is tested elsewhere): runs of the newest backup that carry a coverage plan, and
 * coverage runs of older restore points (coverage.point, no RPO metrics), recorded through a real
 * RunStore (recordStart, then finalize). All in November 2026 for client acme:
 * - shop-db (postgres, coverage with a 90% target): a nightly run on the 1st..10th, each with a
 *   plan; the newest (the 10th) saw 49 points, 12 proven, 5 never verified. Four coverage runs:
 *   two pass, one FAILS (restore_failed, on a key with markup in it), one errors.
 * - mail-db (postgres, coverage without a target): one run with a plan (8 of 10), one passing
 *   coverage run.
 * - files (files): no coverage; two passing runs.
 */

export const COVERAGE_MONTH = '2026-11';
export const COVERAGE_NOW = new Date('2026-12-02T06:00:00Z');
const H = 3_600_000;
const DAY = 24 * H;
const EVERY = 30 * DAY;
export const FAILING_KEY = 'shop-db/2026-08-14 <b>&"old"</b>.dump';

export const COVERAGE_CONFIG = `version: 1
reports:
  mspName: "Northwind IT Services"
clients:
  - name: acme
    displayName: ACME Corporation
    policies:
      - name: shop-db
        kind: postgres
        source: { driver: local, path: /srv/backups/shop }
        targets: { rpo: 26h, rto: 30m }
        coverage: { every: 30d, points: 2, target: 90% }
      - name: mail-db
        kind: postgres
        source: { driver: local, path: /srv/backups/mail }
        coverage: { every: 30d, points: 1 }
      - name: files
        kind: files
        source: { driver: local, path: /srv/backups/files }
        targets: { rpo: 26h }
  - name: globex
    policies:
      - name: globex-crm
        kind: mysql
        source: { driver: local, path: /srv/backups/globex }
`;

export interface SeededCoverage {
  shopRuns: RunRecord[];
  shopPlan: RunRecord;
  shopPoints: RunRecord[];
  failedPoint: RunRecord;
  erroredPoint: RunRecord;
  mailPlan: RunRecord;
  mailPoint: RunRecord;
  filesRuns: RunRecord[];
  globexRun: RunRecord;
}

const at = (d: number, hour: number, minute = 0): string => new Date(Date.UTC(2026, 10, d, hour, minute, 7)).toISOString();

function plan(points: number, proven: number, neverVerified: number, planned: Array<{ key: string; why: CoverageWhy }>, target?: number): CoveragePlan {
  // CoverageConfig.target is optional: without one the record holds no target at all.
  return { everyMs: EVERY, points, proven, ...(target !== undefined ? { target } : {}), neverVerified, planned } as CoveragePlan;
}

/** A coverage run of an older restore point: no RPO metrics, the point's key as the backup's. */
export function pointRun(o: { policy: string; startedAt: string; key: string; why: CoverageWhy; planRunId: string; verdict: Verdict; reasons?: Reason[]; restoreMs: number | null; size?: number }): RunRecord {
  const run = buildRun({ policy: o.policy, kind: 'postgres', startedAt: o.startedAt, verdict: o.verdict, reasons: o.reasons ?? [], size: o.size ?? 900_000_000, ageMs: 90 * DAY, restoreMs: o.restoreMs });
  const { rpoMeasuredMs: _rpo, rpoTargetMs: _target, rpoMet: _met, ...metrics } = run.metrics;
  return {
    ...run,
    metrics,
    backup: run.backup ? { ...run.backup, key: o.key } : null,
    coverage: { point: { key: o.key, why: o.why, everyMs: EVERY, planRunId: o.planRunId } },
  };
}

async function record(store: RunStore, run: RunRecord): Promise<RunRecord> {
  await store.recordStart({ ...run, status: 'running', verdict: null, reasons: [], finishedAt: null, durationMs: null });
  await store.finalize(run);
  return run;
}

export async function seedCoverage(store: RunStore): Promise<SeededCoverage> {
  const shopRuns: RunRecord[] = [];
  const shopPoints: RunRecord[] = [];
  for (let d = 1; d <= 10; d++) {
    const run = buildRun({ policy: 'shop-db', kind: 'postgres', startedAt: at(d, 2), verdict: 'pass', size: 2_000_000_000 + d, ageMs: H, rpoTargetMs: 26 * H, rtoTargetMs: 30 * 60_000, restoreMs: 60_000 + d * 1_000 });
    const last = d === 10;
    run.coverage = {
      plan: plan(40 + (last ? 9 : 0), last ? 12 : d, last ? 5 : 20 - d, last ? [{ key: 'shop-db/2026-06-01.dump', why: 'never' }, { key: 'shop-db/2026-07-02.dump', why: 'oldest' }] : [{ key: `shop-db/2026-07-${String(d).padStart(2, '0')}.dump`, why: 'never' }], 0.9),
    };
    shopRuns.push(await record(store, run));
    const point = (over: Partial<Parameters<typeof pointRun>[0]> & Pick<Parameters<typeof pointRun>[0], 'key' | 'why' | 'verdict'>): Promise<RunRecord> =>
      record(store, pointRun({ policy: 'shop-db', startedAt: at(d, 3), planRunId: run.id, restoreMs: 45_000, ...over }));
    if (d === 3) shopPoints.push(await point({ key: 'shop-db/2026-07-03.dump', why: 'never', verdict: 'pass' }));
    if (d === 5) shopPoints.push(await point({ key: 'shop-db/2026-07-20.dump', why: 'oldest', verdict: 'pass', restoreMs: 52_000 }));
    if (d === 7) {
      shopPoints.push(
        await point({ key: FAILING_KEY, why: 'sample', verdict: 'fail', restoreMs: null, reasons: [{ code: 'restore_failed', message: 'pg_restore: error: could not read from input file: end of file' }], size: 1_000 }),
      );
    }
    if (d === 8) shopPoints.push(await point({ key: 'shop-db/2026-09-01.dump', why: 'oldest', verdict: 'error', restoreMs: null, reasons: [{ code: 'docker_unreachable', message: 'Docker is unreachable' }] }));
  }

  const mailRun = buildRun({ policy: 'mail-db', kind: 'postgres', startedAt: at(4, 4), verdict: 'pass', size: 300_000_000, ageMs: 2 * H, restoreMs: 20_000 });
  mailRun.coverage = { plan: plan(10, 8, 0, [{ key: 'mail-db/2026-10-01.dump', why: 'oldest' }]) };
  const mailPlan = await record(store, mailRun);
  const mailPoint = await record(store, pointRun({ policy: 'mail-db', startedAt: at(4, 5), key: 'mail-db/2026-10-01.dump', why: 'oldest', planRunId: mailPlan.id, verdict: 'pass', restoreMs: 18_000 }));

  const filesRuns = [
    await record(store, buildRun({ policy: 'files', kind: 'files', startedAt: at(2, 6), verdict: 'pass', size: 5_000_000, ageMs: H, rpoTargetMs: 26 * H, restoreMs: 9_000 })),
    await record(store, buildRun({ policy: 'files', kind: 'files', startedAt: at(9, 6), verdict: 'pass', size: 5_100_000, ageMs: H, rpoTargetMs: 26 * H, restoreMs: 9_500 })),
  ];
  const globexRun = await record(store, buildRun({ client: 'globex', policy: 'globex-crm', kind: 'mysql', startedAt: at(6, 1), verdict: 'pass', size: 80_000_000, ageMs: H, restoreMs: 12_000 }));
  return {
    shopRuns,
    shopPlan: shopRuns.at(-1)!,
    shopPoints,
    failedPoint: shopPoints[2]!,
    erroredPoint: shopPoints[3]!,
    mailPlan,
    mailPoint,
    filesRuns,
    globexRun,
  };
}
