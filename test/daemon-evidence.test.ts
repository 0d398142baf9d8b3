import t from 'tap';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { PROBLEMS } from '../orchestrator/evidence/chain.js';
import { tempDir } from './helpers/harness.js';
import { startHttpReceiver } from './helpers/http-receiver.js';
import { startPgCluster } from './helpers/pg-cluster.js';
import { buildRun } from './helpers/report-fixtures.js';
import { startSmtpReceiver } from './helpers/smtp-receiver.js';
import { CANARY, daemonHeader, filesPolicy, startDaemon, waitFor } from './helpers/daemon-harness.js';

// The daemon keeps the evidence chain checked: at its first check (then once a day) it verifies
// the links sealed since the last checkpoint and signs a new one at the head; a chain that does
// not verify is logged as an error naming the first bad link.

const cluster = await startPgCluster();
t.teardown(() => cluster.stop());
const pgUrl = await cluster.createDatabase('daemon_evidence');
const smtp = await startSmtpReceiver({ user: 'alerts', pass: CANARY.smtpPass });
t.teardown(() => smtp.close());
const hook = await startHttpReceiver();
t.teardown(() => hook.close());

/** Seals `n` runs of policy `p` into the schema, as earlier runs of the daemon would have. */
async function sealRuns(dir: string, schema: string, n: number): Promise<string[]> {
  const store = await RunStore.open({ url: pgUrl, dataDir: dir, schema });
  const ids: string[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const run = buildRun({ policy: 'p', kind: 'files', startedAt: new Date(Date.now() - (n - i) * 3_600_000).toISOString(), verdict: 'pass', size: 1000, ageMs: 60_000, restoreMs: 5_000 });
      await store.recordStart({ ...run, status: 'running', verdict: null, finishedAt: null, durationMs: null });
      await store.finalize(run);
      ids.push(run.id);
    }
  } finally {
    await store.close();
  }
  return ids;
}

function yaml(dir: string, schema: string): string {
  return `${daemonHeader({ pgUrl, schema, smtpPort: smtp.port, hookUrl: hook.url('/hook') })}clients:
  - name: acme
    policies:
${filesPolicy({ name: 'p', folder: dir, schedule: '0 3 1 1 *' })}`;
}

t.test('the daemon verifies the chain at its first check and signs a checkpoint at the head', async (t) => {
  const dir = await tempDir('daemon-evidence');
  const schema = 'daemon_cp';
  await sealRuns(dir, schema, 5);
  const d = await startDaemon({ yaml: yaml(dir, schema), pgUrl, schema, dir });
  t.teardown(() => d.stop(0));
  await waitFor('the checkpoint log line', () => d.logs.some((l) => l.includes('evidence chain intact through seq 5')));
  const { rows } = await d.store.executor.query<{ seq: string }>(`SELECT seq FROM ${schema}.evidence_checkpoints`);
  t.same(rows.map((r) => Number(r.seq)), [5], 'one checkpoint, at the head');
  const next = await d.store.evidenceChain().verify();
  t.equal(next.ok, true);
  t.equal(next.checkpoint?.seq, 5, 'the next verify starts from it');
  t.equal(next.checked, 0);
  await d.stop(0);
});

t.test('a chain that does not verify is logged as an error naming the first bad link; no checkpoint', async (t) => {
  const dir = await tempDir('daemon-evidence-bad');
  const schema = 'daemon_cp_bad';
  const ids = await sealRuns(dir, schema, 4);
  await cluster.psql(`UPDATE ${schema}.runs SET verdict = 'fail' WHERE id = '${ids[1]}'`, 'daemon_evidence');
  const d = await startDaemon({ yaml: yaml(dir, schema), pgUrl, schema, dir });
  t.teardown(() => d.stop(0));
  await waitFor('the error log line', () => d.logs.some((l) => l.includes('the evidence chain does not verify')));
  const line = JSON.parse(d.logs.find((l) => l.includes('the evidence chain does not verify'))!) as { level: string; msg: string };
  t.equal(line.level, 'error');
  t.equal(line.msg, `the evidence chain does not verify at seq 2: ${PROBLEMS.hashDiffers}; run backproof evidence verify --full`);
  const { rows } = await d.store.executor.query(`SELECT seq FROM ${schema}.evidence_checkpoints`);
  t.equal(rows.length, 0, 'no checkpoint over a broken chain');
  await d.stop(0);
});
