import type { PolicyConfig } from '../core/config-types.js';
import type { RunRecord } from '../core/domain.js';
import { recordFailure, finishRun } from './phases/finish.js';
import { streamRestore } from './phases/fetch-restore.js';
import { bringUpSandbox } from './phases/sandbox.js';
import { checkStorage, selectBackup } from './phases/select.js';
import { awaitReadiness, runProbes } from './phases/verify.js';
import { startRun, type RunDeps, type RunOptions } from './run-state.js';

export type { RunDeps, RunOptions } from './run-state.js';

export class RunCancelled extends Error {
  override name = 'RunCancelled';
}

/**
 * One run: select the newest backup (or, for a coverage run, the older restore point it names), bring up a sandbox, stream the backup through the
 * integrity tee into the restorer, wait for readiness, probe, tear down, record. Every run that
 * starts is recorded before anything else happens, and finalized on every path. Each phase is a
 * function of the run's state (run-state.ts) in phases/.
 */
export async function runPolicy(policy: PolicyConfig, deps: RunDeps, opts: RunOptions = {}): Promise<RunRecord> {
  const s = await startRun(policy, deps, opts);
  s.log.info(`run started`);
  try {
    await selectBackup(s);
    await checkStorage(s);
    await bringUpSandbox(s);
    await streamRestore(s);
    await awaitReadiness(s);
    await runProbes(s);
  } catch (err) {
    await recordFailure(s, err);
  } finally {
    await finishRun(s);
  }
  return s.run;
}
