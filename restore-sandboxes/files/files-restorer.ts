import { PassThrough, type Readable } from 'node:stream';
import picomatch from 'picomatch';
import type { PolicyConfig } from '../../orchestrator/core/config-types.js';
import { DEFAULTS } from '../../orchestrator/core/defaults.js';
import type { ProbeResult, Reason } from '../../orchestrator/core/domain.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { formatBytes } from '../../orchestrator/core/format.js';
import { peek } from '../../orchestrator/core/integrity.js';
import { decompress, decompressInSandbox } from '../compression.js';
import { FILES_USER } from '../images/build-image.js';
import { sandboxLimits, type Inspection, type RestoreContext, type RestoreOutcome, type Restorer } from '../restorer.js';
import type { Sandbox, SandboxSpec } from '../sandbox-runtime.js';
import { guardArchive, type ArchiveIndex } from './archive-guard.js';
import { runFileProbes } from './file-probes.js';
import { compareLists, describeChanges, FILE_LIST_ARTIFACT, fileListOf, readFileList, suspicions } from './file-list.js';

/** Where the archive is extracted inside the sandbox; command probes find the files here. */
export const RESTORE_ROOT = '/restore/root';
const INCOMING = '/restore/incoming';

/**
 * File archives: tar (plain, gzip, zstd, xz, bzip2) and zip, told from the bytes. The tar
 * stream passes the archive guard (archive-guard.ts) on its way into the sandbox's `tar -x`, so
 * only checked entries are extracted, as an unprivileged user, under /restore/root in a per-run
 * volume. A zip cannot be read front to back (its directory is at the end): it is written into
 * the sandbox's volume first and turned into a tar stream there by bsdtar, which then passes the
 * same guard. Untrusted compressed bytes are only ever decompressed inside the sandbox (or by
 * Node's zlib for gzip).
 *
 * Sandbox: backproof/files, uid 1000, no capabilities, read-only root, a volume at /restore,
 * /tmp as a size-limited tmpfs.
 */
export class FilesRestorer implements Restorer<'files'> {
  readonly kind = 'files' as const;
  private index: ArchiveIndex | undefined;

  sandboxSpec(policy: PolicyConfig, runId: string, image?: string): SandboxSpec {
    return filesSandboxSpec(policy, runId, image);
  }

  async prepare(ctx: RestoreContext<'files'>): Promise<{ serverVersion: string }> {
    const r = await ctx.sandbox.exec(['mkdir', '-p', RESTORE_ROOT, INCOMING], { signal: ctx.signal });
    if (r.exitCode !== 0) throw new VerificationError('sandbox_failed', `could not prepare ${RESTORE_ROOT} in the sandbox: ${r.stderr.trim()}`);
    const version = await ctx.sandbox.exec(['tar', '--version'], { signal: ctx.signal });
    return { serverVersion: version.stdout.split('\n')[0]?.trim() || 'tar' };
  }

  async restore(ctx: RestoreContext<'files'>, input: Readable): Promise<RestoreOutcome> {
    const { sandbox, signal } = ctx;
    const storedBytes = ctx.backupSize;
    const { compression, stream } = await decompress(input, (c, s) => decompressInSandbox(sandbox, c, s, { signal }));
    const { head, stream: bytes } = await peek(stream, 512);
    if (head.length === 0) {
      throw new VerificationError('empty_backup', compression === 'none' ? 'the backup is empty (0 bytes)' : `the ${compression} backup decompresses to nothing`);
    }
    let format: string;
    let tar: Readable;
    if (isZip(head)) {
      format = 'zip';
      tar = await zipAsTar(sandbox, bytes, signal);
    } else if (isTar(head)) {
      format = 'tar';
      tar = bytes;
    } else {
      bytes.destroy();
      throw new VerificationError('unrecognized_format', `not a tar or zip archive${compression === 'none' ? '' : ` inside the ${compression} compression`}: it starts with ${describeHead(head)}`);
    }
    const keep = manifestMatcher(ctx.policy);
    const guarded = guardArchive(tar, { limits: ctx.policy.files, storedBytes, keep });
    const guardResult = guarded.index.then(
      (index) => ({ index }),
      (error: unknown) => ({ error }),
    );
    const untar = await sandbox.exec(['tar', '-x', '-f', '-', '-C', RESTORE_ROOT, '--no-same-owner', '--no-same-permissions', '--no-overwrite-dir'], {
      stdin: guarded.output,
      signal,
    }).catch((err: unknown) => ({ thrown: err }));
    const checked = await guardResult;
    // The guard's verdict comes first (it names the entry); then the extraction's own failure.
    if ('error' in checked && (checked.error instanceof VerificationError || signal.aborted)) throw checked.error;
    if ('thrown' in untar) throw untar.thrown;
    if (untar.exitCode !== 0) {
      const words = untar.stderr.trim().split('\n').slice(-3).join(' ').slice(0, 400);
      if (/No space left/i.test(words)) throw new VerificationError('sandbox_failed', `the sandbox ran out of disk space while extracting: ${words}`);
      throw new VerificationError('restore_failed', `extracting the checked archive failed: ${words}`);
    }
    if ('error' in checked) throw checked.error;
    if (format === 'zip') await sandbox.exec(['rm', '-rf', INCOMING], { signal });
    this.index = checked.index;
    const i = checked.index;
    return {
      format,
      compression,
      header: {
        entries: String(i.entries.size),
        files: String(i.files),
        directories: String(i.directories),
        symlinks: String(i.symlinks),
        expandedBytes: String(i.bytes),
      },
    };
  }

  async ready(ctx: RestoreContext<'files'>): Promise<void> {
    const r = await ctx.sandbox.exec(['test', '-d', RESTORE_ROOT], { signal: ctx.signal });
    if (r.exitCode !== 0) throw new VerificationError('sandbox_failed', `${RESTORE_ROOT} is missing after the extraction`);
  }

  async inspect(ctx: RestoreContext<'files'>): Promise<Inspection> {
    const index = this.required();
    let newest: Date | undefined;
    let zeroByte = 0;
    for (const e of index.entries.values()) {
      if (e.type !== 'file') continue;
      if (e.size === 0) zeroByte++;
      if (e.mtime && (!newest || e.mtime > newest)) newest = e.mtime;
    }
    const summary: Record<string, string | number> = {
      files: index.files,
      directories: index.directories,
      symlinks: index.symlinks,
      hardlinks: index.hardlinks,
      sizeBytes: index.bytes,
      zeroByteFiles: zeroByte,
      root: RESTORE_ROOT,
    };
    if (newest) summary.newestFile = newest.toISOString();
    const reasons: Reason[] = [];
    if (!ctx.policy.files.allowEmpty && index.files === 0) {
      reasons.push({ code: 'empty_restore', message: `the archive restored, but holds no files (${index.directories} directories)` });
    } else if (!ctx.policy.files.allowEmpty && index.bytes === 0) {
      reasons.push({ code: 'empty_restore', message: `the archive restored ${index.files} files, but every one of them is empty (0 bytes)` });
    }
    ctx.keep?.({ name: FILE_LIST_ARTIFACT, mediaType: 'application/gzip', bytes: fileListOf(index), baseline: true });
    const changes = await this.sinceLastPass(ctx, index);
    if (changes) {
      summary.sinceLastPass = changes.summary;
      if (changes.reason) reasons.push(changes.reason);
    }
    return { summary, reasons };
  }

  /**
   * The restore against the last passing run's file list (files.ransomware): what ransomware
   * that encrypts in place leaves, judged from names, sizes, digests and content, not from what
   * the files are called today.
   */
  private async sinceLastPass(ctx: RestoreContext<'files'>, index: ArchiveIndex): Promise<{ summary: string; reason?: Reason } | undefined> {
    const cfg = ctx.policy.files.ransomware;
    if (cfg === false || !ctx.lastPassing) return undefined;
    let last: Awaited<ReturnType<NonNullable<typeof ctx.lastPassing>>>;
    try {
      last = await ctx.lastPassing(FILE_LIST_ARTIFACT);
    } catch (err) {
      ctx.logger.warn(`could not read the last passing run's file list: ${(err as Error).message}`);
      return { summary: `not compared: the evidence store did not answer (${(err as Error).message})` };
    }
    if (!last) return { summary: 'not compared: no earlier passing run kept a file list' };
    const list = readFileList(last.bytes);
    if (!list) return { summary: `not compared: the file list of run ${last.runId} cannot be read` };
    const changes = compareLists(list, index);
    const since = `since run ${last.runId.slice(0, 8)} of ${last.startedAt.slice(0, 10)}`;
    const summary = `${since}: ${describeChanges(changes)}${changes.before < cfg.minFiles ? ` (not judged under ${cfg.minFiles} files)` : ''}`;
    const found = suspicions(changes, cfg);
    if (found.length === 0) return { summary };
    return { summary, reason: { code: 'ransomware_suspected', message: `${since} (the last passing one): ${found.join('; ')}` } };
  }

  async probe(ctx: RestoreContext<'files'>): Promise<ProbeResult[]> {
    return runFileProbes(ctx.policy.probes, this.required());
  }

  async logTail(): Promise<string> {
    if (!this.index) return '';
    return `${this.index.entries.size} entries checked, ${formatBytes(this.index.bytes)}`;
  }

  private required(): ArchiveIndex {
    if (!this.index) throw new Error('the archive has not been restored');
    return this.index;
  }
}

/**
 * The sandbox of kinds files and sqlite: backproof/files, uid 1000 (owner of /restore in the
 * image), no capabilities, read-only root, a per-run volume at /restore.
 */
export function filesSandboxSpec(policy: PolicyConfig, runId: string, image?: string): SandboxSpec {
  return {
    runId,
    policy: policy.name,
    image: image ?? policy.sandbox.image ?? DEFAULTS.filesImage,
    cmd: ['sleep', 'infinity'],
    user: FILES_USER,
    capAdd: [],
    ...sandboxLimits(policy),
    volumes: ['/restore'],
    readOnlyRoot: true,
  };
}

function isZip(head: Buffer): boolean {
  const sig = head.subarray(0, 4).toString('latin1');
  return sig === 'PK\x03\x04' || sig === 'PK\x05\x06';
}

/** ustar/GNU magic, or a v7 header whose checksum holds. */
function isTar(head: Buffer): boolean {
  if (head.length < 512) return false;
  if (head.subarray(257, 262).toString('latin1') === 'ustar') return true;
  const stored = Number.parseInt(head.subarray(148, 156).toString('latin1').replace(/\0.*$/s, '').trim(), 8);
  if (!Number.isFinite(stored)) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : head[i]!;
  return sum === stored && head[0] !== 0;
}

function describeHead(head: Buffer): string {
  const text = head.subarray(0, 16).toString('latin1');
  if (/^[\x20-\x7e\t\r\n]+$/.test(text)) return `the text "${text.replace(/\s+/g, ' ').trim()}"`;
  return `the bytes ${head.subarray(0, 8).toString('hex')}`;
}

/**
 * A zip, written into the sandbox's volume, comes back as a tar stream from bsdtar running in
 * the sandbox: bsdtar reads the zip's central directory (what unzip would extract) and `-P`
 * keeps names as they are, so the guard sees every absolute path and `..` the zip holds.
 */
async function zipAsTar(sandbox: Sandbox, zip: Readable, signal: AbortSignal): Promise<Readable> {
  const file = `${INCOMING}/archive.zip`;
  const copy = await sandbox.exec(['dd', `of=${file}`, 'bs=1M', 'status=none'], { stdin: zip, signal });
  if (copy.exitCode !== 0) {
    const words = copy.stderr.trim().slice(0, 300);
    if (/No space left/i.test(words)) throw new VerificationError('sandbox_failed', `the sandbox ran out of disk space for the zip: ${words}`);
    throw new VerificationError('sandbox_failed', `could not write the zip into the sandbox: ${words}`);
  }
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  const tarOut = new PassThrough({ highWaterMark: 1024 * 1024 });
  tarOut.pipe(out, { end: false });
  out.once('close', () => tarOut.destroy());
  sandbox.exec(['bsdtar', '-c', '-f', '-', '--format', 'pax', '-P', `@${file}`], { stdout: tarOut, signal, maxOutputBytes: 8192 }).then(
    (r) => {
      if (out.destroyed) return;
      if (r.exitCode === 0) {
        if (tarOut.readableEnded) out.end();
        else tarOut.once('end', () => out.end());
        return;
      }
      const words = r.stderr.trim().split('\n').slice(-3).join(' ').slice(0, 400);
      const truncated = /truncated|unexpected end|premature/i.test(words);
      out.destroy(new VerificationError(truncated ? 'truncated_dump' : 'restore_failed', `the zip archive is ${truncated ? 'cut short' : 'corrupt'}: bsdtar: ${words || `exit ${r.exitCode}`}`));
    },
    (err: unknown) => out.destroy(err as Error),
  );
  return out;
}

/** Files whose content the manifest probes need, kept while streaming. */
function manifestMatcher(policy: PolicyConfig): ((path: string) => boolean) | undefined {
  const patterns = policy.probes.flatMap((p) => (p.type === 'manifest' ? [p.path] : []));
  if (patterns.length === 0) return undefined;
  const match = picomatch(patterns, { dot: true, basename: !patterns.some((p) => p.includes('/')) });
  return (path) => match(path);
}
