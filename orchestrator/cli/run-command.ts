import os from 'node:os';
import type { Command } from 'commander';
import { renderRunSummary } from '../../reports/run-summary.js';
import type { SandboxOwner, SandboxRuntime } from '../../restore-sandboxes/sandbox-runtime.js';
import { loadConfig } from '../config/load.js';
import type { PolicyConfig } from '../core/config-types.js';
import type { RunRecord } from '../core/domain.js';
import { isPidAlive } from '../evidence/pglite-executor.js';
import { isRunId, type RunStore } from '../evidence/run-store.js';
import type { Logger } from '../core/logger.js';
import { runWithCoverage } from '../runner/coverage-runs.js';
import { RunCancelled } from '../runner/run-policy.js';
import { configPath, findPolicy, makeLogger, openStore, type GlobalOptions } from './context.js';
import { runDeps, runtimeFor } from './plugins.js';
import { ProgressLine } from './progress.js';

export function registerRun(program: Command, setExit: (code: number) => void): void {
  program
    .command('run')
    .description('verify now: restore the newest backup of each policy (or one) in a sandbox and probe it, then the older restore points its coverage plans; exit 0 pass, 1 fail, 2 error')
    .option('-p, --policy <name>', 'only this policy')
    .option('--json', 'print the run records as JSON on stdout (an array when there are several, coverage runs included)')
    .option('--no-coverage', "restore only the newest backups: no coverage runs of older restore points (the plan is still recorded)")
    .action(async (opts: { policy?: string; json?: boolean; coverage: boolean }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const config = await loadConfig(configPath(global));
      const policies = opts.policy ? [findPolicy(config, opts.policy)] : config.policies;
      const logger = makeLogger(config.secrets);
      const store = await openStore(config, global, logger);
      const runtime = runtimeFor(config);
      const runs = await withSignals(logger, (signal) => runAll(policies, store, runtime, logger, signal, !opts.json, opts.coverage)).finally(() => store.close());
      if (opts.json) process.stdout.write(JSON.stringify(runs.length === 1 ? runs[0] : runs, null, 2) + '\n');
      for (const run of runs) setExit(run.verdict === 'pass' ? 0 : run.verdict === 'fail' ? 1 : 2);
      if (runs.some((r) => r.status === 'cancelled')) setExit(130);
    });
}

async function runAll(
  policies: PolicyConfig[],
  store: RunStore,
  runtime: SandboxRuntime,
  logger: Logger,
  signal: AbortSignal,
  printSummary: boolean,
  coverage: boolean,
): Promise<RunRecord[]> {
  await recoverAndReap(store, runtime, logger);
  const progress = new ProgressLine();
  const deps = { ...runDeps(store, runtime, logger), onProgress: progress.update };
  const runs: RunRecord[] = [];
  for (const policy of policies) {
    if (signal.aborted) break;
    await runWithCoverage(policy, deps, {
      signal,
      coverage,
      onRun: (run) => {
        progress.clear();
        runs.push(run);
        if (printSummary) process.stdout.write(renderRunSummary(run) + '\n\n');
      },
    });
  }
  return runs;
}

/**
 * Marks runs whose process died as aborted (the store does it on open) and removes sandboxes
 * that provably belong to nobody: their run ended in this store, or they were made on this host
 * by a process that is gone. Sandboxes of live processes (another backproof installation on the
 * same engine, another worker) are left alone.
 */
export async function recoverAndReap(store: RunStore, runtime: SandboxRuntime, logger: Logger): Promise<RunRecord[]> {
  const aborted = await store.markAbortedRuns();
  for (const run of aborted) {
    logger.warn(`run ${run.id} of ${run.policy} was interrupted (pid ${run.pid} is gone); recorded as aborted`);
  }
  const host = os.hostname();
  const keep = async (owner: SandboxOwner): Promise<boolean> => {
    const run = isRunId(owner.runId) ? await store.get(owner.runId) : null;
    if (run) return run.status === 'running';
    if (owner.host !== host || owner.pid === undefined) return true; // not ours to judge
    return owner.pid === process.pid || isPidAlive(owner.pid);
  };
  try {
    const removed = await runtime.reap(keep);
    if (removed.containers.length + removed.volumes.length > 0) {
      logger.info(`reaper removed ${removed.containers.length} leftover sandbox container(s) and ${removed.volumes.length} volume(s)`);
    }
  } catch (err) {
    logger.warn(`reaper skipped: ${(err as Error).message}`);
  }
  return aborted;
}


/**
 * SIGINT/SIGTERM: the first cancels the running verification (its sandbox is removed and the
 * run recorded as cancelled); a second one exits at once (the reaper cleans up next time).
 */
async function withSignals<T>(logger: Logger, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      logger.warn(`${sig} again: exiting now`);
      process.exit(130);
    }
    logger.warn(`${sig}: cancelling; removing the sandbox (send again to exit at once)`);
    controller.abort(new RunCancelled(`${sig} received`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await fn(controller.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
