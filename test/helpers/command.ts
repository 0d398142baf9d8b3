import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout under test. */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * This process's environment without what tap gives a test process (TAP_*, its processinfo
 * loader in NODE_OPTIONS): a tap started from a test then runs as a top-level tap, and another
 * Node.js runtime is not handed this one's loader. BACKPROOF_CONFIG is cleared: commands name
 * their config.
 */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(TAP|_TAPJS)/.test(key) && key !== 'NODE_OPTIONS' && key !== 'BACKPROOF_CONFIG') env[key] = value;
  }
  return { ...env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...extra };
}

/** Runs a command to its end (SIGKILL after timeoutMs) and collects its output. */
export function runCommand(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CommandResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? REPO, env: opts.env ?? cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${opts.timeoutMs} ms]`;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 300_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Math.round(performance.now() - started) });
    });
  });
}

/** Fails with the command's output unless it exited 0; returns its stdout, trimmed. */
export async function check(cmd: string, args: string[], opts: Parameters<typeof runCommand>[2] = {}): Promise<string> {
  const r = await runCommand(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.code}:\n${r.stderr.slice(-3000)}\n${r.stdout.slice(-2000)}`);
  return r.stdout.trim();
}

/**
 * What `backproof --version` must print for the dist/ of this checkout: the version and the
 * commit npm run build recorded (dist/build-info.json).
 */
export function expectedVersionText(): { version: string; commit: string; text: string } {
  const { version } = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
  const info = JSON.parse(readFileSync(path.join(REPO, 'dist', 'build-info.json'), 'utf8')) as { commit?: string; dirty?: boolean };
  if (!info.commit) throw new Error('dist/build-info.json names no commit: build in the git checkout (npm run build)');
  return { version, commit: info.commit, text: `${version} (commit ${info.commit.slice(0, 12)}${info.dirty ? ', with uncommitted changes' : ''})` };
}
