import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { tempDir } from './helpers/harness.js';
import { startSmtpReceiver } from './helpers/smtp-receiver.js';
import { CANARY, goodArchive, waitFor } from './helpers/daemon-harness.js';

// `backproof daemon` as an operator runs it: the installed entry point in its own process, the
// embedded evidence store, signals from outside. SIGHUP with a broken config keeps the old one;
// SIGTERM during a restore removes the sandbox and records the run as cancelled; the liveness
// endpoint and file answer; `backproof status`, `runs`, `evidence verify`, `run` and `tokens` work
// while it holds the embedded store (through its socket); the canary SMTP password never leaves the process.

const run = promisify(execFile);
const BIN = path.resolve('bin/backproof.js');

const smtp = await startSmtpReceiver({ user: 'alerts', pass: 'the-right-password' });
t.teardown(() => smtp.close());

interface Daemon {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

function spawnDaemon(dir: string, extra: string[] = []): Daemon {
  const child = spawn(process.execPath, [BIN, 'daemon', '--config', path.join(dir, 'backproof.yaml'), '--data-dir', path.join(dir, 'data'), ...extra], {
    env: { ...process.env, BP_TEST_SMTP_PASS: CANARY.smtpPass, BACKPROOF_LOG_LEVEL: 'debug' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  child.stdout!.resume();
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, stderr: () => err, exited };
}

async function cli(dir: string, ...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [BIN, ...args, '--config', path.join(dir, 'backproof.yaml'), '--data-dir', path.join(dir, 'data')], {
    env: { ...process.env, BP_TEST_SMTP_PASS: CANARY.smtpPass },
  });
  return stdout;
}

function config(o: { folder: string; smtpPort: number; livenessFile: string; schedule: string; slow?: boolean }): string {
  return `daemon: { checkEvery: 1s, shutdownGrace: 2s, liveness: { file: ${JSON.stringify(o.livenessFile)}, port: 0 } }
alerts:
  maxAttempts: 1
  channels:
    - name: mail
      type: email
      host: 127.0.0.1
      port: ${o.smtpPort}
      startTls: never
      user: alerts
      password: \${env:BP_TEST_SMTP_PASS}
      from: "backproof <alerts@msp.example>"
      to: [ops@msp.example]
clients:
  - name: delta
    policies:
      - name: delta-files
        kind: ${o.slow ? 'custom' : 'files'}
        source: { driver: local, path: ${JSON.stringify(o.folder)}, select: { glob: "*.tar.gz", settle: 0s } }
        targets: { rpo: 1h }
        sizeAnomaly: false
        schedule: ${JSON.stringify(o.schedule)}
${
  o.slow
    ? `        custom:
          image: backproof/files
          restore: [sh, -c, "cat > /dev/null; sleep 300"]
`
    : `        probes:
          - files: { exist: ["docs/*.txt"] }
`
}`;
}

t.test('liveness, SIGHUP with a broken config, every command beside the daemon, SIGTERM: a clean stop', async (t) => {
  const dir = await tempDir('daemon-proc');
  const folder = await tempDir('backups');
  await goodArchive(folder, 'share-1.tar.gz');
  const livenessFile = path.join(dir, 'live.json');
  const good = config({ folder, smtpPort: smtp.port, livenessFile, schedule: 'every 2s' }).replace('liveness: {', 'web: { port: 0 }, liveness: {');
  await fs.writeFile(path.join(dir, 'backproof.yaml'), good);
  // A token made before the daemon takes the embedded store; the daemon serves the dashboard itself.
  const token = (JSON.parse(await cli(dir, 'tokens', 'create', '--admin', '--name', 'ops', '--json')) as { token: string }).token;
  const d = spawnDaemon(dir);

  await waitFor('the liveness endpoint', () => /liveness on http:\/\/127\.0\.0\.1:\d+\/healthz/.test(d.stderr()), 30_000);
  const port = Number(/liveness on http:\/\/127\.0\.0\.1:(\d+)\/healthz/.exec(d.stderr())![1]);
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  t.equal(health.status, 200, '/healthz answers 200');
  const live = JSON.parse(await fs.readFile(livenessFile, 'utf8')) as { pid: number; status: string; memory: { rssBytes: number; heapUsedBytes: number; heapTotalBytes: number; embeddedStoreBytes?: number } };
  t.equal(live.pid, d.child.pid, 'the liveness file names the daemon');
  t.equal(live.status, 'ok');
  const vmRssBytes = Number(/VmRSS:\s+(\d+) kB/.exec(await fs.readFile(`/proc/${d.child.pid}/status`, 'utf8'))![1]) * 1024;
  t.ok(live.memory.rssBytes > 0 && live.memory.rssBytes < 4 * vmRssBytes, `its memory: rss ${live.memory.rssBytes} bytes (the OS counts ${vmRssBytes} now)`);
  t.ok(live.memory.heapUsedBytes > 0 && live.memory.heapUsedBytes <= live.memory.heapTotalBytes, 'V8 heap used within its total');
  t.ok(live.memory.embeddedStoreBytes! >= 16 * 2 ** 20, `the embedded store's WASM memory (${live.memory.embeddedStoreBytes} bytes)`);

  await waitFor('two passing runs', () => (d.stderr().match(/delta-files: pass/g) ?? []).length >= 2, 60_000);
  const webPort = Number(/dashboard on http:\/\/127\.0\.0\.1:(\d+)\//.exec(d.stderr())![1]);
  t.equal((await fetch(`http://127.0.0.1:${webPort}/api/policies`)).status, 401, 'the in-daemon API wants a token');
  const api = await fetch(`http://127.0.0.1:${webPort}/api/policies`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(api.status, 200);
  t.match(await api.text(), /delta-files/, 'the dashboard inside the daemon reads its store');

  // A broken config: the daemon says why and keeps running on the old one.
  await fs.writeFile(path.join(dir, 'backproof.yaml'), good.replace('schedule: "every 2s"', 'schedule: "every 7s"').replace('kind: files', 'kind: filez'));
  d.child.kill('SIGHUP');
  await waitFor('the reload failure', () => d.stderr().includes('config reload failed; still running on the previous config'), 10_000);
  t.match(d.stderr(), /backproof\.yaml:\d+:\d+: clients\[0\]\.policies\[0\]\.kind/, 'names the file, line and key path');
  const passes = (d.stderr().match(/delta-files: pass/g) ?? []).length;
  await waitFor('more runs on the old config', () => (d.stderr().match(/delta-files: pass/g) ?? []).length >= passes + 2, 30_000);
  t.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200, 'still alive');

  // A good config: reloaded.
  await fs.writeFile(path.join(dir, 'backproof.yaml'), good.replace('schedule: "every 2s"', 'schedule: "every 3s"'));
  d.child.kill('SIGHUP');
  await waitFor('the reload', () => d.stderr().includes('config reloaded'), 10_000);

  // status while the daemon holds the embedded store: read live, through the daemon's socket.
  const status = JSON.parse(await cli(dir, 'status', '--json')) as {
    daemon: { pid: number } | null;
    policies: Array<{ policy: string; lastRun?: { verdict: string }; lastSuccessAt?: string; rpoMet?: boolean; nextRunAt?: string; schedule?: string }>;
  };
  t.equal(status.daemon?.pid, d.child.pid);
  const p = status.policies[0]!;
  t.equal(p.lastRun?.verdict, 'pass');
  t.ok(p.lastSuccessAt);
  t.equal(p.rpoMet, true);
  t.ok(p.nextRunAt && Date.parse(p.nextRunAt) > Date.now() - 5_000, 'the next run');
  const text = await cli(dir, 'status');
  t.match(text, /daemon: ok, pid \d+/);
  t.match(text, /delta-files\s+delta\s+pass/);
  t.match(text, /from evidence store/, 'from the store itself, not the snapshot');

  // Every other command works beside the daemon too: it sends its statements through the daemon.
  const runs = JSON.parse(await cli(dir, 'runs', 'list', '--json')) as Array<{ id: string; policy: string; verdict: string }>;
  t.ok(runs.filter((r) => r.policy === 'delta-files' && r.verdict === 'pass').length >= 2, 'runs list reads the runs the daemon made');
  t.match(await cli(dir, 'runs', 'show', runs[0]!.id), new RegExp(runs[0]!.id), 'runs show');
  t.match(await cli(dir, 'evidence', 'verify'), /ok|intact|verified/i, 'evidence verify walks the chain the daemon seals');
  const made = JSON.parse(await cli(dir, 'run', '--policy', 'delta-files', '--json')) as { id: string; verdict: string } | Array<{ id: string; verdict: string }>;
  const ran = Array.isArray(made) ? made[0]! : made;
  t.equal(ran.verdict, 'pass', 'backproof run beside the daemon: a run of its own, recorded in the same store');
  const listed = JSON.parse(await cli(dir, 'runs', 'list', '--json', '-n', '100')) as Array<{ id: string }>;
  t.ok(listed.some((r) => r.id === ran.id), "the daemon's store has it");
  const second = (JSON.parse(await cli(dir, 'tokens', 'create', '--admin', '--name', 'second', '--json')) as { token: string }).token;
  t.equal((await fetch(`http://127.0.0.1:${webPort}/api/policies`, { headers: { authorization: `Bearer ${second}` } })).status, 200, 'a token made beside the daemon is one the daemon knows');

  d.child.kill('SIGTERM');
  t.equal(await d.exited, 0, 'exits 0 after a clean stop');
  t.notOk(existsSync(livenessFile), 'the liveness file is removed');
  t.match(d.stderr(), /daemon stopped/);
  t.notOk(d.stderr().includes(CANARY.smtpPass), 'the SMTP password is in no log line');

  // After the stop, status reads the store itself.
  const after = await cli(dir, 'status');
  t.match(after, /daemon: not running/);
  t.match(after, /from evidence store/);
});

t.test('SIGTERM during a restore: after the grace the run is cancelled, recorded, and its sandbox removed', async (t) => {
  const dir = await tempDir('daemon-term');
  const folder = await tempDir('backups');
  await goodArchive(folder, 'share-1.tar.gz');
  // A wrong SMTP password: deliveries fail (and must not leak it).
  const yaml = config({ folder, smtpPort: smtp.port, livenessFile: path.join(dir, 'live.json'), schedule: 'every 2s', slow: true });
  await fs.writeFile(path.join(dir, 'backproof.yaml'), yaml);
  const d = spawnDaemon(dir);
  await waitFor('a restore in progress', () => d.stderr().includes('verifying delta-files'), 30_000);
  const runtime = new DockerRuntime();
  await waitFor('its sandbox', async () => (await run('docker', ['ps', '-q', '--filter', `label=backproof.pid=${d.child.pid}`])).stdout.trim() !== '', 30_000);
  await new Promise((r) => setTimeout(r, 1_500));
  d.child.kill('SIGTERM');
  t.equal(await d.exited, 0, 'exits 0');
  t.match(d.stderr(), /deadline passed; cancelling/);

  const runs = JSON.parse(await cli(dir, 'runs', 'list', '--json')) as Array<{ id: string; status: string; reasons: Array<{ code: string }> }>;
  t.equal(runs[0]?.status, 'cancelled', 'the run is recorded as cancelled');
  t.same(runs[0]?.reasons.map((r) => r.code), ['cancelled']);
  const left = await runtime.leftovers(runs[0]!.id);
  t.equal(left.containers.length + left.volumes.length, 0, 'no container or volume left');
  t.notOk(d.stderr().includes(CANARY.smtpPass));
});

t.test('a second SIGTERM cancels at once; deliveries that fail show in status without the password', async (t) => {
  const dir = await tempDir('daemon-term2');
  const folder = await tempDir('backups');
  await goodArchive(folder, 'share-1.tar.gz');
  await fs.writeFile(
    path.join(dir, 'backproof.yaml'),
    config({ folder: path.join(folder, 'absent'), smtpPort: smtp.port, livenessFile: path.join(dir, 'live.json'), schedule: 'every 2s' }).replace('shutdownGrace: 2s', 'shutdownGrace: 10m'),
  );
  const d = spawnDaemon(dir);
  // The source is missing: an error alert, whose delivery fails (wrong password).
  await waitFor('a failed delivery', () => /alert delivery to mail failed/.test(d.stderr()), 30_000);
  await fs.writeFile(
    path.join(dir, 'backproof.yaml'),
    config({ folder, smtpPort: smtp.port, livenessFile: path.join(dir, 'live.json'), schedule: 'every 2s', slow: true }).replace('shutdownGrace: 2s', 'shutdownGrace: 10m'),
  );
  d.child.kill('SIGHUP');
  await waitFor('a slow restore in progress', () => /verifying delta-files/.test(d.stderr().split('config reloaded')[1] ?? ''), 30_000);
  await new Promise((r) => setTimeout(r, 1_500));
  d.child.kill('SIGTERM');
  await waitFor('the drain message', () => /waiting up to 10\.0m/.test(d.stderr()) || /waiting up to 10m/.test(d.stderr()), 10_000);
  const asked = Date.now();
  d.child.kill('SIGTERM');
  t.equal(await d.exited, 0);
  t.ok(Date.now() - asked < 30_000, 'the second signal did not wait for the grace');
  t.match(d.stderr(), /cancelling running runs/);
  const runs = JSON.parse(await cli(dir, 'runs', 'list', '--json')) as Array<{ id: string; status: string }>;
  t.equal(runs[0]?.status, 'cancelled');
  t.equal((await new DockerRuntime().leftovers(runs[0]!.id)).containers.length, 0);

  const status = await cli(dir, 'status');
  t.match(status, /Failed alert deliveries/);
  t.match(status, /mail\s+delta-files\s+error firing/);
  t.notOk(status.includes(CANARY.smtpPass), 'status does not show the password');
  t.notOk(d.stderr().includes(CANARY.smtpPass), 'no log line shows the password');
  t.ok(smtp.logins.some((l) => !l.ok), 'the SMTP server did refuse the login');
});

t.test('a daemon killed during a restore: the next start records the run aborted, reaps its sandbox and raises an error alert', async (t) => {
  const dir = await tempDir('daemon-kill');
  const folder = await tempDir('backups');
  await goodArchive(folder, 'share-1.tar.gz');
  const yaml = config({ folder, smtpPort: smtp.port, livenessFile: path.join(dir, 'live.json'), schedule: 'every 2s', slow: true });
  await fs.writeFile(path.join(dir, 'backproof.yaml'), yaml);
  const first = spawnDaemon(dir);
  await waitFor('a restore in progress', () => first.stderr().includes('verifying delta-files'), 30_000);
  await waitFor('its sandbox', async () => (await run('docker', ['ps', '-q', '--filter', `label=backproof.pid=${first.child.pid}`])).stdout.trim() !== '', 30_000);
  first.child.kill('SIGKILL');
  await first.exited;

  // Back, on a schedule that does not fire during the test.
  await fs.writeFile(path.join(dir, 'backproof.yaml'), yaml.replace('schedule: "every 2s"', 'schedule: "daily at 03:00"'));
  const second = spawnDaemon(dir);
  await waitFor('the aborted run noticed', () => /recorded as aborted/.test(second.stderr()), 30_000);
  await waitFor('the error alert raised', () => /error: delta-files: the backproof process \(pid \d+\) ended/.test(second.stderr()), 30_000);
  second.child.kill('SIGTERM');
  t.equal(await second.exited, 0);
  const runs = JSON.parse(await cli(dir, 'runs', 'list', '--json')) as Array<{ id: string; status: string }>;
  t.equal(runs[0]?.status, 'aborted');
  t.equal((await new DockerRuntime().leftovers(runs[0]!.id)).containers.length, 0, 'the reaper removed its sandbox');
  const status = JSON.parse(await cli(dir, 'status', '--json')) as { policies: Array<{ openConditions: string[]; lastRun?: { status: string } }> };
  t.ok(status.policies[0]!.openConditions.includes('error'), `an open error condition (${status.policies[0]!.openConditions.join(', ')})`);
  t.equal(status.policies[0]!.lastRun?.status, 'aborted');
});
