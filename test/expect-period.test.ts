import t from 'tap';
import { lastCompletePeriod, lastCronRun, selectNewest } from '../drivers/selection.js';
import type { BackupEntry } from '../drivers/storage-driver.js';
import { parseConfigText } from '../orchestrator/config/load.js';
import type { SelectorConfig } from '../orchestrator/core/config-types.js';

// `expect: daily | weekly | cron`: the last complete period (or scheduled run) must hold a backup.

t.test('the last complete day and ISO week, in a time zone', async (t) => {
  const now = new Date('2026-11-28T00:30:00Z'); // Saturday; 01:30 in Berlin
  t.same(lastCompletePeriod(now, 'daily', 'UTC'), {
    start: new Date('2026-11-27T00:00:00Z'),
    end: new Date('2026-11-28T00:00:00Z'),
    label: '2026-11-27',
  });
  t.same(lastCompletePeriod(now, 'daily', 'Europe/Berlin'), {
    start: new Date('2026-11-26T23:00:00Z'),
    end: new Date('2026-11-27T23:00:00Z'),
    label: '2026-11-27',
  });
  t.equal(lastCompletePeriod(now, 'daily', 'America/New_York').label, '2026-11-26', 'still Friday evening in New York');
  t.same(lastCompletePeriod(now, 'weekly', 'UTC'), {
    start: new Date('2026-11-16T00:00:00Z'),
    end: new Date('2026-11-23T00:00:00Z'),
    label: 'the week of 2026-11-16 to 2026-11-22',
  });
  t.equal(lastCompletePeriod(new Date('2026-11-23T08:00:00Z'), 'weekly', 'UTC').label, 'the week of 2026-11-16 to 2026-11-22', 'on a Monday: the week just ended');
  const dst = lastCompletePeriod(new Date('2026-03-30T12:00:00Z'), 'daily', 'Europe/Berlin');
  t.equal(dst.end.getTime() - dst.start.getTime(), 23 * 3_600_000, 'the spring-forward day has 23 hours');
});

async function* listing(names: string[]): AsyncIterable<BackupEntry> {
  for (const key of names) yield { key, size: 100, modifiedAt: new Date('2026-11-01T00:00:00Z') };
}

const select = (every: 'daily' | 'weekly'): SelectorConfig => ({
  glob: '*.dump',
  timestamp: { from: 'name', timezone: 'UTC' },
  settleMs: 0,
  expect: { every, timezone: 'UTC' },
});
const now = new Date('2026-11-28T10:00:00Z');

t.test('a missing day is named even when older and newer backups exist', async (t) => {
  const gap = await selectNewest(listing(['db-2026-11-25.dump', 'db-2026-11-26.dump', 'db-2026-11-28.dump']), select('daily'), now);
  t.equal(gap.picked?.entry.key, 'db-2026-11-28.dump');
  t.equal(gap.missingPeriod, '2026-11-27');
  const whole = await selectNewest(listing(['db-2026-11-26.dump', 'db-2026-11-27.dump']), select('daily'), now);
  t.equal(whole.missingPeriod, undefined);
  const weekly = await selectNewest(listing(['db-2026-11-09.dump', 'db-2026-11-24.dump']), select('weekly'), now);
  t.equal(weekly.missingPeriod, 'the week of 2026-11-16 to 2026-11-22');
  const none = await selectNewest(listing([]), select('daily'), now);
  t.equal(none.missingPeriod, undefined, 'nothing at all is no_backup, not a missing period');
});

t.test('config: expect as a word or with a zone; the zone defaults to the timestamp zone', async (t) => {
  const cfg = (expect: string, timestamp = 'mtime') =>
    parseConfigText(
      `clients:\n  - name: a\n    policies:\n      - name: p\n        kind: postgres\n        source: { driver: local, path: /x, select: { timestamp: ${timestamp}, expect: ${expect} } }\n`,
      '/tmp/b.yaml',
      {},
    ).policies[0]!.source.select.expect;
  t.same(cfg('daily'), { every: 'daily', timezone: 'UTC' });
  t.same(cfg('weekly', '{ from: name, timezone: Europe/Berlin }'), { every: 'weekly', timezone: 'Europe/Berlin' });
  t.same(cfg('{ every: daily, timezone: America/New_York }'), { every: 'daily', timezone: 'America/New_York' });
  t.throws(() => cfg('hourly'), /expect: .*fix: use daily, weekly/);
});

t.test('expect: cron: the last scheduled time at least the grace ago must have a backup', async (t) => {
  const hour = 3_600_000;
  const daily = { cron: '0 2 * * *', timezone: 'UTC', graceMs: hour };
  t.same(lastCronRun(new Date('2026-11-28T12:00:00Z'), daily), {
    start: new Date('2026-11-28T01:55:00Z'),
    end: new Date(8.64e15),
    label: 'the 02:00 backup of 2026-11-28',
  });
  t.equal(lastCronRun(new Date('2026-11-28T02:30:00Z'), daily).label, 'the 02:00 backup of 2026-11-27', 'still within the grace: yesterday\'s');
  t.equal(lastCronRun(new Date('2026-11-28T03:00:00Z'), daily).label, 'the 02:00 backup of 2026-11-28', 'exactly the grace later');
  // Weekdays at 01:30 in Berlin; on Monday morning the last one is Friday's until Monday's is due.
  const weekdays = { cron: '30 1 * * 1-5', timezone: 'Europe/Berlin', graceMs: hour };
  const monday = lastCronRun(new Date('2026-11-30T00:00:00Z'), weekdays);
  t.equal(monday.label, 'the 01:30 backup of 2026-11-27');
  t.equal(monday.start.toISOString(), '2026-11-27T00:25:00.000Z', '01:30 CET is 00:30 UTC, less five minutes');
  // Every 15 minutes: "a few minutes early" is at most half the interval.
  const often = lastCronRun(new Date('2026-11-28T12:07:00Z'), { cron: '*/15 * * * *', timezone: 'UTC', graceMs: 5 * 60_000 });
  t.same([often.label, often.start.toISOString()], ['the 12:00 backup of 2026-11-28', '2026-11-28T11:55:00.000Z']);
  const summer = lastCronRun(new Date('2026-07-01T12:00:00Z'), { cron: '0 2 * * *', timezone: 'Europe/Berlin', graceMs: hour });
  t.equal(summer.start.toISOString(), '2026-06-30T23:55:00.000Z', '02:00 CEST is 00:00 UTC');

  const select: SelectorConfig = { glob: '*.dump', timestamp: { from: 'name', timezone: 'UTC' }, settleMs: 0, expect: { every: 'cron', ...daily } };
  const missed = await selectNewest(listing(['db-2026-11-26T020011Z.dump', 'db-2026-11-27T020004Z.dump']), select, new Date('2026-11-28T12:00:00Z'));
  t.equal(missed.missingPeriod, 'the 02:00 backup of 2026-11-28');
  const early = await selectNewest(listing(['db-2026-11-28T015900Z.dump']), select, new Date('2026-11-28T12:00:00Z'));
  t.equal(early.missingPeriod, undefined, 'a minute early still counts');
});
