import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { Daemon } from '../daemon/daemon.js';
import { parseDuration } from '../config/duration.js';
import { BackproofError } from '../core/errors.js';
import { configPath, favourMemory, makeLogger, openStore, type GlobalOptions } from './context.js';
import { driverFor, restorerFor, runtimeFor } from './plugins.js';
import { recoverAndReap } from './run-command.js';
import { snapshotPath } from './status-command.js';

export function registerDaemon(program: Command, setExit: (code: number) => void): void {
  program
    .command('daemon')
    .description('verify every policy on its schedule and alert on what goes wrong; SIGHUP reloads the config, SIGTERM/SIGINT stop (twice: cancel running runs)')
    .option('--shutdown-grace <duration>', 'how long the first stop signal waits for running runs (default daemon.shutdownGrace, 10m)')
    .action(async (opts: { shutdownGrace?: string }, cmd: Command) => {
      favourMemory();
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const file = configPath(global);
      const config = await loadConfig(file);
      let graceMs: number | undefined;
      if (opts.shutdownGrace !== undefined) {
        try {
          graceMs = parseDuration(opts.shutdownGrace);
        } catch {
          throw new BackproofError('usage', `--shutdown-grace ${JSON.stringify(opts.shutdownGrace)} is not a duration: write e.g. 30s, 5m or 1h`);
        }
      }
      const logger = makeLogger(config.secrets);
      const store = await openStore(config, global, logger, { hold: true });
      const runtime = runtimeFor(config);
      const aborted = [...store.abortedAtOpen, ...(await recoverAndReap(store, runtime, logger))];
      const daemon = new Daemon({ configFile: file, config, store, runtime, driverFor, restorerFor, logger, snapshotFile: snapshotPath(global, config.database), abortedRuns: aborted });

      let signals = 0;
      let markStopped: () => void = () => undefined;
      const stopped = new Promise<void>((resolve) => {
        markStopped = resolve;
      });
      const onStop = (sig: NodeJS.Signals): void => {
        signals++;
        if (signals === 1) {
          logger.info(`${sig}: stopping; no new runs (send ${sig} again to cancel running runs now)`);
          void daemon.stop(graceMs).finally(markStopped);
        } else if (signals === 2) {
          logger.warn(`${sig} again: cancelling running runs; their sandboxes are removed and the runs recorded as cancelled`);
          daemon.cancelRuns(`${sig} received twice`);
        } else {
          logger.warn(`${sig} a third time: exiting now; the reaper removes any sandbox at the next start`);
          process.exit(130);
        }
      };
      const onHup = (): void => {
        logger.info('SIGHUP: reloading the config');
        void daemon.reload();
      };
      process.on('SIGTERM', onStop);
      process.on('SIGINT', onStop);
      process.on('SIGHUP', onHup);
      try {
        await daemon.start();
        await stopped;
      } finally {
        await daemon.stop(graceMs).catch(() => undefined);
        process.off('SIGTERM', onStop);
        process.off('SIGINT', onStop);
        process.off('SIGHUP', onHup);
        await store.close();
      }
      setExit(0);
    });
}
