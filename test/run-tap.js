#!/usr/bin/env node
// Runs the tap suite and ends with one plain line CI recognises: "N passed, N failed[, N skipped]".
// tap's own last line is "# { total, pass, fail, skip }" (assertion counts); this restates it,
// after the failed assertions named by file and subtest (CI keeps only the output's tail).
//
//   node test/run-tap.js                      the whole suite, scheduled (below)
//   node test/run-tap.js test/x.test.ts ...   those files (or any tap arguments), in one tap run
//   node test/run-tap.js --update-durations   the whole suite, then test/durations.json rewritten
//
// The whole suite is scheduled here rather than by tap, which starts files in alphabetical order
// and lets a serial file (package.json tap.serial: the VM boots) wait for every running file to
// end first. Here the serial files run one after another on one slot, from the start, while the
// other slots take the rest, longest first by test/durations.json (a file not listed there counts
// as long); once the serial files are done their slot takes from the rest too. A VM boot under
// QEMU's emulation keeps about one core busy (its guest boots on one vCPU most of the time), so
// the other core works beside it. The suite ends with short files on every slot rather than one
// long file on one. Each file is its own tap run (short files share one); its output is printed
// whole when it ends, so files never interleave.
//
// The date-dependent tests run a second time with the clock ahead inside the suite:
// test/dates-ahead.test.ts.
import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const tapBin = path.join(path.dirname(require.resolve('tap/package.json')), 'dist/esm/run.mjs');
const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const durationsFile = path.join(root, 'test/durations.json');
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** One tap run of `args`; its output streamed (`echo`) or kept whole for the caller to print. */
function tap(args, { echo }) {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(process.execPath, [tapBin, '--reporter=tap', ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', echo ? 'inherit' : 'pipe'],
    });
    const output = [];
    let buffered = '';
    let partial = '';
    const subtests = []; // names of the open subtests, by depth
    const failures = [];
    child.stderr?.on('data', (chunk) => output.push(chunk));
    child.stdout.on('data', (chunk) => {
      if (echo) process.stdout.write(chunk);
      else output.push(chunk);
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
        const name = [...subtests.slice(0, depth), failed[2].replace(/ # time=.*$/, '')].join(' > ');
        if (inner?.startsWith(`${name} > `)) continue;
        if (failures.length < 50) failures.push(name.slice(0, 400));
      }
    });
    child.on('close', (code, signal) => {
      const summary = [...buffered.matchAll(/^# \{ (total: \d+.*) \}$/gm)].at(-1)?.[1];
      const n = (key) => Number(new RegExp(`${key}: (\\d+)`).exec(summary ?? '')?.[1] ?? 0);
      const failed = n('fail') + (code !== 0 && n('fail') === 0 ? 1 : 0);
      if (failed && !failures.length) failures.push(`${args.join(' ')}: tap exited ${code ?? signal} (${summary ? 'no failed assertion named' : 'no summary'})`);
      resolve({
        code: code ?? (signal ? 1 : 0),
        pass: n('pass'),
        failed,
        skipped: n('skip') + n('todo'),
        failures,
        output: Buffer.concat(output),
        seconds: (performance.now() - started) / 1000,
      });
    });
  });
}

/**
 * tap rebuilds its Test class on a run whose configured plugins differ from the built ones (the
 * first run after `npm ci`: package.json leaves out a default plugin). Two such runs at once
 * rebuild it over each other, so it is brought up to date here, once, before runs start together.
 */
async function ensureTapBuilt() {
  const check = `const { TapConfig } = await import('@tapjs/config');
const config = await TapConfig.load();
const { signature } = await import('@tapjs/test');
process.stdout.write(signature === config.pluginSignature ? 'built' : 'stale');`;
  const state = await new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', check], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    const out = [];
    child.stdout.on('data', (d) => out.push(d));
    child.once('error', () => resolve('stale'));
    child.once('close', () => resolve(Buffer.concat(out).toString()));
  });
  if (state === 'built') return;
  process.stdout.write('# tap: building its Test class with the configured plugins (once, before files run side by side)\n');
  await new Promise((resolve) => {
    const child = spawn(process.execPath, [tapBin, 'build'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', resolve);
    child.once('close', resolve);
  });
}

/** The whole suite: serial files one after another on one slot, the rest longest first beside them. */
async function suite() {
  const config = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).tap ?? {};
  const jobs = Math.max(1, Number(config.jobs) || 1);
  const serial = new Set(config.serial ?? []);
  const known = (() => {
    try {
      return JSON.parse(readFileSync(durationsFile, 'utf8'));
    } catch {
      return {};
    }
  })();
  const unknown = Math.max(60, ...Object.values(known));
  const expected = (f) => known[f] ?? unknown;
  const files = readdirSync(path.join(root, 'test'), { recursive: true })
    .map((f) => `test/${f.split(path.sep).join('/')}`)
    .filter((f) => f.endsWith('.test.ts'))
    .sort((a, b) => a.localeCompare(b, 'en'));
  const inTurn = files.filter((f) => serial.has(f));
  const shared = files.filter((f) => !serial.has(f)).sort((a, b) => expected(b) - expected(a));
  process.stdout.write(
    `# ${files.length} files on ${jobs} slots: ${inTurn.length} in turn on one (${inTurn.join(', ')}), ${shared.length} longest first on the others, then on every slot\n`,
  );
  await ensureTapBuilt();

  // Short files share a tap run (each run costs ~1 s of its own), up to ~20 s expected per run.
  const runs = [];
  for (const file of shared) {
    const last = runs.at(-1);
    if (expected(file) < 10 && last && last.every((f) => expected(f) < 10) && last.reduce((s, f) => s + expected(f), 0) + expected(file) <= 20) last.push(file);
    else runs.push([file]);
  }

  const results = [];
  let done = 0;
  const one = async (group) => {
    const result = await tap(['--jobs=1', ...group], { echo: false });
    done += group.length;
    process.stdout.write(result.output);
    process.stdout.write(`# ${group.join(', ')}: ${result.pass} passed, ${result.failed} failed in ${result.seconds.toFixed(1)} s (${done}/${files.length} files)\n`);
    results.push({ file: group.join(', '), group, ...result });
  };
  const rest = async () => {
    for (let group = runs.shift(); group; group = runs.shift()) await one(group);
  };
  await Promise.all(
    Array.from({ length: jobs }, async (_, slot) => {
      if (slot === 0) for (const file of inTurn) await one([file]);
      await rest();
    }),
  );
  const slowest = [...results].sort((a, b) => b.seconds - a.seconds).slice(0, 10);
  process.stdout.write(`\n# slowest files: ${slowest.map((r) => `${r.file} ${r.seconds.toFixed(0)} s`).join(', ')}\n`);
  if (process.argv.includes('--update-durations')) {
    // A shared run's time is split between its files by their old shares.
    const measured = Object.fromEntries(
      results
        .flatMap((r) => r.group.map((f) => [f, Math.max(1, Math.round((r.seconds * expected(f)) / r.group.reduce((s, g) => s + expected(g), 0)))]))
        .sort(([a], [b]) => a.localeCompare(b, 'en')),
    );
    writeFileSync(durationsFile, `${JSON.stringify(measured, null, 2)}\n`);
  }
  return {
    code: results.some((r) => r.code !== 0) ? 1 : 0,
    pass: results.reduce((s, r) => s + r.pass, 0),
    failed: results.reduce((s, r) => s + r.failed, 0),
    skipped: results.reduce((s, r) => s + r.skipped, 0),
    failures: results.flatMap((r) => r.failures).slice(0, 50),
  };
}

const args = process.argv.slice(2).filter((a) => a !== '--update-durations');
const result = args.length ? await tap(args, { echo: true }) : await suite();
if (result.failures.length) process.stdout.write(`\nFailed:\n${result.failures.map((f) => `  not ok: ${f}`).join('\n')}\n`);
process.stdout.write(`\n${result.pass} passed, ${result.failed} failed${result.skipped ? `, ${result.skipped} skipped` : ''}\n`);
process.exit(result.code);
