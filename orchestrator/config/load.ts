/**
 * Loading the config file: YAML (with line numbers) -> `${env:..}`/`${file:..}` references ->
 * the zod schema -> ResolvedConfig. Every problem found is reported at once, each with the key
 * path, line and column of the offending node and what to do about it.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Document, LineCounter } from 'yaml';
import type { z } from 'zod';
import { DEFAULTS } from '../core/defaults.js';
import { ConfigError, type ConfigProblem } from '../core/errors.js';
import { mergeSources, parseSource, readConfigDir, topLevelOnly, type MergedConfig } from './config-sources.js';
import { BoundedReadError, CONFIG_MAX_BYTES, readBoundedFile, resolveReferences, type KeyPath } from './references.js';
import { checkLogo } from './reports-schema.js';
import { configJsonSchema, configSchema, FIX_SEPARATOR, isPostgresUrl, quote, storeSettingsSchema } from './schema.js';
import type { ResolvedConfig } from '../core/config-types.js';
import { secretsIn } from './secret-schema.js';
import { yamlLib } from './yaml-lib.js';

/** Problems reported at most; past this, one line says how many more there are. */
const MAX_PROBLEMS = 100;

/**
 * Reads, checks and resolves the config: a file, or a folder whose `*.yaml` / `*.yml` files are
 * read together (config-sources.ts: one file per client is the convention); throws ConfigError
 * listing every problem, each with the file it is in.
 */
export async function loadConfig(file: string): Promise<ResolvedConfig> {
  const { merged, full, baseDir } = await readMerged(file);
  return resolveConfig(merged, full, baseDir, process.env);
}

/**
 * Only what opening the evidence store takes (`database:` and `evidence:`), for the commands
 * that read evidence back (runs, tokens): the clients and policies are neither checked nor
 * resolved, so a config of thousands of policies costs them nothing, and a problem in a policy
 * does not keep anyone from reading the evidence. A problem in those two sections is reported
 * as loadConfig reports it.
 */
export async function loadStoreSettings(file: string): Promise<Pick<ResolvedConfig, 'database' | 'evidence'>> {
  const { merged, full, baseDir } = await readMerged(file, STORE_KEYS);
  const where = (at: KeyPath, atKey = false): Pick<ConfigProblem, 'file' | 'path' | 'line' | 'column'> => {
    const origin = merged.locate(at);
    return { file: origin.source.file, path: formatPath(origin.at), ...locate(origin.source.located(), origin.at, atKey) };
  };
  const all = (merged.data ?? {}) as Record<string, unknown>;
  const part: Record<string, unknown> = {};
  if (all.database !== undefined) part.database = all.database;
  if (all.evidence !== undefined) part.evidence = all.evidence;
  const refs = resolveReferences(part, { baseDir, env: process.env });
  const problems: ConfigProblem[] = refs.problems.map((p) => ({ ...where(p.path), problem: p.problem, fix: p.fix }));
  const parsed = storeSettingsSchema.safeParse(refs.value);
  if (!parsed.success) {
    for (const draft of parsed.error.issues.flatMap((issue) => describeIssue(issue, [], refs.value))) {
      problems.push({ ...where(draft.path, draft.atKey), problem: draft.problem, fix: draft.fix });
    }
  }
  const fromEnv = process.env.DATABASE_URL;
  const url = parsed.data?.database.url ?? (fromEnv || undefined);
  if (parsed.data?.database.url === undefined && url !== undefined && !isPostgresUrl(url)) {
    problems.push({ file: full, path: 'database.url', problem: 'environment variable DATABASE_URL is not a postgres:// URL', fix: 'export DATABASE_URL=postgres://user:password@host:5432/dbname, or unset it to use the embedded store' });
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const { database, evidence } = parsed.data;
  return {
    database: url !== undefined ? { url, schema: database.schema } : { schema: database.schema },
    ...(evidence !== undefined ? { evidence } : {}),
  };
}

const STORE_KEYS = ['database', 'evidence'] as const;

/**
 * The config's sources, read and merged: a file, or a folder of files. With `only`, a file may be
 * read as those top-level entries alone (topLevelOnly: 1,000 policies are ~60 ms of parsing that
 * `runs list` does not need); when that is unsure or what is left does not parse, the whole file
 * is read, so its problems are reported as they are without `only`.
 */
async function readMerged(file: string, only?: readonly string[]): Promise<{ merged: MergedConfig; full: string; baseDir: string }> {
  const full = path.resolve(file);
  if ((await stat(full).catch(() => undefined))?.isDirectory()) {
    return { merged: mergeSources(await readConfigDir(full)), full, baseDir: full };
  }
  let text: string;
  try {
    text = readBoundedFile(full, CONFIG_MAX_BYTES);
  } catch (err) {
    if (err instanceof BoundedReadError) {
      throw new ConfigError([{ file: full, path: '', problem: err.message, fix: err.fix ?? `give --config a YAML file of at most ${CONFIG_MAX_BYTES / 1024 ** 2} MiB, or a folder of them (one file per client)` }]);
    }
    const code = (err as NodeJS.ErrnoException).code;
    const problem = code === 'ENOENT' ? 'file not found' : `cannot be read (${code ?? String(err)})`;
    const fix =
      code === 'ENOENT'
        ? `create it (start from version: 1 and a clients: list), or point backproof at your file or folder with --config PATH or the BACKPROOF_CONFIG environment variable (default ./${DEFAULTS.configFile})`
        : 'make the file readable by this user, or pass another file with --config FILE or BACKPROOF_CONFIG';
    throw new ConfigError([{ file: full, path: '', problem, fix }]);
  }
  const part = only ? topLevelOnly(text, only) : undefined;
  if (part !== undefined) {
    try {
      const source = parseSource(part, full);
      // None of `only` in the file: an empty mapping, not an empty file.
      if (source.data === null) source.data = {};
      return { merged: mergeSources([source]), full, baseDir: path.dirname(full) };
    } catch {
      // The whole file says what is wrong, and where.
    }
  }
  return { merged: mergeSources([parseSource(text, full)]), full, baseDir: path.dirname(full) };
}

/** Parses config text as if read from `file` (used for relative paths and messages). */
export function parseConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): ResolvedConfig {
  const full = path.resolve(file);
  return resolveConfig(mergeSources([parseSource(text, full)]), full, path.dirname(full), env);
}

/** Checks and resolves merged config data; problems are located through `merged.locate`. */
function resolveConfig(merged: MergedConfig, full: string, baseDir: string, env: NodeJS.ProcessEnv): ResolvedConfig {
  const where = (at: KeyPath, atKey = false): Pick<ConfigProblem, 'file' | 'path' | 'line' | 'column'> => {
    const origin = merged.locate(at);
    return { file: origin.source.file, path: formatPath(origin.at), ...locate(origin.source.located(), origin.at, atKey) };
  };
  const data = merged.data;

  const refs = resolveReferences(data, { baseDir, env });
  const problems: ConfigProblem[] = refs.problems.map((p) => ({ ...where(p.path), problem: p.problem, fix: p.fix }));
  const refPaths = refs.problems.map((p) => formatPath(p.path));

  const parsed = configSchema.safeParse(refs.value);
  const issues = parsed.success ? [] : parsed.error.issues.flatMap((issue) => describeIssue(issue, [], refs.value));
  let unshown = 0;
  for (const draft of [...issues, ...duplicateNames(refs.value)]) {
    const at = formatPath(draft.path);
    // A failed reference left a hole; the schema's complaint about it would be noise.
    if (refPaths.some((p) => at === p || at.startsWith(`${p}.`) || at.startsWith(`${p}[`))) continue;
    // Locating a problem walks the document: past the cap, they are only counted (linear time).
    if (problems.length >= MAX_PROBLEMS) {
      unshown++;
      continue;
    }
    problems.push({ ...where(draft.path, draft.atKey), problem: draft.problem, fix: draft.fix });
  }

  // Every field the schema declares secret (secret-schema.ts), taken from the data as read: known
  // whether written in the file or through a reference, and even when the file has problems.
  const secrets = new Set([...refs.secrets, ...secretsIn(configSchema, refs.value)]);
  let resolved: ResolvedConfig | undefined;
  if (parsed.success) {
    const config = parsed.data;
    config.clients.forEach((client, ci) => {
      client.policies.forEach((policy, pi) => {
        const at = `clients.${ci}.policies.${pi}.source`;
        const origin = (what: string, keys: string[]): string => {
          const written = keys.flatMap((k) => refs.origins.get(`${at}.${k}`) ?? []);
          return `${what} of policy ${policy.name} in ${merged.locate(['clients', ci, 'policies', pi]).source.file}${written.length > 0 ? ` (${[...new Set(written)].join(', ')})` : ' (written in the file)'}`;
        };
        const src = policy.source;
        if (src.driver === 'local') src.path = path.resolve(baseDir, src.path);
        if (src.driver === 's3') {
          if (src.credentials) {
            src.credentials.origin = origin('source.credentials', ['credentials.accessKeyId', 'credentials.secretAccessKey', 'credentials.sessionToken']);
          }
          if (src.caFile) src.caFile = path.resolve(baseDir, src.caFile);
        }
        if (src.driver === 'borg') {
          src.passphraseOrigin = origin('source.passphrase', ['passphrase']);
          // A local repository path is relative to the config file; ssh:// names a remote one.
          if (!/^[a-z0-9]+:\/\//i.test(src.repository)) src.repository = path.resolve(baseDir, src.repository);
        }
        if (src.driver === 'pgbackrest') {
          if (!src.s3) src.repository = path.resolve(baseDir, src.repository);
          if (src.s3?.credentials) {
            src.s3.credentials.origin = origin('source.s3.credentials', ['s3.credentials.accessKeyId', 's3.credentials.secretAccessKey', 's3.credentials.sessionToken']);
          }
          if (src.s3?.caFile) src.s3.caFile = path.resolve(baseDir, src.s3.caFile);
        }
        if (src.driver === 'mariabackup' || src.driver === 'barman') src.path = path.resolve(baseDir, src.path);
        if (src.driver === 'mariabackup' && src.binlogs !== undefined) src.binlogs = path.resolve(baseDir, src.binlogs);
        if (src.driver === 'restic') {
          src.passwordOrigin = origin('source.password', ['password']);
          // A local repository path is relative to the config file; other restic locations name a backend.
          if (!/^[a-z0-9]+:/i.test(src.repository)) src.repository = path.resolve(baseDir, src.repository);
        }
      });
    });
    const database = { ...config.database };
    const fromEnv = env.DATABASE_URL;
    if (database.url === undefined && fromEnv !== undefined && fromEnv !== '') {
      if (isPostgresUrl(fromEnv)) database.url = fromEnv;
      else {
        problems.push({
          file: full,
          path: 'database.url',
          problem: 'environment variable DATABASE_URL is not a postgres:// URL',
          fix: 'export DATABASE_URL=postgres://user:password@host:5432/dbname, or unset it to use the embedded store',
        });
      }
      secrets.add(fromEnv);
    }
    const password = database.url === undefined ? '' : urlPassword(database.url);
    if (password !== '') secrets.add(password);
    if (config.evidence?.signingKey !== undefined) secrets.add(config.evidence.signingKey);
    for (const key of [config.docker.tls?.key, config.docker.sshKey]) if (key !== undefined) secrets.add(key);
    const daemon = config.daemon;
    if (daemon.liveness.file !== undefined) daemon.liveness.file = path.resolve(baseDir, daemon.liveness.file);
    const witness = config.evidence?.witness?.s3;
    if (witness?.caFile !== undefined) witness.caFile = path.resolve(baseDir, witness.caFile);
    for (const channel of config.alerts.channels) if (channel.type === 'email' && channel.auth) secrets.add(channel.auth.pass);
    const reports = config.reports;
    if (reports?.logo !== undefined) {
      reports.logo = path.resolve(baseDir, reports.logo);
      const bad = checkLogo(reports.logo);
      if (bad) problems.push({ ...where(['reports', 'logo']), ...bad });
    }
    resolved = { file: full, database, docker: config.docker, daemon, alerts: config.alerts, clients: config.clients, policies: config.policies, secrets: [...secrets], ...(reports ? { reports } : {}), ...(config.evidence ? { evidence: config.evidence } : {}) };
  }

  if (problems.length > 0 || resolved === undefined) {
    const shown = sortProblems(dedupeProblems(problems));
    if (unshown > 0) shown.push({ file: full, path: '', problem: `and ${unshown} more problem(s) not shown`, fix: 'fix the ones above and validate again' });
    throw new ConfigError(shown.map((p) => redact(p, [...secrets])));
  }
  return resolved;
}

// ---- Issues into problems ------------------------------------------------------------------

interface Draft {
  path: KeyPath;
  /** Point at the key itself rather than its value (unknown keys). */
  atKey?: boolean;
  problem: string;
  fix: string;
}

type Issue = z.core.$ZodIssue;

function describeIssue(issue: Issue, prefix: KeyPath, data: unknown): Draft[] {
  const at: KeyPath = [...prefix, ...issue.path.map((k) => (typeof k === 'number' ? k : String(k)))];
  if (issue.code === 'unrecognized_keys') {
    const allowed = allowedKeys(at, data);
    return issue.keys.map((key) => ({ path: [...at, key], atKey: true, problem: `unknown key ${quote(key)}`, fix: suggestKey(key, allowed) }));
  }
  const present = isPresent(data, at);
  if (issue.code === 'invalid_union' && present) {
    // Report the branch the value was meant for: the first whose root type fits the value.
    const fitting = issue.errors.find((branch) =>
      branch.every((i) => i.path.length > 0 || (i.code !== 'invalid_type' && i.code !== 'invalid_value')),
    );
    if (fitting) return fitting.flatMap((i) => describeIssue(i, at, data));
  }
  const split = issue.message.indexOf(FIX_SEPARATOR);
  if (present && split !== -1) {
    return [{ path: at, problem: issue.message.slice(0, split), fix: issue.message.slice(split + 1) }];
  }
  return [{ path: at, ...genericProblem(issue, at, data, present) }];
}

function genericProblem(issue: Issue, at: KeyPath, data: unknown, present: boolean): { problem: string; fix: string } {
  const key = at.at(-1);
  if (!present) {
    const parent = formatPath(at.slice(0, -1));
    const about = describeKey(at);
    return {
      problem: `missing required key ${quote(key)}`,
      fix: `add ${String(key)}: under ${parent || 'the top level'}${about ? ` (${about})` : ''}`,
    };
  }
  const input = valueAt(data, at);
  if (input === null) {
    return { problem: `${quote(key ?? 'the file')} has no value`, fix: `write a value after "${String(key)}:", or remove the key` };
  }
  switch (issue.code) {
    case 'invalid_type':
      return { problem: `expected ${article(issue.expected)}, got ${kindOf(input)}`, fix: typeFix(issue.expected, at) };
    case 'invalid_value':
      return { problem: `${quote(input)} is not allowed here`, fix: `use ${issue.values.map((v) => quote(v)).join(' or ')}` };
    case 'invalid_union':
      return { problem: `${kindOf(input)} is not allowed here`, fix: describeKey(at) ?? 'see the JSON schema for the allowed forms' };
    case 'too_small':
    case 'too_big': {
      const small = issue.code === 'too_small';
      const limit = small ? issue.minimum : issue.maximum;
      const bound = `${small ? 'at least' : 'at most'} ${String(limit)}`;
      if (issue.origin === 'array') {
        return {
          problem: Array.isArray(input) && input.length === 0 ? 'the list is empty' : `the list needs ${bound} items`,
          fix: small ? `add ${bound} item${Number(limit) === 1 ? '' : 's'}` : `keep ${bound} items`,
        };
      }
      if (issue.origin === 'string') return { problem: `${quote(input)} is too ${small ? 'short' : 'long'}`, fix: `use ${bound} characters` };
      const strict = issue.inclusive === false;
      return {
        problem: `${quote(input)} is too ${small ? 'small' : 'large'}`,
        fix: `use a number ${small ? (strict ? 'above' : 'of at least') : strict ? 'below' : 'of at most'} ${String(limit)}`,
      };
    }
    case 'invalid_format':
      return { problem: `${quote(input)} has the wrong form`, fix: describeKey(at) ?? `match ${issue.format}` };
    default:
      return { problem: issue.message, fix: describeKey(at) ?? 'correct the value' };
  }
}

const TYPE_FIXES: Record<string, string> = {
  object: 'write key: value pairs',
  array: 'write a list: one "- item" per line, or [a, b]',
  boolean: 'write true or false',
  number: 'write a number without quotes',
  int: 'write a whole number without quotes',
  string: 'write text (quote it if it looks like a number or contains ": " or "#")',
};

function typeFix(expected: string, at: KeyPath): string {
  const about = describeKey(at);
  const base = TYPE_FIXES[expected] ?? `write ${article(expected)}`;
  return about ? `${base} (${about})` : base;
}

/** Client names are unique, and policy names unique across all clients. */
function duplicateNames(data: unknown): Draft[] {
  const drafts: Draft[] = [];
  const firstAt = new Map<string, string>();
  const check = (kind: 'client' | 'policy', at: KeyPath, fix: string) => {
    const name = valueAt(data, at);
    if (typeof name !== 'string') return;
    const first = firstAt.get(`${kind}:${name}`);
    if (first === undefined) firstAt.set(`${kind}:${name}`, formatPath(at.slice(0, -1)));
    else drafts.push({ path: at, problem: `${kind} name ${quote(name)} is already used by ${first}`, fix });
  };
  const clients = valueAt(data, ['clients']);
  (Array.isArray(clients) ? clients : []).forEach((client: unknown, i) => {
    check('client', ['clients', i, 'name'], 'give each client a unique name');
    const policies = valueAt(client, ['policies']);
    (Array.isArray(policies) ? policies : []).forEach((_policy: unknown, j) => {
      const fix = 'give each policy a name unique across all clients, e.g. prefix it with the client name';
      check('policy', ['clients', i, 'policies', j, 'name'], fix);
    });
  });
  return drafts;
}

function article(expected: string): string {
  const names: Record<string, string> = { object: 'a mapping (key: value pairs)', array: 'a list', int: 'a whole number', string: 'text' };
  return names[expected] ?? (/^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`);
}

function kindOf(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'nothing';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `text ${quote(value)}`;
  return `${typeof value === 'number' ? 'the number' : typeof value === 'boolean' ? 'the boolean' : typeof value} ${String(value)}`;
}

// ---- Data and schema lookups -----------------------------------------------------------------

function valueAt(data: unknown, at: KeyPath): unknown {
  let node = data;
  for (const key of at) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, unknown>)[key];
  }
  return node;
}

function isPresent(data: unknown, at: KeyPath): boolean {
  if (at.length === 0) return data !== undefined;
  const parent = valueAt(data, at.slice(0, -1));
  const key = at.at(-1)!;
  if (Array.isArray(parent)) return typeof key === 'number' && key < parent.length;
  return parent !== null && typeof parent === 'object' && Object.hasOwn(parent, key);
}

type JsonSchema = { properties?: Record<string, JsonSchema>; items?: JsonSchema; anyOf?: JsonSchema[]; oneOf?: JsonSchema[]; const?: unknown; description?: string };

/**
 * The branches a node stands for: the object forms of a union; of a union told apart by
 * `driver`, only the branch of the driver written at `at` (when the data is given).
 */
function branchesOf(node: JsonSchema, at: KeyPath, data?: unknown): JsonSchema[] {
  const options = node.anyOf ?? node.oneOf ?? [node];
  if (data === undefined || !node.oneOf) return options;
  const written = valueAt(data, [...at, 'driver']);
  const chosen = options.filter((o) => o.properties?.driver?.const === written);
  return chosen.length > 0 ? chosen : options;
}

/** The JSON schema node of a key path, through lists and the object forms of unions. */
function schemaAt(at: KeyPath, data?: unknown): JsonSchema | undefined {
  let node: JsonSchema | undefined = configJsonSchema() as JsonSchema;
  for (const [i, key] of at.entries()) {
    if (node === undefined) return undefined;
    const options = branchesOf(node, at.slice(0, i), data);
    node = typeof key === 'number' ? options.find((o) => o.items)?.items : options.find((o) => o.properties?.[key])?.properties?.[key];
  }
  return node;
}

function allowedKeys(at: KeyPath, data?: unknown): string[] {
  const node = schemaAt(at, data);
  return [...new Set((node ? branchesOf(node, at, data) : []).flatMap((o) => Object.keys(o.properties ?? {})))];
}

function describeKey(at: KeyPath): string | undefined {
  const description = schemaAt(at)?.description;
  return description?.replace(/\.$/, '');
}

/** `did you mean "rpo"?` for a near miss (case, typos, swapped letters), else the allowed keys. */
export function suggestKey(key: string, allowed: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of allowed) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  if (best !== undefined && bestDistance <= Math.max(1, Math.floor(key.length / 3))) return `did you mean ${quote(best)}?`;
  return allowed.length > 0 ? `remove it; allowed keys: ${allowed.join(', ')}` : 'remove it';
}

/** Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number) => d[i]![j]!;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      d[i]![j] = best;
    }
  }
  return at(a.length, b.length);
}

// ---- Positions and formatting ----------------------------------------------------------------

/** Line and column of the node at a key path, or of its nearest existing ancestor. */
function locate({ doc, lineCounter }: { doc: Document; lineCounter: LineCounter }, at: KeyPath, atKey: boolean): { line?: number; column?: number } {
  const { isAlias, isMap, isNode, isScalar, isSeq } = yamlLib();
  let node: unknown = doc.contents;
  let found: unknown = node;
  for (let i = 0; i < at.length; i++) {
    if (isAlias(node)) node = node.resolve(doc);
    const key = at[i];
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(key));
      if (!pair) break;
      const last = i === at.length - 1;
      next = last && atKey ? pair.key : pair.value;
      // `key:` with no value has a null node at the colon; the key is the better place.
      if (!isNode(next) || !next.range || (isScalar(next) && next.value === null && last)) next = pair.key;
    } else if (isSeq(node) && typeof key === 'number') {
      next = node.items[key];
    } else break;
    if (!isNode(next) || !next.range) break;
    node = next;
    found = next;
  }
  if (!isNode(found) || !found.range) return {};
  const { line, col } = lineCounter.linePos(found.range[0]);
  return { line, column: col };
}

/** `clients[0].policies[1].targets.rpo` */
export function formatPath(at: KeyPath): string {
  let out = '';
  for (const key of at) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(key)) out += out === '' ? key : `.${key}`;
    else out += `[${JSON.stringify(key)}]`;
  }
  return out;
}

/** One problem once: a bad value in `defaults:` is found again under every policy that inherits it. */
function dedupeProblems(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.file}\0${p.path}\0${p.problem}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  return problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => (a.p.file < b.p.file ? -1 : a.p.file > b.p.file ? 1 : 0) || (a.p.line ?? 0) - (b.p.line ?? 0) || (a.p.column ?? 0) - (b.p.column ?? 0) || a.i - b.i)
    .map(({ p }) => p);
}

/** Problems never show a value that came from a reference. */
function redact(problem: ConfigProblem, secrets: string[]): ConfigProblem {
  const scrub = (text: string) =>
    secrets.reduce((out, secret) => {
      const quoted = out.replaceAll(quote(secret), '"***"');
      // Very short values would garble ordinary words; they are hidden only where quoted.
      return secret.length >= 4 ? quoted.replaceAll(secret, '***') : quoted;
    }, text);
  return { ...problem, problem: scrub(problem.problem), fix: scrub(problem.fix) };
}

function urlPassword(url: string): string {
  try {
    return decodeURIComponent(new URL(url).password);
  } catch {
    return '';
  }
}
