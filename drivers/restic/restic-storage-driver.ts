import path from 'node:path';
import type { Readable } from 'node:stream';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { ChildProcesses, redactAll } from '../cli/child-processes.js';
import type { BackupDetails, BackupEntry, StorageCheck, StorageDriver } from '../storage-driver.js';
import {
  DAMAGED,
  GLOBAL_FLAGS,
  type ResticFindMatch,
  type ResticSnapshot,
  classifyFailure,
  exactPattern,
  parseFind,
  parseJsonOutput,
  parseResticTime,
  parseSnapshots,
  resticEnv,
  spawnFailure,
  stripUserinfoPassword,
  userinfoPassword,
} from './restic-cli.js';

export interface ResticDriverOptions {
  /** A local path or any restic repository string. */
  repository: string;
  /** Secret: given to the child only as RESTIC_PASSWORD, never in argv or in a message. */
  password: string;
  /** Where the password came from, e.g. `source.password of policy shop (${env:RESTIC_PW})`. */
  passwordOrigin: string;
  /** Absolute path of the backup file inside each snapshot, e.g. /var/backups/shop.dump. */
  file: string;
  /** Snapshot filters: this host, all these tags, these paths. */
  host?: string;
  tags?: string[];
  paths?: string[];
  /** `restic check --read-data-subset=<subset>` ("5%", "1/10", "500M"); false or absent: no check. */
  checkSubset?: string | false;
  /** Default `restic` on PATH. */
  binary?: string;
  /** Base environment, default process.env; every RESTIC_* variable in it is dropped. */
  env?: NodeJS.ProcessEnv;
}

const MAX_PROBLEMS = 20;

/**
 * One file inside the snapshots of a restic repository: each snapshot is a backup.
 *
 * Every repository command runs with:
 * - `--no-lock`: verification only reads. restic 0.14 accepts it for snapshots, find, dump and
 *   check; without it check takes an *exclusive* lock ("create exclusive lock for repository"),
 *   which would make the client's own backups fail while we check, and would fail on a
 *   read-only repository. The price: a prune running at the same moment can make check report
 *   packs it just deleted.
 * - `--no-cache`: every byte comes from the repository itself, so a stale local cache cannot
 *   hide damage in it, nothing is written on the verifying host (a service user may have no
 *   home), and nothing is left behind when a run dies. The price: each command reads the index
 *   again, which is small beside the dump.
 *
 * restic checks its own content hashes while dumping: every blob is authenticated (the
 * ciphertext's MAC) and its id is the sha256 of its plaintext, so damaged data makes dump fail
 * rather than print wrong bytes. There is no whole-file checksum to give the runner; `details()`
 * returns none.
 */
export class ResticStorageDriver implements StorageDriver {
  readonly name = 'restic';
  readonly location: string;
  /** Present only when a check subset is configured. */
  declare readonly check?: (entry: BackupEntry, signal?: AbortSignal) => Promise<StorageCheck>;

  private readonly opts: ResticDriverOptions;
  private readonly file: string;
  private readonly secrets: string[];
  private readonly children: ChildProcesses;
  private readonly listed = new Map<string, { snapshot: ResticSnapshot; match?: ResticFindMatch }>();
  private version?: Promise<string | undefined>;

  constructor(opts: ResticDriverOptions) {
    this.opts = opts;
    this.file = path.posix.normalize(opts.file.startsWith('/') ? opts.file : `/${opts.file}`);
    const binary = opts.binary ?? 'restic';
    const inRepo = userinfoPassword(opts.repository);
    this.secrets = [opts.password, ...(inRepo ? [inRepo, decodeSafe(inRepo)] : [])].filter((s) => s.length > 0);
    this.location = `restic repository ${this.redact(stripUserinfoPassword(opts.repository))}, file ${this.file}`;
    this.children = new ChildProcesses({
      tool: 'restic',
      binary,
      env: resticEnv(opts.env ?? process.env, opts.repository, opts.password),
      location: this.location,
      spawnFailure: (err) => spawnFailure(binary, err),
    });
    const subset = opts.checkSubset;
    if (subset !== undefined && subset !== false) {
      this.check = (_entry, signal) => this.runCheck(subset, signal);
    }
  }

  /** Pids of the restic processes still running (diagnostics and tests). */
  get childPids(): number[] {
    return this.children.pids;
  }

  async *list(signal?: AbortSignal): AsyncIterable<BackupEntry> {
    const filters = this.filterArgs();
    const snapshots = parseSnapshots(await this.runJson(['snapshots', '--json', ...GLOBAL_FLAGS, ...filters], signal), 'restic snapshots');
    if (snapshots.length === 0) return;
    const matches = parseFind(
      await this.runJson(['find', '--json', ...GLOBAL_FLAGS, ...filters, exactPattern(this.file)], signal),
      this.file,
      'restic find',
    );
    for (const snapshot of snapshots) {
      signal?.throwIfAborted();
      const time = parseResticTime(snapshot.time);
      if (!time) throw new VerificationError('source_unreachable', `restic snapshot ${snapshot.short_id} has an unreadable time ${JSON.stringify(snapshot.time)}`);
      const match = matches.get(snapshot.id);
      this.listed.set(snapshot.id, { snapshot, match });
      const entry: BackupEntry = {
        key: `${snapshot.short_id}${this.file}`,
        size: match?.type === 'file' ? match.size : 0,
        modifiedAt: time,
        takenAt: time,
        version: snapshot.id,
      };
      if (!match) entry.note = `snapshot ${snapshot.short_id} does not contain ${this.file}`;
      else if (match.type !== 'file') entry.note = `${this.file} in snapshot ${snapshot.short_id} is a ${match.type}, not a file`;
      yield entry;
    }
  }

  async details(entry: BackupEntry, signal?: AbortSignal): Promise<BackupDetails> {
    const id = snapshotId(entry);
    let known = this.listed.get(id);
    if (!known) {
      // Not listed by this instance: ask restic about this one snapshot.
      const [snapshot] = parseSnapshots(await this.runJson(['snapshots', '--json', ...GLOBAL_FLAGS, id], signal), 'restic snapshots');
      if (!snapshot) throw new VerificationError('source_unreachable', `restic snapshot ${id.slice(0, 8)} is not in ${this.location}`);
      const found = parseFind(
        await this.runJson(['find', '--json', ...GLOBAL_FLAGS, '--snapshot', snapshot.id, exactPattern(this.file)], signal),
        this.file,
        'restic find',
      );
      known = { snapshot, match: found.get(snapshot.id) };
      this.listed.set(snapshot.id, known);
    }
    const { snapshot, match } = known;
    const facts: Record<string, string> = {
      snapshot: snapshot.id,
      snapshotTime: parseResticTime(snapshot.time)?.toISOString() ?? snapshot.time,
      host: snapshot.hostname,
      paths: snapshot.paths.join(','),
    };
    if (snapshot.tags.length > 0) facts.tags = snapshot.tags.join(',');
    const mtime = match?.mtime ? parseResticTime(match.mtime) : undefined;
    if (mtime) facts.fileModifiedAt = mtime.toISOString();
    const version = await this.resticVersion(signal);
    if (version) facts.restic = version;
    // restic authenticates and hashes every blob while dumping; there is no whole-file checksum.
    return { checksums: [], unverifiable: [], facts };
  }

  async open(entry: BackupEntry, signal?: AbortSignal): Promise<Readable> {
    signal?.throwIfAborted();
    const id = snapshotId(entry);
    const command = `restic dump ${id.slice(0, 8)} ${this.file}`;
    return this.children.stream(['dump', ...GLOBAL_FLAGS, id, this.file], command, (stderr, code) => this.failure(command, stderr, code), signal);
  }

  private async runCheck(subset: string, signal?: AbortSignal): Promise<StorageCheck> {
    const what = `restic check --read-data-subset=${subset}`;
    const result = await this.children.run(['check', ...GLOBAL_FLAGS, `--read-data-subset=${subset}`], signal);
    const lastLine = (text: string): string => text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean).pop() ?? '';
    if (result.code === 0) return { what, problems: [], summary: lastLine(result.stdout) || 'no errors were found' };
    // Errors in the repository are the check's findings; anything else (wrong password, no
    // repository, network) means the check could not run.
    const failure = this.failure(what, result.stderr, result.code);
    if (failure.reason !== DAMAGED) throw failure;
    const problems = checkProblems(result.stderr).map((p) => this.redact(p));
    const shown = problems.slice(0, MAX_PROBLEMS);
    if (problems.length > MAX_PROBLEMS) shown.push(`... and ${problems.length - MAX_PROBLEMS} more`);
    const summary = lastLine(result.stderr.split(/\r?\n/).filter((l) => l.startsWith('Fatal:')).join('\n')) || 'restic check found errors';
    return { what, problems: shown, summary: this.redact(summary.replace(/^Fatal:\s*/, '')) };
  }

  close(): Promise<void> {
    return this.children.close();
  }

  // ---- child processes ----

  private filterArgs(): string[] {
    const args: string[] = [];
    if (this.opts.host) args.push('--host', this.opts.host);
    if (this.opts.tags && this.opts.tags.length > 0) args.push('--tag', this.opts.tags.join(','));
    for (const p of this.opts.paths ?? []) args.push('--path', p);
    return args;
  }

  /** A read-only command with JSON output; warnings that mean unreadable data are errors too. */
  private async runJson(args: string[], signal?: AbortSignal): Promise<unknown> {
    const command = `restic ${args[0]}`;
    const result = await this.children.run(args, signal);
    if (result.code !== 0) throw this.failure(command, result.stderr, result.code);
    // restic 0.14 exits 0 and leaves the snapshot out when it cannot read a snapshot file
    // (`could not load snapshot ...` on stderr) or a tree (find prints `Unable to load tree
    // <id>` / ` ... which belongs to snapshot <id>` on stdout, around its JSON): a newest
    // snapshot that silently vanished, or one reported without the file, would be wrong.
    const warning = /could not load snapshot|Unable to load tree|which belongs to snapshot/i;
    const stdoutWarnings = result.stdout.split(/\r?\n/).filter((l) => warning.test(l));
    if (warning.test(result.stderr) || stdoutWarnings.length > 0) {
      throw this.failure(command, [result.stderr, ...stdoutWarnings.slice(0, 20)].join('\n'), result.code, 'exit 0 but skipped what it could not read');
    }
    return parseJsonOutput(result.stdout, command);
  }

  private resticVersion(signal?: AbortSignal): Promise<string | undefined> {
    this.version ??= this.children.run(['version'], signal).then(
      (r) => (r.code === 0 ? r.stdout.trim().split(/\r?\n/)[0] : undefined),
      () => undefined,
    );
    return this.version;
  }

  private failure(command: string, stderr: string, code: number | null, exit = `exit ${code ?? '?'}`): VerificationError {
    const ctx = { location: this.location, repository: this.opts.repository, passwordOrigin: this.opts.passwordOrigin, redact: (s: string) => this.redact(s) };
    return classifyFailure(ctx, command, stderr, exit);
  }

  private redact(text: string): string {
    return redactAll(text, this.secrets);
  }
}

/** The full snapshot id of an entry: its version, else the short id the key starts with. */
function snapshotId(entry: BackupEntry): string {
  const id = entry.version ?? entry.key.split('/')[0] ?? '';
  if (!/^[0-9a-f]{8,64}$/.test(id)) throw new VerificationError('source_unreachable', `backup ${entry.key} names no restic snapshot`);
  return id;
}

/** check's error lines, continuation lines joined, without retry noise and the closing `Fatal:`. */
function checkProblems(stderr: string): string[] {
  const problems: string[] = [];
  const fatal: string[] = [];
  for (const raw of stderr.split(/\r?\n/)) {
    const line = raw.trimEnd();
    if (!line.trim() || /returned error, retrying after/.test(line)) continue;
    if (line.startsWith('Fatal:')) fatal.push(line.replace(/^Fatal:\s*/, ''));
    else if (/^\s/.test(line) && problems.length > 0) problems[problems.length - 1] += ` ${line.trim()}`;
    else problems.push(line.replace(/^error:\s*/, ''));
  }
  return problems.length > 0 ? problems : fatal;
}

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
