/**
 * Conversions between row values as the drivers return them (pg and PGlite differ: Date or
 * string timestamps, bigint as string, jsonb parsed or not) and the store's records (ISO strings
 * with ms precision, numbers, objects). Shared by every query module of the evidence store.
 */

/** SQL NULL for null (JSON.stringify(null) would store the jsonb value `null`). */
export function jsonOrNull(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}

export function str(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}

export function iso(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  const d = v instanceof Date ? v : new Date(String(v));
  return d.toISOString();
}

export function num(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

export function json(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  return typeof v === 'string' ? JSON.parse(v) : v;
}
