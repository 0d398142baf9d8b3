import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { DEFAULTS } from '../../orchestrator/core/defaults.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { OutputTail } from '../../orchestrator/core/output-tail.js';

/**
 * The child processes of a driver that talks to its store through a command-line tool (restic,
 * borg): spawned with the driver's own environment (secrets there, never in argv), run to the end
 * with bounded output, or streamed with backpressure; every one stopped (SIGTERM, then SIGKILL)
 * on abort and on close(), which the driver calls from its own close().
 */
export type Child = ChildProcessByStdio<null, Readable, Readable>;

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ChildProcessesOptions {
  /** The tool's name in messages, e.g. `restic`. */
  tool: string;
  binary: string;
  env: NodeJS.ProcessEnv;
  /** Where the driver reads from, for messages; never a secret. */
  location: string;
  /** A spawn failure (missing binary...) as the driver words it. */
  spawnFailure(err: unknown): VerificationError;
}

const KILL_GRACE_MS = 2000;
const STDOUT_GRACE_MS = 10_000;
const STDERR_GRACE_MS = 1000;

export class ChildProcesses {
  private readonly children = new Set<Child>();
  private readonly killed = new WeakSet<Child>();
  private closing?: Promise<void>;

  constructor(private readonly opts: ChildProcessesOptions) {}

  /** Pids of the processes still running (diagnostics and tests). */
  get pids(): number[] {
    return [...this.children].map((c) => c.pid).filter((p): p is number => p !== undefined);
  }

  /** Spawns the tool; `ready` resolves once it runs (a missing binary rejects there). */
  start(args: string[]): { child: Child; ready: Promise<void> } {
    if (this.closing) throw new VerificationError('cancelled', `the ${this.opts.tool} driver for ${this.opts.location} is closed`);
    const child = spawn(this.opts.binary, args, { env: this.opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    const ready = new Promise<void>((resolve, reject) => {
      child.on('error', (err) => {
        this.children.delete(child);
        reject(this.opts.spawnFailure(err));
      });
      child.once('spawn', () => resolve());
    });
    return { child, ready };
  }

  /** Runs a command to the end, keeping stdout (bounded by the tool's output) and a stderr excerpt. */
  async run(args: string[], signal?: AbortSignal): Promise<RunResult> {
    signal?.throwIfAborted();
    const { child, ready } = this.start(args);
    const out: Buffer[] = [];
    const err = new OutputTail(64 * 1024);
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    await ready;
    return new Promise((resolve, reject) => {
      const onAbort = (): void => void this.kill(child);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) onAbort();
      child.once('exit', (code, sig) => {
        signal?.removeEventListener('abort', onAbort);
        // Output may still be in the pipes when the tool exits; a grandchild (ssh) may keep
        // stderr open, so that one gets a grace period only.
        void Promise.all([settled(child.stdout, STDOUT_GRACE_MS), settled(child.stderr, STDERR_GRACE_MS)]).then(() => {
          if (signal?.aborted) reject(signal.reason);
          else if (sig || this.killed.has(child)) reject(this.stopped(`${this.opts.tool} ${args[0]}`, child, sig));
          else resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: err.text() });
        });
      });
    });
  }

  /**
   * The stdout of a command as a stream that ends only once the tool has exited 0: one that fails
   * halfway must not look like a short but complete file. Backpressure holds: the tool blocks
   * while nobody reads. A failure destroys the stream with `failure(stderr, exitCode)`.
   */
  async stream(args: string[], command: string, failure: (stderr: string, code: number | null) => VerificationError, signal?: AbortSignal): Promise<Readable> {
    signal?.throwIfAborted();
    const { child, ready } = this.start(args);
    const stderr = new OutputTail(8 * 1024, 16 * 1024);
    child.stderr.on('data', (c: Buffer) => stderr.push(c));
    await ready;
    const out = new PassThrough({ highWaterMark: DEFAULTS.readChunkBytes });
    child.stdout.pipe(out, { end: false });
    const onAbort = (): void => {
      out.destroy(signal?.reason as Error);
      void this.kill(child);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    out.once('close', () => {
      // The reader gave up (or we ended): stop the tool if it is still running.
      signal?.removeEventListener('abort', onAbort);
      if (child.exitCode === null && child.signalCode === null) {
        child.stdout.destroy();
        void this.kill(child);
      }
    });
    // 'exit', not 'close': a killed child's stdout may hold unread bytes behind backpressure
    // and would never emit 'close' while nobody reads it.
    child.once('exit', (code, sig) => {
      signal?.removeEventListener('abort', onAbort);
      if (code === 0) {
        // Every byte is in `out` once the child's stdout has ended.
        if (child.stdout.readableEnded) endUnlessDestroyed(out);
        else child.stdout.once('end', () => endUnlessDestroyed(out));
        return;
      }
      void settled(child.stderr, STDERR_GRACE_MS).then(() => {
        child.stdout.unpipe(out);
        child.stdout.destroy();
        if (out.destroyed) return;
        if (signal?.aborted) out.destroy(signal.reason as Error);
        else if (sig || this.killed.has(child)) out.destroy(this.stopped(command, child, sig));
        else out.destroy(failure(stderr.text(), code));
      });
    });
    return out;
  }

  /** Stops every child; later starts are refused. */
  close(): Promise<void> {
    this.closing ??= Promise.all([...this.children].map((c) => this.kill(c))).then(() => undefined);
    return this.closing;
  }

  /** SIGTERM, then SIGKILL after 2 s; resolves once the process has exited. */
  private kill(child: Child): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
    this.killed.add(child);
    return new Promise((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }

  /** A child killed by a signal: by us (close, abort, a reader that gave up) or by someone else. */
  private stopped(command: string, child: Child, sig: NodeJS.Signals | null): VerificationError {
    if (this.killed.has(child)) {
      return new VerificationError('cancelled', `${command} was stopped (${this.closing ? 'the driver was closed' : 'cancelled'})`);
    }
    return new VerificationError('source_unreachable', `${command} was killed by ${sig ?? 'a signal'} (out of memory?) while reading ${this.opts.location}`);
  }
}

/** Resolves once a child's output stream has closed, or `graceMs` after now. */
function settled(stream: Readable, graceMs: number): Promise<void> {
  if (stream.closed || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, graceMs);
    stream.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function endUnlessDestroyed(stream: PassThrough): void {
  if (!stream.destroyed) stream.end();
}

/** The last ~`max` characters of a tool's stderr on one line, without noise lines and without any secret. */
export function excerpt(stderr: string, redact: (s: string) => string, noise?: RegExp, max = 300): string {
  const lines = stderr.split(/\r?\n/).map((l) => l.trimEnd()).filter((l) => l.trim() && !noise?.test(l));
  let text = redact(lines.map((l) => l.trim()).join(' | '));
  if (!text) text = redact(stderr.trim().replace(/\s*\n\s*/g, ' | '));
  return text.length > max ? `…${text.slice(-max).trimStart()}` : text;
}

/** Every occurrence of each secret replaced by `***`. */
export function redactAll(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length > 0) out = out.split(s).join('***');
  return out;
}
