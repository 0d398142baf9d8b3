import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { ClusterScheduler } from '../cluster/cluster-scheduler.js';
import { ClusterWorker } from '../cluster/cluster-worker.js';
import { JobQueue } from '../cluster/job-queue.js';
import { WorkerRegistry } from '../cluster/worker-registry.js';
import { parseDuration } from '../config/duration.js';
import { loadConfig } from '../config/load.js';
import type { ResolvedConfig } from '../core/config-types.js';
import { DockerRuntime } from '../../restore-sandboxes/docker/docker-runtime.js';
import { BackproofError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { configPath, favourMemory, makeLogger, openStore, type GlobalOptions } from './context.js';
import { driverFor, restorerFor, runtimeFor } from './plugins.js';
import { recoverAndReap } from './run-command.js';
import { snapshotPath } from './status-command.js';

/**
 * Cluster mode: `backproof scheduler` (start it on every node; one is active) and
 * `backproof worker` (any number, on any machines), on one PostgreSQL evidence store.
 */
export function registerCluster(program: Command, setExit: (code: number) => void): void {
  program
    .command('scheduler')
    .description('cluster mode: schedule every policy and hand due runs to the workers through the job queue; run it on every node, one is active at a time and another takes over when it dies')
    .option('--takeover <duration>', 'how often a standby tries to become the active scheduler', '10s')
    .option('--stale-worker <duration>', 'a worker silent this long is presumed dead: its runs are aborted and run once more', '30s')
    .action(async (opts: { takeover: string; staleWorker: string }, cmd: Command) => {
      favourMemory();
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const file = configPath(global);
      const config = await loadConfig(file);
      const url = clusterUrl(config, file);
      const logger = makeLogger(config.secrets);
      const store = await openStore(config, global, logger);
      const queue = await JobQueue.open({ url, schema: config.database.schema });
      const scheduler = new ClusterScheduler({
        url,
        configFile: file,
        config,
        store,
        queue,
        registry: new WorkerRegistry(store.executor, store.schema),
        runtime: runtimeFor(config),
        driverFor,
        restorerFor,
        logger,
        takeoverMs: durationOption('--takeover', opts.takeover),
        staleWorkerS: durationOption('--stale-worker', opts.staleWorker) / 1000,
        snapshotFile: snapshotPath(global, config.database),
      });
      await untilSignal(logger, 'scheduler', () => scheduler.start(), async () => scheduler.stop(), () => undefined);
      await queue.stop();
      await store.close();
      setExit(0);
    });

  program
    .command('worker')
    .description('cluster mode: claim queued runs and run them on this node\'s Docker engine (or --docker-host); SIGTERM/SIGINT stop claiming and wait for running runs (twice: cancel them)')
    .option('-c, --concurrency <n>', 'runs at once on this worker', (v) => Number.parseInt(v, 10), 2)
    .option('-l, --label <key=value>', 'a label policies may require (repeat: --label site=berlin --label kvm=true)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--docker-host <url>', 'the engine this worker drives: unix:///var/run/docker.sock, tcp://host:2376 (with --docker-tls-dir) or ssh://user@host (default docker.host, else DOCKER_HOST, else the local socket)')
    .option('--docker-tls-dir <dir>', 'ca.pem, cert.pem and key.pem for a tcp:// engine started with dockerd --tlsverify (as DOCKER_CERT_PATH); default docker.tls')
    .option('--heartbeat <duration>', 'how often this worker tells the cluster it is alive (the scheduler presumes it dead after three missed beats, and --stale-worker)', '5s')
    .option('--shutdown-grace <duration>', 'how long the first stop signal waits for running runs', '10m')
    .action(async (opts: { concurrency: number; label: string[]; dockerHost?: string; dockerTlsDir?: string; heartbeat: string; shutdownGrace: string }, cmd: Command) => {
      favourMemory();
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const file = configPath(global);
      const config = await loadConfig(file);
      const url = clusterUrl(config, file);
      if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1) throw new BackproofError('usage', '--concurrency must be a whole number of at least 1');
      const labels = parseLabels(opts.label);
      const graceMs = durationOption('--shutdown-grace', opts.shutdownGrace);
      const logger = makeLogger(config.secrets);
      const store = await openStore(config, global, logger);
      const runtime = opts.dockerHost || opts.dockerTlsDir ? new DockerRuntime({ ...config.docker, ...(opts.dockerHost ? { host: opts.dockerHost } : {}), ...(opts.dockerTlsDir ? { tls: await readTlsDir(opts.dockerTlsDir) } : {}) }) : runtimeFor(config);
      await recoverAndReap(store, runtime, logger);
      const queue = await JobQueue.open({ url, schema: config.database.schema });
      const worker = new ClusterWorker({
        config,
        store,
        queue,
        registry: new WorkerRegistry(store.executor, store.schema),
        runtime,
        driverFor,
        restorerFor,
        logger,
        capacity: opts.concurrency,
        labels,
        heartbeatMs: durationOption('--heartbeat', opts.heartbeat),
      });
      await untilSignal(logger, 'worker', () => worker.start(), () => worker.stop(graceMs), () => worker.cancelRuns('stop signal received twice'));
      await queue.stop();
      await store.close();
      setExit(0);
    });
}

/** ca.pem, cert.pem and key.pem from a folder, as the docker CLI reads DOCKER_CERT_PATH. */
async function readTlsDir(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const read = async (name: string): Promise<string> => {
    try {
      return await fs.readFile(path.join(dir, name), 'utf8');
    } catch (err) {
      throw new BackproofError('usage', `--docker-tls-dir ${dir}: cannot read ${name} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); it must hold ca.pem, cert.pem and key.pem`);
    }
  };
  return { ca: await read('ca.pem'), cert: await read('cert.pem'), key: await read('key.pem') };
}

function clusterUrl(config: ResolvedConfig, file: string): string {
  if (!config.database.url) {
    throw new BackproofError('cluster_needs_postgres', `cluster mode needs a PostgreSQL evidence store that every node shares: set database.url in ${file} (or DATABASE_URL); on one machine, backproof daemon runs on the embedded store`);
  }
  return config.database.url;
}

function durationOption(flag: string, text: string): number {
  try {
    return parseDuration(text);
  } catch {
    throw new BackproofError('usage', `${flag} ${JSON.stringify(text)} is not a duration: write e.g. 10s, 5m or 1h`);
  }
}

/** `--label site=berlin --label kvm=true` as { site: 'berlin', kvm: 'true' }. */
export function parseLabels(items: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const item of items) {
    const m = /^([a-z0-9][a-z0-9_.-]{0,62})=([a-z0-9][a-z0-9_.-]{0,62})$/i.exec(item);
    if (!m) throw new BackproofError('usage', `--label ${JSON.stringify(item)} is not key=value: write e.g. --label site=berlin (letters, digits, ".", "_", "-")`);
    labels[m[1]!] = m[2]!;
  }
  return labels;
}

/** Starts, then waits for SIGTERM/SIGINT: the first stops gracefully, the second forces, the third exits. */
async function untilSignal(logger: Logger, what: string, start: () => Promise<void>, stop: () => Promise<void>, force: () => void): Promise<void> {
  let signals = 0;
  let stopping: Promise<void> | undefined;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      logger.info(`${sig}: stopping the ${what} (send ${sig} again to cancel running runs)`);
      stopping = stop().finally(done);
    } else if (signals === 2) {
      logger.warn(`${sig} again: cancelling running runs`);
      force();
    } else {
      logger.warn(`${sig} a third time: exiting now; the reaper removes any sandbox at the next start`);
      process.exit(130);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await start();
    await finished;
    await stopping;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
