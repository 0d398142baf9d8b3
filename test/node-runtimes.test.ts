import { rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import t from 'tap';
import { check, cleanEnv, runCommand } from './helpers/command.js';
import { tempDir } from './helpers/harness.js';

// The Node.js runtimes backproof must run on besides this machine's own (the floor, package.json's
// engines, which the rest of the suite runs on): 22 (the AWS SDK's floor from January 2027), 24
// (the current LTS, the Docker image's) and 26. Each comes from the npm registry's `node` package
// (scripts/node-runtime.sh, cached in /var/cache/backproof-test). On each:
//   - unit tests that need no Docker run under tap on that runtime (with tsx, as the suite runs):
//     the config schema and loader, schedules, backup selection;
//   - `backproof demo` runs the built dist/ on that runtime: a real pg_dump made in one sandbox,
//     restored and probed in another, the run recorded in the embedded store (PGlite's WASM on
//     that runtime), verdict pass; then `evidence verify` checks the hash chain and signature.
// About 30 s a runtime on 2 cores.

const RUNTIMES = ['22', '24', '26'];
const UNIT_TESTS = ['test/config.test.ts', 'test/schedule.test.ts', 'test/selection.test.ts'];
const tapBin = path.join(path.dirname(createRequire(import.meta.url).resolve('tap/package.json')), 'dist/esm/run.mjs');
const BIN = path.resolve('bin/backproof.js');

// The three at once (much of each waits on sandboxes, and the suite runs at most two files at a time), but
// one unit-test run at a time: the same test files share their fixture folders (.tap/fixtures).
t.jobs = RUNTIMES.length;
let unitsTurn: Promise<unknown> = Promise.resolve();
for (const major of RUNTIMES) {
  t.test(`Node.js ${major}`, { buffered: true }, async (t) => {
    const node = await check('bash', ['scripts/node-runtime.sh', major], { timeoutMs: 180_000 });
    const version = await check(node, ['--version']);
    t.match(version, new RegExp(`^v${major}\\.`), `the binary is Node.js ${major} (${version})`);

    const unitsRun = unitsTurn.then(() => runCommand(node, [tapBin, '--reporter=tap', ...UNIT_TESTS], { timeoutMs: 300_000 }));
    unitsTurn = unitsRun.catch(() => undefined);
    const units = await unitsRun;
    const summary = /^# \{ (total: \d+.*) \}$/m.exec(units.stdout)?.[1] ?? 'no summary';
    t.equal(units.code, 0, `${UNIT_TESTS.join(', ')} pass on ${version}: ${summary} (${(units.ms / 1000).toFixed(1)} s)`, {
      output: units.code === 0 ? undefined : units.stdout.split('\n').filter((l) => /not ok|Error|expected|found|wanted/.test(l)).slice(0, 40).join('\n') + units.stderr.slice(-2000),
    });
    t.match(summary, /pass: [1-9]/, 'assertions passed');
    t.notMatch(summary, /fail: [1-9]/, 'none failed');

    const dir = await tempDir(`node${major}`);
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const demo = await runCommand(node, [BIN, 'demo', '--dir', 'demo'], { cwd: dir, timeoutMs: 300_000 });
    t.equal(demo.code, 0, `backproof demo exits 0 on ${version} (${(demo.ms / 1000).toFixed(1)} s)`, { stderr: demo.code === 0 ? undefined : demo.stderr.slice(-3000) });
    t.match(demo.stdout, /^PASS {2}demo-client\/shop-db/m, 'the restore passes');
    t.match(demo.stdout, /demo-client\/shop-db +pass +finished/, 'and is in the evidence store');

    const verify = await runCommand(node, [BIN, '--config', 'demo/backproof.yaml', '--data-dir', 'demo/.backproof', 'evidence', 'verify'], { cwd: dir, env: cleanEnv() });
    t.equal(verify.code, 0, `evidence verify on ${version}: ${verify.stdout.split('\n')[0]}`, { stderr: verify.stderr.slice(-2000) });
    t.match(verify.stdout, /chain intact/);
  });
}
