import type { ReasonCode } from '../../orchestrator/core/domain.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { excerpt } from '../cli/child-processes.js';

/**
 * What the borg driver needs from borg's command line (1.2): the environment it runs with,
 * parsing of `list --json` / `list --json-lines`, and turning what borg prints on stderr into a
 * reason code. The strings matched below are the ones borg 1.2.4 prints; each was produced by
 * experiment against a real repository (see test/borg-driver.test.ts).
 */

export const DAMAGED: ReasonCode = 'repository_damaged';

export interface BorgArchive {
  name: string;
  id: string;
  /** When the archive was started: borg prints local time without an offset; the driver runs borg with TZ=UTC. */
  start: string;
}

export interface BorgItem {
  path: string;
  /** borg's type letter: `-` file, `d` folder, `l` link... */
  type: string;
  size: number;
  mtime?: string;
}

/**
 * The child's environment: the base environment without any BORG_* variable (a stray
 * BORG_PASSCOMMAND, BORG_REPO or BORG_KEY_FILE would override ours), plus:
 * - the passphrase (empty when the policy has none: an encrypted repository then refuses, rather
 *   than borg waiting for a terminal), never in argv, which every user of the machine can read;
 * - BORG_BASE_DIR: the driver's own scratch folder, so borg's security and cache folders are
 *   neither the service user's home nor left behind;
 * - the answers to borg's questions for a repository it has not seen before (a fresh base dir
 *   knows none): reading an unencrypted one is fine, a repository that moved is fine;
 * - TZ=UTC, so the times borg prints without an offset are UTC.
 */
export function borgEnv(base: NodeJS.ProcessEnv, passphrase: string | undefined, baseDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(base)) {
    if (!k.toUpperCase().startsWith('BORG_') && k !== 'TZ' && v !== undefined) env[k] = v;
  }
  env.BORG_PASSPHRASE = passphrase ?? '';
  env.BORG_BASE_DIR = baseDir;
  env.BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK = 'yes';
  env.BORG_RELOCATED_REPO_ACCESS_IS_OK = 'yes';
  env.BORG_DISPLAY_PASSPHRASE = 'no';
  env.TZ = 'UTC';
  return env;
}

/*
 * What borg 1.2.4 prints, by class (exit code 2 for errors, 1 for warnings):
 * - wrong passphrase: `passphrase supplied in BORG_PASSPHRASE, by BORG_PASSCOMMAND or via
 *   BORG_PASSPHRASE_FD is incorrect.`; none for an encrypted repository: `Enter passphrase for
 *   key ...: can not acquire a passphrase: BORG_PASSPHRASE is not set.` (ours is empty, so the
 *   first message);
 * - no repository: `Repository /x does not exist.`; a folder that is not one: `/x is not a valid
 *   repository. Check repo config.`;
 * - the lock held by a running backup, prune or check: `Failed to create/acquire the lock
 *   /x/lock.exclusive (timeout).`;
 * - damage: `Data integrity error: Segment entry checksum mismatch [segment 8, offset 8]`,
 *   `IntegrityError`, `Index object count mismatch`, `Object with key ... not found in
 *   repository`, and check's closing `Finished full repository check, errors found.`;
 * - an archive that is gone (pruned since it was listed): `Archive shop-b does not exist`.
 */
const WRONG_PASSPHRASE = /passphrase supplied in BORG_PASSPHRASE.*is incorrect|can not acquire a passphrase/i;
const MISSING_REPO = [/Repository .* does not exist/i, /is not a valid repository/i];
const LOCKED = /Failed to create\/acquire the lock ([^\s]+)|LockTimeout|LockFailed/i;
const ACCESS_DENIED = [/Permission denied/i, /Remote: Permission denied/i];
const NETWORK = [/Connection closed by remote host/i, /Could not resolve hostname/i, /connection refused/i, /Connection timed out/i, /ssh: /i];
const DAMAGE_PATTERNS = [
  /Data integrity error/i,
  /IntegrityError/,
  /checksum mismatch/i,
  /Index object count mismatch/i,
  /not found in repository|ObjectNotFound/i,
  /errors found/i,
  /Decompression error|decompress(ion)? failed/i,
  /Invalid segment|Segment .* is corrupted|unexpected end of (segment|file)/i,
  /Missing (file )?chunk|chunk .* missing/i,
  /Manifest .* (missing|corrupt)|Repository manifest not found/i,
];
const ARCHIVE_GONE = /Archive (.+) does not exist/i;
/** Python's traceback and borg's platform block: noise in an excerpt. */
const NOISE = /^\s*(Traceback|File "|\^+$|Platform:|Linux:|Borg: |PID: |sys\.argv|SSH_ORIGINAL_COMMAND|Local Exception|[a-z_]+ = |cdata = |return |raise |size, tag)/;

export interface FailureContext {
  /** The driver's location (repository and file), never a secret. */
  location: string;
  repository: string;
  passphraseOrigin: string;
  redact: (s: string) => string;
}

/** Turns a failed borg command into a VerificationError. */
export function classifyFailure(ctx: FailureContext, command: string, stderr: string, exit: string): VerificationError {
  const said = excerpt(stderr, ctx.redact, NOISE);
  const repo = ctx.redact(ctx.repository);
  if (WRONG_PASSPHRASE.test(stderr)) {
    return new VerificationError(
      'source_denied',
      `borg repository ${repo} rejected the passphrase from ${ctx.passphraseOrigin} (it is wrong, or the repository is encrypted and the policy gives none); check that reference`,
    );
  }
  const locked = LOCKED.exec(stderr);
  if (locked) {
    return new VerificationError(
      'source_throttled',
      `borg repository ${repo} is locked${locked[1] ? ` (${ctx.redact(locked[1])})` : ''}: a backup, prune or check holds it; verify outside the backup window or raise source.lockWait (borg: ${said})`,
    );
  }
  if (MISSING_REPO.some((p) => p.test(stderr))) {
    return new VerificationError('source_unreachable', `there is no borg repository at ${repo}; check the path and that the share is mounted (borg: ${said})`);
  }
  if (DAMAGE_PATTERNS.some((p) => p.test(stderr))) {
    return new VerificationError(DAMAGED, `borg repository ${repo} is damaged: ${command} failed (${exit}; borg: ${said})`);
  }
  const gone = ARCHIVE_GONE.exec(stderr);
  if (gone) return new VerificationError('source_changed', `borg archive ${ctx.redact(gone[1] ?? '')} is no longer in ${repo} (pruned while it was verified?)`);
  if (ACCESS_DENIED.some((p) => p.test(stderr))) {
    return new VerificationError('source_denied', `access to borg repository ${repo} was denied; check its permissions (borg needs write access to the repository's lock files) (borg: ${said})`);
  }
  if (NETWORK.some((p) => p.test(stderr))) {
    return new VerificationError('source_unreachable', `borg repository ${repo} cannot be reached (${command}, ${exit}; borg: ${said})`);
  }
  return new VerificationError('source_unreachable', `${command} failed for ${ctx.location} (${exit}; borg: ${said || 'no message'})`);
}

/** A spawn failure (the binary is missing or not executable). */
export function spawnFailure(binary: string, err: unknown): VerificationError {
  const code = (err as { code?: string }).code;
  if (code === 'ENOENT') {
    return new VerificationError('source_unreachable', `borg is not installed or not on PATH (${binary} not found); apt-get install borgbackup`, { cause: err });
  }
  const why = code === 'EACCES' ? 'is not executable (permission denied)' : `cannot be started (${code ?? String(err)})`;
  return new VerificationError('source_unreachable', `borg binary ${binary} ${why}`, { cause: err });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `borg list --json REPO` → its archives, oldest first as borg prints them. */
export function parseArchives(stdout: string, command: string): BorgArchive[] {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    throw new VerificationError('source_unreachable', `${command} printed output that is not JSON: ${JSON.stringify(stdout.trim().slice(0, 200))}`);
  }
  if (!isObject(doc) || !Array.isArray(doc.archives)) throw new VerificationError('source_unreachable', `${command} printed no archive list`);
  const out: BorgArchive[] = [];
  for (const a of doc.archives) {
    if (!isObject(a) || typeof a.name !== 'string' || typeof a.id !== 'string') continue;
    const start = typeof a.start === 'string' ? a.start : typeof a.time === 'string' ? a.time : '';
    out.push({ name: a.name, id: a.id, start });
  }
  return out;
}

/** `borg list --json-lines REPO::ARCHIVE PATH` → the item at exactly `file`, if any. */
export function parseItem(stdout: string, file: string): BorgItem | undefined {
  for (const line of stdout.split('\n')) {
    if (!line.trim()) continue;
    let item: unknown;
    try {
      item = JSON.parse(line);
    } catch {
      continue;
    }
    if (!isObject(item) || item.path !== file) continue;
    return {
      path: file,
      type: typeof item.type === 'string' ? item.type : '-',
      size: typeof item.size === 'number' ? item.size : 0,
      mtime: typeof item.mtime === 'string' ? item.mtime : undefined,
    };
  }
  return undefined;
}

/** borg's `2026-12-01T02:00:00.000000` (UTC, as the driver runs it) as a Date. */
export function parseBorgTime(text: string): Date | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,3})?\d*$/.exec(text.trim());
  if (!m) return undefined;
  const d = new Date(`${m[1]}${m[2] ?? ''}Z`);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** The type letter of a borg item in words. */
export function itemKind(type: string): string {
  return type === 'd' ? 'folder' : type === 'l' ? 'symbolic link' : type === 'h' ? 'hard link' : type === '-' ? 'file' : `special file (${type})`;
}
