// The date-dependent tests again, with the clock a year and a month ahead (Debian's faketime), so
// a test that compares a pinned date with a real clock fails today, not on the day the calendar
// passes it. Each file runs in its own process under faketime; its assertions join this file's.
// The files are the tests whose subject is dates: selection, expectations, schedules, stores'
// timestamps, alerts, and the drivers that read servers' and files' times.
import { spawnSync } from 'node:child_process';
import t from 'tap';

const DATED_TESTS = [
  'test/selection.test.ts',
  'test/expect-period.test.ts',
  'test/schedule.test.ts',
  'test/sql-timestamps.test.ts',
  'test/s3-driver.test.ts',
  'test/storage-conformance.test.ts',
  'test/alert-engine.test.ts',
  'test/source-confinement.test.ts',
];
const AHEAD = '+400d';

if (spawnSync('faketime', ['-f', AHEAD, 'true']).status !== 0) {
  t.fail("faketime is missing: install Debian's faketime (scripts/test-env.sh does)");
} else {
  for (const file of DATED_TESTS) {
    t.spawn('faketime', ['-f', AHEAD, process.execPath, '--import=tsx', file], { env: { ...process.env, TAP: '1' } }, `${file} with the clock ${AHEAD} ahead`);
  }
}
