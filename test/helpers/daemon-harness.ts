import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { driverFor, restorerFor } from '../../orchestrator/cli/plugins.js';
import { loadConfig } from '../../orchestrator/config/load.js';
import { Daemon } from '../../orchestrator/daemon/daemon.js';
import type { RunRecord } from '../../orchestrator/core/domain.js';
import { AlertStore } from '../../orchestrator/evidence/alert-store.js';
import { RunStore } from '../../orchestrator/evidence/run-store.js';
import { Logger } from '../../orchestrator/core/logger.js';
import { DockerRuntime } from '../../restore-sandboxes/docker/docker-runtime.js';
import { tempDir } from './harness.js';
import type { SmtpReceiver } from './smtp-receiver.js';

const run = promisify(execFile);

/** A daemon in this process over a real config file, a real PostgreSQL schema and the real Docker engine. */
export interface DaemonUnderTest {
  daemon: Daemon;
  store: RunStore;
  alerts: AlertStore;
  configFile: string;
  /** Runs as they finished, in order. */
  runs: RunRecord[];
  /** Every log line the daemon wrote (JSON), secrets already redacted by the logger. */
  logs: string[];
  stop(graceMs?: number): Promise<void>;
}

export async function startDaemon(opts: { yaml: string; pgUrl: string; schema: string; dir?: string }): Promise<DaemonUnderTest> {
  const dir = opts.dir ?? (await tempDir('daemon'));
  const configFile = path.join(dir, 'backproof.yaml');
  await fs.writeFile(configFile, opts.yaml);
  const config = await loadConfig(configFile);
  const logs: string[] = [];
  const logger = new Logger({ json: true, level: 'debug', secrets: config.secrets, write: (line) => logs.push(line) });
  const store = await RunStore.open({ url: opts.pgUrl, dataDir: dir, schema: opts.schema });
  const runs: RunRecord[] = [];
  const daemon = new Daemon({
    configFile,
    config,
    store,
    runtime: new DockerRuntime(),
    driverFor,
    restorerFor,
    logger,
    onRun: (r) => runs.push(r),
    snapshotFile: path.join(dir, 'daemon-status.json'),
  });
  await daemon.start();
  let stopped = false;
  return {
    daemon,
    store,
    alerts: new AlertStore(store.executor, store.schema),
    configFile,
    runs,
    logs,
    async stop(graceMs?: number) {
      if (stopped) return;
      stopped = true;
      await daemon.stop(graceMs);
      await store.close();
    },
  };
}

/** Polls `check` until it is true; fails with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Subjects of the mails about one policy, in arrival order. */
export function subjectsFor(smtp: SmtpReceiver, policy: string): string[] {
  return smtp.messages.map((m) => m.parsed.subject ?? '').filter((s) => s.includes(` / ${policy}:`));
}

/** A small, good file-share backup: `name` in `folder`, a gzip'd tar of a few text files (about `kib` KiB). */
export async function goodArchive(folder: string, name: string, kib = 8): Promise<string> {
  const tree = await tempDir('tree');
  await fs.mkdir(path.join(tree, 'docs'), { recursive: true });
  for (let i = 0; i < 4; i++) {
    // Text that does not compress away: hex of random bytes.
    await fs.writeFile(path.join(tree, 'docs', `report-${i}.txt`), randomBytes(Math.ceil((kib * 1024) / 8)).toString('hex') + '\n');
  }
  const file = path.join(folder, name);
  await run('tar', ['-c', '-z', '-f', file, '-C', tree, '.']);
  await fs.rm(tree, { recursive: true, force: true });
  // Taken now by this process's clock: the kernel stamps the real time, which a test run under
  // faketime (a year ahead, to catch date bombs) would see as a year-old backup.
  await ageFile(file, 0);
  return file;
}

/** A gzip'd tar cut in half: `corrupt_compression`. */
export async function brokenArchive(folder: string, name: string): Promise<string> {
  const file = await goodArchive(folder, name, 32);
  const bytes = await fs.readFile(file);
  await fs.writeFile(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
  await ageFile(file, 0); // as goodArchive
  return file;
}

/** Sets a file's modification time `ms` into the past. */
export async function ageFile(file: string, ms: number): Promise<void> {
  const t = new Date(Date.now() - ms);
  await fs.utimes(file, t, t);
}

/** The YAML of one files-kind policy over a local folder (keys at 6 spaces, under a client's policies:). */
export function filesPolicy(o: { name: string; folder: string; schedule?: string; extra?: string; rpo?: string; rto?: string }): string {
  return `      - name: ${o.name}
        kind: files
        source: { driver: local, path: ${JSON.stringify(o.folder)}, select: { glob: "*.tar.gz", settle: 0s } }
        targets: { rpo: ${o.rpo ?? '1h'}, rto: ${o.rto ?? '10m'} }
        sizeAnomaly: false
        sandbox: { memory: 256m, timeout: 2m }
        schedule: ${JSON.stringify(o.schedule ?? 'every 2s')}
        probes:
          - files: { exist: ["docs/*.txt"], nonEmpty: true }
${o.extra ?? ''}`;
}

/** Canary secrets: they must never show up in a log line, a mail, a webhook body or the evidence. */
export const CANARY = {
  smtpPass: `canary-smtp-${randomBytes(6).toString('hex')}`,
  hookToken: `canary-hook-${randomBytes(6).toString('hex')}`,
  heartbeat: `canary-hb-${randomBytes(8).toString('hex')}`,
};
process.env.BP_TEST_SMTP_PASS = CANARY.smtpPass;
process.env.BP_TEST_HOOK_TOKEN = CANARY.hookToken;

/** The `database:`, `daemon:` and `alerts:` blocks every daemon test uses: one email and one webhook channel. */
export function daemonHeader(o: { pgUrl: string; schema: string; smtpPort: number; hookUrl: string; daemon?: string; alerts?: string; channels?: string }): string {
  return `database: { url: ${JSON.stringify(o.pgUrl)}, schema: ${o.schema} }
daemon: { checkEvery: 1s, concurrency: 4, perClient: 4, shutdownGrace: 30s${o.daemon ? `, ${o.daemon}` : ''} }
alerts:
  maxAttempts: 1
  reminderAfter: 0s
${o.alerts ?? ''}
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
    - name: hook
      type: webhook
      url: "${o.hookUrl}?token=\${env:BP_TEST_HOOK_TOKEN}"
      headers: { Authorization: "Bearer \${env:BP_TEST_HOOK_TOKEN}" }
${o.channels ?? ''}`;
}
