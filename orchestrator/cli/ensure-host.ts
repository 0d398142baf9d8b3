import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline/promises';
import type { SandboxRuntime } from '../../restore-sandboxes/sandbox-runtime.js';
import { BackproofError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';

/**
 * First-run help: makes sure a Docker engine answers. Where none does and we are root on
 * Debian/Ubuntu, installs the distribution's engine (docker.io) and starts it, after asking
 * (no question under --yes or CI=true). Anywhere else: a clear message of what to start.
 * Where an engine runs, it is simply used.
 */
export interface EnsureOptions {
  yes: boolean;
  logger: Logger;
  /** Where dockerd's log goes when we start it ourselves. */
  logDir: string;
}

export async function ensureDockerEngine(runtime: SandboxRuntime, opts: EnsureOptions): Promise<void> {
  try {
    await runtime.ping();
    return;
  } catch (err) {
    if (!canManageHost()) {
      throw new BackproofError(
        'docker_unreachable',
        `${(err as Error).message}.\nbackproof restores inside Docker sandboxes: start Docker Engine or Docker Desktop, then run this again.`,
      );
    }
  }
  await confirm(opts, 'No Docker engine answers. Install (if needed) and start Debian\'s docker.io engine now?');
  if (!commandExists('dockerd')) await aptInstall(['docker.io'], opts.logger);
  if (existsSync('/run/systemd/system')) {
    opts.logger.info('starting docker with systemctl');
    spawnSync('systemctl', ['start', 'docker'], { stdio: 'inherit' });
  } else {
    mkdirSync(opts.logDir, { recursive: true });
    const logFile = path.join(opts.logDir, 'dockerd.log');
    const out = openSync(logFile, 'a');
    // Sandboxes never use a network, so the engine needs no bridge and no iptables rules.
    const child = spawn('dockerd', ['--bridge=none', '--iptables=false'], { detached: true, stdio: ['ignore', out, out] });
    child.unref();
    opts.logger.info(`started dockerd (pid ${child.pid}, log ${logFile}); it keeps running after backproof exits`);
  }
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await runtime.ping();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** Installs Debian packages when root on Debian/Ubuntu (after asking), else explains what to install. */
export async function ensureCommand(command: string, pkg: string, opts: EnsureOptions): Promise<void> {
  if (commandExists(command)) return;
  if (!canManageHost()) {
    throw new BackproofError('missing_tool', `${command} is not installed; install the ${pkg} package (apt-get install ${pkg}) and run this again`);
  }
  await confirm(opts, `${command} is needed and not installed. Install Debian's ${pkg} package now?`);
  await aptInstall([pkg], opts.logger);
}

function canManageHost(): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  try {
    const release = readFileSync('/etc/os-release', 'utf8');
    return /^ID(_LIKE)?=.*\b(debian|ubuntu)\b/m.test(release) && commandExists('apt-get');
  } catch {
    return false;
  }
}

export function commandExists(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v "$1"`, 'sh', command], { stdio: 'ignore' }).status === 0;
}

async function confirm(opts: EnsureOptions, question: string): Promise<void> {
  if (opts.yes || process.env.CI === 'true') return;
  if (!process.stdin.isTTY) {
    throw new BackproofError('needs_confirmation', `${question} Run again with --yes to allow it.`);
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const answer = await rl.question(`${question} [y/N] `);
  rl.close();
  if (!/^y(es)?$/i.test(answer.trim())) throw new BackproofError('needs_confirmation', 'stopped: nothing was installed');
}

async function aptInstall(pkgs: string[], logger: Logger): Promise<void> {
  logger.info(`installing ${pkgs.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', '--no-install-recommends', ...pkgs]]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env });
    if (r.status !== 0) throw new BackproofError('install_failed', `apt-get ${args.join(' ')} failed (exit ${r.status})`);
  }
}
