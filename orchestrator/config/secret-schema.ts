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

/** Per schema: the schemas below it that lead to a declared secret (see secretPaths). */
let secretPathsOf = new WeakMap<z.ZodType, Child[]>();

/** Declares `schema` secret: every value read through it is redacted from logs, evidence and problems. */
export function secret<T extends z.ZodType>(schema: T, shape: SecretShape = 'value'): T {
  SECRET_FIELDS.add(schema, { secret: shape });
  // What leads to a secret is learnt again (schemas are declared at load; this keeps a late one safe).
  secretPathsOf = new WeakMap();
  return schema;
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
 * A schema one step below another, and how a value reaches it: an object's key, a tuple's
 * position, every item of a list, every value of a record, or the same value (an alternative of
 * a union, a side of an intersection, the input of a transform, what a lazy schema stands for, an
 * optional's or a default's inner schema).
 */
type Child = { schema: z.ZodType } & ({ key: string } | { index: number } | { each: 'item' | 'value' } | { same: true });

/** The zod 4 schemas directly below `def`: the one place the walks below know its shapes. */
function childrenOf(def: Def): Child[] {
  const out: Child[] = [];
  const add = (schema: z.ZodType | undefined, how: Omit<Child, 'schema'>): void => {
    if (schema) out.push({ schema, ...how } as Child);
  };
  switch (def.type) {
    case 'object':
      for (const [key, schema] of Object.entries(def.shape ?? {})) add(schema, { key });
      break;
    case 'array':
      add(def.element, { each: 'item' });
      break;
    case 'tuple':
      (def.items ?? []).forEach((schema, index) => add(schema, { index }));
      break;
    case 'record':
      add(def.valueType, { each: 'value' });
      break;
    case 'union':
      for (const schema of def.options ?? []) add(schema, { same: true });
      break;
    case 'intersection':
      add(def.left, { same: true });
      add(def.right, { same: true });
      break;
    case 'pipe':
      add(def.in, { same: true });
      break;
    case 'lazy':
      add(def.getter?.(), { same: true });
      break;
    default:
      // optional, nullable, default, prefault, catch, readonly, nonoptional: one inner schema.
      add(def.innerType, { same: true });
  }
  return out;
}

/**
 * The children of `s` through which a declared secret can be reached, remembered per schema:
 * `secretsIn` follows only these and skips what cannot hold a secret (a policy's probes, limits,
 * kind options). Walking every key of 10,000 policies took 235-317 ms, most of `validate`'s time
 * after parsing; this way 15-36 ms. A schema met again while its own answer is being found (a
 * lazy, recursive one) counts as leading to a secret: walking too much is safe, skipping a
 * secret is not. Learnt again when a field is declared secret.
 */
function secretPaths(s: z.ZodType, depth = 0): Child[] {
  const known = secretPathsOf.get(s);
  if (known) return known;
  const all = childrenOf(defOf(s));
  if (depth > 64) return all;
  secretPathsOf.set(s, all); // meanwhile (a cycle): everything below
  const leading = all.filter((c) => SECRET_FIELDS.has(c.schema) || secretPaths(c.schema, depth + 1).length > 0);
  secretPathsOf.set(s, leading);
  return leading;
}

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
    if (value === undefined || depth > 64) return;
    const meta = SECRET_FIELDS.get(s);
    if (meta) {
      for (const v of extract(meta.secret, value)) {
        if (v.trim() === '' || seen.has(v)) continue;
        seen.add(v);
        out.push(v);
      }
    }
    const isObject = value !== null && typeof value === 'object';
    for (const child of secretPaths(s)) {
      if ('same' in child) walk(child.schema, value, depth + 1);
      else if ('key' in child) {
        if (isObject && !Array.isArray(value)) walk(child.schema, (value as Record<string, unknown>)[child.key], depth + 1);
      } else if ('index' in child) {
        if (Array.isArray(value)) walk(child.schema, value[child.index], depth + 1);
      } else if (child.each === 'item') {
        if (Array.isArray(value)) for (const item of value) walk(child.schema, item, depth + 1);
      } else if (isObject) {
        for (const v of Object.values(value)) walk(child.schema, v, depth + 1);
      }
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
    for (const child of childrenOf(defOf(s))) {
      if ('key' in child) {
        const p = at ? `${at}.${child.key}` : child.key;
        if (!out.has(p)) out.set(p, false);
        visit(child.schema, p, depth + 1, here);
      } else {
        visit(child.schema, 'same' in child ? at : 'each' in child && child.each === 'value' ? `${at}.*` : `${at}[]`, depth + 1, here);
      }
    }
  };
  visit(schema, '', 0, new Set());
  return [...out].map(([path, secret]) => ({ path, secret }));
}
