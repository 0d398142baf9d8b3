#!/usr/bin/env node
// Runs the tap suite and ends with one plain line CI recognises: "N passed, N failed[, N skipped]".
// tap's own last line is "# { total, pass, fail, skip }" (assertion counts); this restates it,
// after the failed assertions named by file and subtest (CI keeps only the output's tail).
//
// The date-dependent tests run a second time with the clock ahead inside the suite:
// test/dates-ahead.test.ts.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const tapBin = path.join(path.dirname(require.resolve('tap/package.json')), 'dist/esm/run.mjs');
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

function tap(args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [tapBin, '--reporter=tap', ...args], {
      stdio: ['inherit', 'pipe', 'inherit'],
    });
    let buffered = '';
    let partial = '';
    const subtests = []; // names of the open subtests, by depth
    const failures = [];
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      const text = chunk.toString('utf8');
      buffered = (buffered + text).slice(-65536);
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const opened = /^( *)# Subtest: (.*)$/.exec(line);
        if (opened) {
          subtests.length = opened[1].length / 4;
          subtests.push(opened[2]);
          continue;
        }
        const failed = /^( *)not ok \d+ - (.*)$/.exec(line);
        if (!failed) continue;
        const depth = failed[1].length / 4;
        subtests.length = Math.min(subtests.length, depth + 1);
        // A subtest that failed because an assertion inside it did is named by that assertion already.
        const inner = failures.at(-1);
        const path = [...subtests.slice(0, depth), failed[2].replace(/ # time=.*$/, '')].join(' > ');
        if (inner?.startsWith(`${path} > `)) continue;
        if (failures.length < 50) failures.push(path.slice(0, 400));
      }
    });
    child.on('close', (code, signal) => {
      const summary = [...buffered.matchAll(/^# \{ (total: \d+.*) \}$/gm)].at(-1)?.[1];
      const n = (key) => Number(new RegExp(`${key}: (\\d+)`).exec(summary ?? '')?.[1] ?? 0);
      const failed = n('fail') + (code !== 0 && n('fail') === 0 ? 1 : 0);
      resolve({ code: code ?? (signal ? 1 : 0), pass: n('pass'), failed, skipped: n('skip') + n('todo'), failures });
    });
  });
}

const result = await tap(process.argv.slice(2));
if (result.failures.length) process.stdout.write(`\nFailed:\n${result.failures.map((f) => `  not ok: ${f}`).join('\n')}\n`);
process.stdout.write(`\n${result.pass} passed, ${result.failed} failed${result.skipped ? `, ${result.skipped} skipped` : ''}\n`);
process.exit(result.code);
