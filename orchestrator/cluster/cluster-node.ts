import type { StorageDriver } from '../../drivers/storage-driver.js';
import type { Restorer } from '../../restore-sandboxes/restorer.js';
import type { SandboxRuntime } from '../../restore-sandboxes/sandbox-runtime.js';
import type { PolicyConfig, ResolvedConfig } from '../core/config-types.js';
import type { RunRecord } from '../core/domain.js';
import type { RunStore } from '../evidence/run-store.js';
import type { Logger } from '../core/logger.js';
import type { JobQueue } from './job-queue.js';
import type { WorkerRegistry } from './worker-registry.js';

/** What every cluster node (scheduler or worker) stands on; the CLI opens these and closes them. */
export interface ClusterNodeDeps {
  config: ResolvedConfig;
  store: RunStore;
  queue: JobQueue;
  registry: WorkerRegistry;
  runtime: SandboxRuntime;
  driverFor(policy: PolicyConfig): StorageDriver;
  restorerFor(policy: PolicyConfig): Restorer;
  logger: Logger;
  /** Called with each run this node saw finish (tests, progress). */
  onRun?: (run: RunRecord) => void;
}
