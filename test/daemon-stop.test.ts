import { promises as fs } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { driverFor, restorerFor } from '../orchestrator/cli/plugins.js';
import { loadConfig } from '../orchestrator/config/load.js';
import { Logger } from '../orchestrator/core/logger.js';
import { Daemon } from '../orchestrator/daemon/daemon.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { filesPolicy } from './helpers/daemon-harness.js';
import { tempDir } from './helpers/harness.js';

// Stopping a daemon while its check is under way. The check reads the store; the process closes
// the store as soon as stop() resolves. stop() used to resolve first, so the check's next query
// met a closed store and its rejection ended the process with exit 1 (a cluster scheduler's
// "stops cleanly" failed that way under load).

async function daemonWith(t: Test, onCheck: () => Promise<void>): Promise<{ daemon: Daemon; store: RunStore; logs: string[] }> {
  const dir = await tempDir('daemon-stop');
  const folder = path.join(dir, 'backups');
  await fs.mkdir(folder);
  const configFile = path.join(dir, 'backproof.yaml');
  await fs.writeFile(
    configFile,
    `daemon: { checkEvery: 1s, catchUp: false }
clients:
  - name: acme
    policies:
${filesPolicy({ name: 'share', folder, schedule: '0 0 1 1 *' })}`,
  );
  const config = await loadConfig(configFile);
  const logs: string[] = [];
  const logger = new Logger({ json: true, level: 'debug', secrets: config.secrets, write: (line) => logs.push(line) });
  const store = await RunStore.open({ dataDir: path.join(dir, 'data'), schema: config.database.schema });
  t.teardown(() => store.close());
  const daemon = new Daemon({ configFile, config, store, runtime: new DockerRuntime(), driverFor, restorerFor, logger, onCheck });
  await daemon.start();
  return { daemon, store, logs };
}

async function until(what: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!what() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

t.test('stop() waits for the check under way; a failing check is logged, never a crash', async (t) => {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let checksStarted = 0;
  let checkEnded = false;
  const { daemon, store, logs } = await daemonWith(t, async () => {
    checksStarted++;
    if (checksStarted === 2) throw new Error('the sweep broke');
    if (checksStarted === 3) {
      await gate;
      checkEnded = true;
    }
  });
  await until(() => checksStarted >= 3);
  t.equal(checksStarted, 3, 'the daemon went on checking after a check failed');
  t.ok(logs.some((l) => l.includes('check failed: the sweep broke')), 'the failed check is logged');

  // The third check is held at the gate: stop() must not resolve before it ends.
  let stopped = false;
  const stopping = daemon.stop(0).then(() => (stopped = true));
  await new Promise((r) => setTimeout(r, 1_500));
  t.notOk(stopped, 'stop() waits while a check is under way');
  t.equal(checksStarted, 3, 'and starts no new check meanwhile');
  release();
  await stopping;
  t.ok(checkEnded, 'stop() resolved after the check ended');
  await store.close();
  // Nothing of the check is left to meet the closed store.
  await new Promise((r) => setTimeout(r, 200));
  t.notOk(logs.some((l) => /"level":"error"/.test(l) && !l.includes('the sweep broke')), `no other error: ${logs.filter((l) => /"level":"error"/.test(l)).join('\n')}`);
});

t.test('a check that ignores the abort (a hung mount) holds stop() for 10 s at most', async (t) => {
  let started = false;
  const { daemon, logs } = await daemonWith(t, async () => {
    started = true;
    await new Promise(() => undefined); // never ends
  });
  await until(() => started);
  const t0 = Date.now();
  await daemon.stop(0);
  const took = Date.now() - t0;
  t.ok(took >= 9_000 && took < 20_000, `stop() went on without it after ${took} ms`);
  t.ok(logs.some((l) => l.includes('the check under way did not end within')), 'and said so');
});
