import { Worker } from 'node:worker_threads';

/**
 * Digests kept in a worker thread: the bytes of a large backup are hashed beside the main
 * thread, which meanwhile feeds them to the sandbox. Hashing 1 GiB takes ~0.6 s of CPU; on the
 * main thread it held up each next write into the sandbox by that much (bench/stream-restore.ts).
 *
 * A chunk in shared memory (a pooled read buffer, see chunk-pool.ts) reaches the worker without
 * a copy; its buffer must not be reused until `update` has resolved. Any other chunk is copied.
 */
export class HashThread {
  private readonly worker: Worker;
  private readonly waiting: Array<{ resolve: (value?: unknown) => void; reject: (err: Error) => void }> = [];
  private failure: Error | undefined;
  /** Shared buffers the worker has been sent once; later chunks in them name them by number. */
  private readonly known = new WeakMap<SharedArrayBuffer, number>();
  private nextId = 0;

  constructor(algorithms: readonly string[]) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { algorithms } });
    // A thread left behind (a stream dropped without being destroyed) never holds the process.
    this.worker.unref();
    this.worker.on('message', (message: unknown) => this.waiting.shift()?.resolve(message));
    const fail = (err: Error): void => {
      this.failure ??= err;
      for (const w of this.waiting.splice(0)) w.reject(err);
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`the hashing thread exited (code ${code})`)));
  }

  /** Chunks posted and not hashed yet. */
  get pending(): number {
    return this.waiting.length;
  }

  /** Hashes `chunk` after every chunk before it; resolves once the worker is done with its bytes. */
  update(chunk: Uint8Array): Promise<void> {
    if (chunk.buffer instanceof SharedArrayBuffer) {
      // Sending a shared buffer costs ~0.1 ms a message: each is sent once, then named.
      let id = this.known.get(chunk.buffer);
      const shared = id === undefined ? chunk.buffer : undefined;
      if (id === undefined) this.known.set(chunk.buffer, (id = this.nextId++));
      return this.request({ id, shared, offset: chunk.byteOffset, length: chunk.byteLength }).then(() => undefined);
    }
    const copy = new Uint8Array(chunk);
    return this.request({ bytes: copy }, [copy.buffer]).then(() => undefined);
  }

  /** The hex digests of everything updated, by algorithm; the thread ends. */
  async digest(): Promise<Record<string, string>> {
    const digests = (await this.request({ digest: true })) as Record<string, string>;
    this.terminate();
    return digests;
  }

  terminate(): void {
    this.worker.removeAllListeners('exit');
    void this.worker.terminate();
  }

  private request(message: object, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.worker.postMessage(message, transfer);
    });
  }
}

/** The worker: one hash per algorithm, updated in message order; answers each message. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = workerData.algorithms.map((a) => [a, createHash(a)]);
const buffers = new Map();
parentPort.on('message', (m) => {
  if (m.digest) {
    parentPort.postMessage(Object.fromEntries(hashes.map(([a, h]) => [a, h.digest('hex')])));
    return;
  }
  if (m.shared) buffers.set(m.id, m.shared);
  const bytes = m.id === undefined ? m.bytes : new Uint8Array(buffers.get(m.id), m.offset, m.length);
  for (const [, h] of hashes) h.update(bytes);
  parentPort.postMessage(0);
});
`;
