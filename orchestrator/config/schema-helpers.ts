/**
 * The small zod building blocks every part of the config schema uses (schema.ts, daemon-schema.ts):
 * messages carrying problem and fix, durations, identifiers, time zones. Kept apart from
 * schema.ts so that its parts can import them without an import cycle.
 */
import { z } from 'zod';
import { DURATION_EXAMPLES, parseDuration } from './duration.js';

export const FIX_SEPARATOR = '\u001f';

/** An issue message carrying the problem and the fix; load.ts splits it again. */
export function say(problem: string, fix: string): string {
  return `${problem}${FIX_SEPARATOR}${fix}`;
}

/** A value as shown in a message: JSON-quoted, shortened. */
export function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

export type Ctx = z.RefinementCtx;

/**
 * Cross-key checks run even when a key inside failed, so that every problem is reported at
 * once; they then see the object as written (partly unparsed), but always an object.
 */
export function isRecordPayload(payload: { value: unknown }): boolean {
  return typeof payload.value === 'object' && payload.value !== null && !Array.isArray(payload.value);
}

export function addProblem(ctx: Ctx, problem: string, fix: string, path?: Array<string | number>): void {
  ctx.addIssue({ code: 'custom', message: say(problem, fix), ...(path ? { path } : {}) });
}

/** Error for a wrong type; `undefined` (a missing key) is left to load.ts's generic wording. */
export function typeError(what: string, fix: (input: unknown) => string) {
  return (issue: { input?: unknown }) =>
    issue.input === undefined || issue.input === null ? undefined : say(`${quote(issue.input)} is not ${what}`, fix(issue.input));
}

// ---- Scalars ---------------------------------------------------------------------------------

/** A string matching `re`; otherwise `"value" is not <what>` with the fix. */
export function matching(re: RegExp, what: string, fix: string) {
  return z.string().superRefine((value, ctx) => {
    if (!re.test(value)) addProblem(ctx, `${quote(value)} is not ${what}`, fix);
  });
}

export function identifier(what: string) {
  const fix = 'use lowercase letters, digits, ".", "_" and "-", starting with a letter or digit, e.g. acme-shop-db';
  return matching(/^[a-z0-9][a-z0-9._-]*$/, `a valid ${what} name`, fix);
}

export const DURATION_FIX = `use a number and a unit: ${DURATION_EXAMPLES}`;

export const duration = z
  .string({ error: typeError('a duration', (input) => (typeof input === 'number' ? `add a unit: ${input}s, ${input}m or ${input}h` : DURATION_FIX)) })
  .transform((text, ctx) => {
    try {
      return parseDuration(text);
    } catch {
      addProblem(ctx, `${quote(text)} is not a duration`, DURATION_FIX);
      return z.NEVER;
    }
  });

export function durationKey(what: string, fallbackMs?: number) {
  const dflt = fallbackMs === undefined ? '' : ` Default ${compactDuration(fallbackMs)}.`;
  return duration.optional().describe(`${what} A duration: ${DURATION_EXAMPLES}, 500ms, 1h30m.${dflt}`);
}

/** A value in the largest unit that divides it evenly: 48h (not 2d: reads better for RPOs), 2g. */
export function inLargestUnit(value: number, units: Array<[string, number]>): string {
  const [unit, size] = units.find(([, size]) => value % size === 0) ?? ['', 1];
  return `${value / size}${unit}`;
}

export function compactDuration(ms: number): string {
  return inLargestUnit(ms, [['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]]);
}

export function isTimeZone(zone: string): boolean {
  try {
    return Boolean(new Intl.DateTimeFormat(undefined, { timeZone: zone }));
  } catch {
    return false;
  }
}

export const timezone = z.string().refine(isTimeZone, { error: (iss) => say(`${quote(iss.input)} is not an IANA time zone`, 'use a name such as UTC, Europe/Berlin or America/New_York') });

export function nonEmptyText(what: string) {
  return z.string().refine((text) => text.trim() !== '', { error: say(`${what} is empty`, `write the ${what}`) });
}

// ---- Sizes and patterns ----------------------------------------------------------------------

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
export const SIZE_FIX = 'use a number and a unit: 512m, 2g, 2GiB, 1024mb, or a number of bytes';

/** "512m", "2g", "2GiB", "1024mb", "1048576" or a number: bytes. Units are powers of 1024. */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value > 0 ? value : undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(value);
  if (!match) return undefined;
  const bytes = Math.round(Number(match[1]) * (SIZE_UNITS[(match[2] ?? '').toLowerCase()] ?? Number.NaN));
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

export const size = z
  .union([z.number(), z.string()], { error: typeError('a size', () => SIZE_FIX) })
  .transform((value, ctx) => {
    const bytes = parseSize(value);
    if (bytes === undefined) addProblem(ctx, `${quote(value)} is not a size`, SIZE_FIX);
    return bytes ?? z.NEVER;
  });

export function sizeText(bytes: number): string {
  return inLargestUnit(bytes, [['g', 1024 ** 3], ['m', 1024 ** 2], ['k', 1024]]);
}

/** A string that must compile as a JavaScript regular expression. */
export const regexString = z.string().superRefine((source, ctx) => {
  try {
    new RegExp(source);
  } catch (err) {
    const why = err instanceof Error ? err.message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '') : String(err);
    const fix = 'correct the expression (JavaScript syntax; in YAML double quotes a backslash is written \\\\)';
    addProblem(ctx, `${quote(source)} is not a valid regular expression (${why})`, fix);
  }
});

/** A share: a fraction (0.1) or a percentage ("10%"). */
export const share = z
  .union([z.number().min(0).max(1), z.string().regex(/^\s*\d+(\.\d+)?\s*%\s*$/).transform((text) => Number(text.replace('%', '')) / 100)], {
    error: typeError('a share', () => 'write a fraction between 0 and 1 (0.1) or a percentage ("10%")'),
  })
  .refine((n) => n >= 0 && n <= 1, { error: say('a share must be between 0% and 100%', 'write e.g. 0.1 or "10%"') });
