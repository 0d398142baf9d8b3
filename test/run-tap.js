#!/usr/bin/env node
// Runs the tap suite and ends with one plain line CI recognises: "N passed, N failed[, N skipped]".
// tap's own last line is "# { total, pass, fail, skip }" (assertion counts); this restates it.
//
// With no arguments (the whole suite), the date-dependent tests run a second time with the clock
// a year and a month ahead (Debian's faketime), so a test that compares a pinned date with a real
// clock fails today, not on the day the calendar passes it. Their counts join the summary.
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const tapBin = path.join(path.dirname(require.resolve('tap/package.json')), 'dist/esm/run.mjs');
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Tests whose subject is dates: selection, expectations, schedules, stores' timestamps, alerts. */
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

function tap(args, prefix = []) {
  return new Promise((resolve) => {
    const [cmd, ...pre] = prefix.length > 0 ? prefix : [process.execPath];
    const child = spawn(cmd, [...pre, ...(prefix.length > 0 ? [process.execPath] : []), tapBin, '--reporter=tap', ...args], {
      stdio: ['inherit', 'pipe', 'inherit'],
    });
    let buffered = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      buffered = (buffered + chunk.toString('utf8')).slice(-65536);
    });
    child.on('close', (code, signal) => {
      const summary = [...buffered.matchAll(/^# \{ (total: \d+.*) \}$/gm)].at(-1)?.[1];
      const n = (key) => Number(new RegExp(`${key}: (\\d+)`).exec(summary ?? '')?.[1] ?? 0);
      const failed = n('fail') + (code !== 0 && n('fail') === 0 ? 1 : 0);
      resolve({ code: code ?? (signal ? 1 : 0), pass: n('pass'), failed, skipped: n('skip') + n('todo') });
    });
  });
}

const args = process.argv.slice(2);
const results = [await tap(args)];
if (args.length === 0) {
  if (spawnSync('faketime', ['-f', AHEAD, 'true']).status === 0) {
    process.stdout.write(`\n# The date-dependent tests again, with the clock ${AHEAD} ahead (faketime)\n`);
    results.push(await tap(DATED_TESTS, ['faketime', '-f', AHEAD]));
  } else {
    process.stdout.write('\nnot ok - faketime is missing: install Debian\'s faketime (scripts/test-env.sh does)\n');
    results.push({ code: 1, pass: 0, failed: 1, skipped: 0 });
  }
}
const sum = (key) => results.reduce((s, r) => s + r[key], 0);
const skipped = sum('skipped');
process.stdout.write(`\n${sum('pass')} passed, ${sum('failed')} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
process.exit(results.find((r) => r.code !== 0)?.code ?? 0);
