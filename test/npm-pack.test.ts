import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { check, expectedVersionText, REPO, runCommand } from './helpers/command.js';
import { tempDir } from './helpers/harness.js';

// The npm package as a user gets it: `npm pack` of the built checkout, installed into an empty
// folder far from this checkout (`npm install --omit=dev <tarball>`: dependencies resolved from the
// registry as for a user, npm's cache first), then its `backproof` is what runs: --version names
// the version and the commit dist/ was built from, and `backproof demo` (README command 1: a real
// pg_dump made in a sandbox, restored in another, probed, recorded) passes. Everything it needs at
// run time has to be in package.json's "files": the CLI bundle, the store template, the build info,
// the migrations.

let dir: string;
let tarball: string;
t.before(async () => {
  dir = await tempDir('npm-pack');
  const name = (await check('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: REPO, timeoutMs: 120_000 })).split('\n').at(-1)!;
  tarball = path.join(dir, name);
});
t.teardown(() => rm(dir, { recursive: true, force: true }));

t.test('the tarball holds what backproof runs on, and none of the sources or tests', async (t) => {
  const files = (await check('tar', ['-tzf', tarball])).split('\n').map((f) => f.replace(/^package\//, ''));
  for (const needed of ['package.json', 'bin/backproof.js', 'dist/cli/backproof.js', 'dist/build-info.json', 'dist/store-template.tar.gz', 'dist/store-template.json', 'LICENSE', 'README.md']) {
    t.ok(files.includes(needed), needed);
  }
  t.ok(files.some((f) => /^orchestrator\/evidence\/migrations\/\d+.*\.sql$/.test(f)), 'the evidence store migrations');
  t.same(files.filter((f) => /^test\//.test(f) || /\.ts$/.test(f)), [], 'no TypeScript sources, no tests');
});

t.test('installed from the tarball into an empty folder: --version, then demo passes', async (t) => {
  const prefix = path.join(dir, 'clean');
  await mkdir(prefix);
  await writeFile(path.join(prefix, 'package.json'), '{ "private": true }\n');
  const install = await runCommand('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', tarball], { cwd: prefix, timeoutMs: 300_000 });
  t.equal(install.code, 0, `npm install --omit=dev of the tarball (${(install.ms / 1000).toFixed(1)} s)`, { stderr: install.code === 0 ? undefined : install.stderr.slice(-3000) });
  const bin = path.join(prefix, 'node_modules', '.bin', 'backproof');

  const version = await runCommand(bin, ['--version'], { cwd: prefix });
  const expected = expectedVersionText();
  t.equal(version.stdout.trim(), expected.text, `--version names the version and commit: ${expected.text}`);
  t.equal(await check('git', ['-C', REPO, 'cat-file', '-t', expected.commit]), 'commit', "the commit is one of this repository's");

  // A problem is located by `yaml`, which the CLI requires only then (orchestrator/config/yaml-lib.ts):
  // from the installed package's own dependencies, as nothing bundles it.
  await writeFile(path.join(prefix, 'bad.yaml'), 'version: 1\nclients:\n  - name: a\n    policies:\n      - name: p\n        kind: postgress\n');
  const bad = await runCommand(bin, ['--config', 'bad.yaml', 'validate'], { cwd: prefix });
  t.equal(bad.code, 2, 'validate of a bad file exits 2');
  t.match(bad.stderr, /bad\.yaml:6:15: clients\[0\]\.policies\[0\]\.kind: "postgress" is not a supported kind/, 'and locates the problem');

  const demo = await runCommand(bin, ['demo'], { cwd: prefix, timeoutMs: 300_000 });
  t.equal(demo.code, 0, `backproof demo exits 0 (${(demo.ms / 1000).toFixed(1)} s)`, { stderr: demo.code === 0 ? undefined : demo.stderr.slice(-3000) });
  t.match(demo.stdout, /^PASS {2}demo-client\/shop-db/m, 'the restore passes');
  t.match(demo.stdout, /Evidence store \(.*backproof-demo\/\.backproof\):\nRUN /, 'recorded in the demo folder');
});
