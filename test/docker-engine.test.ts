import path from 'node:path';
import t from 'tap';
import { driverFor, restorerFor } from '../orchestrator/cli/plugins.js';
import { recoverAndReap } from '../orchestrator/cli/run-command.js';
import type { RunStore } from '../orchestrator/evidence/run-store.js';
import { runPolicy } from '../orchestrator/runner/run-policy.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { age, createShopDatabase, dumpDatabase } from './helpers/fixtures.js';
import { codes, openEmbeddedStore, policyFromYaml, quietLogger, TEST_IMAGE, tempDir, verify } from './helpers/harness.js';
import { startPgCluster, type PgCluster } from './helpers/pg-cluster.js';
import { startPrivateDockerd, type PrivateDockerd } from './helpers/private-dockerd.js';

// A Docker engine that is stopped, before a run and in the middle of a restore: the verdict is
// `error` (we could not verify), never `fail`, and the run is recorded. Uses a private engine
// of the test's own so the shared one keeps serving other tests.

let cluster: PgCluster;
let store: RunStore;
let engine: PrivateDockerd;
let folder: string;

t.before(async () => {
  cluster = await startPgCluster();
  ({ store } = await openEmbeddedStore());
  engine = await startPrivateDockerd();
  await engine.loadImage(TEST_IMAGE);
  folder = await tempDir('engine');
  const file = path.join(folder, 'shop.dump');
  await dumpDatabase(cluster, await createShopDatabase(cluster, { orders: 300_000 }), file, 'plain');
  await age(file, 60_000);
});
t.teardown(async () => {
  await store?.close();
  await engine?.destroy();
  await cluster?.stop();
});

t.test('the private engine restores like the shared one', async (t) => {
  const run = await verify(policyFromYaml({ folder }), store, new DockerRuntime({ host: engine.host }));
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
});

t.test('Docker stopped before the run: error with a hint, recorded', async (t) => {
  await engine.stop();
  const run = await verify(policyFromYaml({ folder }), store, new DockerRuntime({ host: engine.host }));
  t.equal(run.verdict, 'error');
  t.same(codes(run), ['docker_unreachable']);
  t.match(run.reasons[0]?.message, `Docker engine at ${engine.host} is unreachable`);
  t.match(run.reasons[0]?.message, /start it/);
  t.equal((await store.get(run.id))?.verdict, 'error');
  await engine.start();
});

t.test('Docker stopped in the middle of a restore: error, not fail; the sandbox is reaped later', async (t) => {
  const runtime = new DockerRuntime({ host: engine.host });
  let stopping: Promise<void> | undefined;
  const run = await runPolicy(policyFromYaml({ folder }), {
    store,
    runtime,
    driverFor,
    restorerFor,
    logger: quietLogger(),
    // The first bytes are streaming into the sandbox: stop the engine now.
    onProgress: () => {
      stopping ??= engine.stop();
    },
  });
  await stopping;
  t.equal(run.verdict, 'error', JSON.stringify(run.reasons));
  t.equal(codes(run)[0], 'docker_unreachable');
  t.match(run.reasons[0]?.message, /stopped answering during the run/);
  t.equal(run.phases.find((p) => p.name === 'fetch_restore')?.outcome, 'error');
  t.equal((await store.get(run.id))?.status, 'finished', 'recorded');

  await engine.start();
  await recoverAndReap(store, runtime, quietLogger());
  t.same(await runtime.leftovers(run.id), { containers: [], volumes: [] }, 'nothing of the run is left once the engine is back');
});

t.test('a sandbox too small for the restore is an error (ours to fix), not a fail (the backup is fine)', async (t) => {
  const policy = policyFromYaml({ folder });
  const run = await verify({ ...policy, sandbox: { ...policy.sandbox, memoryBytes: 64 * 1024 ** 2 } }, store);
  t.equal(run.verdict, 'error', JSON.stringify(run.reasons));
  t.same(codes(run), ['sandbox_failed']);
  t.match(run.reasons[0]?.message, /memory limit is 64\.0 MiB: raise sandbox\.memory/);
  t.same(await new DockerRuntime().leftovers(run.id), { containers: [], volumes: [] });
});
