#!/usr/bin/env node
// Runs the tap suite and ends with one plain line CI recognises: "N passed, N failed[, N skipped]".
// tap's own last line is "# { total, pass, fail, skip }" (assertion counts); this restates it.
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

const result = await tap(process.argv.slice(2));
process.stdout.write(`\n${result.pass} passed, ${result.failed} failed${result.skipped ? `, ${result.skipped} skipped` : ''}\n`);
process.exit(result.code);
