#!/usr/bin/env node
// Part of `npm test`: the type check and the lint, side by side (each keeps about one core busy
// for half a minute on its own), each one's output printed whole when it ends. Exits non-zero
// when either fails, naming it.
import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';

const checks = [
  ['typecheck', 'tsc --noEmit'],
  ['lint', 'eslint --max-warnings 0 .'],
];
const results = await Promise.all(
  checks.map(
    ([name]) =>
      new Promise((resolve) => {
        const started = performance.now();
        const child = spawn('npm', ['run', '--silent', name], { stdio: ['ignore', 'pipe', 'pipe'] });
        const output = [];
        child.stdout.on('data', (d) => output.push(d));
        child.stderr.on('data', (d) => output.push(d));
        child.once('error', (err) => resolve({ name, code: 1, output: [Buffer.from(`${err.message}\n`)], started }));
        child.once('close', (code) => resolve({ name, code: code ?? 1, output, started }));
      }),
  ),
);
for (const r of results) {
  process.stdout.write(Buffer.concat(r.output));
  process.stdout.write(`${r.name} (${checks.find(([n]) => n === r.name)[1]}): ${r.code === 0 ? 'ok' : `failed (exit ${r.code})`}\n`);
}
process.exit(results.some((r) => r.code !== 0) ? 1 : 0);
