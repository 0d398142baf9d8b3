import schedule from 'node-schedule';
import t from 'tap';
import { describeSchedule, nextRunTimes, parseScheduleText, previousRunTime, shortestGapMs } from '../orchestrator/scheduler/schedule.js';

// Schedule texts as users write them, and the times they fire (cron-parser, as node-schedule runs them).

const iso = (d: Date | undefined) => d?.toISOString();

t.test('every shorthand becomes the expected cron expression', async (t) => {
  const cases: Record<string, string> = {
    'every 30s': '*/30 * * * * *',
    'every 10 seconds': '*/10 * * * * *',
    'every 1s': '* * * * * *',
    'every 60s': '* * * * *',
    'every 15m': '*/15 * * * *',
    'every 15 minutes': '*/15 * * * *',
    'every 1 minute': '* * * * *',
    'every 60m': '0 * * * *',
    'every 2h': '0 */2 * * *',
    'every 2 hours': '0 */2 * * *',
    'every 1h': '0 * * * *',
    'every 24h': '0 0 * * *',
    'every minute': '* * * * *',
    hourly: '0 * * * *',
    'hourly at :15': '15 * * * *',
    'hourly at 15': '15 * * * *',
    'daily at 02:30': '30 2 * * *',
    'daily at 2:30': '30 2 * * *',
    daily: '0 0 * * *',
    'weekdays at 06:00': '0 6 * * 1-5',
    'weekly on monday at 03:00': '0 3 * * 1',
    'weekly on sun at 23:59': '59 23 * * 0',
    'weekly on Friday': '0 0 * * 5',
    weekly: '0 0 * * 1',
    'monthly on 1 at 04:00': '0 4 1 * *',
    'monthly on 28th at 23:00': '0 23 28 * *',
    monthly: '0 0 1 * *',
    // Case and spacing do not matter.
    '  Daily   AT 02:30 ': '30 2 * * *',
    'EVERY 5M': '*/5 * * * *',
    // Cron expressions pass through, whitespace collapsed.
    '0 2 * * *': '0 2 * * *',
    '30  2 * * MON-FRI': '30 2 * * MON-FRI',
    '*/20 * * * * *': '*/20 * * * * *',
    '0 4 L * *': '0 4 L * *',
    '@daily': '0 0 * * *',
  };
  for (const [text, cron] of Object.entries(cases)) {
    t.strictSame(parseScheduleText(text), { cron }, text);
    // node-schedule takes every one of them (it returns null for what it cannot schedule).
    const job = schedule.scheduleJob({ rule: cron, tz: 'Europe/Berlin' }, () => undefined);
    t.ok(job, `node-schedule accepts ${cron}`);
    job?.cancel();
  }
});

t.test('bad schedules name the problem and the fix', async (t) => {
  const problem = (text: string) => {
    const parsed = parseScheduleText(text);
    if (!('problem' in parsed)) throw new Error(`${text} was accepted as ${parsed.cron}`);
    return parsed;
  };
  t.match(problem('every 7m'), { problem: /7 minutes do not divide the hour evenly/, fix: /1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60 minutes.*"\*\/7 \* \* \* \*"/ });
  t.match(problem('every 7 seconds'), { problem: /7 seconds do not divide the minute/, fix: /every 1, 2, 3.* or 60 seconds/ });
  t.match(problem('every 5h'), { problem: /5 hours do not divide the day evenly/, fix: /1, 2, 3, 4, 6, 8, 12 or 24 hours/ });
  t.match(problem('every 0m'), { problem: /0 minutes/ });
  t.match(problem('every 5 days'), { problem: /"every 5 days" is not a schedule/, fix: /every 30s, every 15m/ });
  t.match(problem('daily at 25:00'), { problem: /25:00 is not a time of day/, fix: /HH:MM in 24-hour form/ });
  t.match(problem('daily at 02:60'), { problem: /02:60 is not a time of day/ });
  t.match(problem('daily at 2pm'), { problem: /"daily at 2pm" is not a schedule/, fix: /daily at HH:MM/ });
  t.match(problem('hourly at :75'), { problem: /minute 75/, fix: /0 to 59/ });
  t.match(problem('weekly on funday'), { problem: /"funday" is not a day of the week/, fix: /monday to sunday, or mon to sun/ });
  t.match(problem('monthly on 31 at 04:00'), { problem: /day 31 does not occur in every month/, fix: /1 to 28.*skipped.*"0 4 L \* \*"/ });
  t.match(problem('monthly on 29'), { problem: /day 29/, fix: /"0 0 L \* \*"/ });
  t.match(problem('monthly on 0'), { problem: /day 0 is not a day of the month/ });
  t.match(problem('0 2 * *'), { problem: /has 4 fields, not 5 or 6/, fix: /five fields/ });
  t.match(problem('0 0 2 * * * *'), { problem: /has 7 fields/ });
  t.match(problem('61 2 * * *'), { problem: /"61 2 \* \* \*" is not a cron expression \(Constraint error/, fix: /minutes run 0-59/ });
  // Parses field by field, but never fires: node-schedule refuses it too.
  t.match(problem('0 0 30 2 *'), { problem: /is not a cron expression/, fix: /the day must exist in the month/ });
  t.equal(schedule.scheduleJob('0 0 30 2 *', () => undefined), null, 'node-schedule refuses 30 February');
  t.match(problem('twice a day'), { problem: /"twice a day" is not a schedule/, fix: /cron expression.*daily at 02:30/ });
  t.match(problem('@fortnightly'), { problem: /is not a schedule/, fix: /@daily/ });
  t.match(problem('   '), { problem: /empty/ });
});

t.test('next run times, in the schedule\'s zone', async (t) => {
  const berlin = { cron: '30 2 * * *', timezone: 'Europe/Berlin' };
  t.strictSame(nextRunTimes(berlin, new Date('2026-01-10T12:00:00Z'), 2).map(iso), ['2026-01-11T01:30:00.000Z', '2026-01-12T01:30:00.000Z'], 'CET is UTC+1');
  t.strictSame(nextRunTimes(berlin, new Date('2026-07-10T12:00:00Z'), 1).map(iso), ['2026-07-11T00:30:00.000Z'], 'CEST is UTC+2');
  t.strictSame(nextRunTimes({ cron: '0 2 * * *', timezone: 'UTC' }, new Date('2026-01-01T02:00:00Z'), 1).map(iso), ['2026-01-02T02:00:00.000Z'], 'strictly after');
  t.strictSame(nextRunTimes({ cron: '0 2 * * *', timezone: 'UTC' }, new Date('2026-01-01T02:00:00.500Z'), 1).map(iso), ['2026-01-02T02:00:00.000Z']);
  t.strictSame(nextRunTimes(berlin, new Date(), 0), []);

  // Spring forward (2026-03-29, 02:00 CET -> 03:00 CEST): 02:30 does not exist that day; the run comes right after the gap.
  t.strictSame(nextRunTimes(berlin, new Date('2026-03-28T00:00:00Z'), 3).map(iso), ['2026-03-28T01:30:00.000Z', '2026-03-29T01:30:00.000Z', '2026-03-30T00:30:00.000Z']);
  // Fall back (2026-10-25, 03:00 CEST -> 02:00 CET): 02:30 happens twice; the run happens once.
  t.strictSame(nextRunTimes(berlin, new Date('2026-10-24T00:00:00Z'), 3).map(iso), ['2026-10-24T00:30:00.000Z', '2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']);

  // Six fields: seconds first.
  const seconds = { cron: '*/20 * * * * *', timezone: 'UTC' };
  t.strictSame(nextRunTimes(seconds, new Date('2026-01-01T00:00:00.500Z'), 3).map(iso), ['2026-01-01T00:00:20.000Z', '2026-01-01T00:00:40.000Z', '2026-01-01T00:01:00.000Z']);
  t.equal(shortestGapMs(seconds), 20_000);
  t.equal(shortestGapMs({ cron: '0 2,3 * * *', timezone: 'UTC' }), 3_600_000);
});

t.test('the previous run time: the latest at or before an instant, agreeing with the next times across DST', async (t) => {
  const utc = { cron: '0 2 * * *', timezone: 'UTC' };
  t.equal(iso(previousRunTime(utc, new Date('2026-01-01T02:00:00Z'))), '2026-01-01T02:00:00.000Z', 'at the instant itself');
  t.equal(iso(previousRunTime(utc, new Date('2026-01-01T02:00:00.500Z'))), '2026-01-01T02:00:00.000Z');
  t.equal(iso(previousRunTime(utc, new Date('2026-01-01T01:59:59.999Z'))), '2025-12-31T02:00:00.000Z');
  // Not before `since` (when the policy was first seen): what it owes.
  const at = (text: string): Date => new Date(text);
  t.equal(previousRunTime(utc, at('2026-01-01T05:00:00Z'), at('2026-01-01T03:00:00Z')), undefined, 'the last run was before it was first seen');
  t.equal(iso(previousRunTime(utc, at('2026-01-01T05:00:00Z'), at('2026-01-01T01:00:00Z'))), '2026-01-01T02:00:00.000Z', 'first seen before the last run');
  t.equal(iso(previousRunTime(utc, at('2026-01-01T02:00:00Z'), at('2026-01-01T02:00:00Z'))), '2026-01-01T02:00:00.000Z', 'first seen at the run time itself');
  t.equal(previousRunTime(utc, at('2026-01-01T02:00:00.250Z'), at('2026-01-01T02:00:00.250Z')), undefined, 'first seen now, with milliseconds: no run time is now');
  t.equal(previousRunTime(utc, at('2026-01-01T05:00:00Z'), at('2026-01-01T06:00:00Z')), undefined, 'first seen after the instant');

  const berlin = { cron: '30 2 * * *', timezone: 'Europe/Berlin' };
  // cron-parser's own backward search skips the run after the spring-forward gap; this does not.
  t.equal(iso(previousRunTime(berlin, new Date('2026-03-29T12:00:00Z'))), '2026-03-29T01:30:00.000Z', 'spring forward: the run at 03:30 CEST');
  t.equal(iso(previousRunTime(berlin, new Date('2026-03-29T01:00:00Z'))), '2026-03-28T01:30:00.000Z');
  // ... and it sees the repeated autumn hour twice; the daemon runs only the first.
  t.equal(iso(previousRunTime(berlin, new Date('2026-10-25T01:45:00Z'))), '2026-10-25T00:30:00.000Z', 'fall back: the first 02:30');
  t.equal(iso(previousRunTime(berlin, new Date('2026-10-26T01:30:00Z'))), '2026-10-26T01:30:00.000Z');

  // Every previous time is one of the next times, and the next one after it is past the instant.
  for (const at of ['2026-03-29T00:45:00Z', '2026-03-29T01:45:00Z', '2026-10-25T00:45:00Z', '2026-10-25T01:15:00Z', '2026-10-25T02:30:00Z']) {
    const hourly = { cron: '0 * * * *', timezone: 'Europe/Berlin' };
    const prev = previousRunTime(hourly, new Date(at))!;
    const [next] = nextRunTimes(hourly, new Date(prev.getTime() - 1), 2);
    t.equal(iso(next), iso(prev), `hourly, ${at}: the previous time is a run time`);
    t.ok(nextRunTimes(hourly, prev, 1)[0]!.getTime() > new Date(at).getTime(), `hourly, ${at}: nothing between`);
  }

  const seconds = { cron: '*/20 * * * * *', timezone: 'UTC' };
  t.equal(iso(previousRunTime(seconds, new Date('2026-01-01T00:00:39.999Z'))), '2026-01-01T00:00:20.000Z');
  t.equal(iso(previousRunTime(seconds, new Date('2026-01-01T00:00:40Z'))), '2026-01-01T00:00:40.000Z');
});

t.test('describeSchedule', async (t) => {
  t.equal(describeSchedule({ text: 'daily at 02:30', cron: '30 2 * * *', timezone: 'Europe/Berlin', jitterMs: 0, graceMs: 3_600_000 }), 'daily at 02:30 (Europe/Berlin)');
  t.equal(describeSchedule({ text: '0 2 * * *', cron: '0 2 * * *', timezone: 'UTC', jitterMs: 300_000, graceMs: 3_600_000 }), '0 2 * * * (UTC, jitter up to 5m)');
});
