import { driverFor } from '../../drivers/registry.js';
import { restorerFor, runtimeFor } from '../../restore-sandboxes/registry.js';
import type { RunStore } from '../evidence/run-store.js';
import type { Logger } from '../core/logger.js';
import type { RunDeps } from '../runner/run-policy.js';
import type { SandboxRuntime } from '../../restore-sandboxes/sandbox-runtime.js';

/**
 * What the commands that restore need: storage drivers, restorers, the sandbox runtime. Kept
 * apart from `context.ts` so commands that only read evidence never load dockerode or an SDK.
 */
export { driverFor, restorerFor, runtimeFor };

export function runDeps(store: RunStore, runtime: SandboxRuntime, logger: Logger): RunDeps {
  return { store, runtime, driverFor, restorerFor, logger };
}
