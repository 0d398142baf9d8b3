import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';

/**
 * A second Docker engine of our own (its own socket, data root and exec root), so a test can
 * stop an engine for real without disturbing the shared one other tests use. Stopped by
 * signalling the one pid we started.
 */
export interface PrivateDockerd {
  host: string;
  docker: Docker;
  /** Stops the engine like `systemctl stop docker` (SIGTERM, waits for exit). */
  stop(): Promise<void>;
  /** Kills the engine (SIGKILL to dockerd, as a crash): its containerd and containers are left as they are. */
  kill(): Promise<void>;
  /** Starts it again on the same state. */
  start(): Promise<void>;
  /** Copies an image from the shared engine. */
  loadImage(ref: string): Promise<void>;
  /** Stops it and removes its state. */
  destroy(): Promise<void>;
}

export async function startPrivateDockerd(opts: { extraArgs?: string[] } = {}): Promise<PrivateDockerd> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-dockerd-'));
  const socket = path.join(dir, 'docker.sock');
  const host = `unix://${socket}`;
  const docker = new Docker({ socketPath: socket });
  let child: ChildProcess | undefined;

  async function start(): Promise<void> {
    // After a kill, dockerd's containerd died with it (a zombie, or gone) but left its pid file:
    // a new dockerd would wait for that containerd to answer. Start it afresh.
    await fs.rm(path.join(dir, 'exec', 'containerd', 'containerd.pid'), { force: true });
    const log = await fs.open(path.join(dir, 'dockerd.log'), 'a');
    child = spawn(
      'dockerd',
      ['--host', host, '--data-root', path.join(dir, 'data'), '--exec-root', path.join(dir, 'exec'), '--pidfile', path.join(dir, 'dockerd.pid'), '--bridge=none', '--iptables=false', '--ip-masq=false', ...(opts.extraArgs ?? [])],
      { stdio: ['ignore', log.fd, log.fd] },
    );
    child.once('exit', () => void log.close());
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await docker.ping();
        return;
      } catch (err) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`private dockerd did not start: ${(err as Error).message}`, { cause: err });
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  async function stop(): Promise<void> {
    const c = child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
    if (c.exitCode === null) {
      c.kill('SIGKILL');
      await exited;
    }
  }

  async function kill(): Promise<void> {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  }

  await start();
  return {
    host,
    docker,
    stop,
    kill,
    start,
    async loadImage(ref: string) {
      const source = await new Docker().getImage(ref).get();
      const response = await docker.loadImage(source);
      await new Promise<void>((resolve, reject) => docker.modem.followProgress(response, (err: Error | null) => (err ? reject(err) : resolve())));
    },
    async destroy() {
      await stop();
      // Unmount anything the engine left mounted under its state before removing it.
      const mounts = (await fs.readFile('/proc/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(dir));
      for (const m of mounts.reverse()) await new Promise((r) => spawn('umount', ['-l', m]).once('exit', r));
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
