import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';
import { defOf, SECRET_FIELDS, type Def, type SecretShape } from '../../orchestrator/config/secret-schema.js';

/**
 * Canary secrets derived from the config schema: `fillSecrets` walks a schema together with a
 * config skeleton and gives every field the schema declares secret (SECRET_FIELDS), where the
 * skeleton leaves it unset, a distinct canary `canary-<field path>-<hex>` through a `${env:}` or
 * `${file:}` reference. A plug-in's new secret field is filled without editing a test;
 * `needlesOf` gives the forms a leak could take (raw, base64 at every alignment, URL-encoded, hex).
 */


/** The object schema under wrappers (optional, default, pipe...), or undefined. */
function objectOf(s: z.ZodType, depth = 0): Def | undefined {
  if (depth > 16) return undefined;
  const def = defOf(s);
  if (def.type === 'object') return def;
  if (def.type === 'pipe' && def.in) return objectOf(def.in, depth + 1);
  if (def.type === 'lazy' && def.getter) return objectOf(def.getter(), depth + 1);
  if (def.innerType) return objectOf(def.innerType, depth + 1);
  return undefined;
}

/** Whether the object `value` can be an instance of the object schema `obj`: every key known, every literal key matching. */
function fits(obj: Def, value: Record<string, unknown>): boolean {
  const shape = obj.shape ?? {};
  for (const key of Object.keys(value)) if (!(key in shape)) return false;
  for (const [key, child] of Object.entries(shape)) {
    const d = defOf(child);
    if (d.type === 'literal' && !(d.values ?? []).includes(value[key])) return false;
  }
  return true;
}

export interface Canary {
  /** The key path, as secret-schema's fieldsOf names it (`clients[].policies[].source.password`). */
  path: string;
  shape: SecretShape;
  /** The distinctive text: `canary-<path>-<hex>`. */
  token: string;
  /** The value the reference resolves to (the token, or a URL, PEM or key holding it). */
  value: string | Record<string, string>;
  /** As written in the config file. */
  written: string | Record<string, string>;
}

export interface CanarySink {
  /** Environment for `${env:}` references. */
  env: Record<string, string>;
  /** Folder of the files `${file:}` references name (relative to the config file). */
  dir: string;
  canaries: Canary[];
}

export const canaryToken = (at: string): string => `canary-${at.replace(/\[\]/g, '').replace(/[^A-Za-z0-9]+/g, '-')}-${randomBytes(6).toString('hex')}`;

/** Values a field of this shape could take, the token inside each; the first the field's schema accepts is used. */
function candidates(shape: SecretShape, token: string): (string | Record<string, string>)[] {
  const pemBody = Buffer.from(token).toString('base64');
  switch (shape) {
    case 'url':
      return [`https://hooks.invalid/${token}?key=${token}`, `postgres://app:${token}@db.invalid:5432/evidence`];
    case 'heartbeat':
      return [`https://hc-ping.invalid/${token}`];
    case 'headers':
      return [{ Authorization: `Bearer ${token}`, 'X-Api-Key': token }];
    case 'value':
      return [
        token,
        `-----BEGIN PRIVATE KEY-----\n${token}\n${pemBody}\n-----END PRIVATE KEY-----`,
        createHash('sha256').update(token).digest('base64'),
      ];
  }
}

/** Writes one value as a reference: even canaries through `${env:}`, odd ones through `${file:}`. */
let references = 0;
async function reference(sink: CanarySink, value: string): Promise<string> {
  const n = references++;
  if (n % 2 === 0) {
    const name = `BP_CANARY_${n}`;
    sink.env[name] = value;
    return `\${env:${name}}`;
  }
  await fs.mkdir(sink.dir, { recursive: true });
  const file = path.join(sink.dir, `canary-${n}`);
  await fs.writeFile(file, value, { mode: 0o600 });
  return `\${file:${file}}`;
}

/** Registers a canary the skeleton already placed (a field exercised for real); returns the reference to write. */
export async function placeCanary(sink: CanarySink, at: string, shape: SecretShape, token: string, value: string | Record<string, string>): Promise<string | Record<string, string>> {
  let written: string | Record<string, string>;
  if (typeof value === 'string') written = await reference(sink, value);
  else {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(value)) out[k] = await reference(sink, v);
    written = out;
  }
  sink.canaries.push({ path: at, shape, token, value, written });
  return written;
}

/**
 * Gives every secret field of `schema` that `data` leaves unset, under an object `data` has, a
 * canary (through a reference). Unions follow the alternative the data fits (its literal keys).
 * Returns the paths it could not fill (no candidate value passed the field's schema).
 */
export async function fillSecrets(schema: z.ZodType, data: unknown, sink: CanarySink): Promise<string[]> {
  const unfilled: string[] = [];
  const walk = async (s: z.ZodType, value: unknown, at: string, depth: number): Promise<void> => {
    if (value === undefined || value === null || depth > 64) return;
    const def = defOf(s);
    switch (def.type) {
      case 'object': {
        if (typeof value !== 'object' || Array.isArray(value)) return;
        const obj = value as Record<string, unknown>;
        for (const [key, child] of Object.entries(def.shape ?? {})) {
          const p = at ? `${at}.${key}` : key;
          const meta = SECRET_FIELDS.get(child) ?? secretUnder(child);
          if (meta && obj[key] === undefined) {
            const token = canaryToken(p);
            const fit = candidates(meta.secret, token).find((c) => child.safeParse(c).success);
            if (fit === undefined) unfilled.push(p);
            else obj[key] = await placeCanary(sink, p, meta.secret, token, fit);
          }
          await walk(child, obj[key], p, depth + 1);
        }
        return;
      }
      case 'array':
        if (Array.isArray(value) && def.element) for (const item of value) await walk(def.element, item, `${at}[]`, depth + 1);
        return;
      case 'record':
        if (typeof value === 'object' && def.valueType) for (const v of Object.values(value)) await walk(def.valueType, v, `${at}.*`, depth + 1);
        return;
      case 'union':
        for (const option of def.options ?? []) {
          const obj = objectOf(option);
          if (obj && typeof value === 'object' && !Array.isArray(value) && fits(obj, value as Record<string, unknown>)) await walk(option, value, at, depth + 1);
        }
        return;
      case 'intersection':
        if (def.left) await walk(def.left, value, at, depth + 1);
        if (def.right) await walk(def.right, value, at, depth + 1);
        return;
      case 'pipe':
        if (def.in) await walk(def.in, value, at, depth + 1);
        return;
      case 'lazy':
        if (def.getter) await walk(def.getter(), value, at, depth + 1);
        return;
      default:
        if (def.innerType) await walk(def.innerType, value, at, depth + 1);
    }
  };
  await walk(schema, data, '', 0);
  return unfilled;
}

/** A secret declaration under optional/default wrappers of a key's schema. */
function secretUnder(s: z.ZodType, depth = 0): { secret: SecretShape } | undefined {
  if (depth > 8) return undefined;
  const meta = SECRET_FIELDS.get(s);
  if (meta) return meta;
  const def = defOf(s);
  if (def.type === 'pipe' && def.in) return secretUnder(def.in, depth + 1);
  return def.innerType ? secretUnder(def.innerType, depth + 1) : undefined;
}

/** base64 of `text` at each of the three alignments it can sit at inside a longer encoded value, without the blocks it shares with neighbours. */
function base64Forms(text: string, url: boolean): string[] {
  const out: string[] = [];
  for (let k = 0; k < 3; k++) {
    let b = Buffer.concat([Buffer.alloc(k), Buffer.from(text)]).toString(url ? 'base64url' : 'base64');
    b = b.replace(/=+$/, '');
    const core = b.slice(k === 0 ? 0 : 4, Math.floor(b.length / 4) * 4 - 4);
    if (core.length >= 12) out.push(core);
  }
  return out;
}

/** Every form of `secret` to look for: raw, URL-encoded, base64 (standard and URL-safe, every alignment), hex. */
export function needlesOf(secret: string): string[] {
  const forms = new Set<string>([secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)]);
  for (const b of [...base64Forms(secret, false), ...base64Forms(secret, true)]) forms.add(b);
  const hex = Buffer.from(secret).toString('hex');
  forms.add(hex);
  forms.add(hex.toUpperCase());
  return [...forms].filter((f) => f.length >= 8);
}

export interface Hit {
  where: string;
  needle: string;
  secret: string;
}

/** The secrets with the forms to look for (`needlesOf`), compiled once for `grepBytes`. */
export class Needles {
  private readonly bySecret = new Map<string, string>();
  private pattern: RegExp | undefined;
  constructor(secrets: Iterable<string> = []) {
    for (const s of secrets) this.add(s);
  }
  add(secret: string): void {
    for (const n of needlesOf(secret)) this.bySecret.set(Buffer.from(n).toString('latin1'), secret);
    this.pattern = undefined;
  }
  get size(): number {
    return new Set(this.bySecret.values()).size;
  }
  /** Where any form of any secret occurs in `bytes` (each secret once per place). */
  grep(where: string, bytes: Buffer | string): Hit[] {
    const text = (typeof bytes === 'string' ? Buffer.from(bytes) : bytes).toString('latin1');
    this.pattern ??= new RegExp([...this.bySecret.keys()].map((n) => n.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|'), 'g');
    const hits = new Map<string, Hit>();
    for (const m of text.matchAll(this.pattern)) {
      const secret = this.bySecret.get(m[0])!;
      if (!hits.has(secret)) hits.set(secret, { where, needle: m[0], secret });
    }
    return [...hits.values()];
  }
}

/** Every regular file under `root` (symlinks not followed), skipping paths `skip` says. */
export async function walkFiles(root: string, skip: (p: string) => boolean = () => false): Promise<string[]> {
  const out: string[] = [];
  const visit = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (skip(p)) continue;
      if (e.isDirectory()) await visit(p);
      else if (e.isFile()) out.push(p);
    }
  };
  await visit(root);
  return out;
}
