/**
 * Policy schedules: the text written in the config file (a cron expression or a shorthand such
 * as `daily at 02:30`) turned into a cron expression, and the times that expression fires in a
 * time zone. The cron strings produced here are the ones node-schedule runs (it parses them with
 * the same cron-parser), so `nextRunTimes` agrees with when the daemon actually starts runs.
 */
import cronParser from 'cron-parser';
import { formatDuration } from '../config/duration.js';
import { quote } from '../config/schema-helpers.js';
import type { ScheduleConfig } from '../core/config-types.js';

/** A parsed schedule text: its cron expression, or what is wrong and what to write instead. */
export type ScheduleParse = { cron: string } | { problem: string; fix: string };

/** The shorthands, as quoted in messages. */
export const SHORTHAND_EXAMPLES = 'every 15m, hourly at :15, daily at 02:30, weekdays at 06:00, weekly on monday at 03:00, monthly on 1 at 04:00';

const CRON_FIX = `write five fields (minute hour day-of-month month day-of-week), or six with seconds first, e.g. "30 2 * * *" for 02:30 daily; or a shorthand: ${SHORTHAND_EXAMPLES}`;

const DAYS: Record<string, number> = { sunday: 0, monday: 1, tuesday: 2, wednesday: 3, thursday: 4, friday: 5, saturday: 6 };

/** Counts that divide the minute or hour (seconds, minutes) or the day (hours) evenly. */
const EVEN_COUNTS = { s: [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60], m: [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60], h: [1, 2, 3, 4, 6, 8, 12, 24] } as const;
const UNIT_WORDS = { s: ['s', 'sec', 'secs', 'second', 'seconds'], m: ['m', 'min', 'mins', 'minute', 'minutes'], h: ['h', 'hr', 'hrs', 'hour', 'hours'] } as const;
type EveryUnit = keyof typeof UNIT_WORDS;

const MACROS: Record<string, string> = {
  '@hourly': '0 * * * *',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@weekly': '0 0 * * 0',
  '@monthly': '0 0 1 * *',
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
};

/**
 * A schedule as written: a cron expression (5 fields, or 6 with seconds first) or a shorthand,
 * case-insensitive: `every 30s`, `every 15 minutes`, `every 2h`, `every minute`, `hourly`,
 * `hourly at :15`, `daily`, `daily at 02:30`, `weekdays at 06:00`, `weekly on monday at 03:00`,
 * `monthly on 1 at 04:00`. Never throws.
 */
export function parseScheduleText(text: string): ScheduleParse {
  const flat = text.trim().replace(/\s+/g, ' ');
  if (flat === '') return { problem: 'the schedule is empty', fix: `write a cron expression ("30 2 * * *") or a shorthand: ${SHORTHAND_EXAMPLES}` };
  const lower = flat.toLowerCase();
  const first = lower.split(' ')[0]!;
  const shorthand = SHORTHANDS[first];
  if (shorthand) return shorthand(lower, text);
  if (first.startsWith('@')) {
    const cron = MACROS[lower];
    if (cron !== undefined) return { cron };
    return { problem: `${quote(text)} is not a schedule`, fix: `use one of ${Object.keys(MACROS).join(', ')}, a shorthand (${SHORTHAND_EXAMPLES}) or a cron expression` };
  }
  if (/^[\d*?]/.test(first)) return cronExpression(flat, text);
  return { problem: `${quote(text)} is not a schedule`, fix: `write a cron expression ("30 2 * * *" for 02:30 daily) or a shorthand: ${SHORTHAND_EXAMPLES}` };
}

/** A cron expression node-schedule accepts (it parses it with this cron-parser, and needs a next time), or why not. */
function cronExpression(flat: string, text: string): ScheduleParse {
  const fields = flat.split(' ').length;
  if (fields !== 5 && fields !== 6) {
    return { problem: `${quote(text)} is not a cron expression (it has ${fields} field${fields === 1 ? '' : 's'}, not 5 or 6)`, fix: CRON_FIX };
  }
  try {
    // node-schedule refuses an expression that does not parse, or that never fires.
    cronParser.parseExpression(flat, { tz: 'UTC', currentDate: new Date(Date.UTC(2026, 0, 1)) }).next();
    return { cron: flat };
  } catch (err) {
    const why = (err instanceof Error ? err.message : String(err)).replace(/^Error: /, '');
    return {
      problem: `${quote(text)} is not a cron expression (${why})`,
      fix: 'correct it: minutes run 0-59, hours 0-23, days 1-31, months 1-12, weekdays 0-7 (0 and 7 are Sunday), and the day must exist in the month; e.g. "30 2 * * *" for 02:30 daily',
    };
  }
}

type Shorthand = (lower: string, text: string) => ScheduleParse;

const TIME = '(\\d{1,2}):(\\d{2})';

/** `HH:MM` (24-hour) as cron minute and hour fields, or the problem. */
function timeFields(text: string, hours: string | undefined, minutes: string | undefined): { minute: number; hour: number } | { problem: string; fix: string } {
  if (hours === undefined || minutes === undefined) return { minute: 0, hour: 0 };
  const hour = Number(hours);
  const minute = Number(minutes);
  if (hour > 23 || minute > 59) return { problem: `${quote(text)}: ${hours}:${minutes} is not a time of day`, fix: 'write the time as HH:MM in 24-hour form, 00:00 to 23:59, e.g. 02:30 or 18:45' };
  return { minute, hour };
}

/** The shorthand's form, for the fix when its text does not fit it. */
function notThisForm(text: string, form: string): ScheduleParse {
  return { problem: `${quote(text)} is not a schedule`, fix: `write ${form} (times as HH:MM, 24-hour), or a cron expression` };
}

function every(lower: string, text: string): ScheduleParse {
  if (lower === 'every minute') return { cron: '* * * * *' };
  if (lower === 'every hour') return { cron: '0 * * * *' };
  if (lower === 'every second') return { cron: '* * * * * *' };
  const match = /^every (\d+) ?([a-z]+)$/.exec(lower);
  const unit = match ? (Object.keys(UNIT_WORDS) as EveryUnit[]).find((u) => (UNIT_WORDS[u] as readonly string[]).includes(match[2]!)) : undefined;
  if (!match || !unit) {
    return notThisForm(text, 'every N with a unit: every 30s, every 15m (every 15 minutes), every 2h (every 2 hours), or every minute');
  }
  const count = Number(match[1]);
  const counts: readonly number[] = EVEN_COUNTS[unit];
  if (!counts.includes(count)) {
    const name = { s: 'seconds', m: 'minutes', h: 'hours' }[unit];
    const whole = unit === 'h' ? 'day' : unit === 'm' ? 'hour' : 'minute';
    const field = unit === 'h' ? `0 */${count} * * *` : unit === 'm' ? `*/${count} * * * *` : `*/${count} * * * * *`;
    const list = `${counts.slice(0, -1).join(', ')} or ${counts.at(-1)!}`;
    return {
      problem: `${quote(text)}: ${count} ${name} do not divide the ${whole} evenly`,
      fix: `use every ${list} ${name}, so that runs fall on the same times each ${whole}; or write the cron expression "${field}" if the shorter gap at the start of each ${whole} is fine`,
    };
  }
  if (unit === 's') return { cron: count === 60 ? '* * * * *' : count === 1 ? '* * * * * *' : `*/${count} * * * * *` };
  if (unit === 'm') return { cron: count === 60 ? '0 * * * *' : count === 1 ? '* * * * *' : `*/${count} * * * *` };
  return { cron: count === 24 ? '0 0 * * *' : count === 1 ? '0 * * * *' : `0 */${count} * * *` };
}

function hourly(lower: string, text: string): ScheduleParse {
  const match = /^hourly(?: at :?(\d{1,2}))?$/.exec(lower);
  if (!match) return notThisForm(text, 'hourly, or hourly at :MM, e.g. hourly at :15');
  const minute = Number(match[1] ?? 0);
  if (minute > 59) return { problem: `${quote(text)}: minute ${minute} does not exist`, fix: 'write a minute from 0 to 59, e.g. hourly at :15' };
  return { cron: `${minute} * * * *` };
}

/** `daily`, `weekdays`: an optional `at HH:MM`. */
function atTime(word: 'daily' | 'weekdays', days: string): Shorthand {
  return (lower, text) => {
    const match = new RegExp(`^${word}(?: at ${TIME})?$`).exec(lower);
    if (!match) return notThisForm(text, `${word} or ${word} at HH:MM, e.g. ${word} at 02:30`);
    const time = timeFields(text, match[1], match[2]);
    if ('problem' in time) return time;
    return { cron: `${time.minute} ${time.hour} * * ${days}` };
  };
}

function weekly(lower: string, text: string): ScheduleParse {
  const match = new RegExp(`^weekly(?: on ([a-z]+))?(?: at ${TIME})?$`).exec(lower);
  if (!match) return notThisForm(text, 'weekly, weekly on DAY or weekly on DAY at HH:MM, e.g. weekly on monday at 03:00');
  let day = 1;
  if (match[1] !== undefined) {
    const name = Object.keys(DAYS).find((d) => d === match[1] || d.slice(0, 3) === match[1]);
    if (name === undefined) return { problem: `${quote(match[1])} is not a day of the week`, fix: 'use monday to sunday, or mon to sun' };
    day = DAYS[name]!;
  }
  const time = timeFields(text, match[2], match[3]);
  if ('problem' in time) return time;
  return { cron: `${time.minute} ${time.hour} * * ${day}` };
}

function monthly(lower: string, text: string): ScheduleParse {
  const match = new RegExp(`^monthly(?: on (?:day )?(\\d{1,2})(?:st|nd|rd|th)?)?(?: at ${TIME})?$`).exec(lower);
  if (!match) return notThisForm(text, 'monthly, monthly on DAY or monthly on DAY at HH:MM, e.g. monthly on 1 at 04:00');
  const day = Number(match[1] ?? 1);
  if (day < 1 || day > 31) return { problem: `${quote(text)}: day ${day} is not a day of the month`, fix: 'use a day from 1 to 28, e.g. monthly on 1 at 04:00' };
  if (day > 28) {
    return {
      problem: `${quote(text)}: day ${day} does not occur in every month`,
      fix: `use a day from 1 to 28: months without day ${day} would be skipped; for the last day of each month write the cron expression "${Number(match[3] ?? 0)} ${Number(match[2] ?? 0)} L * *"`,
    };
  }
  const time = timeFields(text, match[2], match[3]);
  if ('problem' in time) return time;
  return { cron: `${time.minute} ${time.hour} ${day} * *` };
}

const SHORTHANDS: Record<string, Shorthand> = {
  every,
  hourly,
  daily: atTime('daily', '*'),
  weekdays: atTime('weekdays', '1-5'),
  weekly,
  monthly,
};

type CronSchedule = Pick<ScheduleConfig, 'cron' | 'timezone'>;

/** One key per distinct schedule (cron and time zone): what the caches here and the daemon's per-schedule work go by. */
export const scheduleKey = (s: CronSchedule): string => `${s.cron}\u0000${s.timezone}`;

/** The next `count` times the schedule fires strictly after `after`, in order. */
export function nextRunTimes(s: CronSchedule, after: Date, count: number): Date[] {
  const out: Date[] = [];
  if (count <= 0) return out;
  const key = scheduleKey(s);
  if (count === 1) {
    const t = after.getTime();
    const known = slots.get(key);
    if (known?.prev && known.prev.getTime() <= t && t < known.next) return [new Date(known.next)];
    // The next time after `from` is also the next after any instant before it: `status` of 1,000
    // policies sharing a few schedules asks cron-parser a few times, not 1,000.
    const ahead = following.get(key);
    if (ahead && ahead.from <= t && t < ahead.next) return [new Date(ahead.next)];
  }
  const it = cronParser.parseExpression(s.cron, { tz: s.timezone, currentDate: after });
  try {
    while (out.length < count) out.push(it.next().toDate());
  } catch {
    // No further time (cron-parser's search limit); what was found stands.
  }
  if (out[0]) {
    if (following.size >= MAX_REMEMBERED) following.clear();
    following.set(key, { from: after.getTime(), next: out[0].getTime() });
  }
  return out;
}

/**
 * The latest time the schedule fires at or before `atOrBefore`, and not before `since` when given
 * (when a policy was first seen: what it owes); undefined when there is none. A `since` after
 * `atOrBefore` answers without a search (a new policy, a daemon's first start on 1,000 policies:
 * cron-parser's search costs ~5 ms a schedule), and so does one equal to it with milliseconds on
 * the clock, since run times fall on whole seconds. Only forward searches: cron-parser's
 * backward search disagrees with its forward one across DST changes (it skips a time moved by a
 * spring-forward gap and yields a repeated autumn hour twice) and takes ~25 ms a call. The
 * answer is remembered per schedule until the next run time, so the daemon's checks over
 * hundreds of policies cost next to nothing between runs.
 */
export function previousRunTime(s: CronSchedule, atOrBefore: Date, since?: Date): Date | undefined {
  const target = atOrBefore.getTime();
  if (since) {
    const floor = since.getTime();
    if (floor > target || (floor === target && target % 1000 !== 0)) return undefined;
    const prev = previousRunTime(s, atOrBefore);
    return prev && prev.getTime() >= floor ? prev : undefined;
  }
  const key = scheduleKey(s);
  const known = slots.get(key);
  if (known && known.prev !== undefined && known.prev.getTime() <= target && target < known.next) return known.prev;
  const { prev, following } = searchPrevious(s, target);
  if (slots.size >= MAX_REMEMBERED) slots.clear();
  if (prev && following) slots.set(key, { prev, next: following.getTime() });
  return prev;
}

/** Per schedule: the last run time found and the one after it (the interval where it stays the answer). */
const slots = new Map<string, { prev: Date | undefined; next: number }>();
/** Per schedule: the first run time after `from` (the answer for any instant in [from, next)). */
const following = new Map<string, { from: number; next: number }>();
const MAX_REMEMBERED = 10_000;

/**
 * The last run time at or before `target`, and the run after it: the first after `target`, since
 * none falls between (each of cron-parser's next() costs ~0.6-1.5 ms; a daemon starting with
 * 1,000 policies asks this once per distinct schedule).
 */
function searchPrevious(s: CronSchedule, target: number): { prev?: Date; following?: Date } {
  // Look back a window as wide as the local gap between runs, doubling it until a run falls
  // inside, then walk forward to the last one at or before the target.
  const ahead = nextRunTimes(s, new Date(target), 2);
  let windowMs = ahead.length === 2 ? Math.max(1_000, ahead[1]!.getTime() - ahead[0]!.getTime()) : 60_000;
  for (let attempt = 0; attempt < 40; attempt++, windowMs *= 2) {
    const it = cronParser.parseExpression(s.cron, { tz: s.timezone, currentDate: new Date(target - windowMs - 1) });
    let latest: Date | undefined;
    try {
      for (let i = 0; i < 10_000; i++) {
        const t = it.next().toDate();
        if (t.getTime() > target) break;
        latest = t;
      }
    } catch {
      // No further time.
    }
    if (latest) return { prev: latest, ...(ahead[0] ? { following: ahead[0] } : {}) };
  }
  return {};
}

/** The shortest gap between two consecutive runs among the next `runs` from `from`. */
export function shortestGapMs(s: CronSchedule, from = new Date(Date.UTC(2026, 0, 5)), runs = 50): number {
  const times = nextRunTimes(s, from, runs);
  let gap = Infinity;
  for (let i = 1; i < times.length; i++) gap = Math.min(gap, times[i]!.getTime() - times[i - 1]!.getTime());
  return gap;
}

/** `daily at 02:30 (Europe/Berlin)`, `0 2 * * * (UTC, jitter up to 5m)`. */
export function describeSchedule(s: ScheduleConfig): string {
  const extra = s.jitterMs > 0 ? `, jitter up to ${formatDuration(s.jitterMs)}` : '';
  return `${s.text.trim().replace(/\s+/g, ' ')} (${s.timezone}${extra})`;
}
