import { BackproofError } from '../../orchestrator/core/errors.js';

/**
 * A report's month: `YYYY-MM` counted in an IANA time zone. Its bounds are the instants the
 * month starts and ends in that zone (so November in Europe/Berlin starts at 2026-10-31T23:00Z).
 */
export interface MonthPeriod {
  /** `2026-11`. */
  month: string;
  /** `November 2026`. */
  label: string;
  timezone: string;
  /** First instant of the month (ISO, UTC). */
  from: string;
  /** First instant of the next month (ISO, UTC): the period is [from, to). */
  to: string;
}

const MONTH = /^(\d{4})-(\d{2})$/;
const MONTH_NAMES = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** Year and month (1-12) of `YYYY-MM`, or a usage error saying how to write it. */
export function parseMonth(text: string): { year: number; month: number } {
  const m = MONTH.exec(text.trim());
  const month = m ? Number(m[2]) : NaN;
  if (!m || month < 1 || month > 12 || Number(m[1]) < 1970) {
    throw new BackproofError('report_month_invalid', `--month ${text} is not a month; write YYYY-MM, e.g. 2026-11`);
  }
  return { year: Number(m[1]), month };
}

export function monthPeriod(text: string, timezone: string): MonthPeriod {
  const { year, month } = parseMonth(text);
  const next = month === 12 ? { year: year + 1, month: 1 } : { year, month: month + 1 };
  return {
    month: `${year}-${String(month).padStart(2, '0')}`,
    label: `${MONTH_NAMES[month - 1]} ${year}`,
    timezone,
    from: zonedMidnight(year, month, timezone).toISOString(),
    to: zonedMidnight(next.year, next.month, timezone).toISOString(),
  };
}

/** The month before the one `now` falls in, in `timezone`: what the daemon mails on the 1st. */
export function previousMonth(now: Date, timezone: string): string {
  const p = zonedParts(now, timezone);
  const year = p.month === 1 ? p.year - 1 : p.year;
  const month = p.month === 1 ? 12 : p.month - 1;
  return `${year}-${String(month).padStart(2, '0')}`;
}

/** `2026-11-03 02:15` in `timezone`. */
export function formatLocal(iso: string, timezone: string, withTime = true): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const p = zonedParts(new Date(t), timezone);
  const date = `${p.year}-${pad(p.month)}-${pad(p.day)}`;
  return withTime ? `${date} ${pad(p.hour)}:${pad(p.minute)}` : date;
}

interface Parts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function zonedParts(date: Date, timezone: string): Parts {
  let f = formatters.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: timezone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    formatters.set(timezone, f);
  }
  const parts: Record<string, number> = {};
  for (const p of f.formatToParts(date)) parts[p.type] = Number(p.value);
  const get = (type: keyof Parts): number => parts[type] ?? NaN;
  return { year: get('year'), month: get('month'), day: get('day'), hour: get('hour'), minute: get('minute'), second: get('second') };
}

/** Offset of `timezone` from UTC at `instant`, in ms (positive east of Greenwich). */
function offsetMs(instant: number, timezone: string): number {
  const p = zonedParts(new Date(instant), timezone);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return asUtc - Math.floor(instant / 1000) * 1000;
}

/** The instant the 1st of the month begins in `timezone` (the first instant that day, should midnight not exist). */
function zonedMidnight(year: number, month: number, timezone: string): Date {
  const wall = Date.UTC(year, month - 1, 1);
  let guess = wall - offsetMs(wall, timezone);
  // Once more at the guess: the offset there may differ (a DST change near midnight).
  guess = wall - offsetMs(guess, timezone);
  const p = zonedParts(new Date(guess), timezone);
  if (p.day !== 1) guess += 3_600_000; // midnight skipped by a DST change: the day starts at 01:00
  return new Date(guess);
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}
