import { PassThrough, Writable } from 'node:stream';
import { VerificationError } from '../../orchestrator/core/errors.js';
import type { Sandbox } from '../sandbox-runtime.js';

/**
 * QEMU's machine protocol (QMP), spoken from the orchestrator through the sandbox: QEMU listens
 * on a unix socket inside the sandbox, and `socat` run by exec joins that socket to the exec's
 * stdin and stdout. Nothing crosses a network, and it works the same on a remote engine.
 * Messages are JSON objects, one per line: commands carry an `id`, answers echo it, and events
 * (SHUTDOWN, RESET, GUEST_PANICKED) arrive in between.
 */
export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  /** ms since the client connected. */
  atMs: number;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  what: string;
}

export class QmpClient {
  readonly events: QmpEvent[] = [];
  /** Resolves when the connection ends (QEMU exited, or close() was called). */
  readonly closed: Promise<void>;
  private readonly input = new PassThrough();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private buffered = '';
  private ended = false;
  private readonly started = Date.now();
  private onEvent: ((e: QmpEvent) => void) | undefined;

  private constructor(sandbox: Sandbox, socket: string, user: string, signal: AbortSignal) {
    const output = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        this.receive(chunk.toString('utf8'));
        cb();
      },
    });
    this.closed = sandbox
      .exec(['socat', '-t', '1', '-', `UNIX-CONNECT:${socket}`], { stdin: this.input, stdout: output, user, signal })
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => this.end('the QMP connection closed (QEMU exited)'));
  }

  /** Connects and leaves the capabilities negotiation, so commands may be sent. */
  static async connect(sandbox: Sandbox, socket: string, user: string, signal: AbortSignal): Promise<QmpClient> {
    const client = new QmpClient(sandbox, socket, user, signal);
    await client.execute('qmp_capabilities', undefined, 20_000);
    return client;
  }

  /** Calls `fn` for each event from now on (earlier ones are in `events`). */
  listen(fn: (e: QmpEvent) => void): void {
    this.onEvent = fn;
  }

  get isOpen(): boolean {
    return !this.ended;
  }

  async execute(command: string, args?: Record<string, unknown>, timeoutMs = 30_000): Promise<unknown> {
    if (this.ended) throw new VerificationError('sandbox_failed', `QMP ${command}: QEMU is no longer running`);
    const id = this.nextId++;
    const answer = new Promise<unknown>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, what: command });
    });
    this.input.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new VerificationError('sandbox_failed', `QMP ${command} got no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([answer, timeout]);
    } finally {
      clearTimeout(timer);
      this.pending.delete(id);
    }
  }

  /** A human monitor command (e.g. `xp`), its text output. */
  async hmp(commandLine: string): Promise<string> {
    return String(await this.execute('human-monitor-command', { 'command-line': commandLine }));
  }

  /** Ends the connection; QEMU keeps running unless told to quit first. */
  async close(): Promise<void> {
    this.input.end();
    await Promise.race([this.closed, new Promise((r) => setTimeout(r, 3_000))]);
  }

  private receive(text: string): void {
    this.buffered += text;
    for (let nl = this.buffered.indexOf('\n'); nl !== -1; nl = this.buffered.indexOf('\n')) {
      const line = this.buffered.slice(0, nl).trim();
      this.buffered = this.buffered.slice(nl + 1);
      if (line) this.message(line);
    }
    if (this.buffered.length > 1024 * 1024) this.buffered = ''; // never from QEMU; no unbounded growth either
  }

  private message(line: string): void {
    let msg: { id?: number; return?: unknown; error?: { class?: string; desc?: string }; event?: string; data?: Record<string, unknown>; QMP?: unknown };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      return;
    }
    if (msg.event) {
      const e: QmpEvent = { event: msg.event, ...(msg.data ? { data: msg.data } : {}), atMs: Date.now() - this.started };
      this.events.push(e);
      this.onEvent?.(e);
      return;
    }
    if (typeof msg.id !== 'number') return; // the greeting
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.error) p.reject(new VerificationError('sandbox_failed', `QMP ${p.what} failed: ${msg.error.desc ?? msg.error.class ?? 'unknown error'}`));
    else p.resolve(msg.return);
  }

  private end(why: string): void {
    if (this.ended) return;
    this.ended = true;
    for (const p of this.pending.values()) p.reject(new VerificationError('sandbox_failed', `QMP ${p.what}: ${why}`));
    this.pending.clear();
  }
}
