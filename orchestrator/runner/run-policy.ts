import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { pipeline, type Readable } from 'node:stream';
import { describeExpect, selectNewest } from '../../drivers/selection.js';
import { unsafeEntry, type BackupEntry, type StorageDriver } from '../../drivers/storage-driver.js';
import type { Restorer, RestoreContext } from '../../restore-sandboxes/restorer.js';
import type { Sandbox, SandboxRuntime } from '../../restore-sandboxes/sandbox-runtime.js';
import { isSandboxProbe, runSandboxProbes } from '../../restore-sandboxes/probes/sandbox-probes.js';
import type { PolicyConfig, ProbeConfig } from '../core/config-types.js';
import { DEFAULTS } from '../core/defaults.js';
import { verdictOf, type PhaseName, type ProbeResult, type Reason, type RunArtifact, type RunRecord } from '../core/domain.js';
import { VerificationError } from '../core/errors.js';
import { formatAge, formatBytes } from '../core/format.js';
import type { Logger } from '../core/logger.js';
import { BACKPROOF_VERSION } from '../version.js';
import { HashingCounter, peek } from '../core/integrity.js';
import { cleanRecord } from './record-hygiene.js';
import { PhaseClock } from './phase-clock.js';
import { judgeSize } from './size-check.js';

/** What a run needs; the runner owns none of it (the caller opens and closes). */
export interface RunDeps {
  store: {
    recordStart(run: RunRecord): Promise<void>;
    /** `artifacts`: files kept with the run (a boot screenshot), stored with it. */
    finalize(run: RunRecord, artifacts?: readonly RunArtifact[]): Promise<void>;
    /** Backup sizes of the policy's latest passing runs, newest first; without it there is no size check. */
    passingBackupSizes?(policy: string, limit: number): Promise<number[]>;
  };
  runtime: SandboxRuntime;
  driverFor(policy: PolicyConfig): StorageDriver;
  restorerFor(policy: PolicyConfig): Restorer;
  logger: Logger;
  now?: () => Date;
  /** Called as bytes stream from storage into the sandbox. */
  onProgress?: (progress: { runId: string; phase: PhaseName; bytes: number; totalBytes?: number }) => void;
}

export class RunCancelled extends Error {
  override name = 'RunCancelled';
}

/**
 * One run: select the newest backup, bring up a sandbox, stream the backup through the
 * integrity tee into the restorer, wait for readiness, probe, tear down, record. Every run that
 * starts is recorded before anything else happens, and finalized on every path.
 */
export async function runPolicy(policy: PolicyConfig, deps: RunDeps, opts: { signal?: AbortSignal; runId?: string } = {}): Promise<RunRecord> {
  const now = deps.now ?? (() => new Date());
  const started = now();
  const run: RunRecord = {
    // A queued run comes with its id (one per scheduled slot), so the store records it once.
    id: opts.runId ?? randomUUID(),
    client: policy.client,
    policy: policy.name,
    kind: policy.kind,
    status: 'running',
    verdict: null,
    reasons: [],
    startedAt: started.toISOString(),
    finishedAt: null,
    durationMs: null,
    host: os.hostname(),
    pid: process.pid,
    backproofVersion: BACKPROOF_VERSION,
    backup: null,
    phases: [],
    probes: [],
    metrics: { rpoTargetMs: policy.targets.rpoMs, rtoTargetMs: policy.targets.rtoMs },
    sandbox: null,
    restored: null,
  };
  await deps.store.recordStart(run);
  const log = deps.logger.child({ runId: run.id, client: policy.client, policy: policy.name });
  const timeout = AbortSignal.timeout(policy.sandbox.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  const clock = new PhaseClock(run, now);
  const reasons: Reason[] = [];
  const driver = deps.driverFor(policy);
  const restorer = deps.restorerFor(policy);
  let sandbox: Sandbox | undefined;
  let ctx: RestoreContext | undefined;
  let backupStream: { head: Buffer; stream: Readable } | undefined;
  let digests: Digests | undefined;
  log.info(`run started`);
  try {
    // select
    const picked = await clock.phase('select', async () => {
      const takenAt = driver.takenAt ? (e: BackupEntry) => driver.takenAt!(e, signal) : undefined;
      const selection = await selectNewest(driver.list(signal), policy.source.select, started, undefined, takenAt);
      if (!selection.picked) throw new VerificationError('no_backup', `${selection.explanation} in ${driver.location}`);
      if (selection.picked.entry.unsafe) throw unsafeEntry(selection.picked.entry);
      if (selection.missingPeriod) {
        reasons.push({
          code: 'missing_backup',
          message: `no backup for ${selection.missingPeriod} (expect: ${describeExpect(policy.source.select.expect!)}); the newest is ${selection.picked.entry.key}, taken ${selection.picked.backupTime.toISOString()}`,
        });
      }
      return selection.picked;
    });
    const { entry, backupTime } = picked;
    const ageMs = started.getTime() - backupTime.getTime();
    run.backup = {
      driver: driver.name,
      location: driver.location,
      key: entry.key,
      size: entry.size,
      modifiedAt: entry.modifiedAt.toISOString(),
      backupTime: backupTime.toISOString(),
      timestampSource: picked.timestampSource,
      ageMs,
    };
    run.metrics.rpoMeasuredMs = ageMs;
    log.info(`picked ${entry.key} (${formatBytes(entry.size)}, taken ${backupTime.toISOString()})`);
    if (policy.targets.rpoMs !== undefined) {
      run.metrics.rpoMet = ageMs <= policy.targets.rpoMs;
      if (!run.metrics.rpoMet) {
        reasons.push({
          code: 'stale_backup',
          message: `the newest backup ${entry.key} is ${formatAge(ageMs)} old, older than the rpo target of ${formatAge(policy.targets.rpoMs)}`,
        });
      }
    }
    if (policy.sizeAnomaly && entry.size > 0 && deps.store.passingBackupSizes) {
      const history = await deps.store.passingBackupSizes(policy.name, policy.sizeAnomaly.lastRuns);
      const check = judgeSize(entry.size, history, policy.sizeAnomaly);
      run.probes = [check];
      if (!check.pass) reasons.push({ code: 'size_anomaly', message: `the backup ${entry.key} shrank: ${check.actual}; expected ${check.expected}` });
    }
    if (entry.size === 0) throw new VerificationError('empty_backup', `the backup ${entry.key} is empty (0 bytes)${entry.note ? `: ${entry.note}` : ''}`);
    const details = await driver.details(entry, signal);
    const backup = run.backup;
    backup.checksums = details.checksums.map((c) => ({ algorithm: c.algorithm, expected: c.hex, source: c.source, verified: false }));
    if (details.unverifiable.length > 0) backup.unverifiableChecksums = details.unverifiable;
    if (Object.keys(details.facts).length > 0) backup.provider = details.facts;

    // The store's own integrity check (restic check): damage found is a fail, but the restore
    // still runs, so the evidence says whether this backup's own data came through.
    if (driver.check) {
      await clock.phase('storage_check', async (mark) => {
        const result = await driver.check!(entry, signal);
        backup.storageCheck = { what: result.what, summary: result.summary, problems: result.problems };
        if (result.problems.length > 0) {
          reasons.push({ code: 'repository_damaged', message: `${result.what} found ${result.problems.length} problem(s): ${result.problems.slice(0, 3).join('; ')}` });
          mark('fail', result.summary);
        }
      });
    } else {
      clock.skip('storage_check', `the ${driver.name} store has no integrity check of its own`);
    }

    // The backup is opened once: the same hashed stream gives its first bytes (to choose the
    // sandbox image) and, replayed from the start, feeds the restore.
    let streaming = false;
    const wantMd5 = details.checksums.some((c) => c.algorithm === 'md5');
    const hasher = new HashingCounter(
      (bytes) => {
        if (streaming) deps.onProgress?.({ runId: run.id, phase: 'fetch_restore', bytes, totalBytes: entry.size });
      },
      { md5: wantMd5 },
    );
    let readError: Error | undefined;
    let raw: Readable | undefined;

    // sandbox
    run.sandbox = { runtime: deps.runtime.name, image: policy.sandbox.image ?? '' };
    const { serverVersion } = await clock.phase('sandbox', async (mark) => {
      await deps.runtime.ping(signal);
      raw = await driver.open(entry, signal);
      raw.on('error', (err) => {
        if (isReadFailure(err)) readError ??= err;
      });
      backupStream = await peek(pipeline(raw, hasher, () => undefined), HEAD_BYTES);
      let image = policy.sandbox.image;
      if (!image && restorer.selectImage) {
        // The backup's first bytes say what it needs (e.g. the PostgreSQL major that wrote it).
        const choice = await restorer.selectImage(backupStream.head, async (ref) => Boolean(await deps.runtime.imageId(ref)));
        image = choice.image;
        run.sandbox!.imageChoice = choice.why;
      }
      const spec = restorer.sandboxSpec(policy, run.id, image);
      Object.assign(run.sandbox!, {
        image: spec.image,
        limits: { memoryBytes: spec.memoryBytes, cpus: spec.cpus, pids: spec.pids, capAdd: (spec.capAdd ?? []).join(',') || 'none' },
      });
      sandbox = await deps.runtime.create(spec, signal);
      run.sandbox!.containerId = sandbox.id;
      run.sandbox!.imageId = sandbox.imageId;
      ctx = { runId: run.id, policy, sandbox, logger: log, signal, backupTime, backupSize: entry.size };
      const prepared = await restorer.prepare(ctx);
      if (prepared.detail) mark('ok', prepared.detail);
      return prepared;
    });
    run.sandbox.serverVersion = serverVersion;
    const rctx = ctx!;

    // fetch + integrity + restore, in one pass
    const fetchStart = performance.now();
    const input = backupStream!.stream;
    try {
      const outcome = await clock.phase('fetch_restore', async () => {
        streaming = true;
        try {
          return await restorer.restore(rctx, input);
        } catch (err) {
          // Storage failing mid-read is ours to report (`error`), not the backup's fault.
          if (isReadFailure(raw?.errored)) readError ??= raw.errored;
          if (readError instanceof VerificationError && !signal.aborted) throw readError; // the driver's own verdict
          if (readError && !signal.aborted) {
            throw new VerificationError('source_unreachable', `reading ${entry.key} from ${driver.location} failed after ${hasher.bytes} bytes: ${readError.message}`, { cause: readError });
          }
          throw err;
        }
      });
      backup.format = outcome.format;
      backup.compression = outcome.compression;
      backup.header = outcome.header;
    } finally {
      backup.bytesRead = hasher.bytes;
      const transfer = driver.transferFacts?.(entry) ?? {};
      if (Object.keys(transfer).length > 0) backup.provider = { ...backup.provider, ...transfer };
      const seconds = (performance.now() - fetchStart) / 1000;
      if (seconds > 0) run.metrics.fetchBytesPerSec = Math.round(hasher.bytes / seconds);
      if (hasher.sha256) digests = hasher;
    }
    if (!hasher.sha256) {
      // The restore tool finished without reading to the end: hash the rest in a second pass.
      digests = await hashWhole(driver, entry, signal, wantMd5);
    }
    checkIntegrity(run, digests!, reasons);

    // readiness: the restored system answers
    await clock.phase('readiness', () => restorer.ready(rctx));
    run.metrics.rtoMeasuredMs = Math.round(performance.now() - fetchStart);
    if (policy.targets.rtoMs !== undefined) run.metrics.rtoMet = run.metrics.rtoMeasuredMs <= policy.targets.rtoMs;

    // probes
    await clock.phase('probes', async (mark) => {
      const inspection = await restorer.inspect(rctx);
      run.restored = inspection.summary;
      reasons.push(...inspection.reasons);
      const own = await restorer.probe(rctx);
      const inSandbox = await runSandboxProbes(policy.probes, rctx.sandbox, signal);
      const results = inConfigOrder(policy.probes, own, inSandbox);
      run.probes.push(...results);
      for (const p of results.filter((r) => !r.pass)) {
        reasons.push({ code: 'probe_failed', message: `probe "${p.name}": expected ${p.expected}, got ${p.error ? `error: ${p.error}` : p.actual}` });
      }
      const failed = inspection.reasons.length + results.filter((r) => !r.pass).length;
      if (failed > 0) mark('fail', `${failed} check(s) failed`);
    });
  } catch (err) {
    let reason = reasonFor(err, signal, timeout, policy.sandbox.timeoutMs);
    if (reason.code === 'internal' || reason.code === 'sandbox_failed') {
      // An engine that went away mid-run shows up as a broken stream or a failed API call.
      if (await engineWentAway(deps.runtime)) {
        reason = { code: 'docker_unreachable', message: `the Docker engine at ${deps.runtime.endpoint} stopped answering during the run (${(err as Error)?.message ?? err}); start it and run again` };
      }
    }
    reasons.push(reason);
    if (digests) checkIntegrity(run, digests, reasons);
  } finally {
    backupStream?.stream.destroy(); // a no-op once the restore read it to the end
    await clock.phase('teardown', async () => {
      if (!sandbox) return;
      if (reasons.length > 0 && ctx && run.sandbox) {
        // Given up at the deadline even when the restorer ignores the signal: a hung engine must not hold the run.
        const tailSignal = AbortSignal.timeout(DEFAULTS.logTailTimeoutMs);
        const givenUp = new Promise<string>((resolve) => tailSignal.addEventListener('abort', () => resolve(''), { once: true }));
        run.sandbox.logTail = await Promise.race([restorer.logTail({ ...ctx, signal: tailSignal }).catch(() => ''), givenUp]);
      }
      await sandbox.remove();
    }).catch((err: unknown) => {
      reasons.push({ code: 'sandbox_failed', message: `could not remove the sandbox: ${(err as Error).message}; the reaper removes it at the next start` });
    });
    await driver.close().catch(() => undefined);
    // What the restorer kept beyond the summary (kind vm: the boot record and its screenshot).
    const kept = restorer.evidence?.();
    if (kept?.boot) run.boot = kept.boot;
    clock.skipRemaining();
    const ended = now();
    run.reasons = dedupe(reasons);
    run.verdict = verdictOf(run.reasons);
    run.status = run.reasons.some((r) => r.code === 'cancelled') ? 'cancelled' : 'finished';
    run.finishedAt = ended.toISOString();
    run.durationMs = ended.getTime() - started.getTime();
    // A store may echo a request's headers in its errors and a restore tool may quote what it
    // read: no secret of the policy or the config enters the record, wherever it appears.
    cleanRecord(run, policy, (text) => deps.logger.redact(text));
    await deps.store.finalize(run, kept?.artifacts ?? []);
    log.info(`run ${run.status}: ${run.verdict}${run.reasons[0] ? ` (${run.reasons[0].code})` : ''}`);
  }
  return run;
}

/**
 * Whether the engine stopped answering. One that is shutting down kills the containers first and
 * still answers for a moment, so it is asked a few times over ENGINE_GONE_WINDOW_MS before it
 * counts as up (a run that failed for its own reasons pays that wait once).
 */
async function engineWentAway(runtime: SandboxRuntime): Promise<boolean> {
  const deadline = Date.now() + ENGINE_GONE_WINDOW_MS;
  for (;;) {
    const down = await runtime.ping(AbortSignal.timeout(5_000)).then(
      () => false,
      () => true,
    );
    if (down) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

const ENGINE_GONE_WINDOW_MS = 3_000;

/** The restorer's own probe results and the in-sandbox ones, back in the order the policy lists them. */
function inConfigOrder(probes: readonly ProbeConfig[], own: ProbeResult[], inSandbox: ProbeResult[]): ProbeResult[] {
  const ownQueue = [...own];
  const sandboxQueue = [...inSandbox];
  const ordered: ProbeResult[] = [];
  for (const p of probes) {
    const next = isSandboxProbe(p) ? sandboxQueue.shift() : ownQueue.shift();
    if (next) ordered.push(next);
  }
  return [...ordered, ...ownQueue, ...sandboxQueue];
}

/** How much of a backup restorers see before the sandbox starts (format, versions). */
const HEAD_BYTES = 64 * 1024;

/**
 * Only the storage's own failures: a stream destroyed because its reader went away ends with
 * "premature close", which says nothing about the storage.
 */
function isReadFailure(err: Error | null | undefined): err is Error {
  return Boolean(err) && !['ERR_STREAM_PREMATURE_CLOSE', 'ABORT_ERR', 'ERR_STREAM_DESTROYED'].includes((err as { code?: string }).code ?? '');
}

interface Digests {
  digest(algorithm: 'sha256' | 'md5'): string | undefined;
}

/** Every expected checksum against the bytes' digests; a mismatch is the first reason given. */
function checkIntegrity(run: RunRecord, digests: Digests, reasons: Reason[]): void {
  const b = run.backup;
  if (!b) return;
  b.sha256 = digests.digest('sha256');
  for (const c of b.checksums ?? []) {
    const actual = digests.digest(c.algorithm);
    if (!actual || c.verified) continue;
    if (actual === c.expected) {
      c.verified = true;
      continue;
    }
    if (reasons.some((r) => r.code === 'checksum_mismatch' && r.message.includes(c.source))) continue;
    reasons.unshift({
      code: 'checksum_mismatch',
      message: `${c.algorithm} of the backup's bytes is ${actual.slice(0, 16)}…, but ${c.source} says ${c.expected.slice(0, 16)}…`,
    });
  }
}

async function hashWhole(driver: StorageDriver, entry: BackupEntry, signal: AbortSignal, md5: boolean): Promise<Digests> {
  const hasher = new HashingCounter(undefined, { md5 });
  const raw = await driver.open(entry, signal);
  for await (const chunk of raw.pipe(hasher)) void chunk;
  return hasher;
}

function reasonFor(err: unknown, signal: AbortSignal, timeout: AbortSignal, timeoutMs: number): Reason {
  if (signal.aborted) {
    if (timeout.aborted) return { code: 'timeout', message: `the run exceeded its hard timeout of ${formatAge(timeoutMs)} (sandbox.timeout)` };
    return { code: 'cancelled', message: `cancelled: ${signal.reason instanceof Error ? signal.reason.message : 'stopped by a signal'}` };
  }
  if (err instanceof VerificationError) return { code: err.reason, message: err.message };
  const e = err as Error;
  return { code: 'internal', message: `backproof failed: ${e?.message ?? String(err)}` };
}

function dedupe(reasons: Reason[]): Reason[] {
  const seen = new Set<string>();
  return reasons.filter((r) => {
    const key = `${r.code}:${r.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
