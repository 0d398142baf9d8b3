/**
 * Benchmark: what backproof's fetch_restore costs over the bare stream into a sandbox (issue 15:
 * at most 1.2x). A backup of `--gib` GiB of random bytes in a local folder, restored by kind
 * custom with `cat > /dev/null` (so the restore itself costs nothing), against, in the same
 * sandbox image and limits and the same minutes:
 * - bare: `docker exec -i <sandbox> sh -c 'cat > /dev/null' < file` (the docker CLI);
 * - by hand with a digest: `tee >(openssl dgst -sha256) < file | docker exec -i …`;
 * - Sandbox.exec: backproof's own exec fed from a plain file stream (1 MiB chunks), and fed as
 *   the local driver reads (1 MiB pooled buffers, see orchestrator/core/chunk-pool.ts), without
 *   the runner and without hashing;
 * - sha256: reading and hashing the file in this process (node:crypto), for scale.
 * Rounds alternate the order; medians; ratios against bare.
 *
 *   node --import tsx bench/stream-restore.ts [--gib 1] [--repeat 3]
 *
 * Needs dockerd and the backproof/files image. The file is cached in $TMPDIR/backproof-bench-stream.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { driverFor, restorerFor } from '../orchestrator/cli/plugins.js';
import { pooledFileStream } from '../orchestrator/core/chunk-pool.js';
import { DEFAULTS } from '../orchestrator/core/defaults.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { runPolicy } from '../orchestrator/runner/run-policy.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { seededBytes } from '../test/helpers/bytes.js';
import { policyFromYaml, quietLogger } from '../test/helpers/harness.js';

const progress = (msg: string): boolean => process.stderr.write(`[bench] ${msg}\n`);
const { values } = parseArgs({ options: { gib: { type: 'string', default: '1' }, repeat: { type: 'string', default: '3' } } });
const gib = Number(values.gib);
const repeat = Number(values.repeat);
const cache = path.join(os.tmpdir(), 'backproof-bench-stream');
const folder = path.join(cache, `backups-${gib}`);
const file = path.join(folder, 'blob-20261201.bin');
const size = Math.round(gib * 1024 ** 3);
await fs.mkdir(folder, { recursive: true });
if ((await fs.stat(file).catch(() => undefined))?.size !== size) {
  progress(`writing ${gib} GiB of random bytes (once)`);
  const handle = await fs.open(file, 'w');
  const chunk = 64 * 1024 * 1024;
  for (let off = 0; off < size; off += chunk) await handle.write(seededBytes(Math.min(chunk, size - off), `stream-${off}`));
  await handle.close();
}
const old = new Date(Date.now() - 3_600_000);
await fs.utimes(file, old, old);

const policy = {
  ...policyFromYaml({
    folder,
    kind: 'custom',
    glob: 'blob-*.bin',
    sandbox: 'memory: 512m, timeout: 30m',
    probes: '          - command: ["true"]',
    extra: `        custom:
          image: backproof/files
          user: "1000:1000"
          restore: [sh, -c, "cat > /dev/null"]`,
  }),
  name: 'bench-stream',
  sizeAnomaly: false as const,
};
const runtime = new DockerRuntime();
const store = await RunStore.open({ dataDir: path.join(cache, 'store'), schema: 'backproof' });
const restorer = restorerFor(policy);
const sandbox = await runtime.create({ ...restorer.sandboxSpec(policy, `bench-stream-${process.pid}`), services: [] });

/** Wall time of a process whose stdin is the file (or of a shell line). */
function timed(cmd: string, args: string[], stdinFile?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    void (async () => {
      const fd = stdinFile ? await fs.open(stdinFile, 'r') : undefined;
      const child = spawn(cmd, args, { stdio: [fd ? fd.fd : 'ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
      child.on('exit', (code) => {
        void fd?.close();
        if (code === 0) resolve(performance.now() - t0);
        else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err}`));
      });
    })();
  });
}

const cases: Record<string, () => Promise<number>> = {
  bare: () => timed('docker', ['exec', '-i', sandbox.id, 'sh', '-c', 'cat > /dev/null'], file),
  'by hand + sha256': () => timed('bash', ['-c', `tee >(openssl dgst -sha256 >/dev/null) < ${JSON.stringify(file)} | docker exec -i ${sandbox.id} sh -c 'cat > /dev/null'`]),
  'Sandbox.exec': async () => {
    const t0 = performance.now();
    const r = await sandbox.exec(['sh', '-c', 'cat > /dev/null'], { stdin: createReadStream(file, { highWaterMark: DEFAULTS.readChunkBytes }) });
    if (r.exitCode !== 0) throw new Error(`exec failed: ${r.stderr}`);
    return performance.now() - t0;
  },
  'Sandbox.exec, pooled': async () => {
    const t0 = performance.now();
    const stdin = pooledFileStream(await fs.open(file, 'r'), { chunkBytes: DEFAULTS.readChunkBytes });
    const r = await sandbox.exec(['sh', '-c', 'cat > /dev/null'], { stdin });
    if (r.exitCode !== 0) throw new Error(`exec failed: ${r.stderr}`);
    return performance.now() - t0;
  },
  sha256: async () => {
    const t0 = performance.now();
    const h = createHash('sha256');
    await pipeline(createReadStream(file, { highWaterMark: DEFAULTS.readChunkBytes }), h);
    h.digest('hex');
    return performance.now() - t0;
  },
  'backproof fetch_restore': async () => {
    const r = await runPolicy(policy, { store, runtime, driverFor, restorerFor, logger: quietLogger() });
    if (r.verdict !== 'pass') throw new Error(`the run did not pass: ${JSON.stringify(r.reasons)}`);
    if (r.backup?.bytesRead !== size) throw new Error(`the run read ${r.backup?.bytesRead} bytes of ${size}`);
    return r.phases.find((p) => p.name === 'fetch_restore')!.durationMs;
  },
};

const times: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
try {
  for (let i = 0; i < repeat; i++) {
    const order = i % 2 === 0 ? Object.keys(cases) : Object.keys(cases).reverse();
    for (const name of order) times[name]!.push(await cases[name]!());
    progress(`round ${i + 1}: ${order.map((n) => `${n} ${(times[n]!.at(-1)! / 1000).toFixed(2)} s`).join(', ')}`);
  }
} finally {
  await sandbox.remove();
  await store.close();
}
const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const bare = median(times.bare!);
console.log(`${gib} GiB into a sandbox (backproof/files, 512 MiB), median of ${repeat}; ratio against bare \`docker exec -i\``);
for (const [name, v] of Object.entries(times)) {
  const m = median(v);
  console.log(`${name.padEnd(24)} ${(m / 1000).toFixed(2).padStart(6)} s  ${((size / 1024 ** 2) / (m / 1000)).toFixed(0).padStart(5)} MiB/s  ${(m / bare).toFixed(2)}x`);
}
