import { gunzipSync, gzipSync } from 'node:zlib';
import { entropy } from '../bytes.js';

/**
 * The randomValues probe's judgement of sampled column values (postgres, mysql, sqlite): an
 * attacker who encrypts a database in place leaves its text columns holding binary noise or
 * long base64/hex tokens. Legitimate columns hold such values too (hashes, tokens, keys), so
 * the probe judges the rise since the last passing run, per column and in all, from a baseline
 * it keeps with that run (artifact `values.json.gz`).
 */
export const VALUES_ARTIFACT = 'values.json.gz';

/** Values shorter than this are not judged: too few bytes to tell. */
const MIN_VALUE_BYTES = 16;

/**
 * Whether one value looks random: bytes that are not text with the entropy of noise for their
 * length, or a token with no spaces or punctuation (base64, base64url, hex) whose characters are
 * spread as evenly as random ones. Undefined: too short to judge.
 */
export function valueLooksRandom(value: Buffer): boolean | undefined {
  if (value.length < MIN_VALUE_BYTES) return undefined;
  const text = value.toString('utf8');
  // eslint-disable-next-line no-control-regex
  const isText = !text.includes('\uFFFD') && !/[\x00-\x08\x0b\x0c\x0e-\x1f]/.test(text);
  if (!isText) return entropy(value) >= 0.75 * Math.log2(Math.min(value.length, 256));
  if (!/^[A-Za-z0-9+/=_-]+$/.test(text) || !/[0-9]/.test(text)) return false;
  const hex = /^[0-9a-fA-F]+$/.test(text);
  // Random base64 of 16+ characters all but always mixes cases; identifiers (order_archive_2024) do not.
  if (!hex && !(/[a-z]/.test(text) && /[A-Z]/.test(text))) return false;
  if (hex && !/[a-fA-F]/.test(text)) return false;
  const alphabet = hex ? 16 : 64;
  return entropy(Buffer.from(text, 'latin1')) >= 0.8 * Math.min(Math.log2(text.length), Math.log2(alphabet));
}

/** Per column (`table.column`): values judged, and how many of them look random. */
export type ColumnCounts = Record<string, [judged: number, random: number]>;

export function encodeCounts(counts: ColumnCounts): Buffer {
  return gzipSync(JSON.stringify({ version: 1, columns: counts }));
}

export function decodeCounts(bytes: Buffer): ColumnCounts | undefined {
  try {
    const parsed = JSON.parse(gunzipSync(bytes).toString('utf8')) as { version?: number; columns?: ColumnCounts };
    return parsed.version === 1 && parsed.columns && typeof parsed.columns === 'object' ? parsed.columns : undefined;
  } catch {
    return undefined;
  }
}

const share = (c: readonly [number, number] | undefined): number => (c && c[0] > 0 ? c[1] / c[0] : 0);
const pct = (x: number): string => `${(Math.round(x * 1000) / 10).toString()}%`;

function total(counts: ColumnCounts): [number, number] {
  let judged = 0;
  let random = 0;
  for (const [j, r] of Object.values(counts)) {
    judged += j;
    random += r;
  }
  return [judged, random];
}

/** A column is compared when both runs judged at least this many of its values. */
const MIN_COLUMN_VALUES = 10;

/** The probe's actual text and verdict: now against the last passing run's counts (when there is one). */
export function judgeRise(now: ColumnCounts, before: ColumnCounts | undefined, maxRise: number, since: string): { actual: string; pass: boolean } {
  const all = total(now);
  const columns = Object.keys(now).length;
  const here = `${pct(share(all))} of ${all[0]} sampled values in ${columns} columns look random`;
  if (!before) return { actual: `${here}; not compared: no earlier passing run kept a baseline`, pass: true };
  const rises: string[] = [];
  // In all: over the columns both runs judged enough of, so a column added or dropped moves nothing.
  const common: ColumnCounts = {};
  const commonBefore: ColumnCounts = {};
  for (const [column, counts] of Object.entries(now)) {
    const then = before[column];
    if (!then || then[0] < MIN_COLUMN_VALUES || counts[0] < MIN_COLUMN_VALUES) continue;
    common[column] = counts;
    commonBefore[column] = then;
    if (share(counts) - share(then) > maxRise) rises.push(`${column} ${pct(share(then))} → ${pct(share(counts))}`);
  }
  const overall = share(total(common)) - share(total(commonBefore));
  const text = `${here} (${pct(share(total(before)))} ${since})`;
  if (rises.length === 0 && overall <= maxRise) return { actual: text, pass: true };
  const named = rises.length > 5 ? `${rises.slice(0, 5).join(', ')} and ${rises.length - 5} more` : rises.join(', ');
  return { actual: `${text}; rose in ${rises.length ? named : 'all columns together'}`, pass: false };
}
