/**
 * Benchmark: evidence at scale (issue 15): `--runs` (100,000) sealed runs across `--clients`
 * (200) clients, on the embedded store and on PostgreSQL (a throwaway server from Debian's
 * packages, as the tests start it; `--no-pg` skips it). For each store:
 *
 * 1. `evidence verify --full` (every hash recomputed, every signature checked) against reading
 *    the same records back (`list`, the baseline); it signs a checkpoint at the head;
 * 2. a day's runs sealed after it (one per policy), then `evidence verify` as the CLI runs it: it
 *    walks only those, and the figure that matters is the chain's length over the time taken;
 * 3. the month before this one verified for every client (every record of the month re-hashed,
 *    only the last link's signature checked again under the checkpoint: what a report did before
 *    checkpoints signed client digests), then for the 50-policy client alone as its report does
 *    (`verifyClient`: its links against the checkpoint's digest, its records re-hashed), and that
 *    client's monthly report built (queries + that verification) and rendered to PDF;
 * 4. the dashboard over that store, every client's policies configured (1,045): the board (`/`),
 *    folded as served and in full, one client's board, the runs page and `/api/runs` as an admin's browser asks for them, each request timed from
 *    sending to the last byte (the first request apart: it warms the server's queries).
 *
 *   node --import tsx bench/evidence-scale.ts [--runs 100000] [--clients 200] [--no-pg] [--only report|dashboard]
 *
 * `--only report` measures step 3 alone: the chain is verified and checkpointed at its head first
 * (as step 1 leaves it, with client digests, timed but not the point), steps 1, 2 and 4 are skipped. `--only dashboard`
 * skips steps 1-3 (the store as seeded, no day of runs added).
 *
 * The embedded store is seeded once and cached (bench/seeded-store.ts); this script works on a
 * copy, so the cache keeps no checkpoint. Progress to stderr, results to stdout.
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfigText } from '../orchestrator/config/load.js';
import { AlertStore } from '../orchestrator/evidence/alert-store.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { Logger } from '../orchestrator/core/logger.js';
import { startWebServer } from '../orchestrator/web/server.js';
import { TokenStore } from '../orchestrator/web/token-store.js';
import { buildMonthlyReport, renderMonthlyReport } from '../reports/monthly/index.js';
import { startPgCluster } from '../test/helpers/pg-cluster.js';
import { BIG_CLIENT, clientName, policiesOf, seededDataDir, seededRun, seedRuns } from './seeded-store.js';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '100000' }, clients: { type: 'string', default: '200' }, 'no-pg': { type: 'boolean', default: false }, only: { type: 'string' } },
});
const nRuns = Number(values.runs);
const nClients = Number(values.clients);
if (values.only !== undefined && values.only !== 'report' && values.only !== 'dashboard') throw new Error(`--only ${values.only}: the steps that run alone are report and dashboard`);
const onlyReport = values.only === 'report';
const progress = (msg: string): boolean => process.stderr.write(`[bench] ${msg}\n`);
const out = (line = ''): boolean => process.stdout.write(`${line}\n`);
const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const rate = (n: number, ms: number): string => `${Math.round(n / (ms / 1000)).toLocaleString('en')} links/s`;

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

/** The month before the current one, `YYYY-MM`. */
function lastMonth(): string {
  const now = new Date();
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
  return d.toISOString().slice(0, 7);
}

async function measure(name: string, store: RunStore): Promise<void> {
  const chain = store.evidenceChain();
  out(`\n== ${name}: ${nRuns.toLocaleString('en')} runs, ${nClients} clients ==`);
  if (onlyReport) {
    progress(`${name}: verify, signing a checkpoint at the head (as step 1 does)`);
    const head = await timed(() => chain.verify({ writeCheckpoint: true }));
    if (!head.value.ok) throw new Error(`the seeded chain does not verify: ${JSON.stringify(head.value.firstBad)}`);
    out(`   (checkpoint at seq ${head.value.head?.seq ?? 0} after verifying ${head.value.checked.toLocaleString('en')} links in ${secs(head.ms)})`);
    await report(name, store);
    return;
  }
  if (values.only === 'dashboard') return dashboard(store);

  progress(`${name}: reading back, then verify --full`);
  const list = await timed(() => store.list({ limit: nRuns }));
  const full = await timed(() => chain.verify({ full: true, writeCheckpoint: true }));
  if (!full.value.ok) throw new Error(`the seeded chain does not verify: ${JSON.stringify(full.value.firstBad)}`);
  out(`1. reading ${list.value.length.toLocaleString('en')} records back (baseline)   ${secs(list.ms)}`);
  out(`   evidence verify --full                     ${secs(full.ms)}   ${rate(full.value.checked, full.ms)}   ratio ${(full.ms / list.ms).toFixed(2)}x   (${full.value.checkpointWritten ? `checkpoint signed at seq ${full.value.checkpointWritten.seq}` : 'the head already had a checkpoint'})`);

  progress(`${name}: a day of runs, then the incremental verify`);
  let day = 0;
  for (let c = 0; c < nClients; c++) {
    for (let p = 0; p < policiesOf(c); p++, day++) {
      const run = seededRun(clientName(c), `${clientName(c)}-db${p}`, Date.now() - 3_600_000 + day, day);
      await store.recordStart({ ...run, status: 'running', verdict: null, finishedAt: null, durationMs: null });
      await store.finalize(run);
    }
  }
  const incremental = await timed(() => chain.verify({ writeCheckpoint: true }));
  const length = incremental.value.head?.seq ?? 0;
  out(`2. evidence verify after a day's ${day.toLocaleString('en')} runs: walked ${incremental.value.checked.toLocaleString('en')} links in ${secs(incremental.ms)}`);
  out(`   the chain's ${length.toLocaleString('en')} links verified at ${rate(length, incremental.ms)} (${incremental.value.ok ? 'intact' : 'NOT intact'}; ${(full.ms / incremental.ms).toFixed(1)}x faster than --full)`);

  await report(name, store);
  progress(`${name}: the dashboard`);
  await dashboard(store);
}

/** Step 3: the month verified for every client, then for the big client as its report does; its report built and rendered. */
async function report(name: string, store: RunStore): Promise<void> {
  const chain = store.evidenceChain();
  const month = lastMonth();
  const config = parseConfigText(
    `reports: { mspName: Bench MSP }\nclients:\n  - name: ${BIG_CLIENT.name}\n    policies:\n${Array.from(
      { length: BIG_CLIENT.policies },
      (_, p) =>
        `      - name: ${BIG_CLIENT.name}-db${p}\n        kind: postgres\n        source: { driver: local, path: /tmp }\n        targets: { rpo: 26h, rto: 30m }\n        schedule: "daily at 02:00"\n`,
    ).join('')}`,
    path.join(os.tmpdir(), 'backproof.yaml'),
    {},
  );
  const from = `${month}-01T00:00:00.000Z`;
  const to = new Date(Date.UTC(Number(month.slice(0, 4)), Number(month.slice(5, 7)), 1)).toISOString();
  progress(`${name}: ${month} verified for every client, then for ${BIG_CLIENT.name} as its report does, then its report`);
  const period = await timed(() => chain.verify({ from, to }));
  const own = await timed(() => chain.verifyClient({ client: BIG_CLIENT.name, from, to }));
  const build = await timed(() => buildMonthlyReport({ runs: store, alerts: new AlertStore(store.executor, store.schema), chain, config }, { client: BIG_CLIENT.name, month }));
  const pdf = await timed(() => renderMonthlyReport(build.value, 'pdf'));
  const json = await timed(() => renderMonthlyReport(build.value, 'json'));
  out(`3. ${month}, every client: ${period.value.checked.toLocaleString('en')} links re-hashed in ${secs(period.ms)} (${rate(period.value.checked, period.ms)}, ${period.value.ok ? 'intact' : 'NOT intact'})`);
  const digest = own.value.clientDigest;
  out(
    `   ${month}, ${BIG_CLIENT.name} as its report verifies it: ${own.value.checked.toLocaleString('en')} records re-hashed in ${secs(own.ms)} (${own.value.ok ? 'intact' : 'NOT intact'}; ${
      digest ? `its ${digest.links.toLocaleString('en')} links through seq ${digest.checkpointSeq} match the checkpoint's digest` : 'no checkpoint with client digests: the month walked'
    }; ${(period.ms / own.ms).toFixed(1)}x faster)`,
  );
  out(`   ${BIG_CLIENT.name}'s report (${BIG_CLIENT.policies} policies, ${build.value.runs.length.toLocaleString('en')} runs): build ${secs(build.ms)} + PDF ${secs(pdf.ms)} = ${secs(build.ms + pdf.ms)}   (JSON render ${secs(json.ms)}; PDF ${(pdf.ms / json.ms).toFixed(0)}x)`);
}

/**
 * Every seeded client's policies, as the dashboard's config. The RPO is 30 days: the cached store's
 * newest runs are as old as the cache, and a board where every policy is stale measures nothing an
 * MSP sees on a normal day (most policies healthy, a few failed).
 */
function allClientsConfig(): ReturnType<typeof parseConfigText> {
  const clients = Array.from({ length: nClients }, (_, c) => {
    const policies = Array.from(
      { length: policiesOf(c) },
      (_, p) => `      - name: ${clientName(c)}-db${p}\n        kind: postgres\n        source: { driver: local, path: /tmp }\n        targets: { rpo: 30d, rto: 30m }\n        schedule: "daily at 02:00"\n`,
    ).join('');
    return `  - name: ${clientName(c)}\n    policies:\n${policies}`;
  });
  return parseConfigText(`reports: { mspName: Bench MSP }\nclients:\n${clients.join('')}`, path.join(os.tmpdir(), 'backproof.yaml'), {});
}

async function dashboard(store: RunStore): Promise<void> {
  const config = allClientsConfig();
  const tokens = new TokenStore(store.executor, store.schema);
  const admin = await tokens.create({ scope: { kind: 'admin' }, name: 'bench' });
  const logger = new Logger({ json: true, level: 'error', write: () => undefined });
  const start = (boardRowsInFull?: number): ReturnType<typeof startWebServer> =>
    startWebServer({ config, runs: store, alerts: new AlertStore(store.executor, store.schema), logger, host: '127.0.0.1', port: 0, ...(boardRowsInFull !== undefined ? { boardRowsInFull } : {}) });
  // The board as served (healthy policies folded per client above 200), and in full (every policy a row).
  const server = await start();
  const full = await start(Number.POSITIVE_INFINITY);
  try {
    // Wall time, and this process's CPU time (server, store and client all run here): on a busy
    // machine the CPU time is the steadier figure.
    const get = async (port: number, p: string): Promise<{ ms: number; cpuMs: number }> => {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const res = await fetch(`http://127.0.0.1:${port}${p}`, { headers: { authorization: `Bearer ${admin.token}` } });
      const body = await res.text();
      if (res.status !== 200) throw new Error(`GET ${p}: ${res.status} ${body.slice(0, 200)}`);
      const c = process.cpuUsage(c0);
      return { ms: performance.now() - t0, cpuMs: (c.user + c.system) / 1000 };
    };
    const cells: string[] = [];
    const cases: Array<[string, number, string]> = [
      ['/ (folded)', server.port, '/'],
      ['/ (in full)', full.port, '/'],
      [`/?client=${BIG_CLIENT.name}`, server.port, `/?client=${BIG_CLIENT.name}`],
      ['/runs', server.port, '/runs'],
      ['/api/runs', server.port, '/api/runs'],
    ];
    for (const [label, port, p] of cases) {
      const first = await get(port, p);
      const rest: Array<{ ms: number; cpuMs: number }> = [];
      for (let i = 0; i < 5; i++) rest.push(await get(port, p));
      const median = (xs: number[]): number => xs.sort((a, b) => a - b)[2]!;
      cells.push(`${label} ${median(rest.map((r) => r.ms)).toFixed(0)} ms (cpu ${median(rest.map((r) => r.cpuMs)).toFixed(0)} ms; first ${first.ms.toFixed(0)} ms)`);
    }
    out(`4. the dashboard, ${config.policies.length.toLocaleString('en')} policies, median of 5 after the first: ${cells.join('; ')}`);
  } finally {
    await full.close();
    await server.close();
  }
}

const work = await mkdtemp(path.join(os.tmpdir(), 'backproof-bench-evidence-'));
try {
  const { dataDir } = await seededDataDir(nRuns, nClients);
  const copy = path.join(work, 'data');
  await cp(dataDir, copy, { recursive: true });
  const lite = await RunStore.open({ dataDir: copy, schema: 'backproof' });
  try {
    await measure('embedded store (PGlite)', lite);
  } finally {
    await lite.close();
  }
  if (!values['no-pg']) {
    const cluster = await startPgCluster();
    try {
      const url = await cluster.createDatabase('bench');
      const pg = await RunStore.open({ url, dataDir: work, schema: 'backproof' });
      try {
        progress(`seeding PostgreSQL with ${nRuns.toLocaleString('en')} runs`);
        await seedRuns(pg, nRuns, nClients);
        await pg.executor.exec('VACUUM (ANALYZE)');
        await measure('PostgreSQL 15', pg);
      } finally {
        await pg.close();
      }
    } finally {
      await cluster.stop();
    }
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
