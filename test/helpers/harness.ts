import { promises as fs, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfigText } from '../../orchestrator/config/load.js';
import type { PolicyConfig } from '../../orchestrator/core/config-types.js';
import type { RunRecord } from '../../orchestrator/core/domain.js';
import { RunStore } from '../../orchestrator/evidence/run-store.js';
import { Logger } from '../../orchestrator/core/logger.js';
import { driverFor, restorerFor } from '../../orchestrator/cli/plugins.js';
import { runPolicy } from '../../orchestrator/runner/run-policy.js';
import { DockerRuntime } from '../../restore-sandboxes/docker/docker-runtime.js';
import { startPgCluster, type PgCluster } from './pg-cluster.js';
import type { SandboxRuntime } from '../../restore-sandboxes/sandbox-runtime.js';

/**
 * The default sandbox image (.ci/run builds it with `backproof images build postgres`). Policies
 * in tests leave sandbox.image unset so backproof chooses, unless BACKPROOF_TEST_IMAGE pins one.
 */
export const TEST_IMAGE = process.env.BACKPROOF_TEST_IMAGE ?? 'backproof/postgres:15';

/** Temp folders this process made; removed when it exits (BACKPROOF_TEST_KEEP_TMP=1 keeps them). */
const made: string[] = [];

/** A new temp folder, removed with everything in it when the test process exits. */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `backproof-${prefix}-`));
  if (made.length === 0 && !process.env.BACKPROOF_TEST_KEEP_TMP) process.once('exit', removeTempDirs);
  made.push(dir);
  return dir;
}

function removeTempDirs(): void {
  for (const dir of made) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // A mount a test left behind, or a file still held: the rest are still removed.
    }
  }
}

export interface PolicyOptions {
  folder: string;
  glob?: string;
  timestamp?: string;
  rpo?: string;
  probes?: string;
  extra?: string;
  /** The whole `source:` block's body (keys at 10 spaces), replacing the local folder. */
  source?: string;
  /** Variables for ${env:..} references in the YAML. */
  env?: NodeJS.ProcessEnv;
  /** Default postgres. Other kinds get no default probes. */
  kind?: PolicyConfig['kind'];
  /** The sandbox block's body, replacing the default one (image, memory 1g, timeout 5m). */
  sandbox?: string;
  /**
   * The policy's sizeAnomaly value. Default false: test files share one store and policy name
   * across fixtures of very different sizes; the size check has its own tests.
   */
  sizeAnomaly?: string;
  /**
   * Kind files: the body of the `files:` block (a flow map's keys: `maxBytes: 50m`). Its
   * `ransomware` comparison is off unless this sets it, for the same reason as sizeAnomaly (one
   * policy name across unrelated trees); test/ransomware.test.ts has its own.
   */
  files?: string;
}

/** A one-policy config through the real loader, as a user would write it. */
export function policyFromYaml(o: PolicyOptions): PolicyConfig {
  const yaml = `
clients:
  - name: acme
    displayName: ACME Corp
    policies:
      - name: acme-shop
        kind: ${o.kind ?? 'postgres'}
        source:
${o.source ?? `          driver: local
          path: ${JSON.stringify(o.folder)}
          select:
            glob: ${JSON.stringify(o.glob ?? 'shop*')}
            timestamp: ${o.timestamp ?? 'mtime'}
            settle: 5s`}
        targets: { rpo: ${o.rpo ?? '26h'}, rto: 30m }
        sizeAnomaly: ${o.sizeAnomaly ?? 'false'}
${o.kind === 'files' ? `        files: { ${/\bransomware:/.test(o.files ?? '') ? '' : 'ransomware: false, '}${o.files ?? ''} }\n` : ''}        sandbox: { ${o.sandbox ?? `${process.env.BACKPROOF_TEST_IMAGE && (o.kind ?? 'postgres') === 'postgres' ? `image: ${JSON.stringify(TEST_IMAGE)}, ` : ''}memory: 1g, timeout: 5m`} }
        probes:
${o.probes ?? ((o.kind ?? 'postgres') !== 'postgres' ? '          []' : `          - tablesExist: [customers, orders]
          - rowCount: { table: orders, atLeast: 1000 }
          - sql: SELECT count(DISTINCT customer_id) FROM orders
            atLeast: 100
          - freshness: { table: orders, column: created_at, within: 48h }`)}
${o.extra ?? ''}`;
  return parseConfigText(yaml, path.join(o.folder, 'backproof.yaml'), o.env ?? {}).policies[0]!;
}

export const quietLogger = (): Logger => new Logger({ level: process.env.BACKPROOF_TEST_LOG ? 'debug' : 'warn', json: true });

export async function verify(policy: PolicyConfig, store: RunStore, runtime: SandboxRuntime = new DockerRuntime()): Promise<RunRecord> {
  return runPolicy(policy, { store, runtime, driverFor, restorerFor, logger: quietLogger() });
}

export async function openEmbeddedStore(): Promise<{ store: RunStore; dataDir: string }> {
  const dataDir = await tempDir('data');
  return { store: await RunStore.open({ dataDir, schema: 'backproof' }), dataDir };
}

/** Leak check: nothing of this run may remain in the engine (`host`: another engine than the default). */
export async function leftoversOf(runId: string, host?: string): Promise<number> {
  const l = await new DockerRuntime(host ? { host } : {}).leftovers(runId);
  return l.containers.length + l.volumes.length;
}

export function codes(run: RunRecord): string[] {
  return run.reasons.map((r) => r.code);
}

/** What a restore test file shares: a PostgreSQL server for fixtures and an embedded evidence store. */
export interface RestoreTestEnv {
  cluster: PgCluster;
  store: RunStore;
}

/** Starts both before the file's tests and closes them after (pass `t` from tap). */
export function useRestoreEnv(tap: { before(fn: () => Promise<void>): void; teardown(fn: () => Promise<void>): void }): RestoreTestEnv {
  const env = {} as RestoreTestEnv;
  tap.before(async () => {
    env.cluster = await startPgCluster();
    env.store = (await openEmbeddedStore()).store;
  });
  tap.teardown(async () => {
    await env.store?.close();
    await env.cluster?.stop();
  });
  return env;
}
