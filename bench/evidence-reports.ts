/**
 * Benchmark: what audit-grade evidence and reports cost, on the embedded store.
 *
 * 1. Sealing: `--runs` (2000) runs recorded and finalized by RunStore (the UPDATE, the chain
 *    link and its Ed25519 signature in one transaction) against the same UPDATE of the same rows
 *    alone on the same executor (the baseline: what finalizing cost before the chain).
 * 2. Verifying: `evidence verify` over all of them (recompute every hash, check every link and
 *    signature) against reading the same records back with `list` (the baseline).
 * 3. The month's report for the client of those runs (spread over `--policies` (20) policies,
 *    all in November 2026): building the model (with the chain verified), then rendering each format; the
 *    JSON render is the baseline of the renders.
 *
 *   node --import tsx bench/evidence-reports.ts [--runs 2000] [--policies 20]
 *
 * Progress to stderr, results to stdout, then the peak RSS of the process.
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfigText } from '../orchestrator/config/load.js';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { AlertStore } from '../orchestrator/evidence/alert-store.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { buildMonthlyReport, renderMonthlyReport } from '../reports/monthly/index.js';

const progress = (msg: string): boolean => process.stderr.write(`[bench] ${msg}\n`);
const { values } = parseArgs({ options: { runs: { type: 'string', default: '2000' }, policies: { type: 'string', default: '20' } } });
const nRuns = Number(values.runs);
const nPolicies = Number(values.policies);
let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
const ms = (t0: number): number => performance.now() - t0;
const MONTH_START = Date.UTC(2026, 10, 1);

function runOf(policy: string, startedAt: number): RunRecord {
  return {
    id: randomUUID(),
    client: 'acme',
    policy,
    kind: 'postgres',
    status: 'running',
    verdict: null,
    reasons: [],
    startedAt: new Date(startedAt).toISOString(),
    finishedAt: null,
    durationMs: null,
    host: 'bench',
    pid: process.pid,
    backproofVersion: '0.1.0',
    backup: null,
    phases: [],
    probes: [],
    metrics: {},
    sandbox: null,
    restored: null,
  };
}

function finished(run: RunRecord, i: number): RunRecord {
  const fail = i % 17 === 0;
  const started = Date.parse(run.startedAt);
  const size = 1_000_000_000 + i * 1_000_000;
  return {
    ...run,
    status: 'finished',
    verdict: fail ? 'fail' : 'pass',
    reasons: fail ? [{ code: 'probe_failed', message: 'orders: expected at least 1000 rows, got 12' }] : [],
    finishedAt: new Date(started + 300_000).toISOString(),
    durationMs: 300_000,
    backup: { driver: 'local', location: '/backups', key: `${run.policy}/dump-${i}.dump`, size, modifiedAt: run.startedAt, backupTime: new Date(started - 3_600_000).toISOString(), timestampSource: 'name', ageMs: 3_600_000, sha256: 'ab'.repeat(32) },
    phases: ['select', 'sandbox', 'fetch_restore', 'readiness', 'probes', 'teardown'].map((name, k) => ({
      name: name as RunRecord['phases'][number]['name'],
      startedAt: new Date(started + k * 50_000).toISOString(),
      endedAt: new Date(started + (k + 1) * 50_000).toISOString(),
      durationMs: 50_000,
      outcome: 'ok' as const,
    })),
    probes: [{ name: 'orders', type: 'rowCount', expected: '>= 1000', actual: fail ? '12' : '25000', pass: !fail, durationMs: 120 }],
    metrics: { rpoTargetMs: 93_600_000, rpoMeasuredMs: 3_600_000, rpoMet: true, rtoTargetMs: 1_800_000, rtoMeasuredMs: 200_000 + (i % 50) * 1000, rtoMet: true },
    sandbox: { runtime: 'docker', image: 'backproof/postgres:15' },
    restored: { tables: 12, rows: 25_000 },
  };
}

const root = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-bench-evidence-'));
try {
  const store = await RunStore.open({ dataDir: path.join(root, 'data'), schema: 'backproof' });
  const policies = Array.from({ length: nPolicies }, (_, p) => `acme-db-${p}`);

  // 1. Sealing against a plain UPDATE.
  progress(`sealing ${nRuns} runs`);
  const runs: RunRecord[] = [];
  for (let i = 0; i < nRuns; i++) {
    const policy = policies[i % nPolicies]!;
    const day = Math.floor(i / nPolicies);
    runs.push(runOf(policy, MONTH_START + (day % 30) * 86_400_000 + 2 * 3_600_000 + (i % nPolicies) * 60_000 + Math.floor(day / 30) * 1000));
  }
  const finals = runs.map((r, i) => finished(r, i));
  for (const r of runs) await store.recordStart(r);
  let t0 = performance.now();
  for (const f of finals) await store.finalize(f);
  const sealMs = ms(t0);
  t0 = performance.now();
  for (const f of finals) {
    await store.executor.query(`UPDATE backproof.runs SET reasons = $2::jsonb, metrics = $3::jsonb WHERE id = $1::uuid`, [f.id, JSON.stringify(f.reasons), JSON.stringify(f.metrics)]);
  }
  const updateMs = ms(t0);
  process.stdout.write(`\n1. sealing ${nRuns} finalized runs (update + chain link + Ed25519 signature, one transaction)\n`);
  process.stdout.write(`   plain UPDATE of the same rows (baseline)   ${(updateMs / nRuns).toFixed(2)} ms/run\n`);
  process.stdout.write(`   finalize with the chain                    ${(sealMs / nRuns).toFixed(2)} ms/run   ratio ${(sealMs / updateMs).toFixed(2)}x\n`);
  // The baseline UPDATE rewrote the same values: the chain must still verify.

  // 2. Verify against reading back.
  progress('verifying');
  const chain = store.evidenceChain();
  t0 = performance.now();
  const verdict = await chain.verify();
  const verifyMs = ms(t0);
  t0 = performance.now();
  await store.list({ limit: nRuns });
  const listMs = ms(t0);
  process.stdout.write(`\n2. evidence verify over ${verdict.checked} links (${verdict.ok ? 'intact' : `NOT intact: ${verdict.firstBad?.problem}`})\n`);
  process.stdout.write(`   reading the records back (baseline)   ${(listMs / 1000).toFixed(2)} s\n`);
  process.stdout.write(`   verify                                ${(verifyMs / 1000).toFixed(2)} s   ${Math.round(verdict.checked / (verifyMs / 1000))} links/s   ratio ${(verifyMs / listMs).toFixed(2)}x\n`);

  // 3. A month's report.
  progress('monthly report');
  const config = parseConfigText(
    `reports: { mspName: Bench MSP }\nclients:\n  - name: acme\n    displayName: ACME Corp\n    policies:\n${policies
      .map((p) => `      - name: ${p}\n        kind: postgres\n        source: { driver: local, path: /tmp }\n        targets: { rpo: 26h, rto: 30m }\n        schedule: "daily at 02:00"\n`)
      .join('')}`,
    path.join(root, 'backproof.yaml'),
    {},
  );
  const deps = { runs: store, alerts: new AlertStore(store.executor, store.schema), chain, config };
  t0 = performance.now();
  const report = await buildMonthlyReport(deps, { client: 'acme', month: '2026-11', now: new Date(Date.UTC(2026, 11, 1, 6)) });
  const buildMs = ms(t0);
  const renders: Record<string, { ms: number; bytes: number }> = {};
  for (const format of ['json', 'csv', 'html', 'pdf'] as const) {
    t0 = performance.now();
    const bytes = await renderMonthlyReport(report, format);
    renders[format] = { ms: ms(t0), bytes: bytes.length };
  }
  const base = renders.json!.ms;
  process.stdout.write(`\n3. the month's report for acme: ${nPolicies} policies\n`);
  process.stdout.write(`   build the model (queries + chain verify)   ${(buildMs / 1000).toFixed(2)} s\n`);
  for (const [format, r] of Object.entries(renders)) {
    process.stdout.write(`   render ${format.padEnd(5)} ${(r.ms / 1000).toFixed(3).padStart(7)} s   ${(r.bytes / 1024).toFixed(0).padStart(6)} KiB   ratio to json ${(r.ms / base).toFixed(1)}x\n`);
  }
  await store.close();
  process.stdout.write(`\npeak RSS of this process: ${(peakRss / 1024 ** 2).toFixed(0)} MiB\n`);
} finally {
  clearInterval(sampler);
  await fs.rm(root, { recursive: true, force: true });
}
