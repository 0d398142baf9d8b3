import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * A backproof process holding the embedded store in `dataDir`, as the daemon does: it opens the
 * store itself (`join: false`) and shares it on its socket, so stores this test process opens
 * there go through it (evidence/store-socket.ts). Run as a script, it holds until SIGTERM.
 */
export interface StoreHolder {
  pid: number;
  /** What the holder wrote on stderr (its drain message, warnings). */
  stderr(): string;
  /** SIGTERM; resolves with its exit code once it has closed the store. */
  stop(): Promise<number | null>;
  /** SIGKILL: the holder dies without closing anything. */
  kill(): Promise<void>;
}

const self = fileURLToPath(import.meta.url);

export async function startStoreHolder(dataDir: string): Promise<StoreHolder> {
  const child = spawn(process.execPath, ['--import', 'tsx', self, dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('ready\n')) resolve();
    });
    void exited.then((code) => reject(new Error(`the store holder exited (${code}) before it was ready: ${err}`)));
  });
  return {
    pid: child.pid!,
    stderr: () => err,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

if (process.argv[1] === self) {
  const { createPgliteExecutor } = await import('../../orchestrator/evidence/pglite-executor.js');
  const executor = await createPgliteExecutor(process.argv[2]!, { join: false });
  process.stdout.write('ready\n');
  const keepAlive = setInterval(() => undefined, 60_000);
  process.once('SIGTERM', () => {
    void executor.close().then(() => {
      clearInterval(keepAlive);
      process.exitCode = 0;
    });
  });
}
