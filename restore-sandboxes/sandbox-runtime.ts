import type { Readable } from 'node:stream';

/**
 * The sandbox seam. A restore never runs outside a sandbox: no network, no capabilities beyond a
 * restorer's documented minimum, no privilege gain, bounded memory/CPU/pids/scratch, a hard
 * timeout, labels naming the run so that a reaper can always find leftovers.
 *
 * Docker through dockerode is the implementation here (docker/docker-runtime.ts); the seam
 * leaves room for others (a Kubernetes Job, a remote engine) as long as they honour the same
 * isolation and the same `remove()`-is-always-safe contract.
 */
export interface SandboxSpec {
  runId: string;
  policy: string;
  image: string;
  /** Main process; it must exist in the image (images built by `docker import` have no CMD). */
  cmd: string[];
  user?: string;
  /** Capabilities added back after dropping ALL; each one documented by the restorer. */
  capAdd?: string[];
  memoryBytes: number;
  cpus: number;
  pids: number;
  shmBytes: number;
  /** Scratch tmpfs mounts: path -> size in bytes. */
  tmpfs: Record<string, number>;
  /** Per-run volumes (labelled, removed with the sandbox): mount path inside the container. */
  volumes: string[];
  readOnlyRoot: boolean;
  /**
   * Host devices passed to the main container (kind vm: /dev/kvm, for hardware acceleration);
   * nothing else about the isolation changes. A device is a host path, seen at the same path in
   * the container, or `{ host, container }` to show a host path under another name.
   */
  devices?: Array<string | { host: string; container: string }>;
  /** Environment of the main process and of every exec. */
  env?: Record<string, string>;
  /**
   * Further containers started with the main one, like a pod: each shares the main container's
   * network namespace (so they talk over 127.0.0.1 and still have no network) and its volumes,
   * under the same limits and hardening.
   */
  services?: ServiceSpec[];
}

/** A further container of a sandbox. */
export interface ServiceSpec {
  /** Lowercase name, unique in the sandbox; `exec(..., { service })` runs in it. */
  name: string;
  image: string;
  cmd: string[];
  user?: string;
  capAdd?: string[];
  env?: Record<string, string>;
}

export interface ExecOptions {
  /**
   * Bytes fed to the process's stdin; the stream is ended when they end. An error of this stream
   * (not of the process) is thrown from exec(), so callers can tell a bad input from a bad tool.
   */
  stdin?: Readable;
  user?: string;
  env?: Record<string, string>;
  signal?: AbortSignal;
  /** When given, stdout streams here (binary safe) instead of being collected. */
  stdout?: NodeJS.WritableStream;
  /** Bytes kept of stdout and stderr each (the tail, plus the head for stdout). */
  maxOutputBytes?: number;
  /** Run in this service container instead of the main one. */
  service?: string;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** False when the process ended before it had read all of its stdin. */
  stdinComplete: boolean;
}

export interface Sandbox {
  readonly id: string;
  readonly image: string;
  readonly imageId: string;
  /** argv is run as is, never through a shell on the host. */
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts one more container in the sandbox's network namespace (e.g. a probe's helper). */
  addService(service: ServiceSpec, signal?: AbortSignal): Promise<void>;
  /** Names of the service containers started so far. */
  readonly services: readonly string[];
  /**
   * Why the sandbox ran out of memory or disk, in one line naming the limit, when it did
   * (sandbox-exhaustion.ts); undefined when it did not or cannot tell. Asked after a step failed.
   */
  exhaustion?(signal?: AbortSignal): Promise<string | undefined>;
  /** Safe to call more than once and after a failed start. */
  remove(): Promise<void>;
}

export interface LeftoverResources {
  containers: string[];
  volumes: string[];
}

export interface SandboxRuntime {
  readonly name: string;
  /** Where the engine is, for messages ("unix:///var/run/docker.sock"). */
  readonly endpoint: string;
  /** Throws a VerificationError `docker_unreachable` with a hint when the engine does not answer. */
  ping(signal?: AbortSignal): Promise<{ version: string }>;
  imageId(ref: string): Promise<string | undefined>;
  create(spec: SandboxSpec, signal?: AbortSignal): Promise<Sandbox>;
  /** Sandbox resources of one run that still exist. */
  leftovers(runId: string): Promise<LeftoverResources>;
  /** Removes every labelled resource whose owner says it is not to be kept. */
  reap(keep: (owner: SandboxOwner) => boolean | Promise<boolean>): Promise<LeftoverResources>;
}

/** Who made a sandbox, from its labels. */
export interface SandboxOwner {
  runId: string;
  host?: string;
  pid?: number;
}

export const LABEL_RUN = 'backproof.run';
export const LABEL_PID = 'backproof.pid';
export const LABEL_POLICY = 'backproof.policy';
export const LABEL_HOST = 'backproof.host';
