import { existsSync } from 'node:fs';
import v8 from 'node:v8';
import { loadStoreSettings } from '../config/load.js';
import type { PolicyConfig, ResolvedConfig } from '../core/config-types.js';
import { DEFAULTS } from '../core/defaults.js';
import { BackproofError } from '../core/errors.js';
import { RunStore } from '../evidence/run-store.js';
import { Logger } from '../core/logger.js';
import { configPath, dataDir, type GlobalOptions } from './paths.js';

export { configPath, dataDir, userDataDir, type GlobalOptions } from './paths.js';

/**
 * For the processes that stay up (daemon, serve, scheduler, worker): V8 grows the heap by 20%
 * rather than up to 4x at each step and favours size over speed, so garbage of a busy minute (the
 * first check of 1,000 policies) is collected before it becomes resident. Measured with the
 * daemon on 1,000 policies, a new data dir: peak RSS 175-204 MB before, 157-159 MB after; its
 * first check took the same time within the noise (bench/process-cost.ts). Both are read at each
 * collection, so setting them here, after start-up, takes effect.
 */
export function favourMemory(): void {
  v8.setFlagsFromString('--optimize-for-size');
  v8.setFlagsFromString('--heap-growing-percent=20');
}

/**
 * Opens the evidence store; runs it found interrupted (their process died) are reported. The
 * embedded store held by another backproof process is used through that process unless
 * `hold` (the daemon and `serve`, which must hold it themselves).
 */
export async function openStore(
  config: Pick<ResolvedConfig, 'database' | 'evidence'>,
  opts: GlobalOptions,
  logger: Logger = makeLogger(),
  { hold = false }: { hold?: boolean } = {},
): Promise<RunStore> {
  const store = await RunStore.open({
    url: config.database.url,
    dataDir: dataDir(opts, config.database),
    schema: config.database.schema,
    signingKey: config.evidence?.signingKey,
    join: !hold,
  });
  for (const run of store.journalReplay.replayed) {
    logger.info(`run ${run.id} of ${run.policy}, kept in the journal while the evidence store was down, is now recorded: ${run.verdict}`);
  }
  for (const { run, why } of store.journalReplay.rejected) {
    logger.warn(`run ${run.id} of ${run.policy} from the journal was not taken (${why}); its record is kept in the journal's rejected/ folder`);
  }
  for (const run of store.abortedAtOpen) {
    logger.warn(`run ${run.id} of ${run.policy} was interrupted (pid ${run.pid} is gone); recorded as aborted`);
  }
  return store;
}

/**
 * Evidence store settings for commands that only read evidence back: the config's `database:`
 * and `evidence:` (nothing else of it is checked), or, with no config file, DATABASE_URL or
 * the embedded store. A file named with --config that is missing, or broken there, is an error.
 */
export async function storeSettings(opts: GlobalOptions): Promise<Pick<ResolvedConfig, 'database' | 'evidence'>> {
  const file = configPath(opts);
  if (!existsSync(file) && !opts.config) return { database: { url: process.env.DATABASE_URL || undefined, schema: DEFAULTS.schema } };
  return loadStoreSettings(file);
}

/** The policy named on the command line, or a usage error listing the ones there are. */
export function findPolicy(config: ResolvedConfig, name: string): PolicyConfig {
  const policy = config.policies.find((p) => p.name === name);
  if (!policy) {
    throw new BackproofError('unknown_policy', `no policy named "${name}" in ${config.file}; policies: ${config.policies.map((p) => p.name).join(', ')}`);
  }
  return policy;
}

export function makeLogger(secrets: readonly string[] = []): Logger {
  return new Logger({ secrets });
}
