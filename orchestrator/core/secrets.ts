/**
 * Secrets kept out of everything backproof writes: log lines, and also the records themselves
 * (run reasons, log tails, facts), since a storage server may echo a request's headers back in
 * its error (a session token, an access key id, an SSE-C key) and that text would otherwise be
 * sealed into the evidence chain, bundles, reports and `daemon-status.json`.
 */
export type Redactor = (text: string) => string;

/** Values shorter than this would garble ordinary words; they are not searched for. */
const MIN_SECRET_LENGTH = 4;

/** Replaces every secret, in every shape it takes on the wire and in error messages, with `***`. */
export function createRedactor(secrets: Iterable<string>): Redactor {
  const forms = new Set<string>();
  for (const s of secrets) {
    if (s.length < MIN_SECRET_LENGTH) continue;
    forms.add(s);
    forms.add(encodeURIComponent(s));
    forms.add(new URLSearchParams({ v: s }).toString().slice(2));
    forms.add(Buffer.from(s).toString('base64'));
    forms.add(JSON.stringify(s).slice(1, -1));
  }
  // Longest first, so a secret containing another is replaced whole.
  const ordered = [...forms].filter((f) => f.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
  if (ordered.length === 0) return (text) => text;
  return (text) => {
    let out = text;
    for (const f of ordered) if (out.includes(f)) out = out.split(f).join('***');
    return out;
  };
}

/** One redactor applying each of `redactors` in turn. */
export function combineRedactors(...redactors: Redactor[]): Redactor {
  return (text) => redactors.reduce((out, r) => r(out), text);
}

/**
 * Every string inside `value` (objects and arrays, walked in place) run through `redact`.
 * Returns the same value, for chaining.
 */
export function redactDeep<T>(value: T, redact: Redactor): T {
  const walk = (node: unknown): unknown => {
    if (typeof node === 'string') return redact(node);
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) node[i] = walk(node[i]);
      return node;
    }
    if (node !== null && typeof node === 'object' && !(node instanceof Date) && !ArrayBuffer.isView(node)) {
      const obj = node as Record<string, unknown>;
      for (const key of Object.keys(obj)) obj[key] = walk(obj[key]);
    }
    return node;
  };
  return walk(value) as T;
}
