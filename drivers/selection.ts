import picomatch from 'picomatch';
import cronParser from 'cron-parser';
import type { ExpectConfig, SelectorConfig, TimestampFromName, TimestampSource } from '../orchestrator/core/config-types.js';
import { isAuxiliaryName, type BackupEntry } from './storage-driver.js';

/**
 * Selection shared by every driver: name filter (glob or regex), the backup's time (from a
 * timestamp in its name or its modification time), skip files still settling, pick the newest.
 * Streams over the listing and keeps only the newest candidate plus counts.
 */
export interface Candidate {
  entry: BackupEntry;
  backupTime: Date;
  timestampSource: TimestampSource['from'];
}

export interface SelectionResult {
  picked?: Candidate;
  seen: number;
  matched: number;
  settling: number;
  withoutTimestamp: number;
  /** One line on why nothing was picked, or which one was and why. */
  explanation: string;
  /** With `expect`: the last complete period, when no backup was taken in it ("2026-11-27"). */
  missingPeriod?: string;
}

/** How selection judged one listed entry (for `backproof backups list`). */
export type EntryStatus = 'auxiliary' | 'no-match' | 'settling' | 'no-timestamp' | 'candidate';

export interface JudgedEntry {
  entry: BackupEntry;
  status: EntryStatus;
  backupTime?: Date;
}

/**
 * `takenAt` reads a backup's time from the store's metadata (`timestamp: metadata`) when the
 * listing does not carry it; it is called only for entries that pass the name filter.
 */
export async function selectNewest(
  entries: AsyncIterable<BackupEntry>,
  select: SelectorConfig,
  now: Date = new Date(),
  onEntry?: (judged: JudgedEntry) => void,
  takenAt?: (entry: BackupEntry) => Promise<Date | undefined>,
): Promise<SelectionResult> {
  const matches = nameMatcher(select);
  const period = select.expect ? expectedPeriod(now, select.expect) : undefined;
  let periodCovered = false;
  let picked: Candidate | undefined;
  let seen = 0;
  let matched = 0;
  let settling = 0;
  let withoutTimestamp = 0;
  for await (const entry of entries) {
    seen++;
    if (isAuxiliaryName(entry.key)) {
      onEntry?.({ entry, status: 'auxiliary' });
      continue;
    }
    if (!matches(entry.key)) {
      onEntry?.({ entry, status: 'no-match' });
      continue;
    }
    matched++;
    if (now.getTime() - entry.modifiedAt.getTime() < select.settleMs) {
      settling++;
      onEntry?.({ entry, status: 'settling' });
      continue;
    }
    let backupTime: Date | undefined;
    if (select.timestamp.from === 'name') backupTime = timestampFromName(entry.key, select.timestamp);
    else if (select.timestamp.from === 'metadata') backupTime = entry.takenAt ?? (await takenAt?.(entry));
    else backupTime = entry.modifiedAt;
    if (!backupTime) {
      withoutTimestamp++;
      onEntry?.({ entry, status: 'no-timestamp' });
      continue;
    }
    const candidate: Candidate = { entry, backupTime, timestampSource: select.timestamp.from };
    onEntry?.({ entry, status: 'candidate', backupTime });
    if (period && backupTime >= period.start && backupTime < period.end) periodCovered = true;
    if (!picked || isNewer(candidate, picked)) picked = candidate;
  }
  const filter = select.regex ? `regex /${select.regex}/` : `glob "${select.glob ?? '*'}"`;
  let explanation: string;
  if (picked) {
    explanation = `picked ${picked.entry.key}: newest by ${TIME_SOURCE[picked.timestampSource]} of ${matched - settling - withoutTimestamp} candidates`;
  } else if (matched === 0) {
    explanation = `no backup found: ${seen} files, none matches ${filter}`;
  } else {
    const parts = [`${matched} match ${filter}`];
    if (settling) parts.push(`${settling} still being written (younger than the settle time)`);
    if (withoutTimestamp) parts.push(`${withoutTimestamp} without a ${select.timestamp.from === 'metadata' ? `backup time in the store's metadata (${select.timestamp.key})` : 'timestamp in the name'}`);
    explanation = `no backup found: ${parts.join(', ')}`;
  }
  const missingPeriod = period && picked && !periodCovered ? period.label : undefined;
  return { picked, seen, matched, settling, withoutTimestamp, explanation, ...(missingPeriod ? { missingPeriod } : {}) };
}

const TIME_SOURCE = { name: 'timestamp in name', mtime: 'modification time', metadata: "the store's backup time" } as const;

/** The period that must hold a backup under `expect`, as instants and a label. */
export function expectedPeriod(now: Date, expect: ExpectConfig): { start: Date; end: Date; label: string } {
  return expect.every === 'cron' ? lastCronRun(now, expect) : lastCompletePeriod(now, expect.every, expect.timezone);
}

/** How an expectation reads in a message: "daily, Europe/Berlin" or "cron 0 2 * * *, UTC". */
export function describeExpect(expect: ExpectConfig): string {
  return expect.every === 'cron' ? `cron ${expect.cron}, ${expect.timezone}` : `${expect.every}, ${expect.timezone}`;
}

/**
 * The last time the backup job was scheduled that is at least `grace` ago: a backup taken at
 * or after it (a few minutes early still counts, for clocks that disagree) covers it.
 */
export function lastCronRun(now: Date, expect: { cron: string; timezone: string; graceMs: number }): { start: Date; end: Date; label: string } {
  const it = cronParser.parseExpression(expect.cron, { currentDate: new Date(now.getTime() - expect.graceMs + 1), tz: expect.timezone });
  const last = it.prev().toDate();
  const before = it.prev().toDate();
  const early = Math.min(CRON_EARLY_MS, (last.getTime() - before.getTime()) / 2);
  const w = wallClock(last, expect.timezone);
  const two = (n: number): string => String(n).padStart(2, '0');
  const label = `the ${two(w.h)}:${two(w.mi)} backup of ${w.y}-${two(w.m)}-${two(w.d)}`;
  return { start: new Date(last.getTime() - early), end: new Date(8.64e15), label };
}

/** How much earlier than its scheduled time a backup may be taken and still count. */
const CRON_EARLY_MS = 5 * 60_000;

/** The last complete day or ISO week before `now`, in `timeZone`, as instants and a label. */
export function lastCompletePeriod(now: Date, every: 'daily' | 'weekly', timeZone: string): { start: Date; end: Date; label: string } {
  const { y, m, d, weekday } = wallClock(now, timeZone);
  // Calendar arithmetic on a UTC date of the local wall date, then back to instants in the zone.
  const today = new Date(Date.UTC(y, m - 1, d));
  const back = every === 'daily' ? 1 : weekday - 1 + 7; // to yesterday / to last week's Monday
  const startDay = new Date(today.getTime() - back * 86_400_000);
  const endDay = new Date(startDay.getTime() + (every === 'daily' ? 1 : 7) * 86_400_000);
  const at = (day: Date): Date => zonedToUtc([day.getUTCFullYear(), day.getUTCMonth() + 1, day.getUTCDate(), 0, 0, 0], timeZone);
  const iso = (day: Date): string => day.toISOString().slice(0, 10);
  const label =
    every === 'daily' ? iso(startDay) : `the week of ${iso(startDay)} to ${iso(new Date(endDay.getTime() - 86_400_000))}`;
  return { start: at(startDay), end: at(endDay), label };
}


function isNewer(a: Candidate, b: Candidate): boolean {
  const diff = a.backupTime.getTime() - b.backupTime.getTime();
  if (diff !== 0) return diff > 0;
  const m = a.entry.modifiedAt.getTime() - b.entry.modifiedAt.getTime();
  if (m !== 0) return m > 0;
  return a.entry.key > b.entry.key;
}

export function nameMatcher(select: Pick<SelectorConfig, 'glob' | 'regex'>): (key: string) => boolean {
  if (select.regex) {
    const re = new RegExp(select.regex);
    // Like a glob: a regex without a slash is on the file name, so `^shop-.*\.dump$` works in
    // recursive listings too; one with a slash sees the whole relative key.
    if (!select.regex.includes('/')) return (key) => re.test(key.slice(key.lastIndexOf('/') + 1));
    return (key) => re.test(key);
  }
  const glob = select.glob ?? '*';
  // A glob without a slash matches the base name, so `*.dump` works in recursive listings too.
  const isMatch = picomatch(glob, { dot: false, basename: !glob.includes('/') });
  return (key) => isMatch(key);
}

/**
 * A date in a name, optionally with a time and an offset: 2026-11-27T02:30:00Z, 20261127T023000Z,
 * 2026-11-27_02-30-00, 2026_11_27, 2026.11.27, 20261127-0230, 2026-11-27 02:30, ...
 * It must stand alone (no digit on either side), so a run of digits is never read from its middle.
 */
const AUTO_DATE =
  /(?<!\d)(?<Y>\d{4})(?<ds>[-_.]?)(?<M>\d{2})\k<ds>(?<D>\d{2})(?:[T_ .-]?(?<h>\d{2})(?<tsep>[:._-]?)(?<m>\d{2})(?:\k<tsep>(?<s>\d{2}))?(?:[.,]\d+)?)?(?<z>Z|[+-]\d{2}:?\d{2})?(?!\d)/g;
/** Unix time in seconds (or milliseconds), 2001-09-09 to 2033-05-18, standing alone. */
const EPOCH = /(?<!\d)(1\d{9})(?:\d{3})?(?!\d)/;

/**
 * The time a backup was taken, from its name; undefined when the name holds none. Digits that
 * cannot be a date (a version, a sequence number, month 21, year 1234) are skipped and the
 * search goes on; with two dates in a name the first wins (a `pattern` with a `ts` group picks
 * another).
 */
export function timestampFromName(key: string, ts: TimestampFromName): Date | undefined {
  const base = key.split('/').pop() ?? key;
  let text = base;
  if (ts.pattern) {
    const m = new RegExp(ts.pattern).exec(base);
    if (!m) return undefined;
    text = m.groups?.ts ?? m[0];
  }
  if (ts.format) return parseWithFormat(text, ts.format, ts.timezone);
  for (const m of text.matchAll(AUTO_DATE)) {
    const g = m.groups;
    if (!g?.Y || !g.M || !g.D) continue;
    const fields = [g.Y, g.M, g.D, g.h ?? '0', g.m ?? '0', g.s ?? '0'].map(Number) as Six;
    if (!validFields(fields)) continue;
    if (g.z && validOffset(g.z)) return withOffset(fields, g.z);
    return zonedToUtc(fields, ts.timezone);
  }
  const epoch = EPOCH.exec(text);
  if (epoch?.[1]) return new Date(Number(epoch[1]) * 1000);
  return undefined;
}

type Six = [number, number, number, number, number, number];

/** A real calendar day (no 31 November) in a plausible year for a backup, and a real time. */
function validFields([y, mo, d, h, mi, s]: Six): boolean {
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  return y >= 1970 && y <= 2199 && mo >= 1 && mo <= 12 && d >= 1 && d <= daysInMonth && h <= 23 && mi <= 59 && s <= 60;
}

/** UTC offsets run from -12:00 to +14:00; anything else is digits that follow a time. */
function validOffset(z: string): boolean {
  if (z === 'Z') return true;
  const digits = z.slice(1).replace(':', '');
  return Number(digits.slice(0, 2)) <= 14 && Number(digits.slice(2, 4)) <= 59;
}

function parseWithFormat(text: string, format: string, timezone: string): Date | undefined {
  const tokens: Record<string, string> = { YYYY: 'Y', MM: 'M', DD: 'D', HH: 'h', mm: 'm', ss: 's' };
  let source = '';
  for (let i = 0; i < format.length; ) {
    const tok = Object.keys(tokens).find((k) => format.startsWith(k, i));
    if (tok) {
      source += `(?<${tokens[tok]}>\\d{${tok.length}})`;
      i += tok.length;
    } else {
      source += format[i]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      i++;
    }
  }
  // The first place in the name where the format reads as a valid date, not glued to other digits.
  for (const m of text.matchAll(new RegExp(`(?<!\\d)${source}`, 'g'))) {
    const g = m.groups;
    if (!g?.Y) return undefined;
    const fields = [g.Y, g.M ?? '1', g.D ?? '1', g.h ?? '0', g.m ?? '0', g.s ?? '0'].map(Number) as Six;
    if (validFields(fields)) return zonedToUtc(fields, timezone);
  }
  return undefined;
}

function withOffset([y, mo, d, h, mi, s]: Six, z: string): Date {
  const utc = Date.UTC(y, mo - 1, d, h, mi, s);
  if (z === 'Z') return new Date(utc);
  const sign = z.startsWith('-') ? -1 : 1;
  const digits = z.slice(1).replace(':', '');
  const offsetMin = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4));
  return new Date(utc - sign * offsetMin * 60_000);
}

/** Wall-clock fields in an IANA zone to an instant, correct across DST changes. */
export function zonedToUtc([y, mo, d, h, mi, s]: Six, timeZone: string): Date {
  const wall = Date.UTC(y, mo - 1, d, h, mi, s);
  if (timeZone === 'UTC') return new Date(wall);
  let guess = wall - zoneOffsetMs(new Date(wall), timeZone);
  guess = wall - zoneOffsetMs(new Date(guess), timeZone);
  return new Date(guess);
}

function zoneOffsetMs(at: Date, timeZone: string): number {
  const w = wallClock(at, timeZone);
  return Date.UTC(w.y, w.m - 1, w.d, w.h, w.mi, w.s) - Math.floor(at.getTime() / 1000) * 1000;
}

/** One formatter per zone: building an Intl.DateTimeFormat costs far more than using one. */
const formatters = new Map<string, Intl.DateTimeFormat>();
const WEEKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];

/** The wall clock and ISO weekday (Monday 1) in `timeZone` at an instant. */
function wallClock(at: Date, timeZone: string): { y: number; m: number; d: number; h: number; mi: number; s: number; weekday: number } {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      weekday: 'short',
    });
    formatters.set(timeZone, format);
  }
  const parts = format.formatToParts(at);
  const get = (type: string): string => parts.find((p) => p.type === type)?.value ?? '0';
  return {
    y: Number(get('year')),
    m: Number(get('month')),
    d: Number(get('day')),
    h: Number(get('hour')),
    mi: Number(get('minute')),
    s: Number(get('second')),
    weekday: WEEKDAYS.indexOf(get('weekday')) + 1,
  };
}
