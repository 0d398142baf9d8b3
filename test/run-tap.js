#!/usr/bin/env node
// Runs the tap suite and ends with one plain line CI recognises: "N passed, N failed[, N skipped]".
// tap's own last line is "# { total, pass, fail, skip }" (assertion counts); this restates it.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const tapBin = path.join(path.dirname(require.resolve('tap/package.json')), 'dist/esm/run.mjs');
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const child = spawn(process.execPath, [tapBin, '--reporter=tap', ...process.argv.slice(2)], {
  stdio: ['inherit', 'pipe', 'inherit'],
});
let summary;
let buffered = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  buffered = (buffered + chunk.toString('utf8')).slice(-65536);
});
child.on('close', (code, signal) => {
  const all = [...buffered.matchAll(/^# \{ (total: \d+.*) \}$/gm)];
  summary = all.at(-1)?.[1];
  const n = (key) => Number(new RegExp(`${key}: (\\d+)`).exec(summary ?? '')?.[1] ?? 0);
  const failed = n('fail') + (code !== 0 && n('fail') === 0 ? 1 : 0);
  const skipped = n('skip') + n('todo');
  process.stdout.write(`\n${n('pass')} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
  process.exit(code ?? (signal ? 1 : 0));
});
