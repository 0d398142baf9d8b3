import { PassThrough, Writable } from 'node:stream';
import type { Sandbox } from '../sandbox-runtime.js';

/**
 * Long-lived execs for the boot watcher: each `docker exec` costs the engine a process start
 * (runc, a shim), which on a small host takes CPU from the guest being booted. One exec follows
 * the serial log for the whole boot, and one reads files on request, so a screenshot every two
 * seconds costs no new exec.
 */

/** `tail -F` of a file in the sandbox, for as long as it is not stopped. */
export class FollowedFile {
  private chunks: Buffer[] = [];
  private readonly stop = new AbortController();
  private readonly done: Promise<void>;

  constructor(sandbox: Sandbox, path: string, user: string, signal: AbortSignal) {
    const sink = new Writable({
      write: (c: Buffer, _e, cb) => {
        this.chunks.push(c);
        cb();
      },
    });
    this.done = sandbox
      .exec(['tail', '-c', '+1', '-F', path], { user, stdout: sink, signal: AbortSignal.any([signal, this.stop.signal]) })
      .then(
        () => undefined,
        () => undefined,
      );
  }

  /** The bytes that arrived since the last call. */
  take(): Buffer {
    const bytes = Buffer.concat(this.chunks);
    this.chunks = [];
    return bytes;
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.done;
  }
}

/** Reads files of the sandbox through one shell that answers "size\n" + the bytes, or "-1\n". */
export class FileReader {
  private readonly input = new PassThrough();
  private buffered = Buffer.alloc(0);
  private waiting: Array<{ resolve: (b: Buffer | undefined) => void; reject: (e: Error) => void }> = [];
  private readonly stop = new AbortController();
  private readonly done: Promise<void>;
  private ended = false;

  constructor(sandbox: Sandbox, user: string, signal: AbortSignal) {
    const sink = new Writable({
      write: (c: Buffer, _e, cb) => {
        this.buffered = Buffer.concat([this.buffered, c]);
        this.drain();
        cb();
      },
    });
    const script = 'while IFS= read -r p; do if [ -f "$p" ]; then stat -c %s "$p" && cat "$p"; else echo -1; fi; done';
    this.done = sandbox
      .exec(['sh', '-c', script], { user, stdin: this.input, stdout: sink, signal: AbortSignal.any([signal, this.stop.signal]) })
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        this.ended = true;
        for (const w of this.waiting) w.reject(new Error('the file reader in the sandbox ended'));
        this.waiting = [];
      });
  }

  /** The file's bytes, or undefined when it does not exist. Paths are backproof's own, never a guest's. */
  read(path: string): Promise<Buffer | undefined> {
    if (this.ended) return Promise.reject(new Error('the file reader in the sandbox ended'));
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.input.write(`${path}\n`);
    });
  }

  async close(): Promise<void> {
    this.input.end();
    this.stop.abort();
    await this.done;
  }

  private drain(): void {
    for (;;) {
      const nl = this.buffered.indexOf(0x0a);
      if (nl === -1 || this.waiting.length === 0) return;
      const size = Number(this.buffered.subarray(0, nl).toString('latin1'));
      if (!Number.isInteger(size)) {
        for (const w of this.waiting.splice(0)) w.reject(new Error('the file reader in the sandbox answered out of step'));
        this.buffered = Buffer.alloc(0);
        return;
      }
      if (size < 0) {
        this.buffered = this.buffered.subarray(nl + 1);
        this.waiting.shift()!.resolve(undefined);
        continue;
      }
      if (this.buffered.length < nl + 1 + size) return;
      const bytes = Buffer.from(this.buffered.subarray(nl + 1, nl + 1 + size));
      this.buffered = this.buffered.subarray(nl + 1 + size);
      this.waiting.shift()!.resolve(bytes);
    }
  }
}

/** A file from the sandbox, as bytes. */
export async function readFile(sandbox: Sandbox, path: string, user: string, signal: AbortSignal): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write: (c: Buffer, _e, cb) => {
      chunks.push(c);
      cb();
    },
  });
  const r = await sandbox.exec(['cat', path], { user, signal, stdout: sink });
  if (r.exitCode !== 0) throw new Error(`cat ${path} exited ${r.exitCode}: ${r.stderr.trim()}`);
  return Buffer.concat(chunks);
}
