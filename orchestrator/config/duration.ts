/**
 * Durations as people write them in the config file: a number and a unit, optionally several
 * in a row ("1h30m", "1h 30m"). Units: ms, s, m, h, d, w. A bare number is refused: "30"
 * could mean seconds or minutes, and a wrong guess silently changes an RPO.
 */

const UNIT_MS = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
} as const;

type Unit = keyof typeof UNIT_MS;

/** One component: digits (optionally with a fraction) then a unit; `ms` before `m`. */
const COMPONENT = /(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)/y;

/** The examples quoted in every "not a duration" message. */
export const DURATION_EXAMPLES = '26h, 30m, 90s, 2d';

/** Parses "26h", "1h30m", "500ms", "2.5s" into milliseconds; throws on anything else. */
export function parseDuration(text: string): number {
  const input = text.trim();
  if (input === '') throw new Error('empty duration');
  if (/^\d+(\.\d+)?$/.test(input)) {
    throw new Error(`"${input}" has no unit`);
  }
  let total = 0;
  let index = 0;
  while (index < input.length) {
    COMPONENT.lastIndex = index;
    const match = COMPONENT.exec(input);
    if (!match) throw new Error(`"${text}" is not a duration`);
    total += Number(match[1]) * UNIT_MS[match[2] as Unit];
    index = COMPONENT.lastIndex;
    while (input[index] === ' ') index++;
  }
  if (!Number.isFinite(total)) throw new Error(`"${text}" is too long a duration`);
  return Math.round(total);
}

/**
 * Short, human form: "500ms", "2.5s", "90s" is shown as "1m 30s", "26h", "1h 30m", "3d 4h".
 * At most two components; the rest is dropped. Hours are kept up to 48h ("26h" reads better
 * than "1d 2h" for an RPO).
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${trimFraction(ms / 1000)}s`;
  const units: Array<[string, number]> =
    ms >= 2 * UNIT_MS.d
      ? [['d', UNIT_MS.d], ['h', UNIT_MS.h], ['m', UNIT_MS.m], ['s', UNIT_MS.s]]
      : [['h', UNIT_MS.h], ['m', UNIT_MS.m], ['s', UNIT_MS.s]];
  const parts: string[] = [];
  let rest = Math.round(ms / 1000) * 1000;
  for (const [name, size] of units) {
    const count = Math.floor(rest / size);
    rest -= count * size;
    if (count > 0) parts.push(`${count}${name}`);
    else if (parts.length > 0) break;
    if (parts.length === 2) break;
  }
  return parts.join(' ');
}

function trimFraction(value: number): string {
  return value.toFixed(1).replace(/\.0$/, '');
}
