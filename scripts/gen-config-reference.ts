/**
 * Writes docs/config-reference.md, the reference of every config key, from the one zod schema
 * (orchestrator/config/): each key path, its type, whether it is required, its default, its
 * allowed values and bounds, whether it is a secret, and its description. The reference cannot
 * drift from the schema: test/config-reference.test.ts builds it again in memory and fails when
 * the file differs.
 *
 *   node --import tsx scripts/gen-config-reference.ts            # writes docs/config-reference.md
 *   node --import tsx scripts/gen-config-reference.ts --stdout   # prints it
 *
 * It reads the schema through zod's own JSON Schema (input side: the file as written), adding
 * what JSON Schema cannot say: which fields secret-schema.ts declares secret, and which strings
 * are durations or sizes.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { configSchema } from '../orchestrator/config/schema.js';
import { duration, size } from '../orchestrator/config/schema-helpers.js';
import { SECRET_FIELDS, type SecretShape } from '../orchestrator/config/secret-schema.js';

export const REFERENCE_FILE = 'docs/config-reference.md';
export const REFERENCE_COMMAND = 'node --import tsx scripts/gen-config-reference.ts';

/** The part of a JSON Schema node this page reads. */
interface Node {
  type?: string | string[];
  const?: unknown;
  enum?: unknown[];
  default?: unknown;
  description?: string;
  properties?: Record<string, Node>;
  required?: string[];
  additionalProperties?: boolean | Node;
  items?: Node;
  anyOf?: Node[];
  oneOf?: Node[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  'x-secret'?: SecretShape;
  'x-type'?: 'duration' | 'size';
}

interface Row {
  path: string;
  when: string[];
  type: string;
  required: boolean;
  dflt: string;
  allowed: string;
  secret: string;
  description: string;
}

const SECRET_TEXT: Record<SecretShape, string> = {
  value: 'yes',
  url: 'yes: the URL, its password, query values and long path segments',
  headers: 'yes: each header value',
  heartbeat: 'yes: the ping URL (and its /fail URL)',
};

function jsonSchema(): Node {
  return z.toJSONSchema(configSchema, {
    io: 'input',
    unrepresentable: 'any',
    override: (ctx) => {
      const secret = SECRET_FIELDS.get(ctx.zodSchema as unknown as z.ZodType);
      if (secret) ctx.jsonSchema['x-secret'] = secret.secret;
      if (ctx.zodSchema === duration) ctx.jsonSchema['x-type'] = 'duration';
      if (ctx.zodSchema === size) ctx.jsonSchema['x-type'] = 'size';
    },
  }) as Node;
}

const alternatives = (node: Node): Node[] | undefined => node.oneOf ?? node.anyOf;
const code = (value: unknown): string => `\`${typeof value === 'string' && value !== '' ? value : JSON.stringify(value)}\``;

function typeOf(node: Node): string {
  if (node['x-type']) return node['x-type'];
  // A duration refined or described anew is another zod object than the shared one: its text says so.
  if (node.type === 'string' && /\bA duration: /.test(node.description ?? '')) return 'duration';
  if (Array.isArray(node.type)) return node.type.join(' or ');
  const alts = alternatives(node);
  if (alts) return [...new Set(alts.map(typeOf))].join(' or ');
  if (node.const !== undefined) return code(node.const);
  if (node.enum) return typeof node.type === 'string' ? node.type : 'value';
  if (node.type === 'array') return node.items ? `list of ${typeOf(node.items)}` : 'list';
  if (node.type === 'object') {
    if (node.properties) return 'object';
    if (typeof node.additionalProperties === 'object') return `map of ${typeOf(node.additionalProperties)}`;
    return 'object';
  }
  return typeof node.type === 'string' ? node.type : 'any';
}

/** Allowed values and bounds, of the node and of the alternatives a union offers. */
function allowedOf(node: Node): string {
  const out: string[] = [];
  if (node.enum) out.push(node.enum.map(code).join(', '));
  const consts = (alternatives(node) ?? []).filter((a) => a.const !== undefined).map((a) => code(a.const));
  if (consts.length) out.push(consts.join(', '));
  for (const alt of alternatives(node) ?? []) if (alt.enum) out.push(alt.enum.map(code).join(', '));
  const big = (n: number | undefined): n is number => n !== undefined && Math.abs(n) < Number.MAX_SAFE_INTEGER;
  const bounds = (n: Node): void => {
    if (big(n.minimum)) out.push(`>= ${n.minimum}`);
    if (big(n.exclusiveMinimum)) out.push(`> ${n.exclusiveMinimum}`);
    if (big(n.maximum)) out.push(`<= ${n.maximum}`);
    if (big(n.exclusiveMaximum)) out.push(`< ${n.exclusiveMaximum}`);
    if (n.minItems !== undefined && n.minItems > 0) out.push(`at least ${n.minItems} item${n.minItems === 1 ? '' : 's'}`);
    if (n.maxItems !== undefined) out.push(`at most ${n.maxItems} items`);
    if (n.minLength !== undefined && n.minLength > 0) out.push(`at least ${n.minLength} characters`);
    if (n.maxLength !== undefined) out.push(`at most ${n.maxLength} characters`);
    if (n.pattern !== undefined) out.push(`matches ${code(n.pattern)}`);
  };
  bounds(node);
  if (node.type === 'array' && node.items && !node.items.properties && !alternatives(node.items)) {
    const inner = allowedOf(node.items);
    if (inner) out.push(`each: ${inner}`);
  }
  for (const alt of alternatives(node) ?? []) if (!alt.properties) bounds(alt);
  return out.join('; ');
}

/** The schema's default; else the one its description states ("... Default 10m."). */
function defaultOf(node: Node): string {
  if (node.default === undefined) return /(?:^|[.;:]\s)Default:? (.+?)\.(?=\s|$)/.exec(node.description ?? '')?.[1] ?? '';
  const d = node.default;
  if (d !== null && typeof d === 'object' && !Array.isArray(d) && Object.keys(d).length === 0) return '';
  return code(d);
}

function secretOf(node: Node): string {
  const shape = node['x-secret'] ?? (alternatives(node) ?? []).map((a) => a['x-secret']).find(Boolean);
  return shape ? SECRET_TEXT[shape] : '';
}

/** A union of objects told apart by one key with a constant value (driver, type): its key. */
function discriminator(alts: Node[]): string | undefined {
  if (alts.length < 2 || !alts.every((a) => a.properties)) return undefined;
  const keys = Object.keys(alts[0]!.properties!).filter((k) => alts.every((a) => a.properties![k]?.const !== undefined));
  return keys[0];
}

/** Where a key path's rows go: one section per block of the file. */
function sectionOf(path: string, isBlock: boolean): string {
  const parts = path.split('.');
  const policy = 'clients[].policies[]';
  if (path === policy.slice(0, -2)) return policy;
  if (path.startsWith(`${policy}.`)) {
    const rest = path.slice(policy.length + 1).split('.');
    return rest.length > 1 || isBlock ? `${policy}.${rest[0]!.replace('[]', '')}` : policy;
  }
  if (path.startsWith('clients[].')) {
    const rest = path.slice('clients[].'.length).split('.');
    return rest.length > 1 || isBlock ? `clients[].${rest[0]!.replace('[]', '')}` : 'clients[]';
  }
  if (path === 'clients') return 'clients[]';
  return parts.length > 1 || isBlock ? parts[0]!.replace('[]', '') : '(top level)';
}

function collect(root: Node): Map<string, Row[]> {
  const sections = new Map<string, Row[]>();
  const byKey = new Map<string, Row>();
  const subtreeAt = new Map<string, string>();

  const add = (row: Row, section: string): void => {
    const key = JSON.stringify([row.path, row.type, row.required, row.dflt, row.allowed, row.secret, row.description]);
    const seen = byKey.get(key);
    if (seen) {
      for (const w of row.when) if (!seen.when.includes(w)) seen.when.push(w);
      return;
    }
    byKey.set(key, row);
    if (!sections.has(section)) sections.set(section, []);
    sections.get(section)!.push(row);
  };

  const visit = (node: Node, path: string, required: boolean, when: string[]): void => {
    const alts = alternatives(node);
    const objectAlts = (alts ?? []).filter((a) => a.properties);
    const hasKeys = Boolean(node.properties) || objectAlts.length > 0 || Boolean(node.items?.properties) || (node.items && (alternatives(node.items) ?? []).some((a) => a.properties));
    let description = node.description ?? '';
    // A block whose keys were listed at another path (defaults: mirrors the policy's blocks).
    const signature = hasKeys ? JSON.stringify({ ...node, description: undefined, default: undefined }) : '';
    const listedAt = signature ? subtreeAt.get(signature) : undefined;
    if (listedAt !== undefined && listedAt !== path) description = `${description}${description ? ' ' : ''}Same keys as \`${listedAt}\`.`.trim();
    if (path) {
      add(
        { path, when: [...when], type: typeOf(node), required, dflt: defaultOf(node), allowed: allowedOf(node), secret: secretOf(node), description },
        sectionOf(path, Boolean(hasKeys)),
      );
    }
    if (listedAt !== undefined && listedAt !== path) return;
    if (signature) subtreeAt.set(signature, path);

    const prefix = path ? `${path}.` : '';
    if (node.properties) {
      for (const [key, child] of Object.entries(node.properties)) visit(child, `${prefix}${key}`, (node.required ?? []).includes(key), when);
    } else if (typeof node.additionalProperties === 'object' && node.additionalProperties.properties) {
      visit(node.additionalProperties, `${prefix}<name>`, false, when);
    }
    if (node.items && (node.items.properties || alternatives(node.items))) {
      descend(node.items, `${path}[]`, when);
    }
    if (alts) descend(node, path, when);
  };

  /** Into the object alternatives of a union (labelled by their discriminator), or an object. */
  const descend = (node: Node, path: string, when: string[]): void => {
    const alts = alternatives(node);
    if (!alts) {
      if (node.properties) for (const [key, child] of Object.entries(node.properties)) visit(child, `${path}.${key}`, (node.required ?? []).includes(key), when);
      return;
    }
    const objects = alts.filter((a) => a.properties);
    const disc = discriminator(objects);
    for (const alt of objects) {
      const label = disc ? [...when, `${disc}: ${String(alt.properties![disc]!.const)}`] : when;
      for (const [key, child] of Object.entries(alt.properties!)) visit(child, `${path}.${key}`, (alt.required ?? []).includes(key), label);
    }
  };

  visit(root, '', true, []);
  return sections;
}

const cell = (text: string): string => String(text).replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');

const SECTION_TITLES: Record<string, string> = {
  '(top level)': 'Top level',
  database: '`database:` the evidence store',
  docker: '`docker:` the engine the sandboxes run on',
  evidence: '`evidence:` signing',
  daemon: '`daemon:` backproof daemon',
  alerts: '`alerts:` channels and delivery',
  'clients[]': '`clients:` clients (tenants)',
  'clients[].policies[]': '`clients[].policies:` a policy\'s own keys',
  reports: '`reports:` monthly reports',
  defaults: '`defaults:` what every policy inherits',
};

/** The page: a header naming the command, then one table per block of the file. */
export function configReference(): string {
  const root = jsonSchema();
  const sections = collect(root);
  const lines: string[] = [
    '# Configuration reference',
    '',
    `<!-- Generated from the config schema (orchestrator/config/) by \`${REFERENCE_COMMAND}\`. Do not edit by hand: change the schema (a key's text is its .describe()) and run the command again. test/config-reference.test.ts fails while this file and the schema differ. -->`,
    '',
    `Generated from the zod schema in \`orchestrator/config/\` by \`${REFERENCE_COMMAND}\`; do not edit it by`,
    'hand. How the file is laid out, with a full example, and what the values mean:',
    '[configuration.md](configuration.md). `backproof schema` prints the same schema as JSON Schema for',
    "editors' completion.",
    '',
    '- **Key**: the path in the file; `[]` is an item of a list, `<name>` a key you choose. A key',
    '  that exists only for one alternative says which (`driver: s3`, `type: email`).',
    '- **Required**: must be written when its block is. Other keys may be left out; the default',
    '  then applies (the schema\'s default, or the one the description states).',
    '- **Types**: a `duration` is a number with a unit (`90s`, `30m`, `26h`, `2d`, `1w`, `1h30m`,',
    '  `500ms`); a `size` is bytes or a number with a unit (`512m`, `2g`, `2GiB`; powers of 1024).',
    '  Any value may be written as `${env:NAME}` or `${file:PATH}`.',
    '- **Secret**: the value is redacted as `***` from every log line, problem, run record, report,',
    '  alert and bundle, whether written in the file or through a reference',
    '  (`orchestrator/config/secret-schema.ts`).',
    '',
    '## Sections',
    '',
    ...[...sections.keys()].map((s) => `- [${SECTION_TITLES[s] ?? `\`${s}\``}](#${anchor(SECTION_TITLES[s] ?? `\`${s}\``)})`),
  ];
  for (const [section, rows] of sections) {
    lines.push('', `## ${SECTION_TITLES[section] ?? `\`${section}\``}`, '');
    lines.push('| key | type | required | default | allowed values, bounds | secret | description |', '|---|---|---|---|---|---|---|');
    for (const r of rows) {
      const key = `\`${r.path}\`${r.when.length ? ` (${whenText(r.when)})` : ''}`;
      lines.push(`| ${[key, r.type, r.required ? 'yes' : '', r.dflt, r.allowed, r.secret, r.description].map(cell).join(' | ')} |`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** ["driver: local", "driver: s3"] -> "driver: local, s3". */
function whenText(when: string[]): string {
  const byKey = new Map<string, string[]>();
  for (const w of when) {
    const [key, value] = w.split(': ') as [string, string];
    byKey.set(key, [...(byKey.get(key) ?? []), value]);
  }
  return [...byKey].map(([key, values]) => `${key}: ${values.join(', ')}`).join('; ');
}

/** GitHub's heading anchor. */
function anchor(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}_\- ]/gu, '')
    .replace(/ /g, '-');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const text = configReference();
  if (process.argv.includes('--stdout')) process.stdout.write(text);
  else {
    writeFileSync(fileURLToPath(new URL(`../${REFERENCE_FILE}`, import.meta.url)), text);
    process.stdout.write(`wrote ${REFERENCE_FILE}\n`);
  }
}
