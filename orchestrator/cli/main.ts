import { Command, CommanderError } from 'commander';
import { ConfigError, BackproofError } from '../core/errors.js';
import { versionText } from '../version.js';

type Register = (program: Command, setExit: (code: number) => void) => void;

/**
 * Each command's module, by the top-level command names it registers, in the order `--help`
 * lists them. A command line names one of them, and only that module (with what it imports) is
 * loaded: `runs list` never loads dockerode, an SDK or the PDF renderer. Help, a bare
 * `backproof` and an unknown command load them all, so commander can list them and suggest one.
 */
const COMMAND_MODULES: { names: string[]; load: () => Promise<Register> }[] = [
  { names: ['validate', 'schema'], load: async () => (await import('./validate-command.js')).registerValidate },
  { names: ['run'], load: async () => (await import('./run-command.js')).registerRun },
  { names: ['daemon'], load: async () => (await import('./daemon-command.js')).registerDaemon },
  { names: ['scheduler', 'worker'], load: async () => (await import('./cluster-command.js')).registerCluster },
  { names: ['runs'], load: async () => (await import('./runs-command.js')).registerRuns },
  { names: ['status'], load: async () => (await import('./status-command.js')).registerStatus },
  { names: ['backups'], load: async () => (await import('./backups-command.js')).registerBackups },
  { names: ['coverage'], load: async () => (await import('./coverage-command.js')).registerCoverage },
  { names: ['images'], load: async () => (await import('./images-command.js')).registerImages },
  { names: ['demo'], load: async () => (await import('./demo-command.js')).registerDemo },
  { names: ['evidence'], load: async () => (await import('./evidence-command.js')).registerEvidence },
  { names: ['report'], load: async () => (await import('./report-command.js')).registerReport },
  { names: ['serve'], load: async () => (await import('./serve-command.js')).registerServe },
  { names: ['tokens'], load: async () => (await import('./tokens-command.js')).registerTokens },
];

/** Global options that take a value (the command name is the first word after them). */
const GLOBAL_VALUE_OPTIONS = new Set(['-c', '--config', '-d', '--data-dir']);

/**
 * The modules a command line needs: none for a bare `--version`, the named command's, or all
 * of them (help, no command, an unknown one).
 */
export function modulesFor(args: string[]): typeof COMMAND_MODULES {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') break;
    if (GLOBAL_VALUE_OPTIONS.has(arg)) {
      i++;
      continue;
    }
    if (arg.startsWith('-')) {
      if (arg === '-V' || arg === '--version') return [];
      if (arg === '-h' || arg === '--help') break;
      continue; // --config=FILE, -cFILE and the like
    }
    const named = COMMAND_MODULES.find((m) => m.names.includes(arg));
    return named ? [named] : COMMAND_MODULES;
  }
  return COMMAND_MODULES;
}

/** Exit codes: 0 pass/ok, 1 a run failed (the backup is bad), 2 an error (config, engine, ours). */
export const EXIT = { ok: 0, fail: 1, error: 2 } as const;

export async function main(argv: string[]): Promise<number> {
  let exitCode: number = EXIT.ok;
  const setExit = (code: number): void => {
    exitCode = Math.max(exitCode, code);
  };
  const program = new Command('backproof')
    .description('Proves that backups restore: restores them in network-less Docker sandboxes, probes the data, records evidence.')
    .version(versionText())
    .option('-c, --config <file>', 'configuration file (default ./backproof.yaml or $BACKPROOF_CONFIG)')
    .option('-d, --data-dir <dir>', 'data directory: signing key, journal, daemon status, the embedded store (default ./.backproof; with database.url, $XDG_DATA_HOME/backproof or ~/.local/share/backproof)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  for (const register of await Promise.all(modulesFor(argv.slice(2)).map((m) => m.load()))) register(program, setExit);

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
