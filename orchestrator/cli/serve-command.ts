import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { BackproofError } from '../core/errors.js';
import { AlertStore } from '../evidence/alert-store.js';
import { startWebServer } from '../web/server.js';
import { TokenStore } from '../web/token-store.js';
import { configPath, favourMemory, makeLogger, openStore, type GlobalOptions } from './context.js';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export function registerServe(program: Command, setExit: (code: number) => void): void {
  program
    .command('serve')
    .description('read-only dashboard, JSON API and Prometheus /metrics over the evidence store; every request needs a token (backproof tokens create)')
    .option('--host <address>', 'address to listen on; the server speaks plain http: keep it on loopback or put a TLS proxy in front', '127.0.0.1')
    .option('--port <n>', 'port to listen on (0: any free port)', (v) => Number.parseInt(v, 10), 8080)
    .action(async (opts: { host: string; port: number }, cmd: Command) => {
      if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
        throw new BackproofError('usage', `--port must be a number from 0 to 65535`);
      }
      favourMemory();
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const config = await loadConfig(configPath(global));
      const logger = makeLogger(config.secrets);
      const store = await openStore(config, global, logger, { hold: true });
      try {
        const alerts = new AlertStore(store.executor, store.schema);
        const server = await startWebServer({ config, runs: store, alerts, logger, host: opts.host, port: opts.port });
        const shown = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
        logger.info(`dashboard on http://${shown}:${server.port}/ (SIGINT or SIGTERM stops)`);
        if (!LOOPBACK.has(opts.host)) {
          logger.warn(`listening on ${opts.host} over plain http: tokens cross the network unencrypted unless a TLS proxy fronts this server`);
        }
        if ((await new TokenStore(store.executor, store.schema).list()).length === 0) {
          logger.warn('no token exists yet: make one with backproof tokens create --admin');
        }
        await new Promise<void>((resolve) => {
          const stop = (sig: NodeJS.Signals): void => {
            logger.info(`${sig}: stopping the dashboard`);
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
            resolve();
          };
          process.on('SIGINT', stop);
          process.on('SIGTERM', stop);
        });
        await server.close();
      } finally {
        await store.close();
      }
      setExit(0);
    });
}
