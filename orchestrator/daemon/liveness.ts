import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

/**
 * What process supervisors look at: a JSON file rewritten on every beat, and/or GET /healthz on a
 * loopback port answering 200 while the daemon's loop beats and 503 once it stalls or stops.
 */
export interface LivenessStatus {
  status: 'ok' | 'starting' | 'stopping';
  pid: number;
  startedAt: string;
  /** Last beat of the daemon's loop (ISO). */
  beatAt: string;
  config: string;
  running: { policy: string; startedAt: string }[];
  queued: number;
  nextRuns: { policy: string; at: string }[];
  openIncidents?: number;
  /** The daemon's memory at the beat (processMemory): for operators watching it over weeks. */
  memory?: ProcessMemory;
}

/**
 * Where the daemon's memory is, in bytes: `rssBytes` is what the OS counts (VmRSS); of it,
 * `heapUsedBytes`/`heapTotalBytes` are V8's JavaScript heap, `externalBytes` memory V8 objects
 * hold outside it (`arrayBuffersBytes` of it for ArrayBuffers and Buffers), and
 * `embeddedStoreBytes` the embedded store's WebAssembly memory (PostgreSQL in PGlite: it only
 * grows; absent with a PostgreSQL server).
 */
export interface ProcessMemory {
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  arrayBuffersBytes: number;
  embeddedStoreBytes?: number;
}

export function processMemory(store?: { memoryBytes?(): number }): ProcessMemory {
  const m = process.memoryUsage();
  let embeddedStoreBytes: number | undefined;
  try {
    embeddedStoreBytes = store?.memoryBytes?.();
  } catch {
    // A store being closed has no memory to report.
  }
  return {
    rssBytes: m.rss,
    heapUsedBytes: m.heapUsed,
    heapTotalBytes: m.heapTotal,
    externalBytes: m.external,
    arrayBuffersBytes: m.arrayBuffers,
    ...(embeddedStoreBytes !== undefined ? { embeddedStoreBytes } : {}),
  };
}

export class Liveness {
  private server: http.Server | undefined;
  private last: LivenessStatus | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly opts: { file?: string; port?: number; host: string; staleAfterMs: number },
  ) {}

  /** Starts the HTTP endpoint when a port is configured; returns the port it listens on. */
  async start(): Promise<number | undefined> {
    if (this.opts.port === undefined) return undefined;
    const server = http.createServer((req, res) => {
      const url = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' || (url !== '/healthz' && url !== '/livez')) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      const status = this.last;
      const alive = status !== undefined && status.status !== 'stopping' && Date.now() - Date.parse(status.beatAt) <= this.opts.staleAfterMs;
      res.writeHead(alive ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(status ?? { status: 'starting' }) + '\n');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => resolve());
    });
    this.server = server;
    return (server.address() as AddressInfo).port;
  }

  /** Records a beat; rewrites the file (atomically: a temporary file renamed over it). */
  beat(status: LivenessStatus): Promise<void> {
    this.last = status;
    const file = this.opts.file;
    if (!file) return Promise.resolve();
    this.writing = this.writing.then(() => writeFileAtomic(file, JSON.stringify(status, null, 2) + '\n')).catch(() => undefined);
    return this.writing;
  }

  /** Closes the endpoint and removes the file (a supervisor then sees the daemon gone). */
  async stop(): Promise<void> {
    await this.writing;
    if (this.server) {
      const server = this.server;
      this.server = undefined;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    if (this.opts.file) await fs.rm(this.opts.file, { force: true });
  }
}

let atomicWrites = 0;

/** Writes a temporary file beside `file` and renames it over `file`: readers never see half a file. */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  // A name of its own per write: two writes at once (a run's snapshot and the check's) must not
  // write into one temporary file, or the one renamed first can hold a mix of both.
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${++atomicWrites}.tmp`);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(tmp, text);
  await fs.rename(tmp, file);
}
