import { pipeline } from 'node:stream';
import { HashingCounter, peek } from '../../core/integrity.js';
import type { RunArtifact } from '../../core/domain.js';
import { isReadFailure, type RunState } from '../run-state.js';

/** How much of a backup restorers see before the sandbox starts (format, versions). */
const HEAD_BYTES = 64 * 1024;

/**
 * sandbox: the engine answers, the backup is opened once (the same hashed stream gives its first
 * bytes, to choose the sandbox image, and, replayed from the start, feeds the restore), the
 * sandbox is created and the restorer prepares it.
 */
export async function bringUpSandbox(s: RunState): Promise<void> {
  const { policy, deps, driver, restorer, run, signal } = s;
  const { entry, backupTime } = s.picked!;
  const hasher = new HashingCounter(
    (bytes) => {
      if (s.streaming) deps.onProgress?.({ runId: run.id, phase: 'fetch_restore', bytes, totalBytes: entry.size });
    },
    { md5: s.details!.checksums.some((c) => c.algorithm === 'md5') },
  );
  s.hasher = hasher;
  const sandboxRecord = { runtime: deps.runtime.name, image: policy.sandbox.image ?? '' } as NonNullable<typeof run.sandbox>;
  run.sandbox = sandboxRecord;
  const { serverVersion } = await s.clock.phase('sandbox', async (mark) => {
    await deps.runtime.ping(signal);
    const raw = await driver.open(entry, signal);
    s.raw = raw;
    raw.on('error', (err) => {
      if (isReadFailure(err)) s.readError ??= err;
    });
    const backupStream = await peek(pipeline(raw, hasher.from(raw), () => undefined), HEAD_BYTES);
    s.backupStream = backupStream;
    let image = policy.sandbox.image;
    if (!image && restorer.selectImage) {
      // The backup's first bytes say what it needs (e.g. the PostgreSQL major that wrote it).
      const choice = await restorer.selectImage(backupStream.head, async (ref) => Boolean(await deps.runtime.imageId(ref)), s.details?.facts);
      image = choice.image;
      sandboxRecord.imageChoice = choice.why;
    }
    const spec = restorer.sandboxSpec(policy, run.id, image);
    Object.assign(sandboxRecord, {
      image: spec.image,
      limits: { memoryBytes: spec.memoryBytes, cpus: spec.cpus, pids: spec.pids, capAdd: (spec.capAdd ?? []).join(',') || 'none' },
    });
    const sandbox = await deps.runtime.create(spec, signal);
    s.sandbox = sandbox;
    sandboxRecord.containerId = sandbox.id;
    sandboxRecord.imageId = sandbox.imageId;
    // A coverage run restores an older point: the newest's last pass is no yardstick for it.
    const lookup = s.point ? undefined : deps.store.lastPassingArtifact?.bind(deps.store);
    const lastPassing = lookup && (async (artifact: string) => (await lookup(policy.name, artifact)) ?? undefined);
    const keep = (artifact: RunArtifact): void => void s.kept.push(artifact);
    s.ctx = { runId: run.id, policy, sandbox, logger: s.log, signal, backupTime, backupSize: entry.size, keep, ...(lastPassing ? { lastPassing } : {}) };
    const prepared = await restorer.prepare(s.ctx);
    if (prepared.detail) mark('ok', prepared.detail);
    return prepared;
  });
  sandboxRecord.serverVersion = serverVersion;
}
