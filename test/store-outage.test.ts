import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { ageFile, goodArchive } from './helpers/daemon-harness.js';
import { policyFromYaml, tempDir, verify } from './helpers/harness.js';
import { startPgCluster, type PgCluster } from './helpers/pg-cluster.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';

// The evidence PostgreSQL goes away while a run is restoring: the run still ends with its real
// verdict (printed by --json, since runPolicy returns it), its record waits in the data dir's
// journal, and the next open writes it back, sealed, instead of marking the run aborted.

let pg: PgCluster;
let proxy: TcpProxy;
t.before(async () => {
  pg = await startPgCluster();
  proxy = await startTcpProxy(pg.port);
});
t.teardown(async () => {
  await proxy?.close();
  await pg?.stop();
});

t.test('a store outage at the end of a run: journaled, then written back at the next open', async (t) => {
  const dataDir = await tempDir('outage-data');
  const folder = await tempDir('outage-backups');
  await ageFile(await goodArchive(folder, 'share-1.tar.gz'), 60_000);
  const url = `postgres://postgres@127.0.0.1:${proxy.port}/postgres`;
  const store = await RunStore.open({ url, dataDir, schema: 'outage', finalizeRetryDelaysMs: [100, 200] });
  const policy = policyFromYaml({
    folder,
    kind: 'custom',
    glob: '*.tar.gz',
    extra: `        custom:
          image: backproof/files
          restore: [sh, -c, "cat > /dev/null; sleep 4"]`,
  });
  const running = verify(policy, store);
  // Once the run is recorded as running, the server becomes unreachable.
  for (let i = 0; i < 100; i++) {
    const r = await pg.psql("SELECT count(*) FROM outage.runs WHERE status = 'running'");
    if (r.trim() === '1') break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  proxy.refuse();
  proxy.cut();
  const run = await running;
  t.equal(run.verdict, 'pass', `the run's own verdict: ${JSON.stringify(run.reasons)}`);
  t.equal((await pg.psql(`SELECT status FROM outage.runs WHERE id = '${run.id}'`)).trim(), 'running', 'the store did not take it');
  const journal = path.join(dataDir, 'journal');
  t.same(await fs.readdir(journal), [`${run.id}.json`], 'the record waits in the journal');
  t.equal((await fs.stat(path.join(journal, `${run.id}.json`))).mode & 0o777, 0o600);
  await store.close();

  proxy.accept();
  const again = await RunStore.open({ url, dataDir, schema: 'outage' });
  t.teardown(() => again.close());
  t.same(again.journalReplay.replayed.map((r) => r.id), [run.id]);
  t.same(again.abortedAtOpen, [], 'not taken for a dead process');
  const stored = await again.get(run.id);
  t.match(stored, { status: 'finished', verdict: 'pass' });
  t.same(await fs.readdir(journal), [], 'the journal is empty again');
  t.equal((await again.evidenceChain().verify()).ok, true, 'sealed into the chain');
});
