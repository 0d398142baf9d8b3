import { Command, CommanderError } from 'commander';
import { ConfigError, BackproofError } from '../errors.js';
import { BACKPROOF_VERSION } from '../version.js';
import { registerBackups } from './backups-command.js';
import { registerCluster } from './cluster-command.js';
import { registerDaemon } from './daemon-command.js';
import { registerDemo } from './demo-command.js';
import { registerEvidence } from './evidence-command.js';
import { registerImages } from './images-command.js';
import { registerReport } from './report-command.js';
import { registerRun } from './run-command.js';
import { registerRuns } from './runs-command.js';
import { registerServe } from './serve-command.js';
import { registerStatus } from './status-command.js';
import { registerTokens } from './tokens-command.js';
import { registerValidate } from './validate-command.js';

/** Exit codes: 0 pass/ok, 1 a run failed (the backup is bad), 2 an error (config, engine, ours). */
export const EXIT = { ok: 0, fail: 1, error: 2 } as const;

export async function main(argv: string[]): Promise<number> {
  let exitCode: number = EXIT.ok;
  const setExit = (code: number): void => {
    exitCode = Math.max(exitCode, code);
  };
  const program = new Command('backproof')
    .description('Proves that backups restore: restores them in network-less Docker sandboxes, probes the data, records evidence.')
    .version(BACKPROOF_VERSION)
    .option('-c, --config <file>', 'configuration file (default ./backproof.yaml or $BACKPROOF_CONFIG)')
    .option('-d, --data-dir <dir>', 'data directory of the embedded evidence store (default ./.backproof)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  registerValidate(program, setExit);
  registerRun(program, setExit);
  registerDaemon(program, setExit);
  registerCluster(program, setExit);
  registerRuns(program, setExit);
  registerStatus(program, setExit);
  registerBackups(program, setExit);
  registerImages(program, setExit);
  registerDemo(program, setExit);
  registerEvidence(program, setExit);
  registerReport(program, setExit);
  registerServe(program, setExit);
  registerTokens(program, setExit);

  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT.ok : EXIT.error;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(err.message + '\n');
      return EXIT.error;
    }
    if (err instanceof BackproofError) {
      process.stderr.write(`backproof: ${err.message}\n`);
      return EXIT.error;
    }
    process.stderr.write(`backproof: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    return EXIT.error;
  }
  return exitCode;
}
