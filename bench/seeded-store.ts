/**
 * Evidence stores for the benchmarks: runs recorded and sealed through RunStore (recordStart +
 * finalize, each link signed), as the runner does. `nClients` clients of 5 policies each, except
 * the first (`BIG_CLIENT`), which has 50; one run per policy a day, back from now, every 23rd a
 * fail; each link's sealed_at is its run's finishedAt. The embedded store is cached in $TMPDIR/backproof-bench-store-<runs>-<clients> (delete
 * it to rebuild); `seedRuns` fills any open store (PostgreSQL too).
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';

export const POLICIES_PER_CLIENT = 5;
/** The client whose monthly report the benchmarks build: 50 policies, as in issue 15. */
export const BIG_CLIENT = { name: 'c0000', policies: 50 };
const SEED_KEY = 'seed-v3';
const DAY = 86_400_000;

const progress = (msg: string): boolean => process.stderr.write(`[bench] ${msg}\n`);

export const clientName = (c: number): string => `c${String(c).padStart(4, '0')}`;
export const policiesOf = (c: number): number => (c === 0 ? BIG_CLIENT.policies : POLICIES_PER_CLIENT);

export function seededRun(client: string, policy: string, startedAt: number, i: number): RunRecord {
  const fail = i % 23 === 0;
  const phaseNames = ['select', 'sandbox', 'fetch_restore', 'readiness', 'probes', 'teardown'] as const;
  return {
    id: randomUUID(),
    client,
    policy,
    kind: 'postgres',
    status: 'finished',
    verdict: fail ? 'fail' : 'pass',
    reasons: fail ? [{ code: 'probe_failed', message: 'orders: expected >= 1000 rows, got 12' }] : [],
    startedAt: new Date(startedAt).toISOString(),
    finishedAt: new Date(startedAt + 42_000).toISOString(),
    durationMs: 42_000,
    host: 'bench',
    pid: 1,
    backproofVersion: '0.1.0',
    backup: { driver: 'local', location: '/backups', key: `shop-${i}.dump`, size: 160_000 + i, modifiedAt: new Date(startedAt - 3_600_000).toISOString(), backupTime: new Date(startedAt - 3_600_000).toISOString(), timestampSource: 'name', ageMs: 3_600_000, sha256: 'ab'.repeat(32) },
    phases: phaseNames.map((name, k) => ({ name, startedAt: new Date(startedAt + k * 7000).toISOString(), endedAt: new Date(startedAt + (k + 1) * 7000).toISOString(), durationMs: 7000, outcome: 'ok' as const })),
    probes: [{ name: 'orders', type: 'sql', expected: '>= 1000', actual: fail ? '12' : '25000', pass: !fail, durationMs: 40 }],
    metrics: { rpoMs: 3_600_000, rtoMs: 21_000 },
    sandbox: null,
    restored: null,
  } as RunRecord;
}

/** Records and seals `nRuns` runs into `store`, oldest day first; returns the id of the middle one. */
export async function seedRuns(store: RunStore, nRuns: number, nClients: number): Promise<string> {
  const perDay = Array.from({ length: nClients }, (_, c) => policiesOf(c)).reduce((a, b) => a + b, 0);
  const t0 = performance.now();
  let someRunId = '';
  let i = 0;
  for (let day = Math.ceil(nRuns / perDay); day > 0 && i < nRuns; day--) {
    for (let c = 0; c < nClients && i < nRuns; c++) {
      const client = clientName(c);
      for (let p = 0; p < policiesOf(c) && i < nRuns; p++, i++) {
        const run = seededRun(client, `${client}-db${p}`, Date.now() - day * DAY + c * 1000 + p, i);
        await store.recordStart({ ...run, status: 'running', verdict: null, finishedAt: null, durationMs: null });
        await store.finalize(run);
        if (i === Math.floor(nRuns / 2)) someRunId = run.id;
        if (i % 5000 === 0 && i > 0) progress(`  ${i.toLocaleString('en')} runs (${(i / ((performance.now() - t0) / 1000)).toFixed(0)}/s)`);
      }
    }
  }
  // As if each run had been sealed when it finished (a period's walk starts at the last link sealed before the period).
  await store.executor.exec(`UPDATE ${store.schema}.evidence_chain c SET sealed_at = r.finished_at FROM ${store.schema}.runs r WHERE r.id = c.run_id`);
  progress(`seeded ${nRuns.toLocaleString('en')} runs in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return someRunId;
}

/** An embedded-store data dir holding `nRuns` sealed runs (cached across bench runs). */
export async function seededDataDir(nRuns: number, nClients: number): Promise<{ dataDir: string; someRunId: string }> {
  const dir = path.join(os.tmpdir(), `backproof-bench-store-${nRuns}-${nClients}`);
  const marker = path.join(dir, 'seeded.json');
  // The store is migrated when a command opens it: the seed stays good across migrations.
  const cached = await fs.readFile(marker, 'utf8').then((t) => JSON.parse(t) as { key: string; someRunId: string }, () => undefined);
  if (cached?.key === SEED_KEY) {
    progress(`using the seeded store in ${dir}`);
    return { dataDir: path.join(dir, 'data'), someRunId: cached.someRunId };
  }
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { recursive: true });
  progress(`seeding ${nRuns.toLocaleString('en')} runs through RunStore into ${dir} (recordStart + finalize, each sealed and signed)`);
  const store = await RunStore.open({ dataDir: path.join(dir, 'data'), schema: 'backproof' });
  let someRunId: string;
  try {
    someRunId = await seedRuns(store, nRuns, nClients);
  } finally {
    await store.close();
  }
  await fs.writeFile(marker, JSON.stringify({ key: SEED_KEY, someRunId }));
  return { dataDir: path.join(dir, 'data'), someRunId };
}
