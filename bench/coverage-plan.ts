/**
 * Benchmark: what retention coverage adds to a run of the newest backup. The run of a policy with
 * `coverage:` looks up each restore point's last verification (RunStore.pointProofs, two queries
 * on the partial index of migration 0013) and plans (planCoverage); this is timed against the
 * size check's query every run already makes (passingBackupSizes), in the same process, on the
 * embedded store, medians of alternating rounds.
 *
 * The store holds `--runs` runs over 50 policies; the coverage policy has `--policy-runs` of
 * them over `--points` restore points (a year of dailies verified again and again), a third of
 * them coverage runs, every 23rd a fail. Rows are written with SQL (the query reads rows; the
 * chain is not involved).
 *
 *   node --import tsx bench/coverage-plan.ts [--runs 100000] [--policy-runs 3000] [--points 400] [--repeat 15]
 */
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { planCoverage } from '../orchestrator/runner/coverage-plan.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '100000' }, 'policy-runs': { type: 'string', default: '3000' }, points: { type: 'string', default: '400' }, repeat: { type: 'string', default: '15' } } });
const runs = Number(values.runs);
const policyRuns = Number(values['policy-runs']);
const points = Number(values.points);
const repeat = Number(values.repeat);
const DAY = 86_400_000;

const dir = mkdtempSync(path.join(os.tmpdir(), 'backproof-bench-coverage-'));
const store = await RunStore.open({ dataDir: path.join(dir, 'data'), schema: 'backproof' });
try {
  const t0 = performance.now();
  const insert = (policy: string, n: number, keyOf: string, coverage: string): Promise<unknown> =>
    store.executor.query(
      `INSERT INTO backproof.runs (id, client, policy, kind, status, verdict, reasons, started_at, finished_at, duration_ms, host, pid, backproof_version, backup, phases, probes, metrics, coverage)
       SELECT gen_random_uuid(), 'acme', ${policy}, 'files', 'finished', CASE WHEN g % 23 = 0 THEN 'fail' ELSE 'pass' END, '[]'::jsonb,
              now() - (g * interval '3 hours'), now() - (g * interval '3 hours') + interval '40 seconds', 40000, 'bench', 1, '0.1.0',
              jsonb_build_object('driver', 'local', 'location', '/b', 'key', ${keyOf}, 'size', 160000 + g, 'modifiedAt', now(), 'backupTime', now(), 'timestampSource', 'mtime', 'ageMs', 0),
              '[]'::jsonb, '[]'::jsonb, '{}'::jsonb, ${coverage}
         FROM generate_series(1, ${n}) g`,
    );
  await insert(`'other-' || (g % 49)`, runs - policyRuns, `'other-' || g || '.tar'`, 'NULL');
  await insert(`'shop'`, policyRuns, `'share-' || (g % ${points}) || '.tar.gz'`, `CASE WHEN g % 3 = 0 THEN jsonb_build_object('point', jsonb_build_object('key', 'share-' || (g % ${points}) || '.tar.gz')) ELSE NULL END`);
  await store.executor.query('ANALYZE backproof.runs');
  process.stderr.write(`[bench] ${runs.toLocaleString('en')} runs written in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);

  const now = new Date();
  const listed = Array.from({ length: points }, (_, i) => ({ key: `share-${i}.tar.gz`, backupTime: new Date(now.getTime() - i * DAY) }));
  const config = { everyMs: 30 * DAY, points: 2, per: 'run' as const, sample: 1 };
  const baseline: number[] = [];
  const coverage: number[] = [];
  let planned = 0;
  for (let r = 0; r < repeat; r++) {
    let t = performance.now();
    await store.passingBackupSizes('shop', 10);
    baseline.push(performance.now() - t);
    t = performance.now();
    const proofs = await store.pointProofs('shop');
    planned = planCoverage({ points: listed, newestKey: 'share-0.tar.gz', proofs, now, config, budget: 2 }).planned.length;
    coverage.push(performance.now() - t);
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const b = median(baseline);
  const c = median(coverage);
  console.log(`store: ${runs.toLocaleString('en')} runs; policy shop: ${policyRuns.toLocaleString('en')} runs over ${points} restore points (${planned} planned)`);
  console.log(`size check query (baseline, every run): ${b.toFixed(2)} ms`);
  console.log(`coverage lookup + plan:                  ${c.toFixed(2)} ms`);
  console.log(`ratio coverage / size check: ${(c / b).toFixed(2)}`);
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
