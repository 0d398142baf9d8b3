import os from 'node:os';
import { PassThrough, Writable, type Duplex, type Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import Docker from 'dockerode';
import { giveBack, givesBack } from '../../orchestrator/core/chunk-pool.js';
import { DEFAULTS } from '../../orchestrator/core/defaults.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
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
  type ServiceSpec,
} from '../sandbox-runtime.js';
import { OutputTail } from '../../orchestrator/core/output-tail.js';
import { exhaustionOf } from '../sandbox-exhaustion.js';
import { timeoutSignal } from '../../orchestrator/core/timeout-signal.js';

export interface DockerRuntimeOptions {
  /**
   * `unix:///path`, `tcp://host:port` (with `tls`: HTTPS with a client certificate, as
   * `dockerd --tlsverify` wants), `https://host:port` or `ssh://user@host[:port]` (through the
   * SSH agent at SSH_AUTH_SOCK, or `sshKey`); default DOCKER_HOST, else the local socket.
   */
  host?: string;
  /** PEM contents (not paths): the CA that signed the engine's certificate, and our client certificate and key. */
  tls?: { ca: string; cert: string; key: string };
  /** PEM private key for `ssh://` hosts when no agent is used. */
  sshKey?: string;
  /**
   * Deadline of each engine call at teardown and when reaping (removals, listings, a log tail's
   * exec). A hung engine then fails the call instead of holding the run (DEFAULTS.engineCallTimeoutMs).
   */
  engineCallTimeoutMs?: number;
}

/** Docker engine through dockerode: the local socket, DOCKER_HOST, or `docker.host` in config. */
export class DockerRuntime implements SandboxRuntime {
  readonly name = 'docker';
  readonly endpoint: string;
  /** The engine client, for tools that need more than sandboxes (image builds). */
  readonly docker: Docker;
  readonly engineCallTimeoutMs: number;

  constructor(opts: DockerRuntimeOptions = {}) {
    this.engineCallTimeoutMs = opts.engineCallTimeoutMs ?? DEFAULTS.engineCallTimeoutMs;
    const host = opts.host ?? process.env.DOCKER_HOST;
    if (host?.startsWith('unix://')) {
      this.docker = new Docker({ socketPath: host.slice('unix://'.length) });
      this.endpoint = host;
    } else if (host?.startsWith('ssh://')) {
      const url = new URL(host);
      const sshOptions = opts.sshKey !== undefined ? { privateKey: opts.sshKey } : { agent: process.env.SSH_AUTH_SOCK };
      this.docker = new Docker({ protocol: 'ssh', host: url.hostname, port: Number(url.port || 22), username: decodeURIComponent(url.username) || undefined, sshOptions } as Docker.DockerOptions);
      this.endpoint = `ssh://${url.host}`; // no user name or secret in evidence and logs
    } else if (host) {
      const url = new URL(host.replace(/^tcp:/, 'http:'));
      const secure = opts.tls !== undefined || url.protocol === 'https:';
      this.docker = new Docker({
        host: url.hostname,
        port: Number(url.port || (secure ? 2376 : 2375)),
        protocol: secure ? 'https' : 'http',
        ...(opts.tls ? { ca: opts.tls.ca, cert: opts.tls.cert, key: opts.tls.key } : {}),
      });
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

  async imageId(ref: string, signal?: AbortSignal): Promise<string | undefined> {
    try {
      const info = await this.engineCall(`inspect image ${ref}`, () => this.docker.getImage(ref).inspect(), signal ? { signal } : {});
      return info.Id;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw err;
    }
  }

  async create(spec: SandboxSpec, signal?: AbortSignal): Promise<Sandbox> {
    for (const image of new Set([spec.image, ...(spec.services ?? []).map((s) => s.image)])) await this.requireImage(image, signal);
    const imageId = (await this.imageId(spec.image, signal))!;
    const labels = {
      [LABEL_RUN]: spec.runId,
      [LABEL_POLICY]: spec.policy,
      [LABEL_HOST]: os.hostname(),
      [LABEL_PID]: String(process.pid),
    };
    const sandbox = new DockerSandbox(this, spec, imageId, labels);
    try {
      // Each engine call within the deadline: a frozen engine fails the creation instead of holding
      // the run; what the engine makes after the deadline is removed when it answers (and is
      // labelled for the reaper anyway).
      for (const [i, target] of spec.volumes.entries()) {
        const name = `backproof-${spec.runId}-${i}`;
        const volume = await this.engineCall(`create volume ${name}`, () => this.docker.createVolume({ Name: name, Labels: labels }), {
          ...(signal ? { signal } : {}),
          onLate: (late) => void this.docker.getVolume(late.name).remove().catch(() => undefined),
        });
        sandbox.volumes.push(volume.name);
        sandbox.mounts.push({ Type: 'volume', Source: volume.name, Target: target });
      }
      signal?.throwIfAborted();
      const container = await this.engineCall(
        'create container',
        () =>
          this.docker.createContainer(
            containerOptions({ name: `backproof-${spec.runId}`, image: imageId, cmd: spec.cmd, user: spec.user, capAdd: spec.capAdd, env: spec.env }, spec, labels, sandbox.mounts, 'none'),
          ),
        { ...(signal ? { signal } : {}), onLate: (late) => void late.remove({ force: true, v: true }).catch(() => undefined) },
      );
      sandbox.container = container;
      signal?.throwIfAborted();
      await this.engineCall(`start container ${container.id.slice(0, 12)}`, () => container.start(), signal ? { signal } : {});
      for (const service of spec.services ?? []) await sandbox.addService(service, signal);
      return sandbox;
    } catch (err) {
      await sandbox.remove();
      if (err instanceof VerificationError || (err as Error).name === 'AbortError') throw err;
      throw new VerificationError('sandbox_failed', `could not start a sandbox from ${spec.image}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** Throws `image_missing` with what to do when the engine lacks the image. */
  async requireImage(ref: string, signal?: AbortSignal): Promise<string> {
    const id = await this.imageId(ref, signal);
    if (id) return id;
    const hint = ref.startsWith('backproof/')
      ? `build it: backproof images build ${ref.slice('backproof/'.length).split(':')[0]}`
      : `load it into the engine (docker load/pull) or set sandbox.image`;
    throw new VerificationError('image_missing', `sandbox image ${ref} is not in the Docker engine; ${hint}`);
  }

  async leftovers(runId: string): Promise<LeftoverResources> {
    const filters = { label: [`${LABEL_RUN}=${runId}`] };
    const containers = await this.engineCall('list containers', (abortSignal) => this.docker.listContainers({ all: true, filters, abortSignal }));
    const volumes = (await this.engineCall('list volumes', (abortSignal) => this.docker.listVolumes({ filters, abortSignal }))).Volumes ?? [];
    return { containers: containers.map((c) => c.Id), volumes: volumes.map((v) => v.Name) };
  }

  async reap(keep: (owner: SandboxOwner) => boolean | Promise<boolean>): Promise<LeftoverResources> {
    const filters = { label: [LABEL_RUN] };
    const removed: LeftoverResources = { containers: [], volumes: [] };
    for (const c of await this.engineCall('list containers', (abortSignal) => this.docker.listContainers({ all: true, filters, abortSignal }))) {
      const owner = ownerOf(c.Labels);
      if (!owner || (await keep(owner))) continue;
      await this.removeContainer(this.docker.getContainer(c.Id));
      removed.containers.push(c.Id);
    }
    for (const v of (await this.engineCall('list volumes', (abortSignal) => this.docker.listVolumes({ filters, abortSignal }))).Volumes ?? []) {
      const owner = ownerOf(v.Labels ?? {});
      if (!owner || (await keep(owner))) continue;
      await this.removeVolume(v.Name);
      removed.volumes.push(v.Name);
    }
    return removed;
  }

  /** Force-removes a container and its anonymous volumes, each attempt within the engine deadline. */
  removeContainer(container: Docker.Container): Promise<void> {
    return removeUntilGone(() => this.engineCall(`remove container ${container.id.slice(0, 12)}`, (abortSignal) => container.remove({ force: true, v: true, abortSignal })));
  }

  removeVolume(name: string): Promise<void> {
    return removeUntilGone(() => this.engineCall(`remove volume ${name}`, (abortSignal) => this.docker.getVolume(name).remove({ abortSignal })));
  }

  /**
   * One engine call within `engineCallTimeoutMs` (and `signal`, when given). `call` gets a signal
   * that fires then; dockerode hands it to the HTTP request as `abortSignal`, which ends the
   * request. The call is also raced against it, so one that ignores it is left to die: `onLate`
   * disposes of what it returns if it ever does (a hijacked exec stream). On the deadline the
   * error is `docker_unreachable`, naming the call and the time waited; on `signal`, its reason.
   */
  async engineCall<T>(what: string, call: (abortSignal: AbortSignal) => Promise<T>, opts: { signal?: AbortSignal; onLate?: (value: T) => void } = {}): Promise<T> {
    const { signal, onLate } = opts;
    const deadline = timeoutSignal(this.engineCallTimeoutMs);
    const abortSignal = signal ? AbortSignal.any([signal, deadline]) : deadline;
    abortSignal.throwIfAborted();
    const pending = call(abortSignal);
    let onAbort = (): void => undefined;
    const stopped = new Promise<never>((_, reject) => {
      onAbort = () => reject(new Error('aborted'));
      abortSignal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([pending, stopped]);
    } catch (err) {
      // Whatever the call still does is of no interest now; never an unhandled rejection.
      pending.then((late) => onLate?.(late), () => undefined);
      if (signal?.aborted) throw signal.reason;
      if (deadline.aborted) {
        throw new VerificationError('docker_unreachable', `the Docker engine at ${this.endpoint} did not answer within ${this.engineCallTimeoutMs / 1000} s (${what})`, { cause: err });
      }
      throw err;
    } finally {
      abortSignal.removeEventListener('abort', onAbort);
    }
  }
}

/**
 * One container of a sandbox, hardened the same way whatever its role: no network of its own
 * (`none` for the main container; a service joins the main one's namespace, which has only
 * loopback), every capability dropped and only the documented ones added back, no privilege
 * gain, read-only root, limits, an init process.
 */
function containerOptions(
  c: { name: string; image: string; cmd: string[]; user?: string; capAdd?: string[]; env?: Record<string, string> },
  spec: SandboxSpec,
  labels: Record<string, string>,
  mounts: Docker.MountSettings[],
  networkMode: string,
): Docker.ContainerCreateOptions {
  return {
    name: c.name,
    Image: c.image,
    Cmd: c.cmd,
    User: c.user,
    Env: c.env ? Object.entries(c.env).map(([k, v]) => `${k}=${v}`) : undefined,
    Labels: labels,
    ...(networkMode === 'none' ? { NetworkDisabled: true } : {}),
    HostConfig: {
      NetworkMode: networkMode,
      CapDrop: ['ALL'],
      CapAdd: c.capAdd ?? [],
      SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: spec.readOnlyRoot,
      Memory: spec.memoryBytes,
      MemorySwap: spec.memoryBytes,
      NanoCpus: Math.round(spec.cpus * 1e9),
      PidsLimit: spec.pids,
      ShmSize: spec.shmBytes,
      Tmpfs: Object.fromEntries(Object.entries(spec.tmpfs).map(([p, size]) => [p, `rw,nosuid,nodev,size=${size},mode=1777`])),
      Mounts: mounts,
      Init: true,
      Privileged: false,
      ...(networkMode === 'none' && spec.devices?.length ? { Devices: spec.devices.map((d) => (typeof d === 'string' ? { PathOnHost: d, PathInContainer: d, CgroupPermissions: 'rw' } : { PathOnHost: d.host, PathInContainer: d.container, CgroupPermissions: 'rw' })) } : {}),
    },
  };
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
  readonly mounts: Docker.MountSettings[] = [];
  private readonly members = new Map<string, Docker.Container>();
  private removed = false;

  constructor(
    private readonly runtime: DockerRuntime,
    private readonly spec: SandboxSpec,
    readonly imageId: string,
    private readonly labels: Record<string, string>,
  ) {}

  get image(): string {
    return this.spec.image;
  }

  get id(): string {
    return this.container?.id ?? '';
  }

  get services(): readonly string[] {
    return [...this.members.keys()];
  }

  async addService(service: ServiceSpec, signal?: AbortSignal): Promise<void> {
    if (!this.container) throw new Error('sandbox is not started');
    if (this.members.has(service.name)) throw new Error(`the sandbox already has a service "${service.name}"`);
    const image = await this.runtime.requireImage(service.image, signal);
    signal?.throwIfAborted();
    const main = this.container.id;
    const container = await this.runtime.engineCall(
      `create service ${service.name}`,
      () =>
        this.runtime.docker.createContainer(
          containerOptions(
            { name: `backproof-${this.spec.runId}-${service.name}`, image, cmd: service.cmd, user: service.user, capAdd: service.capAdd, env: service.env },
            this.spec,
            this.labels,
            this.mounts,
            `container:${main}`,
          ),
        ),
      { ...(signal ? { signal } : {}), onLate: (late) => void late.remove({ force: true, v: true }).catch(() => undefined) },
    );
    this.members.set(service.name, container);
    await this.runtime.engineCall(`start service ${service.name}`, () => container.start(), signal ? { signal } : {});
  }

  async exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const container = opts.service ? this.members.get(opts.service) : this.container;
    if (!container) throw new Error(opts.service ? `the sandbox has no service "${opts.service}"` : 'sandbox is not started');
    const { signal } = opts;
    signal?.throwIfAborted();
    // Each engine call within the engine deadline and the caller's signal: a log tail read at
    // teardown (often without a signal) must not wait for a hung engine.
    const engine = this.runtime;
    const exec = await engine.engineCall('exec create', (abortSignal) => container.exec({
      abortSignal,
      Cmd: argv,
      AttachStdin: Boolean(opts.stdin),
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      User: opts.user,
      Env: opts.env || (!opts.service && this.spec.env) ? Object.entries({ ...(opts.service ? {} : this.spec.env), ...opts.env }).map(([k, v]) => `${k}=${v}`) : undefined,
    }), { signal });
    // No abortSignal on the request itself: it would end the hijacked connection mid-exec.
    const stream = await engine.engineCall('exec start', () => exec.start({ hijack: true, stdin: Boolean(opts.stdin) }), {
      signal,
      onLate: (late) => late.destroy(),
    });
    const max = opts.maxOutputBytes ?? DEFAULTS.outputTailBytes;
    const stdout = new OutputTail(Math.floor(max / 2));
    const stderr = new OutputTail(Math.floor(max / 2));
    const outOut = new PassThrough({ highWaterMark: 1024 * 1024 });
    const errOut = new PassThrough();
    if (opts.stdout) {
      outOut.pipe(opts.stdout);
      // A consumer that goes away stops the process's output (which waits on it) for good.
      opts.stdout.once('close', () => {
        if (!stream.readableEnded) stream.destroy();
      });
    } else outOut.on('data', (c: Buffer) => stdout.push(c));
    errOut.on('data', (c: Buffer) => stderr.push(c));
    demux(stream, outOut, errOut);

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
      ? pipeline(opts.stdin, stdinSink(stream, opts.stdin)).then(
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
      // The connection failed or was cut (cancelled): stop the input too, so its producer ends.
      opts.stdin?.destroy();
      if (signal?.aborted) throw signal.reason;
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    // The process may exit before it has read all of its input (a tool that fails early). The
    // engine then keeps the connection's write side open, draining what is still sent, for
    // seconds or minutes with a large backup: stop feeding and close the connection.
    const fed = await Promise.race([feeding.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 250).unref())]);
    if (!fed) {
      opts.stdin?.destroy();
      stream.destroy();
    }
    await feeding;
    if (signal?.aborted) throw signal.reason;
    // The input may have failed before this exec attached its listener (a small input read in
    // full while the engine set the exec up): the stream remembers its error.
    sourceError ??= opts.stdin?.errored ?? undefined;
    if (sourceError) throw sourceError;
    const inspect = (): Promise<Docker.ExecInspectInfo> => engine.engineCall('exec inspect', (abortSignal) => exec.inspect({ abortSignal }));
    let info = await inspect();
    for (let i = 0; info.Running && i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      info = await inspect();
    }
    return { exitCode: info.ExitCode ?? -1, stdout: stdout.text(), stderr: stderr.text(), stdinComplete };
  }

  exhaustion(signal?: AbortSignal): Promise<string | undefined> {
    return exhaustionOf(this.spec, this.services, (argv, service) => this.exec(argv, { ...(service ? { service } : {}), ...(signal ? { signal } : {}), maxOutputBytes: 16 * 1024 }));
  }

  /**
   * Each engine call within the runtime's engineCallTimeoutMs: a hung engine fails the removal
   * (`docker_unreachable`) instead of holding the run; what is left carries the run's labels and
   * the reaper removes it at the next start.
   */
  async remove(): Promise<void> {
    if (this.removed) return;
    // Services first: they live in the main container's namespace and on its volumes.
    for (const member of this.members.values()) await this.runtime.removeContainer(member);
    const container = this.container;
    if (container) await this.runtime.removeContainer(container);
    for (const name of this.volumes) await this.runtime.removeVolume(name);
    this.removed = true;
  }
}

/**
 * Splits Docker's multiplexed exec stream (8-byte frame headers: type, 3 zero bytes, length)
 * into stdout and stderr. Unlike dockerode's demuxStream it honours backpressure: when stdout's
 * consumer is slow the connection is paused, so a fast producer (a decompressor) never piles
 * up its output in this process's memory.
 */
function demux(source: Duplex, out: Writable, err: Writable): void {
  let pending: Buffer = Buffer.alloc(0);
  source.on('data', (chunk: Buffer) => {
    pending = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 8) {
      const length = pending.readUInt32BE(4);
      if (pending.length < 8 + length) break;
      const payload = pending.subarray(8, 8 + length);
      const target = pending[0] === 2 ? err : out;
      pending = pending.subarray(8 + length);
      if (!target.write(payload) && target === out) {
        source.pause();
        out.once('drain', () => source.resume());
      }
    }
  });
}

/**
 * Writes into the hijacked connection and half-closes it at the end, so the process sees EOF.
 * A pooled input's chunks (see chunk-pool.ts) go back to their pool once the connection has
 * written them.
 */
function stdinSink(stream: Duplex, input: Readable): Writable {
  const recycle = (chunk: Buffer) => (err?: Error | null): void => {
    if (!err && givesBack(input)) giveBack(chunk);
  };
  return new Writable({
    highWaterMark: 1024 * 1024,
    write(chunk: Buffer, _enc, cb) {
      if (stream.destroyed || stream.writableEnded) return cb(new Error('the sandboxed process stopped reading its input'));
      if (stream.write(chunk, recycle(chunk))) return cb();
      const done = (): void => {
        stream.off('drain', done);
        stream.off('close', done);
        cb(stream.destroyed ? new Error('the sandboxed process stopped reading its input') : undefined);
      };
      stream.on('drain', done);
      stream.on('close', done);
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
