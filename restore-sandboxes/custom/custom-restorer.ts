import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PolicyOf } from '../../orchestrator/core/config-types.js';
import { DEFAULTS } from '../../orchestrator/core/defaults.js';
import type { ProbeResult } from '../../orchestrator/core/domain.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { formatBytes } from '../../orchestrator/core/format.js';
import { peek } from '../../orchestrator/core/integrity.js';
import { decompress, decompressInSandbox, detectCompression, type Compression } from '../compression.js';
import { lastLines, sandboxLimits, type Inspection, type RestoreContext, type RestoreOutcome, type Restorer } from '../restorer.js';
import type { ExecResult, Sandbox, SandboxSpec } from '../sandbox-runtime.js';
import { timeoutSignal } from '../../orchestrator/core/timeout-signal.js';

/** Where `input: file` puts the backup. */
export const BACKUP_FILE = '/restore/backup';
/** How often the ready command is tried. */
const READY_INTERVAL_MS = 500;
/** The helper that writes /restore/backup and decompresses, for images that lack the tools. */
const LOADER = 'loader';
/** Decompressors need no files: they run as nobody. */
const NOBODY = '65534:65534';

/**
 * kind: custom: any image, a restore command and a ready command, for what backproof has no
 * restorer of its own (MongoDB, Redis, an application stack). The user's config says what runs;
 * backproof gives it the same sandbox as every kind (no network, CapDrop ALL plus the
 * capabilities the config names, no privilege gain, read-only root unless the config says
 * otherwise, limits, a per-run volume at /restore, a /tmp tmpfs) and `services`: further
 * containers in the main one's network namespace and volume, like a pod.
 *
 * The backup reaches the restore command on its stdin (`input: stdin`) or as the file
 * /restore/backup (`input: file`), decompressed first unless `decompress: false`. Writing the
 * file and decompressing zstd/xz/bzip2 happen in a `loader` service from backproof/files (the
 * user's image may lack dd and the decompressors), running as the volume's owner.
 *
 * A restore command that exits non-zero fails the backup; one that cannot be started (exit
 * 126/127) or is killed by a signal is an error of the verification.
 */
export class CustomRestorer implements Restorer<'custom'> {
  readonly kind = 'custom' as const;
  private readonly output: string[] = [];
  private loader: string | undefined;

  sandboxSpec(policy: PolicyOf<'custom'>, runId: string, image?: string): SandboxSpec {
    const custom = policy.custom;
    return {
      runId,
      policy: policy.name,
      image: image ?? policy.sandbox.image ?? custom.image,
      cmd: custom.cmd,
      user: custom.user,
      capAdd: custom.capAdd,
      ...(Object.keys(custom.env).length > 0 ? { env: custom.env } : {}),
      ...sandboxLimits(policy),
      volumes: ['/restore'],
      readOnlyRoot: custom.readOnlyRoot,
      services: custom.services.map((s) => ({
        name: s.name,
        image: s.image,
        cmd: s.cmd,
        ...(s.user ? { user: s.user } : {}),
        capAdd: s.capAdd,
        ...(Object.keys(s.env).length > 0 ? { env: s.env } : {}),
      })),
    };
  }

  async prepare(ctx: RestoreContext<'custom'>): Promise<{ serverVersion: string }> {
    return { serverVersion: ctx.sandbox.image };
  }

  async restore(ctx: RestoreContext<'custom'>, input: Readable): Promise<RestoreOutcome> {
    const custom = ctx.policy.custom;
    const { sandbox, signal } = ctx;
    const peeked = await peek(input, 8);
    let compression: Compression = detectCompression(peeked.head);
    let stream = peeked.stream;
    const header: Record<string, string> = { input: custom.input, restoreCommand: describeArgv(custom.restore) };
    if (!custom.decompress) {
      if (compression !== 'none') header.decompressed = `no (decompress: false): the restore command gets the ${compression} bytes`;
    } else if (compression !== 'none') {
      if (compression !== 'gzip') await this.addLoader(ctx);
      const loader = this.loaderExec(sandbox);
      const plain = await decompress(stream, (c, compressed) => decompressInSandbox(loader, c, compressed, { signal, user: NOBODY }));
      compression = plain.compression;
      const head = await peek(plain.stream, 1);
      if (head.head.length === 0) throw new VerificationError('empty_backup', `the ${compression} backup decompresses to nothing`);
      stream = head.stream;
    }
    if (custom.input === 'file') {
      await this.writeBackupFile(ctx, stream);
      header.backupFile = BACKUP_FILE;
    }
    const result = await sandbox.exec(custom.restore, { ...(custom.input === 'stdin' ? { stdin: stream } : {}), signal });
    this.keep('restore', result);
    if (result.exitCode !== 0) throw commandFailure('the restore command', custom.restore, result, ctx, 'restore_failed');
    if (!result.stdinComplete) header.inputRead = 'partly: the restore command exited 0 before reading all of the backup';
    return { format: 'custom', compression, header };
  }

  async ready(ctx: RestoreContext<'custom'>): Promise<void> {
    const custom = ctx.policy.custom;
    if (!custom.ready) return;
    const deadline = Date.now() + custom.readinessTimeoutMs;
    let last: ExecResult | undefined;
    let attempts = 0;
    let hung = false;
    for (;;) {
      ctx.signal.throwIfAborted();
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      const attempt = AbortSignal.any([ctx.signal, timeoutSignal(remaining)]);
      let result: ExecResult;
      try {
        result = await ctx.sandbox.exec(custom.ready, { signal: attempt });
      } catch (err) {
        if (ctx.signal.aborted || !attempt.aborted) throw err;
        hung = attempts === 0;
        break;
      }
      attempts++;
      last = result;
      if (result.exitCode === 0) return;
      if (result.exitCode === 126 || result.exitCode === 127) throw commandFailure('the ready command', custom.ready, result, ctx, 'sandbox_failed');
      await sleep(Math.max(0, Math.min(READY_INTERVAL_MS, deadline - Date.now())), undefined, { signal: ctx.signal });
    }
    if (last) this.keep('ready', last);
    const words = last ? lastLines(`${last.stderr}\n${last.stdout}`, 2) : '';
    const how = hung ? 'it was still running when the time was up' : `${attempts} attempt(s)${last ? `; last exit ${last.exitCode}${words ? `: ${words}` : ''}` : ''}`;
    throw new VerificationError('sandbox_failed', `the ready command (${describeArgv(custom.ready)}) did not succeed within ${custom.readinessTimeoutMs} ms (${how})`);
  }

  async inspect(ctx: RestoreContext<'custom'>): Promise<Inspection> {
    const summary: Record<string, string | number> = { image: ctx.sandbox.image };
    const services = ctx.policy.custom.services.map((s) => s.name);
    if (services.length > 0) summary.services = services.join(', ');
    return { summary, reasons: [] };
  }

  /** Command and http probes are the runner's, for every kind; custom has no built-in ones. */
  async probe(): Promise<ProbeResult[]> {
    return [];
  }

  async logTail(): Promise<string> {
    return this.output.join('\n').slice(-4000);
  }

  /** Streams the backup into /restore/backup through the loader, as the volume's owner, mode 0644. */
  private async writeBackupFile(ctx: RestoreContext<'custom'>, stream: Readable): Promise<void> {
    const { sandbox, signal } = ctx;
    const service = await this.addLoader(ctx);
    const owner = await sandbox.exec(['stat', '-c', '%u:%g', '/restore'], { service, signal });
    if (owner.exitCode !== 0) throw new VerificationError('sandbox_failed', `could not read the owner of /restore in the sandbox: ${lastLines(owner.stderr, 1)}`);
    const user = owner.stdout.trim();
    const write = await sandbox.exec(['dd', `of=${BACKUP_FILE}`, 'bs=1M', 'status=none'], { stdin: stream, service, user, signal });
    if (write.exitCode !== 0) throw new VerificationError('sandbox_failed', `writing ${BACKUP_FILE} in the sandbox failed (dd exit ${write.exitCode}): ${lastLines(write.stderr, 2)}`);
    const chmod = await sandbox.exec(['chmod', '0644', BACKUP_FILE], { service, user, signal });
    if (chmod.exitCode !== 0) throw new VerificationError('sandbox_failed', `could not make ${BACKUP_FILE} readable: ${lastLines(chmod.stderr, 1)}`);
  }

  /** Starts the loader service once; returns its name. */
  private async addLoader(ctx: RestoreContext<'custom'>): Promise<string> {
    if (this.loader) return this.loader;
    let name = LOADER;
    for (let i = 2; ctx.sandbox.services.includes(name); i++) name = `${LOADER}-${i}`;
    // Root with no capabilities: it can write a root-owned /restore and switch to the owner of
    // one that is not (each exec names its user).
    await ctx.sandbox.addService({ name, image: DEFAULTS.filesImage, cmd: ['sleep', 'infinity'], user: '0:0', capAdd: [] }, ctx.signal);
    this.loader = name;
    return name;
  }

  /** exec in the loader (for decompressInSandbox, which runs its tool through `exec`). */
  private loaderExec(sandbox: Sandbox): Pick<Sandbox, 'exec'> {
    return { exec: (argv, opts) => sandbox.exec(argv, { ...opts, service: this.loader }) };
  }

  private keep(step: string, r: ExecResult): void {
    const text = `${r.stderr.trim()}\n${r.exitCode === 0 ? '' : r.stdout.trim()}`.trim();
    if (text) this.output.push(`${step} (exit ${r.exitCode}): ${text.slice(-2000)}`);
    if (this.output.length > 10) this.output.shift();
  }
}


/**
 * A failed command: exit 126/127 (it could not be started: not in the image, not executable)
 * and death by a signal are errors of the verification; any other exit is `code`.
 */
function commandFailure(what: string, argv: string[], r: ExecResult, ctx: RestoreContext<'custom'>, code: 'restore_failed' | 'sandbox_failed'): VerificationError {
  const words = lastLines(`${r.stderr}\n${r.stdout}`, 3);
  if (r.exitCode === 126 || r.exitCode === 127) {
    return new VerificationError('sandbox_failed', `${what} (${describeArgv(argv)}) could not be started in image ${ctx.sandbox.image} (exit ${r.exitCode}): ${words}`);
  }
  if (r.exitCode >= 128) {
    const sig = r.exitCode - 128;
    return new VerificationError(
      'sandbox_failed',
      `${what} (${describeArgv(argv)}) was killed by signal ${sig}${sig === 9 ? ` (most often the sandbox's memory limit of ${formatBytes(ctx.policy.sandbox.memoryBytes)}: raise sandbox.memory)` : ''}${words ? `: ${words}` : ''}`,
    );
  }
  return new VerificationError(code, `${what} (${describeArgv(argv)}) failed with exit ${r.exitCode}${words ? `: ${words}` : ' and no output'}`);
}

function describeArgv(argv: string[]): string {
  const text = argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
  return text.length > 120 ? `${text.slice(0, 119)}…` : text;
}
