import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import jsyaml from 'js-yaml';
import type { Document, LineCounter, YAMLError } from 'yaml';
import { ConfigError, type ConfigProblem } from '../core/errors.js';
import { BoundedReadError, CONFIG_MAX_BYTES, readBoundedFile, type KeyPath } from './references.js';
import { DEFAULTABLE_POLICY_KEYS } from './schema.js';
import { yamlLib } from './yaml-lib.js';

/**
 * Where config data comes from: one file, or a folder of files read together (an MSP keeps one
 * file per client, plus one for database:, daemon:, alerts: and defaults:). The data is merged
 * into one config, and every key path of the merged data can be traced back to the file, and
 * the path inside it, that wrote it, so a problem names the right file, line and key.
 *
 * - `clients:` lists of all files are joined, in file-name order;
 * - any other top-level key may be set by one file only;
 * - `defaults:` (in any one file) are inherited by every policy that does not set the key itself:
 *   mappings merge key by key, lists and single values are replaced. A problem in an inherited
 *   value is reported where `defaults:` wrote it.
 */
export interface ConfigSource {
  file: string;
  text: string;
  data: unknown;
  /** The YAML document with source positions, to locate a problem (parsed when first asked for). */
  located(): { doc: Document; lineCounter: LineCounter };
}

export interface MergedConfig {
  data: unknown;
  /** The file and the path inside it that wrote merged path `at` (or its nearest written parent). */
  locate(at: KeyPath): { source: ConfigSource; at: KeyPath };
}

/**
 * Parses one YAML text; a syntax error or an alias bomb is a ConfigError naming the file.
 *
 * Two parsers: js-yaml reads a well-formed file ~10x faster than `yaml` (a 10,000-policy file:
 * ~0.3 s against ~3 s), but only `yaml` keeps the positions a problem is located by and reports
 * every duplicate key and the first real syntax error. So js-yaml reads the data, with the
 * YAML 1.2 core schema `yaml` uses (CORE_12: the same plain scalars give the same values), and
 * `yaml` parses the text again only when a problem has to be located. A text js-yaml declines
 * (any error, a duplicate key, more than one document) or that aliases a mapping or list (`yaml`
 * limits how far they expand; js-yaml does not) goes to `yaml` alone, as before.
 */
export function parseSource(text: string, file: string): ConfigSource {
  const fast = fastYaml(text);
  if (fast) {
    let located: { doc: Document; lineCounter: LineCounter } | undefined;
    return { file, text, data: fast.data, located: () => (located ??= parseWithPositions(text)) };
  }
  const { doc, lineCounter } = parseWithPositions(text);
  // The first syntax error is the cause; the parser's later ones are mostly its consequences.
  if (doc.errors.length > 0) throw new ConfigError([yamlProblem(doc.errors[0]!, file, text)]);
  const duplicate = firstDuplicateKey(doc.contents);
  if (duplicate) {
    const { line, col } = lineCounter.linePos(duplicate);
    throw new ConfigError([{ file, path: '', line, column: col, problem: 'YAML syntax error: map keys must be unique', fix: YAML_FIXES.DUPLICATE_KEY! }]);
  }
  try {
    return { file, text, data: doc.toJS(), located: () => ({ doc, lineCounter }) };
  } catch (err) {
    // Only alias bombs get here (`yaml` limits how often aliases may expand).
    const problem = `YAML cannot be expanded: ${err instanceof Error ? err.message : String(err)}`;
    throw new ConfigError([{ file, path: '', problem, fix: 'use fewer aliases (*name); write the values out' }]);
  }
}

/**
 * `text` with every top-level entry but `keys` blanked out line for line, so what is left reads
 * as those entries alone and a problem in them keeps its line and column in the file. Undefined
 * when a scan of lines cannot be sure where each top-level entry begins (then parse the whole
 * file): a line at column 0 that is not a plain `key:` (a `- ` item, a flow or quoted
 * continuation js-yaml accepts there, a directive), a line that ends inside a quote or an open
 * `{` or `[` (a value going on to the next line may go on at column 0), or no top-level key at all.
 * A `---` may open the file.
 */
export function topLevelOnly(text: string, keys: readonly string[]): string | undefined {
  const lines = text.split('\n');
  let keep = false;
  let topKeys = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!balanced(line)) return undefined;
    const first = line.charCodeAt(0);
    if (Number.isNaN(first) || first === 0x20 || first === 0x0d) {
      if (!keep) lines[i] = '';
      continue;
    }
    if (first === 0x23) {
      lines[i] = '';
      continue;
    }
    if (topKeys === 0 && !keep && /^---[ \t]*\r?$/.test(line)) continue;
    const key = TOP_LEVEL_KEY.exec(line);
    if (!key) return undefined;
    topKeys++;
    keep = keys.includes(key[1]!);
    if (!keep) lines[i] = '';
  }
  return topKeys > 0 ? lines.join('\n') : undefined;
}

const TOP_LEVEL_KEY = /^([A-Za-z_][\w-]*)[ \t]*:(?:[ \t]|\r?$)/;

/**
 * Does the line end outside any quote and with every `{` and `[` closed (its comment left out)?
 * A quote is taken to open wherever `"` or `'` stands, even inside a plain word (`Bob's`): that
 * can only make a complete line look open, never an open one look complete, and an open-looking
 * line means the whole file is read.
 */
function balanced(line: string): boolean {
  let curly = 0;
  let square = 0;
  let quote = 0; // 0, or the quote character's code
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (quote === 0x22) {
      if (c === 0x5c) i++; // \" and \\ inside double quotes
      else if (c === 0x22) quote = 0;
    } else if (quote === 0x27) {
      if (c === 0x27) {
        if (line.charCodeAt(i + 1) === 0x27) i++; // '' inside single quotes
        else quote = 0;
      }
    } else if (c === 0x23 && (i === 0 || line.charCodeAt(i - 1) === 0x20 || line.charCodeAt(i - 1) === 0x09)) {
      break; // a comment
    } else if (c === 0x22 || c === 0x27) quote = c;
    else if (c === 0x7b) curly++;
    else if (c === 0x7d) curly--;
    else if (c === 0x5b) square++;
    else if (c === 0x5d) square--;
  }
  return quote === 0 && curly === 0 && square === 0;
}

function parseWithPositions(text: string): { doc: Document; lineCounter: LineCounter } {
  const { LineCounter, parseDocument } = yamlLib();
  const lineCounter = new LineCounter();
  // yaml's own uniqueKeys check compares each key with every earlier one (80,000 keys: minutes);
  // duplicates are found in one pass instead (firstDuplicateKey).
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: false });
  return { doc, lineCounter };
}

/**
 * The data of a well-formed single-document text, read by js-yaml; undefined if js-yaml cannot
 * read it or it aliases a mapping or list (js-yaml shares the node where `yaml` expands it, and
 * only `yaml` limits how far aliases may expand: an alias bomb is `yaml`'s to refuse).
 */
export function fastYaml(text: string): { data: unknown } | undefined {
  let data: unknown;
  try {
    data = jsyaml.load(text, { schema: CORE_12 });
  } catch {
    return undefined;
  }
  // No '&', no anchor, so no alias: skip the walk (~60 ms for 10,000 policies).
  if (text.includes('&') && sharesNodes(data)) return undefined;
  return { data: data === undefined ? null : data };
}

/** Does any mapping or list appear twice in the tree (an alias)? Stops at the first. */
function sharesNodes(root: unknown): boolean {
  const seen = new Set<object>();
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const node = stack.pop();
    if (node === null || typeof node !== 'object') continue;
    if (seen.has(node)) return true;
    seen.add(node);
    for (const value of Array.isArray(node) ? node : Object.values(node)) stack.push(value);
  }
  return false;
}

/** `yaml`'s YAML 1.2 core schema, for js-yaml (tests/regexes from yaml's schema/core and common/null). */
const scalarType = (tag: string, test: RegExp, construct: (s: string) => unknown): jsyaml.Type =>
  new jsyaml.Type(`tag:yaml.org,2002:${tag}`, { kind: 'scalar', resolve: (s: unknown) => typeof s === 'string' && test.test(s), construct: (s: string) => construct(s) });
const CORE_12 = jsyaml.FAILSAFE_SCHEMA.extend({
  implicit: [
    scalarType('null', /^(?:~|[Nn]ull|NULL)?$/, () => null),
    scalarType('bool', /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/, (s) => s[0] === 't' || s[0] === 'T'),
    scalarType('int', /^(?:0o[0-7]+|[-+]?[0-9]+|0x[0-9a-fA-F]+)$/, (s) => (s.startsWith('0o') ? parseInt(s.slice(2), 8) : s.startsWith('0x') ? parseInt(s.slice(2), 16) : parseInt(s, 10))),
    scalarType(
      'float',
      /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+|[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*))$/,
      (s) => (/nan$/i.test(s) ? NaN : /inf$/i.test(s) ? (s[0] === '-' ? -Infinity : Infinity) : parseFloat(s)),
    ),
  ],
});

/** Every `*.yaml` / `*.yml` regular file directly in `dir`, in name order; all syntax errors at once. */
export async function readConfigDir(dir: string): Promise<ConfigSource[]> {
  const names = (await readdir(dir)).filter((n) => /\.ya?ml$/i.test(n) && !n.startsWith('.')).sort();
  const sources: ConfigSource[] = [];
  const problems: ConfigProblem[] = [];
  let total = 0;
  for (const name of names) {
    const file = path.join(dir, name);
    if (!(await stat(file)).isFile()) continue;
    try {
      const text = readBoundedFile(file, CONFIG_MAX_BYTES);
      total += text.length;
      if (total > 4 * CONFIG_MAX_BYTES) throw new BoundedReadError(`brings the folder past ${(4 * CONFIG_MAX_BYTES) / 1024 ** 2} MiB of config`);
      sources.push(parseSource(text, file));
    } catch (err) {
      if (err instanceof ConfigError) problems.push(...err.problems);
      else if (err instanceof BoundedReadError) problems.push({ file, path: '', problem: err.message, fix: err.fix ?? 'keep config files small: one file per client' });
      else problems.push({ file, path: '', problem: `cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, fix: 'make the file readable by this user' });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  if (sources.length === 0) {
    throw new ConfigError([{ file: dir, path: '', problem: 'the folder holds no .yaml files', fix: 'put the config in it: one file per client (clients: [...]) and one with database:, daemon:, alerts: and defaults:' }]);
  }
  return sources;
}

/** Joins the sources into one config and applies `defaults:`; conflicts are ConfigErrors naming both files. */
export function mergeSources(sources: readonly ConfigSource[]): MergedConfig {
  const only = sources.length === 1 ? sources[0] : undefined;
  if (only && (only.data === null || only.data === undefined)) {
    throw new ConfigError([{ file: only.file, path: '', problem: 'the file is empty', fix: 'add a clients: list with at least one client and one policy' }]);
  }
  const data: Record<string, unknown> = {};
  const keyOwner = new Map<string, ConfigSource>();
  const clients: Array<{ source: ConfigSource; index: number }> = [];
  const problems: ConfigProblem[] = [];
  for (const source of sources) {
    const d = source.data;
    if (d === null || d === undefined) continue;
    if (!isRecord(d)) {
      if (only) return { data: d, locate: (at) => ({ source: only, at }) }; // the schema says what is wrong
      problems.push({ file: source.file, path: '', problem: 'the file is not a mapping of keys', fix: 'start with top-level keys such as clients:, database:, daemon:' });
      continue;
    }
    for (const [key, value] of Object.entries(d)) {
      if (key === 'clients' && Array.isArray(value)) {
        const joined = (data.clients as unknown[] | undefined) ?? [];
        value.forEach((client: unknown, index) => {
          clients.push({ source, index });
          joined.push(client);
        });
        data.clients = joined;
        keyOwner.set('clients', keyOwner.get('clients') ?? source);
        continue;
      }
      const owner = keyOwner.get(key);
      if (owner) {
        problems.push({ file: source.file, path: key, problem: `${key} is also set in ${owner.file}`, fix: `keep ${key}: in one file of the folder` });
        continue;
      }
      keyOwner.set(key, source);
      data[key] = value;
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  // defaults: inherited by every policy (originals kept to trace problems back).
  const defaults = data.defaults;
  const originals = new Map<string, unknown>();
  if (isRecord(defaults) && Array.isArray(data.clients)) {
    data.clients.forEach((client: unknown, ci) => {
      if (!isRecord(client) || !Array.isArray(client.policies)) return;
      client.policies = client.policies.map((policy: unknown, pi) => {
        if (!isRecord(policy)) return policy;
        originals.set(`${ci}/${pi}`, policy);
        const out: Record<string, unknown> = { ...policy };
        for (const key of DEFAULTABLE_POLICY_KEYS) if (key in defaults) out[key] = inherit(defaults[key], policy[key]);
        return out;
      });
    });
  }
  const first = sources[0]!;
  return {
    data,
    locate(at) {
      const top = at[0];
      if (top === 'clients' && typeof at[1] === 'number') {
        const origin = clients[at[1]];
        if (!origin) return { source: keyOwner.get('clients') ?? first, at: ['clients'] };
        if (at[2] === 'policies' && typeof at[3] === 'number' && at.length > 4) {
          const own = originals.get(`${at[1]}/${at[3]}`);
          const rest = at.slice(4);
          if (own !== undefined && !has(own, rest) && has(defaults, rest)) return { source: keyOwner.get('defaults')!, at: ['defaults', ...rest] };
        }
        return { source: origin.source, at: ['clients', origin.index, ...at.slice(2)] };
      }
      return { source: (typeof top === 'string' ? keyOwner.get(top) : undefined) ?? first, at };
    },
  };
}

/** A default under a policy's own value: mappings merged key by key, anything else the policy's. */
function inherit(fallback: unknown, own: unknown): unknown {
  if (own === undefined) return structuredClone(fallback);
  if (!isRecord(fallback) || !isRecord(own)) return own;
  const out: Record<string, unknown> = { ...own };
  for (const [k, v] of Object.entries(fallback)) out[k] = inherit(v, own[k]);
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function has(data: unknown, at: KeyPath): boolean {
  let node = data;
  for (const key of at) {
    if (node === null || typeof node !== 'object' || !(String(key) in node)) return false;
    node = (node as Record<string, unknown>)[String(key)];
  }
  return true;
}

const YAML_FIXES: Record<string, string> = {
  DUPLICATE_KEY: 'remove or rename the repeated key',
  TAB_AS_INDENT: 'indent with spaces, not tabs',
  BAD_INDENT: 'check the indentation (spaces; the keys of one mapping in the same column) and that brackets are closed',
  MULTIPLE_DOCS: 'keep one YAML document in the file (remove the extra "---")',
  MISSING_CHAR: 'add the missing character: a closing quote or bracket, or "- " before a list item',
  BLOCK_AS_IMPLICIT_KEY: 'quote the value if it contains ": "',
  MULTILINE_IMPLICIT_KEY: 'put the key and its colon on one line, or quote the value',
  UNEXPECTED_TOKEN: 'check indentation, colons and quoting on this line',
};

function yamlProblem(err: YAMLError, file: string, text: string): ConfigProblem {
  const pos = err.linePos?.[0];
  const line = pos ? (text.split(/\r?\n/)[pos.line - 1] ?? '') : '';
  // `key: ${env:X}` is fine, but inside { } or [ ] the `{` of an unquoted reference opens a map.
  const unquotedReference = /[{[,]\s*[\w-]+:\s*\$\{|[[,]\s*\$\{/.test(line);
  // A bare `-` (stdin, for tar -f -) inside [ ] reads as the start of a block list item.
  const bareDash = /[[,]\s*-\s*[,\]]/.test(line);
  const first = err.message
    .split('\n')[0]!
    .replace(/ at line \d+, column \d+:?\s*$/, '')
    .replace(/; please use YAML\.parseAllDocuments\(\)/, '');
  return {
    file,
    path: '',
    ...(pos ? { line: pos.line, column: pos.col } : {}),
    problem: `YAML syntax error: ${first.charAt(0).toLowerCase()}${first.slice(1)}`,
    fix: unquotedReference
      ? 'quote references inside { } or [ ]: accessKeyId: "${env:KEY}", or write the keys one per line'
      : bareDash
        ? 'quote a lone dash inside [ ]: [tar, -x, -f, "-"]'
        : (YAML_FIXES[err.code] ?? 'correct the YAML: check indentation (spaces), colons and quoting'),
  };
}


/** Where the first key repeated within one mapping starts, walking the document once; undefined when none is. */
function firstDuplicateKey(root: unknown): number | undefined {
  const { isMap, isNode, isScalar, isSeq } = yamlLib();
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const node = stack.pop();
    if (isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? `s:${String(pair.key.value)}` : `n:${String(pair.key)}`;
        if (seen.has(key)) return (isNode(pair.key) && pair.key.range ? pair.key.range[0] : undefined) ?? 0;
        seen.add(key);
        stack.push(pair.value);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) stack.push(item);
    }
  }
  return undefined;
}
