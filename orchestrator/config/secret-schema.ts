import { z } from 'zod';
import { headerSecrets, urlSecrets } from '../alerts/redact.js';

/**
 * Secret fields are declared where the config schema defines them (`secret(schema, shape)`), and
 * `secretsIn` reads every declared field's value from a config as written: the redactor learns
 * them whether they came from a reference or were written in the file, and even when the file
 * has problems elsewhere. Nothing is guessed from key names: a plug-in's new credential field is
 * redacted because its schema says it is secret (test/config-secret-fields.test.ts checks that every
 * credential-looking key is declared).
 *
 * Shapes: `value` (the whole text), `url` (its password, query values, long path segments and the
 * URL itself: alerts/redact.ts urlSecrets), `headers` (each header value and its words),
 * `heartbeat` (a ping URL: as `url`, plus path segments long enough to be a check's key, for it and
 * its default fail URL).
 */
export type SecretShape = 'value' | 'url' | 'headers' | 'heartbeat';

export const SECRET_FIELDS = z.registry<{ secret: SecretShape }>();

/** Per schema: whether a declared secret can be reached through it (see leadsToSecret). */
let leads = new WeakMap<z.ZodType, boolean>();
/** Per object schema: its keys whose schemas lead to a secret. */
let secretKeys = new WeakMap<z.ZodType, [string, z.ZodType][]>();

/** Declares `schema` secret: every value read through it is redacted from logs, evidence and problems. */
export function secret<T extends z.ZodType>(schema: T, shape: SecretShape = 'value'): T {
  SECRET_FIELDS.add(schema, { secret: shape });
  // What leads to a secret is learnt again (schemas are declared at load; this keeps a late one safe).
  leads = new WeakMap();
  secretKeys = new WeakMap();
  return schema;
}

/**
 * Whether a value read through `s` can hold a declared secret: `s` is one, or one is below it.
 * Remembered per schema, so `secretsIn` skips what cannot hold one (a policy's probes, limits,
 * kind options): for 10,000 policies that walk took 235-317 ms, most of `validate`'s time after
 * parsing. A schema met again while its own answer is being found (a lazy, recursive one) counts
 * as leading to a secret: walking too much is safe, skipping a secret is not.
 */
function leadsToSecret(s: z.ZodType, depth = 0): boolean {
  const known = leads.get(s);
  if (known !== undefined) return known;
  if (depth > 64) return true;
  leads.set(s, true);
  const below = (children: readonly (z.ZodType | undefined)[]): boolean => children.some((c) => c !== undefined && leadsToSecret(c, depth + 1));
  const def = defOf(s);
  let found = SECRET_FIELDS.has(s);
  if (!found) {
    switch (def.type) {
      case 'object':
        found = below(Object.values(def.shape ?? {}));
        break;
      case 'array':
        found = below([def.element]);
        break;
      case 'tuple':
        found = below(def.items ?? []);
        break;
      case 'record':
        found = below([def.valueType]);
        break;
      case 'union':
        found = below(def.options ?? []);
        break;
      case 'intersection':
        found = below([def.left, def.right]);
        break;
      case 'pipe':
        found = below([def.in]);
        break;
      case 'lazy':
        found = below([def.getter?.()]);
        break;
      default:
        found = below([def.innerType]);
    }
  }
  leads.set(s, found);
  return found;
}

function keysToSecrets(s: z.ZodType, shape: Record<string, z.ZodType>): [string, z.ZodType][] {
  let keys = secretKeys.get(s);
  if (!keys) {
    keys = Object.entries(shape).filter(([, child]) => leadsToSecret(child));
    secretKeys.set(s, keys);
  }
  return keys;
}

/** healthchecks.io's convention: the ping URL with /fail appended signals a failure. */
export function defaultFailUrl(url: string): string {
  try {
    const u = new URL(url);
    u.pathname = `${u.pathname.replace(/\/+$/, '')}/fail`;
    return u.href;
  } catch {
    return `${url.replace(/\/+$/, '')}/fail`;
  }
}

function heartbeatSecrets(url: string): string[] {
  const out = urlSecrets(url);
  try {
    for (const seg of new URL(url).pathname.split('/')) if (seg.length > 16) out.push(seg);
  } catch {
    // urlSecrets already took the whole text.
  }
  return out;
}

function extract(shape: SecretShape, value: unknown): string[] {
  switch (shape) {
    case 'value':
      return typeof value === 'string' ? [value] : [];
    case 'url':
      return typeof value === 'string' && value !== '' ? urlSecrets(value) : [];
    case 'headers':
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return [];
      return headerSecrets(Object.fromEntries(Object.entries(value).filter((e): e is [string, string] => typeof e[1] === 'string')));
    case 'heartbeat':
      return typeof value === 'string' && value !== '' ? [...heartbeatSecrets(value), ...heartbeatSecrets(defaultFailUrl(value))] : [];
  }
}

/** The zod 4 definition fields the walk follows (and test/helpers/canary-config.ts's). */
export interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  innerType?: z.ZodType;
  options?: z.ZodType[];
  in?: z.ZodType;
  valueType?: z.ZodType;
  left?: z.ZodType;
  right?: z.ZodType;
  items?: z.ZodType[];
  getter?: () => z.ZodType;
  /** An enum's or literal's values. */
  values?: unknown[];
}
export const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/**
 * Every secret in `data` (a config as written, references resolved) that `schema` declares,
 * following the data wherever the schema leads: objects, lists, records, optional and default
 * values, every alternative of a union, the input side of a transform. Values of the wrong type
 * are skipped (the schema reports them), never thrown on.
 */
export function secretsIn(schema: z.ZodType, data: unknown): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const walk = (s: z.ZodType, value: unknown, depth: number): void => {
    if (value === undefined || depth > 64 || !leadsToSecret(s)) return;
    const meta = SECRET_FIELDS.get(s);
    if (meta) {
      for (const v of extract(meta.secret, value)) {
        if (v.trim() === '' || seen.has(v)) continue;
        seen.add(v);
        out.push(v);
      }
    }
    const def = defOf(s);
    switch (def.type) {
      case 'object':
        if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
        for (const [key, child] of keysToSecrets(s, def.shape ?? {})) walk(child, (value as Record<string, unknown>)[key], depth + 1);
        return;
      case 'array':
        if (Array.isArray(value) && def.element) for (const item of value) walk(def.element, item, depth + 1);
        return;
      case 'tuple':
        if (Array.isArray(value)) (def.items ?? []).forEach((item, i) => walk(item, value[i], depth + 1));
        return;
      case 'record':
        if (value !== null && typeof value === 'object' && def.valueType) for (const v of Object.values(value)) walk(def.valueType, v, depth + 1);
        return;
      case 'union':
        for (const option of def.options ?? []) walk(option, value, depth + 1);
        return;
      case 'intersection':
        if (def.left) walk(def.left, value, depth + 1);
        if (def.right) walk(def.right, value, depth + 1);
        return;
      case 'pipe':
        if (def.in) walk(def.in, value, depth + 1);
        return;
      case 'lazy':
        if (def.getter) walk(def.getter(), value, depth + 1);
        return;
      default:
        // optional, nullable, default, prefault, catch, readonly, nonoptional: one inner schema.
        if (def.innerType) walk(def.innerType, value, depth + 1);
    }
  };
  walk(schema, data, 0);
  return out;
}

/**
 * Every object key path of `schema` (`clients[].policies[].source.secretAccessKey`) with whether
 * it is declared secret: for the test that no credential-looking field is left undeclared.
 */
export function fieldsOf(schema: z.ZodType): { path: string; secret: boolean }[] {
  const out = new Map<string, boolean>();
  const visit = (s: z.ZodType, at: string, depth: number, seen: Set<z.ZodType>): void => {
    if (depth > 64 || seen.has(s)) return;
    const here = new Set(seen).add(s);
    if (SECRET_FIELDS.has(s) && at) out.set(at, true);
    const def = defOf(s);
    switch (def.type) {
      case 'object':
        for (const [key, child] of Object.entries(def.shape ?? {})) {
          const p = at ? `${at}.${key}` : key;
          if (!out.has(p)) out.set(p, false);
          visit(child, p, depth + 1, here);
        }
        return;
      case 'array':
        if (def.element) visit(def.element, `${at}[]`, depth + 1, here);
        return;
      case 'tuple':
        for (const item of def.items ?? []) visit(item, `${at}[]`, depth + 1, here);
        return;
      case 'record':
        if (def.valueType) visit(def.valueType, `${at}.*`, depth + 1, here);
        return;
      case 'union':
        for (const option of def.options ?? []) visit(option, at, depth + 1, here);
        return;
      case 'intersection':
        if (def.left) visit(def.left, at, depth + 1, here);
        if (def.right) visit(def.right, at, depth + 1, here);
        return;
      case 'pipe':
        if (def.in) visit(def.in, at, depth + 1, here);
        return;
      case 'lazy':
        if (def.getter) visit(def.getter(), at, depth + 1, here);
        return;
      default:
        if (def.innerType) visit(def.innerType, at, depth + 1, here);
    }
  };
  visit(schema, '', 0, new Set());
  return [...out].map(([path, secret]) => ({ path, secret }));
}
