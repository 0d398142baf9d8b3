import type { ReasonCode } from '../../orchestrator/core/domain.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { excerpt as sharedExcerpt } from '../cli/child-processes.js';

/**
 * What the restic driver needs from restic's command line (0.14 and later): the environment it
 * runs with, parsing of `snapshots --json` / `find --json`, and turning what restic prints on
 * stderr into a reason code. The strings matched below are the ones restic 0.14.0 prints; each
 * was produced by experiment against a real repository (see test/restic-driver.test.ts).
 */

const DENIED: ReasonCode = 'source_denied';
export const DAMAGED: ReasonCode = 'repository_damaged';

/** Global flags of every repository command: see ResticStorageDriver for why. */
export const GLOBAL_FLAGS = ['--no-lock', '--no-cache'];

export interface ResticSnapshot {
  id: string;
  short_id: string;
  time: string;
  hostname: string;
  paths: string[];
  tags: string[];
}

export interface ResticFindMatch {
  path: string;
  type: string;
  size: number;
  mtime?: string;
}

/**
 * The child's environment: the base environment without any RESTIC_* variable (a stray
 * RESTIC_PASSWORD_COMMAND or RESTIC_REPOSITORY_FILE would override ours), plus the repository
 * and the password. Both go through the environment, never argv: argv is visible to every user
 * of the machine (`ps`), and a rest: repository string may carry a password of its own.
 */
export function resticEnv(base: NodeJS.ProcessEnv, repository: string, password: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(base)) {
    if (!k.toUpperCase().startsWith('RESTIC_') && v !== undefined) env[k] = v;
  }
  env.RESTIC_REPOSITORY = repository;
  env.RESTIC_PASSWORD = password;
  return env;
}

/** `rest:https://user:secret@host/` → `rest:https://user@host/`. */
export function stripUserinfoPassword(repository: string): string {
  return repository.replace(/(\/\/[^/:@]*):[^/@]*@/, '$1@');
}

/** The password part of a repository string's userinfo, if any. */
export function userinfoPassword(repository: string): string | undefined {
  return /\/\/[^/:@]*:([^/@]*)@/.exec(repository)?.[1] || undefined;
}

/** A glob pattern for `restic find` that matches exactly `file` (restic uses filepath.Match, `\` escapes). */
export function exactPattern(file: string): string {
  return file.replace(/[\\*?[\]]/g, (c) => `\\${c}`);
}

/** Lines restic prints while retrying a backend request: noise in an excerpt. */
const RETRY_LINE = /returned error, retrying after/;

/** The last ~300 characters of stderr, without retry noise and without any secret. */
export function excerpt(stderr: string, redact: (s: string) => string, max = 300): string {
  return sharedExcerpt(stderr, redact, RETRY_LINE, max);
}

/*
 * What restic 0.14.0 prints, by class:
 * - wrong password: `Fatal: wrong password or no key found`; an empty one (it then reads stdin):
 *   `Fatal: an empty password is not a password`.
 * - no repository: `Fatal: unable to open config file: stat /x/config: no such file or directory`
 *   followed by `Is there a repository at the following location?`.
 * - damage: a flipped byte in a pack: `decrypting blob <id> failed: ciphertext verification
 *   failed` (dump, and `cannot load subtree for "/dir": ...` when it is a tree), `Pack ID does not
 *   match, want <id>, got <id>` (check); a missing pack: `ReadFull(<data/f38a71e020>): open
 *   .../data/f3/<id>: no such file or directory` (dump, after ~45 s of `Load(...) returned error,
 *   retrying after ...`), `pack <id>: does not exist` (check); a truncated pack: `ReadFull(...):
 *   unexpected EOF`, `pack <id>: unexpected file size: got N, expected M`; a damaged snapshot or
 *   index file: `could not load snapshot 6a017337: load <snapshot/6a017337b0>: invalid data
 *   returned`, `Fatal: load <index/e71a5f71bb>: invalid data returned`, `error loading index`,
 *   `Fatal: LoadIndex returned errors`; damaged trees seen by find: `Unable to load tree <id>`
 *   ` ... which belongs to snapshot <id>`; and check's `Fatal: repository contains errors`.
 */
const DENIED_PATTERNS = [/wrong password or no key found/i, /an empty password is not a password/i];
const MISSING_REPO = [/Is there a repository at the following location\?/i, /unable to open config file/i, /repository does not exist/i];
const ACCESS_DENIED = [/permission denied/i, /access denied|AccessDenied/i, /\bForbidden\b/i, /\bUnauthorized\b/i, /InvalidAccessKeyId|SignatureDoesNotMatch/];
const NETWORK = [
  /connection refused/i,
  /no such host/i,
  /i\/o timeout/i,
  /network is unreachable/i,
  /connection reset/i,
  /TLS handshake/i,
  /context deadline exceeded/i,
  /certificate/i,
];
const DAMAGE_PATTERNS = [
  /ciphertext verification failed/i,
  /(?:pack|blob) ID does not match/i,
  /hash mismatch/i,
  /invalid data returned/i,
  /unexpected file size/i,
  /pack [0-9a-f]+: does not exist/i,
  /pack [0-9a-f]+ failed to download/i,
  /ReadFull\(<data\/[0-9a-f]+>\): (?:unexpected EOF|open [^\n]*: no such file or directory)/i,
  /cannot load subtree/i,
  /Unable to load tree/i,
  /LoadBlob|LoadIndex returned errors|error loading index|unable to load/i,
  /blob [0-9a-f]+ not found|not found in index/i,
  /repository contains errors/i,
];

export interface FailureContext {
  /** The driver's location (repository and file), never a secret. */
  location: string;
  repository: string;
  passwordOrigin: string;
  redact: (s: string) => string;
}

/** Turns a failed restic command (or a warning that means the data is unreadable) into a VerificationError. */
export function classifyFailure(ctx: FailureContext, command: string, stderr: string, exit: string): VerificationError {
  const said = excerpt(stderr, ctx.redact);
  const repo = ctx.redact(stripUserinfoPassword(ctx.repository));
  if (/an empty password is not a password/i.test(stderr)) {
    return new VerificationError(DENIED, `the restic password for ${repo} from ${ctx.passwordOrigin} is empty (restic: ${said})`);
  }
  if (DENIED_PATTERNS.some((p) => p.test(stderr))) {
    return new VerificationError(
      DENIED,
      `restic repository ${repo} rejected the password from ${ctx.passwordOrigin} (wrong password or no key found); check that reference`,
    );
  }
  if (ACCESS_DENIED.some((p) => p.test(stderr)) && !DAMAGE_PATTERNS.some((p) => p.test(stderr))) {
    return new VerificationError(DENIED, `access to restic repository ${repo} was denied; check its credentials and permissions (restic: ${said})`);
  }
  if (MISSING_REPO.some((p) => p.test(stderr))) {
    return new VerificationError(
      'source_unreachable',
      `there is no restic repository at ${repo} (or it cannot be reached); check the repository string and that the share is mounted (restic: ${said})`,
    );
  }
  if (NETWORK.some((p) => p.test(stderr))) {
    return new VerificationError('source_unreachable', `restic repository ${repo} cannot be reached (${command}, ${exit}; restic: ${said})`);
  }
  if (DAMAGE_PATTERNS.some((p) => p.test(stderr))) {
    return new VerificationError(DAMAGED, `restic repository ${repo} is damaged: ${command} failed (${exit}; restic: ${said})`);
  }
  return new VerificationError('source_unreachable', `${command} failed for ${ctx.location} (${exit}; restic: ${said || 'no message'})`);
}

/** A spawn failure (the binary is missing or not executable). */
export function spawnFailure(binary: string, err: unknown): VerificationError {
  const code = (err as { code?: string }).code;
  if (code === 'ENOENT') {
    return new VerificationError(
      'source_unreachable',
      `restic is not installed or not on PATH (${binary} not found); apt-get install restic`,
      { cause: err },
    );
  }
  const why = code === 'EACCES' ? 'is not executable (permission denied)' : `cannot be started (${code ?? String(err)})`;
  return new VerificationError('source_unreachable', `restic binary ${binary} ${why}`, { cause: err });
}

/**
 * restic's JSON output on stdout: one document (an array for snapshots and find). Anything
 * before the document (a stray line) is skipped; messages go to stderr, which is read apart.
 */
export function parseJsonOutput(stdout: string, command: string): unknown {
  const text = stdout.trim();
  const attempts = [text];
  const start = text.search(/^[[{]/m);
  if (start > 0) attempts.push(text.slice(start));
  for (const candidate of attempts) {
    try {
      return JSON.parse(candidate) as unknown;
    } catch {
      // try the next candidate
    }
  }
  throw new VerificationError('source_unreachable', `${command} printed output that is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

export function parseSnapshots(doc: unknown, command: string): ResticSnapshot[] {
  if (!Array.isArray(doc)) throw new VerificationError('source_unreachable', `${command} did not print a JSON array`);
  const out: ResticSnapshot[] = [];
  for (const s of doc) {
    if (!isObject(s) || typeof s.id !== 'string' || typeof s.time !== 'string') continue;
    out.push({
      id: s.id,
      short_id: typeof s.short_id === 'string' ? s.short_id : s.id.slice(0, 8),
      time: s.time,
      hostname: typeof s.hostname === 'string' ? s.hostname : '',
      paths: strings(s.paths),
      tags: strings(s.tags),
    });
  }
  return out;
}

/** `find --json` output → the match of exactly `file`, by full snapshot id. */
export function parseFind(doc: unknown, file: string, command: string): Map<string, ResticFindMatch> {
  if (!Array.isArray(doc)) throw new VerificationError('source_unreachable', `${command} did not print a JSON array`);
  const found = new Map<string, ResticFindMatch>();
  for (const group of doc) {
    if (!isObject(group) || typeof group.snapshot !== 'string' || !Array.isArray(group.matches)) continue;
    for (const m of group.matches) {
      // find matches a pattern as a prefix too (a folder's children), so keep the exact path only.
      if (!isObject(m) || m.path !== file) continue;
      found.set(group.snapshot, {
        path: file,
        type: typeof m.type === 'string' ? m.type : 'file',
        size: typeof m.size === 'number' ? m.size : 0,
        mtime: typeof m.mtime === 'string' ? m.mtime : undefined,
      });
    }
  }
  return found;
}

/** restic prints nanoseconds (`2026-11-25T02:00:00.123456789+01:00`); Date wants at most milliseconds. */
export function parseResticTime(text: string): Date | undefined {
  const d = new Date(text.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isNaN(d.getTime()) ? undefined : d;
}
