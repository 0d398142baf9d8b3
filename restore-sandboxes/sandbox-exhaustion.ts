import { formatBytes } from '../orchestrator/core/format.js';
import type { ExecResult, SandboxSpec } from './sandbox-runtime.js';

/**
 * Whether a sandbox ran out of memory or disk: asked when a step in it failed, because a restore
 * tool killed at the memory limit or stopped by a full disk says nothing about the backup. The
 * answer comes from the kernel, never from what a tool printed (a backup can make a tool print
 * anything):
 * - memory: the `oom_kill` counter of each container's memory cgroup (cgroup v1
 *   `memory.oom_control`, v2 `memory.events`), read inside the container;
 * - disk: `df` of every writable mount of the sandbox (its volumes and tmpfs), full when less
 *   than max(1 MiB, 0.5%) is left, which is where writes get ENOSPC.
 * Each read runs as its own exec with the image's `cat` and `df`; an image without them, or a
 * container that is gone, answers nothing for that part (the step's own verdict stands).
 */

type Exec = (argv: string[], container: string | undefined) => Promise<ExecResult>;

const OOM_FILES = ['/sys/fs/cgroup/memory/memory.oom_control', '/sys/fs/cgroup/memory.events'];
const MIN_FREE_BYTES = 1024 * 1024;
const MIN_FREE_SHARE = 0.005;

export interface MountUse {
  mount: string;
  sizeBytes: number;
  freeBytes: number;
}

/**
 * One line a person can act on when the sandbox ran out of memory or disk, else undefined.
 * `services`: the sandbox's service containers, asked besides the main one (`undefined` to `exec`).
 */
export async function exhaustionOf(spec: Pick<SandboxSpec, 'memoryBytes' | 'tmpfs' | 'volumes'>, services: readonly string[], exec: Exec): Promise<string | undefined> {
  const found: string[] = [];
  let killed = 0;
  for (const container of [undefined, ...services]) {
    const r = await exec(['cat', ...OOM_FILES], container).catch(() => undefined);
    killed += r ? oomKills(r.stdout) : 0;
  }
  if (killed > 0) {
    found.push(`the sandbox ran out of memory: the kernel killed ${killed} process(es) at its memory limit of ${formatBytes(spec.memoryBytes)}; raise sandbox.memory`);
  }
  const mounts = [...Object.keys(spec.tmpfs), ...spec.volumes];
  if (mounts.length > 0) {
    const r = await exec(['df', '-P', '-k', ...mounts], undefined).catch(() => undefined);
    for (const use of r ? mountUse(r.stdout) : []) {
      if (!isFull(use)) continue;
      const tmpfs = use.mount in spec.tmpfs;
      found.push(
        `the sandbox ran out of disk space: ${use.mount} has ${formatBytes(use.freeBytes)} free of ${formatBytes(use.sizeBytes)}; ${
          tmpfs ? `raise sandbox.tmp (${use.mount} is a tmpfs of that size)` : "free space where the Docker engine keeps its volumes"
        }`,
      );
    }
  }
  return found.length > 0 ? found.join('; ') : undefined;
}

/** The `oom_kill N` counter of cgroup v1's memory.oom_control or v2's memory.events (0 when absent). */
export function oomKills(text: string): number {
  let n = 0;
  for (const m of text.matchAll(/^oom_kill (\d+)$/gm)) n += Number(m[1]);
  return n;
}

/** `df -P -k` output: one row per mount (the header and unparsable rows skipped). */
export function mountUse(text: string): MountUse[] {
  const rows: MountUse[] = [];
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 6) continue;
    const [size, , free] = cols.slice(1, 4).map(Number);
    if (!Number.isFinite(size) || !Number.isFinite(free) || size! <= 0) continue;
    rows.push({ mount: cols.slice(5).join(' '), sizeBytes: size! * 1024, freeBytes: free! * 1024 });
  }
  return rows;
}

export function isFull(use: MountUse): boolean {
  return use.freeBytes < Math.max(MIN_FREE_BYTES, use.sizeBytes * MIN_FREE_SHARE);
}
