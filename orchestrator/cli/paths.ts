import os from 'node:os';
import path from 'node:path';
import { DEFAULTS } from '../core/defaults.js';

// Where the config and the data dir are, apart from context.ts: a command that only reads the
// config (validate, schema) imports this and not the evidence store context.ts opens, which
// would put the store's code in that command's bundle chunk (~0.8 MB of JS to load).

export interface GlobalOptions {
  config?: string;
  dataDir?: string;
}

export function configPath(opts: GlobalOptions): string {
  return path.resolve(opts.config || process.env.BACKPROOF_CONFIG || DEFAULTS.configFile);
}

/**
 * The data directory (signing key, journal, daemon status, the embedded store): --data-dir, else
 * BACKPROOF_DATA_DIR; else, with a PostgreSQL store (`database.url`), the user's data directory
 * (`$XDG_DATA_HOME/backproof`, or `~/.local/share/backproof`), never wherever the command happens
 * to run; else (the embedded store) `./.backproof`, beside the config, as the demo and README use.
 */
export function dataDir(opts: GlobalOptions, database?: { url?: string | undefined }): string {
  const explicit = opts.dataDir || process.env.BACKPROOF_DATA_DIR;
  if (explicit) return path.resolve(explicit);
  if (database?.url) return userDataDir();
  return path.resolve(DEFAULTS.dataDir);
}

/** `$XDG_DATA_HOME/backproof` (an absolute XDG_DATA_HOME only, as the XDG spec says), else `~/.local/share/backproof`. */
export function userDataDir(): string {
  const xdg = process.env.XDG_DATA_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'backproof');
  return path.join(os.homedir(), '.local', 'share', 'backproof');
}
