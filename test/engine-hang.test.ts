import { promises as fs } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { driverFor, restorerFor } from '../orchestrator/cli/plugins.js';
import { recoverAndReap } from '../orchestrator/cli/run-command.js';
import type { RunRecord } from '../orchestrator/core/domain.js';
import type { RunStore } from '../orchestrator/evidence/run-store.js';
import { runPolicy } from '../orchestrator/runner/run-policy.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import type { Restorer } from '../restore-sandboxes/restorer.js';
import { LABEL_RUN } from '../restore-sandboxes/sandbox-runtime.js';
import { age } from './helpers/fixtures.js';
import { codes, openEmbeddedStore, policyFromYaml, quietLogger, tempDir } from './helpers/harness.js';
import { startPrivateDockerd, type PrivateDockerd } from './helpers/private-dockerd.js';

// A Docker engine that hangs (frozen with SIGSTOP, as a wedged dockerd behaves) while a restore
// runs: the run's timeout fires, and teardown gives each engine call a deadline, so the run is
// recorded `error` in bounded time instead of staying `running` until the engine comes back.
// Uses a private engine of the test's own so the shared one keeps serving other tests.

const IMAGE = 'backproof/files';
/** The run's hard timeout (sandbox.timeout) and the runtime's engine-call deadline, short for the test. */
const RUN_TIMEOUT_MS = 8_000;
const ENGINE_CALL_TIMEOUT_MS = 3_000;
/** Slack on top of the deadlines: the run's own work, the store, a busy CI machine. */
const MARGIN_MS = 10_000;

let engine: PrivateDockerd;
let store: RunStore;
let folder: string;
/** The private dockerd's pid (the one process the helper started), while it is frozen. */
let frozenPid: number | undefined;
/** Runs still going (a hung one before the fix), awaited before the store is closed. */
const pendingRuns = new Set<Promise<unknown>>();

function thaw(): void {
  if (frozenPid === undefined) return;
  process.kill(frozenPid, 'SIGCONT');
  frozenPid = undefined;
}

t.before(async () => {
  engine = await startPrivateDockerd();
  await engine.loadImage(IMAGE);
  store = (await openEmbeddedStore()).store;
  folder = await tempDir('engine-hang');
  const file = path.join(folder, 'shop-data.bin');
  await fs.writeFile(file, 'backup bytes the restore command never reads\n');
  await age(file, 60_000);
});

// Resumed and stopped whatever happened above: a frozen dockerd ignores SIGTERM until SIGCONT.
t.teardown(async () => {
  thaw();
  await Promise.race([Promise.allSettled(pendingRuns), sleep(60_000, undefined, { ref: false })]);
  await store?.close();
  await engine?.destroy();
});

/** kind custom whose restore command sleeps far past the run's timeout. */
function slowPolicy(): ReturnType<typeof policyFromYaml> {
  return policyFromYaml({
    folder,
    glob: 'shop-data*',
    kind: 'custom',
    sandbox: `memory: 256m, timeout: ${RUN_TIMEOUT_MS / 1000}s`,
    extra: `        custom:
          image: ${IMAGE}
          user: "1000:1000"
          restore: [sleep, "300"]`,
  });
}

/** Sandbox containers in the private engine now. */
async function sandboxIds(): Promise<Set<string>> {
  return new Set((await engine.docker.listContainers({ all: true, filters: { label: [LABEL_RUN] } })).map((c) => c.Id));
}

/** Freezes the private engine once a new sandbox is up and its restore command runs. */
async function freezeWhenRestoring(before: Set<string>): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const c = (await engine.docker.listContainers({ filters: { label: [LABEL_RUN] } })).find((x) => !before.has(x.Id));
    if (c && ((await engine.docker.getContainer(c.Id).inspect()).ExecIDs?.length ?? 0) > 0) break;
    if (Date.now() > deadline) throw new Error('the restore never started in the private engine');
    await sleep(100);
  }
  const dir = path.dirname(engine.host.slice('unix://'.length));
  const pid = Number((await fs.readFile(path.join(dir, 'dockerd.pid'), 'utf8')).trim());
  process.kill(pid, 'SIGSTOP');
  frozenPid = pid;
}

/**
 * Starts a run against the private engine, freezes the engine mid-restore, and waits for the run
 * at most until `budgetMs` after it started; undefined when it did not end by then. The engine is
 * resumed before this returns, either way.
 */
async function runWithFrozenEngine(
  runtime: DockerRuntime,
  budgetMs: number,
  restorerOf: (p: ReturnType<typeof slowPolicy>) => Restorer = restorerFor,
): Promise<{ run: RunRecord | undefined; elapsedMs: number }> {
  const before = await sandboxIds();
  const started = Date.now();
  const running = runPolicy(slowPolicy(), { store, runtime, driverFor, restorerFor: restorerOf, logger: quietLogger() });
  pendingRuns.add(running.catch(() => undefined));
  let run: RunRecord | undefined;
  try {
    await freezeWhenRestoring(before);
    run = await Promise.race([running, sleep(budgetMs - (Date.now() - started), undefined, { ref: false })]);
  } finally {
    thaw();
  }
  const elapsedMs = Date.now() - started;
  // A run that hung ends once the engine answers again: let it, so it does not run into the next test.
  if (!run) await Promise.race([running.catch(() => undefined), sleep(60_000, undefined, { ref: false })]);
  return { run, elapsedMs };
}

t.test('a frozen engine at teardown: the run is recorded error within the deadlines, the reaper removes the sandbox later', async (t) => {
  const runtime = new DockerRuntime({ host: engine.host, engineCallTimeoutMs: ENGINE_CALL_TIMEOUT_MS });
  const budgetMs = RUN_TIMEOUT_MS + ENGINE_CALL_TIMEOUT_MS + MARGIN_MS;
  const { run, elapsedMs } = await runWithFrozenEngine(runtime, budgetMs);
  if (!run) {
    t.fail(`the run did not end within ${budgetMs} ms of a frozen engine (the run timeout plus one engine-call deadline plus margin)`);
    return;
  }
  t.ok(elapsedMs >= RUN_TIMEOUT_MS, `ended after the run's timeout (${elapsedMs} ms)`);
  t.equal(run.verdict, 'error', JSON.stringify(run.reasons));
  t.same(codes(run), ['timeout', 'sandbox_failed']);
  const failed = run.reasons.find((r) => r.code === 'sandbox_failed');
  t.match(failed?.message, `the Docker engine at ${engine.host} did not answer within ${ENGINE_CALL_TIMEOUT_MS / 1000} s`);
  t.match(failed?.message, /the reaper removes it at the next start/);
  t.equal(run.phases.find((p) => p.name === 'teardown')?.outcome, 'error');
  const stored = await store.get(run.id);
  t.equal(stored?.status, 'finished', 'recorded, not left running');
  t.equal(stored?.verdict, 'error');

  await recoverAndReap(store, runtime, quietLogger());
  t.same(await runtime.leftovers(run.id), { containers: [], volumes: [] }, 'the next start reaps the sandbox once the engine answers');
});

t.test('a restorer whose log tail execs in the sandbox without a signal (as postgres and mysql do) does not hang teardown either', async (t) => {
  const runtime = new DockerRuntime({ host: engine.host, engineCallTimeoutMs: ENGINE_CALL_TIMEOUT_MS });
  // The custom restorer keeps its log tail in memory; this one reads it from the sandbox.
  const tailFromSandbox = (p: ReturnType<typeof slowPolicy>): Restorer => {
    const restorer = restorerFor(p);
    restorer.logTail = async (ctx) => (await ctx.sandbox.exec(['tail', '-c', '4000', '/etc/hostname'])).stdout;
    return restorer;
  };
  // The log tail's exec and the removal each wait one engine-call deadline.
  const budgetMs = RUN_TIMEOUT_MS + 2 * ENGINE_CALL_TIMEOUT_MS + MARGIN_MS;
  const { run } = await runWithFrozenEngine(runtime, budgetMs, tailFromSandbox);
  if (!run) {
    t.fail(`the run did not end within ${budgetMs} ms of a frozen engine`);
    return;
  }
  t.equal(run.verdict, 'error', JSON.stringify(run.reasons));
  t.same(codes(run), ['timeout', 'sandbox_failed']);
  t.equal(run.sandbox?.logTail ?? '', '', 'no log tail from an engine that does not answer');
  t.equal((await store.get(run.id))?.status, 'finished');

  await recoverAndReap(store, runtime, quietLogger());
  t.same(await runtime.leftovers(run.id), { containers: [], volumes: [] });
});

t.test('a frozen engine while the sandbox is created: the run is recorded error within one engine-call deadline, nothing is left', async (t) => {
  // The engine freezes right after the run has pinged it, as the sandbox is about to be created.
  class FreezingRuntime extends DockerRuntime {
    override async create(...args: Parameters<DockerRuntime['create']>): ReturnType<DockerRuntime['create']> {
      const dir = path.dirname(engine.host.slice('unix://'.length));
      frozenPid = Number((await fs.readFile(path.join(dir, 'dockerd.pid'), 'utf8')).trim());
      process.kill(frozenPid, 'SIGSTOP');
      return super.create(...args);
    }
  }
  const runtime = new FreezingRuntime({ host: engine.host, engineCallTimeoutMs: ENGINE_CALL_TIMEOUT_MS });
  // Creation waits one deadline; the removal of what may have been made, one more.
  const budgetMs = 2 * ENGINE_CALL_TIMEOUT_MS + MARGIN_MS;
  const started = Date.now();
  const running = runPolicy(slowPolicy(), { store, runtime, driverFor, restorerFor, logger: quietLogger() });
  pendingRuns.add(running.catch(() => undefined));
  let run: RunRecord | undefined;
  try {
    run = await Promise.race([running, sleep(budgetMs, undefined, { ref: false })]);
  } finally {
    thaw();
  }
  if (!run) {
    await Promise.race([running.catch(() => undefined), sleep(60_000, undefined, { ref: false })]);
    t.fail(`the run did not end within ${budgetMs} ms of an engine frozen at sandbox creation`);
    return;
  }
  t.ok(Date.now() - started < budgetMs, `ended in ${Date.now() - started} ms`);
  t.equal(run.verdict, 'error', JSON.stringify(run.reasons));
  t.match(run.reasons[0]?.message, `the Docker engine at ${engine.host} did not answer within ${ENGINE_CALL_TIMEOUT_MS / 1000} s`);
  t.equal((await store.get(run.id))?.status, 'finished', 'recorded, not left running');
  await recoverAndReap(store, runtime, quietLogger());
  t.same(await runtime.leftovers(run.id), { containers: [], volumes: [] }, 'nothing left once the engine answers');
});
