import os from 'node:os';
import { PassThrough, Writable, type Duplex } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import Docker from 'dockerode';
import { DEFAULTS } from '../../orchestrator/defaults.js';
import { VerificationError } from '../../orchestrator/errors.js';
import {
  LABEL_HOST,
  LABEL_PID,
  LABEL_POLICY,
  LABEL_RUN,
  type ExecOptions,
  type ExecResult,
  type LeftoverResources,
  type Sandbox,
  type SandboxOwner,
  type SandboxRuntime,
  type SandboxSpec,
} from '../sandbox-runtime.js';
import { OutputTail } from './output-tail.js';

/** Docker engine through dockerode: the local socket, DOCKER_HOST, or `docker.host` in config. */
export class DockerRuntime implements SandboxRuntime {
  readonly name = 'docker';
  readonly endpoint: string;
  /** The engine client, for tools that need more than sandboxes (image builds). */
  readonly docker: Docker;

  constructor(opts: { host?: string } = {}) {
    const host = opts.host ?? process.env.DOCKER_HOST;
    if (host?.startsWith('unix://')) {
      this.docker = new Docker({ socketPath: host.slice('unix://'.length) });
      this.endpoint = host;
    } else if (host) {
      const url = new URL(host.replace(/^tcp:/, 'http:'));
      this.docker = new Docker({ host: url.hostname, port: Number(url.port || 2375), protocol: 'http' });
      this.endpoint = host;
    } else {
      this.docker = new Docker({ socketPath: '/var/run/docker.sock' });
      this.endpoint = 'unix:///var/run/docker.sock';
    }
  }

  async ping(signal?: AbortSignal): Promise<{ version: string }> {
    try {
      const version = await withTimeout(this.docker.version(), 10_000, signal);
      return { version: `${version.Version} (API ${version.ApiVersion})` };
    } catch (err) {
      throw new VerificationError(
        'docker_unreachable',
        `Docker engine at ${this.endpoint} is unreachable (${errorCode(err)}); start it (systemctl start docker, or dockerd) or set DOCKER_HOST`,
        { cause: err },
      );
    }
  }

  async imageId(ref: string): Promise<string | undefined> {
    try {
      const info = await this.docker.getImage(ref).inspect();
      return info.Id;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw err;
    }
  }

  async create(spec: SandboxSpec, signal?: AbortSignal): Promise<Sandbox> {
    const imageId = await this.imageId(spec.image);
    if (!imageId) {
      const hint = spec.image.startsWith('backproof/')
        ? `build it: backproof images build ${spec.image.slice('backproof/'.length).split(':')[0]}`
        : `load it into the engine (docker load/pull) or set sandbox.image`;
      throw new VerificationError('image_missing', `sandbox image ${spec.image} is not in the Docker engine; ${hint}`);
    }
    const labels = {
      [LABEL_RUN]: spec.runId,
      [LABEL_POLICY]: spec.policy,
      [LABEL_HOST]: os.hostname(),
      [LABEL_PID]: String(process.pid),
    };
    const sandbox = new DockerSandbox(this.docker, spec.image, imageId);
    try {
      const mounts: Docker.MountSettings[] = [];
      for (const [i, target] of spec.volumes.entries()) {
        const volume = await this.docker.createVolume({ Name: `backproof-${spec.runId}-${i}`, Labels: labels });
        sandbox.volumes.push(volume.name);
        mounts.push({ Type: 'volume', Source: volume.name, Target: target });
      }
      signal?.throwIfAborted();
      const container = await this.docker.createContainer({
        name: `backproof-${spec.runId}`,
        Image: imageId,
        Cmd: spec.cmd,
        User: spec.user,
        Labels: labels,
        NetworkDisabled: true,
        HostConfig: {
          NetworkMode: 'none',
          CapDrop: ['ALL'],
          CapAdd: spec.capAdd ?? [],
          SecurityOpt: ['no-new-privileges'],
          ReadonlyRootfs: spec.readOnlyRoot,
          Memory: spec.memoryBytes,
          MemorySwap: spec.memoryBytes,
          NanoCpus: Math.round(spec.cpus * 1e9),
          PidsLimit: spec.pids,
          ShmSize: spec.shmBytes,
          Tmpfs: Object.fromEntries(
            Object.entries(spec.tmpfs).map(([p, size]) => [p, `rw,nosuid,nodev,size=${size},mode=1777`]),
          ),
          Mounts: mounts,
          Init: true,
          Privileged: false,
        },
      });
      sandbox.container = container;
      signal?.throwIfAborted();
      await container.start();
      return sandbox;
    } catch (err) {
      await sandbox.remove();
      if (err instanceof VerificationError || (err as Error).name === 'AbortError') throw err;
      throw new VerificationError('sandbox_failed', `could not start a sandbox from ${spec.image}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  async leftovers(runId: string): Promise<LeftoverResources> {
    const filters = { label: [`${LABEL_RUN}=${runId}`] };
    const containers = await this.docker.listContainers({ all: true, filters });
    const volumes = (await this.docker.listVolumes({ filters })).Volumes ?? [];
    return { containers: containers.map((c) => c.Id), volumes: volumes.map((v) => v.Name) };
  }

  async reap(keep: (owner: SandboxOwner) => boolean | Promise<boolean>): Promise<LeftoverResources> {
    const filters = { label: [LABEL_RUN] };
    const removed: LeftoverResources = { containers: [], volumes: [] };
    for (const c of await this.docker.listContainers({ all: true, filters })) {
      const owner = ownerOf(c.Labels);
      if (!owner || (await keep(owner))) continue;
      await removeUntilGone(() => this.docker.getContainer(c.Id).remove({ force: true, v: true }));
      removed.containers.push(c.Id);
    }
    for (const v of (await this.docker.listVolumes({ filters })).Volumes ?? []) {
      const owner = ownerOf(v.Labels ?? {});
      if (!owner || (await keep(owner))) continue;
      await removeUntilGone(() => this.docker.getVolume(v.Name).remove());
      removed.volumes.push(v.Name);
    }
    return removed;
  }
}

function ownerOf(labels: Record<string, string>): SandboxOwner | undefined {
  const runId = labels[LABEL_RUN];
  if (!runId) return undefined;
  const pid = Number(labels[LABEL_PID]);
  return { runId, host: labels[LABEL_HOST], pid: Number.isInteger(pid) && pid > 0 ? pid : undefined };
}

class DockerSandbox implements Sandbox {
  container: Docker.Container | undefined;
  readonly volumes: string[] = [];
  private removed = false;

  constructor(
    private readonly docker: Docker,
    readonly image: string,
    readonly imageId: string,
  ) {}

  get id(): string {
    return this.container?.id ?? '';
  }

  async exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const container = this.container;
    if (!container) throw new Error('sandbox is not started');
    const { signal } = opts;
    signal?.throwIfAborted();
    const exec = await container.exec({
      Cmd: argv,
      AttachStdin: Boolean(opts.stdin),
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      User: opts.user,
      Env: opts.env ? Object.entries(opts.env).map(([k, v]) => `${k}=${v}`) : undefined,
    });
    const stream = (await exec.start({ hijack: true, stdin: Boolean(opts.stdin) })) as Duplex;
    const max = opts.maxOutputBytes ?? DEFAULTS.outputTailBytes;
    const stdout = new OutputTail(max);
    const stderr = new OutputTail(max);
    const outOut = new PassThrough();
    const errOut = new PassThrough();
    if (opts.stdout) outOut.pipe(opts.stdout);
    else outOut.on('data', (c: Buffer) => stdout.push(c));
    errOut.on('data', (c: Buffer) => stderr.push(c));
    this.docker.modem.demuxStream(stream, outOut, errOut);

    const onAbort = (): void => {
      stream.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', reject);
    });
    let sourceError: unknown;
    let stdinComplete = !opts.stdin;
    opts.stdin?.once('error', (err) => {
      sourceError ??= err;
    });
    const feeding = opts.stdin
      ? pipeline(opts.stdin, stdinSink(stream)).then(
          () => {
            stdinComplete = true;
          },
          () => {
            // The input failed (corrupt gzip, storage dropped) or the process stopped reading:
            // either way stop feeding it; which one it was is decided below.
            stream.destroy();
          },
        )
      : Promise.resolve();
    try {
      await ended;
      outOut.end();
      errOut.end();
      if (opts.stdout) await finished(opts.stdout);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    // The process may exit before it has read all of its input (a tool that fails early).
    opts.stdin?.destroy();
    await feeding;
    if (signal?.aborted) throw signal.reason;
    // The input may have failed before this exec attached its listener (a small input read in
    // full while the engine set the exec up): the stream remembers its error.
    sourceError ??= opts.stdin?.errored ?? undefined;
    if (sourceError) throw sourceError;
    let info = await exec.inspect();
    for (let i = 0; info.Running && i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      info = await exec.inspect();
    }
    return { exitCode: info.ExitCode ?? -1, stdout: stdout.text(), stderr: stderr.text(), stdinComplete };
  }

  async remove(): Promise<void> {
    if (this.removed) return;
    const container = this.container;
    if (container) await removeUntilGone(() => container.remove({ force: true, v: true }));
    for (const name of this.volumes) await removeUntilGone(() => this.docker.getVolume(name).remove());
    this.removed = true;
  }
}

/** Writes into the hijacked connection and half-closes it at the end, so the process sees EOF. */
function stdinSink(stream: Duplex): Writable {
  return new Writable({
    highWaterMark: 1024 * 1024,
    write(chunk: Buffer, _enc, cb) {
      if (stream.destroyed || stream.writableEnded) return cb(new Error('the sandboxed process stopped reading its input'));
      if (stream.write(chunk)) cb();
      else stream.once('drain', () => cb());
    },
    final(cb) {
      stream.end();
      cb();
    },
  });
}

/**
 * Removes until the engine says it is gone: a 409 means a removal already in progress (a
 * container) or still in use (a volume whose container is going away), so try again shortly.
 */
async function removeUntilGone(remove: () => Promise<unknown>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await remove();
      return;
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status === 404) return;
      if (status !== 409 || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

function errorCode(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return e.code ?? e.message ?? String(err);
}

async function withTimeout<T>(p: Promise<T>, ms: number, signal?: AbortSignal): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${ms} ms`), { code: 'ETIMEDOUT' })), ms);
    signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
