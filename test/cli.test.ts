import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import Docker from 'dockerode';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { age, createShopDatabase, dumpDatabase, writeSidecar } from './helpers/fixtures.js';
import { TEST_IMAGE, tempDir } from './helpers/harness.js';
import { startPgCluster, type PgCluster } from './helpers/pg-cluster.js';
import { startS3Server } from './helpers/s3-server.js';

// The command line as a user runs it: a process per command, exit codes, stdout/stderr,
// signals. The embedded evidence store lives in --data-dir.

// The installed entry point over the compiled code (`npm test` builds first).
const BIN = path.resolve('bin/backproof.js');
const docker = new Docker();
let cluster: PgCluster;
let goodFolder: string;
let bigFolder: string;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function start(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], {
    cwd,
    env: { ...process.env, BACKPROOF_CONFIG: '', DATABASE_URL: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function collect(child: ChildProcess): Promise<Result> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const cli = (args: string[], cwd: string): Promise<Result> => collect(start(args, cwd));

function configFor(folder: string, name = 'shop-db'): string {
  return `clients:
  - name: acme
    policies:
      - name: ${name}
        kind: postgres
        source: { driver: local, path: ${JSON.stringify(folder)}, select: { glob: "*.dump", settle: 5s } }
        targets: { rpo: 26h, rto: 30m }
        sandbox: { image: ${JSON.stringify(TEST_IMAGE)}, memory: 1g }
        probes:
          - tablesExist: [customers, orders]
          - rowCount: { table: orders, atLeast: 1000 }
`;
}

async function workdir(folder: string): Promise<string> {
  const dir = await tempDir('cli');
  await fs.writeFile(path.join(dir, 'backproof.yaml'), configFor(folder));
  return dir;
}

async function containersOf(policy: string): Promise<string[]> {
  const list = await docker.listContainers({ all: true, filters: { label: [`backproof.policy=${policy}`] } });
  return list.map((c) => c.Id);
}

t.before(async () => {
  cluster = await startPgCluster();
  goodFolder = await tempDir('cli-good');
  const file = path.join(goodFolder, 'shop.dump');
  await writeSidecar(file, await dumpDatabase(cluster, await createShopDatabase(cluster), file, 'custom'));
  await age(file, 60_000);
  // Big enough that the restore takes seconds: time to send a signal during it.
  bigFolder = await tempDir('cli-big');
  const big = path.join(bigFolder, 'shop.dump');
  await dumpDatabase(cluster, await createShopDatabase(cluster, { customers: 5000, orders: 1_500_000 }), big, 'plain');
  await age(big, 60_000);
});
t.teardown(() => cluster?.stop());

t.test('validate: ok for a good file; file:line: key path: problem; fix for a bad one (exit 2)', async (t) => {
  const dir = await workdir(goodFolder);
  const ok = await cli(['validate'], dir);
  t.equal(ok.code, 0);
  t.equal(ok.stdout, 'ok: 1 client, 1 policy\n');
  await fs.writeFile(path.join(dir, 'bad.yaml'), configFor(goodFolder).replace('rpo: 26h', 'rpo: 26x').replace('settle: 5s', 'setle: 5s'));
  const bad = await cli(['--config', 'bad.yaml', 'validate'], dir);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /bad\.yaml:6:\d+: clients\[0\]\.policies\[0\]\.source\.select\.setle: unknown key "setle"; fix: did you mean "settle"\?/);
  t.match(bad.stderr, /bad\.yaml:7:\d+: clients\[0\]\.policies\[0\]\.targets\.rpo: .*26x.*; fix: /);
  const missing = await cli(['--config', 'nope.yaml', 'validate'], dir);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /nope\.yaml.*not found.*--config/i);
});

t.test('--version names the version and the commit dist/ was built from', async (t) => {
  const pkg = JSON.parse(await fs.readFile('package.json', 'utf8')) as { version: string };
  const info = JSON.parse(await fs.readFile('dist/build-info.json', 'utf8')) as { commit?: string; dirty?: boolean };
  const r = await cli(['--version'], await tempDir('version'));
  t.equal(r.code, 0);
  if (info.commit) {
    // `npm test` builds in this checkout: the commit is HEAD's.
    const head = await new Promise<string>((resolve, reject) => {
      const git = spawn('git', ['rev-parse', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      git.stdout.on('data', (d: Buffer) => (out += d.toString()));
      git.on('error', reject);
      git.on('close', () => resolve(out.trim()));
    });
    t.equal(info.commit, head, 'the build recorded HEAD');
    t.equal(r.stdout.trim(), `${pkg.version} (commit ${head.slice(0, 12)}${info.dirty ? ', with uncommitted changes' : ''})`);
  } else {
    t.equal(r.stdout.trim(), pkg.version, 'built outside a git checkout: the version alone');
  }
});

t.test('schema prints a JSON Schema for editors', async (t) => {
  const r = await cli(['schema'], await tempDir('schema'));
  t.equal(r.code, 0);
  const schema = JSON.parse(r.stdout) as { properties: Record<string, unknown> };
  t.ok(schema.properties.clients, 'describes clients');
});

t.test('a reader that goes away (`| head -1`) ends the output, not the command: no EPIPE stack, the exit code as without a pipe', async (t) => {
  const dir = await tempDir('epipe');
  // A shell pipe (a child's stdio here is a socket pair, which holds all of it): schema prints
  // ~160 KB, more than a pipe holds, so the rest is written after head has gone.
  const r = await collect(
    spawn('bash', ['-c', 'set -o pipefail; "$0" "$1" schema | head -1', process.execPath, BIN], {
      cwd: dir,
      env: { ...process.env, BACKPROOF_CONFIG: '', DATABASE_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  t.equal(r.stdout, '{\n');
  t.equal(r.code, 0, r.stderr);
  t.notMatch(r.stderr, /EPIPE|Unhandled/);
});

t.test('run --json passes (exit 0); runs list and runs show read the evidence back', async (t) => {
  const dir = await workdir(goodFolder);
  const r = await cli(['run', '--json'], dir);
  t.equal(r.code, 0, r.stderr);
  const run = JSON.parse(r.stdout) as RunRecord;
  t.equal(run.verdict, 'pass');
  t.equal(run.backup?.checksums?.[0]?.verified, true);
  const list = await cli(['runs', 'list'], dir);
  t.equal(list.code, 0);
  t.match(list.stdout, new RegExp(`${run.id.slice(0, 8)} .* acme/shop-db +pass +finished`));
  const show = await cli(['runs', 'show', run.id.slice(0, 8)], dir);
  t.equal(show.code, 0);
  t.match(show.stdout, /^PASS {2}acme\/shop-db/);
  t.match(show.stdout, /ok +fetch_restore +\d+\.\d+s/);
  t.match(show.stdout, /checksum sha256 verified against sidecar shop\.dump\.sha256/);
  const json = JSON.parse((await cli(['runs', 'show', run.id, '--json'], dir)).stdout) as RunRecord;
  t.same(json, run, 'the stored record is the one printed by run --json');
});

t.test('run exits 1 when a backup fails, 2 on an unknown policy', async (t) => {
  const dir = await workdir(await tempDir('empty-source'));
  const r = await cli(['run'], dir);
  t.equal(r.code, 1);
  t.match(r.stdout, /^FAIL {2}acme\/shop-db/);
  t.match(r.stdout, /reason +no_backup: no backup found/);
  const unknown = await cli(['run', '--policy', 'nope'], dir);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /no policy named "nope".*policies: shop-db/);
});

t.test('SIGKILL during a restore: the next start marks the run aborted and reaps its sandbox', async (t) => {
  const dir = await tempDir('cli-kill');
  await fs.writeFile(path.join(dir, 'backproof.yaml'), configFor(bigFolder, 'killed-db'));
  const child = start(['run'], dir);
  const done = collect(child);
  const deadline = Date.now() + 60_000;
  while ((await containersOf('killed-db')).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  t.equal((await containersOf('killed-db')).length, 1, 'the sandbox is up');
  await new Promise((r) => setTimeout(r, 2500)); // into the restore
  child.kill('SIGKILL');
  await done;
  t.equal((await containersOf('killed-db')).length, 1, 'a killed process cannot clean up: the container is left');

  const list = await cli(['runs', 'list', '--json'], dir);
  t.match(list.stderr, /was interrupted \(pid \d+ is gone\); recorded as aborted/, 'the next start says so');
  const [aborted] = JSON.parse(list.stdout) as RunRecord[];
  t.equal(aborted?.status, 'aborted', 'the next start marked it');
  t.equal(aborted?.verdict, 'error');
  t.equal(aborted?.reasons[0]?.code, 'aborted');

  // The next run reaps the leftover before it starts its own sandbox.
  await fs.writeFile(path.join(dir, 'backproof.yaml'), configFor(goodFolder, 'killed-db'));
  const next = await cli(['run', '--json'], dir);
  t.equal(next.code, 0, next.stderr);
  // Any backproof starting on this engine reaps a dead process's sandbox; with test files running
  // side by side, another one may have got there first.
  if (!/reaper removed [1-9]\d* leftover sandbox container/.test(next.stderr)) t.comment('the leftover was reaped by another backproof process on this engine');
  t.notMatch(next.stderr, /was interrupted/, 'the abort was already reported by runs list');
  t.same(await containersOf('killed-db'), [], 'no container left');
});

t.test('SIGTERM during a restore: cancelled, recorded, sandbox removed', async (t) => {
  const dir = await tempDir('cli-term');
  await fs.writeFile(path.join(dir, 'backproof.yaml'), configFor(bigFolder, 'term-db'));
  const child = start(['run', '--json'], dir);
  const done = collect(child);
  const deadline = Date.now() + 60_000;
  while ((await containersOf('term-db')).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  await new Promise((r) => setTimeout(r, 2500));
  child.kill('SIGTERM');
  const r = await done;
  t.equal(r.code, 130);
  const run = JSON.parse(r.stdout) as RunRecord;
  t.equal(run.status, 'cancelled');
  t.equal(run.verdict, 'error');
  t.equal(run.reasons[0]?.code, 'cancelled');
  t.same(await containersOf('term-db'), [], 'no container left');
});

t.test('demo (README command 1): a real pg_dump made in a sandbox, verified, evidence shown', async (t) => {
  const dir = await tempDir('demo');
  const r = await cli(['demo', '--dir', 'demo'], dir);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^PASS {2}demo-client\/shop-db/m);
  t.match(r.stdout, /checksum sha256 verified against sidecar shop-\d{8}T\d{6}Z\.dump\.sha256/);
  t.match(r.stdout, /rowCount: orders >= 1000: expected at least 1000 rows in orders; got 25000 rows/);
  t.match(r.stdout, /Evidence store \(.*demo\/\.backproof\):\nRUN /);
  const again = await cli(['--config', 'demo/backproof.yaml', '--data-dir', 'demo/.backproof', 'runs', 'list'], dir);
  t.match(again.stdout, /demo-client\/shop-db +pass +finished/, 'the evidence is there for the next command');
  t.same(await containersOf('shop-db'), [], 'no container left');
});

t.test('backups list shows what the selector sees and which backup a run would pick', async (t) => {
  const folder = await tempDir('cli-list');
  const old = path.join(folder, 'shop-20261120T020000Z.dump');
  const newest = path.join(folder, 'shop-20261127T020000Z.dump');
  await fs.writeFile(old, 'x'.repeat(1000));
  await fs.writeFile(newest, 'y'.repeat(2048));
  await writeSidecar(newest, 'a'.repeat(64));
  await fs.writeFile(path.join(folder, 'shop-unstamped.dump'), 'z');
  await fs.writeFile(path.join(folder, 'notes.txt'), 'n');
  for (const f of [old, newest, path.join(folder, 'shop-unstamped.dump')]) await age(f, 600_000);
  await fs.writeFile(path.join(folder, 'shop-20261128T020000Z.dump'), 'still uploading');
  const dir = await tempDir('cli-list-cfg');
  await fs.writeFile(path.join(dir, 'backproof.yaml'), configFor(folder).replace('settle: 5s', 'settle: 5m, timestamp: name'));
  const r = await cli(['backups', 'list', '--policy', 'shop-db'], dir);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  t.match(lines.find((l) => l.includes('shop-20261127T020000Z.dump')), /^\* +shop-20261127T020000Z\.dump +2\.0 KiB +2026-11-27 02:00:00 \(name\) +\S+ +sidecar shop-20261127T020000Z\.dump\.sha256 +candidate$/);
  t.match(lines.find((l) => l.includes('shop-20261120')), /^ +shop-20261120T020000Z\.dump .* - +candidate$/);
  t.match(lines.find((l) => l.includes('shop-20261128')), /still being written/);
  t.match(lines.find((l) => l.includes('unstamped')), /no timestamp in the name/);
  t.notMatch(r.stdout, /notes\.txt|\.sha256 +[0-9]/, 'ignored files only with --all');
  t.match(lines.at(-2), /^picked shop-20261127T020000Z\.dump: newest by timestamp in name of 2 candidates$/);
  const all = await cli(['backups', 'list', '--policy', 'shop-db', '--all', '--json'], dir);
  const json = JSON.parse(all.stdout) as { picked: string; backups: Array<{ key: string; status: string }> };
  t.equal(json.picked, 'shop-20261127T020000Z.dump');
  t.same(
    json.backups.filter((b) => ['notes.txt', 'shop-20261127T020000Z.dump.sha256'].includes(b.key)).map((b) => b.status).sort(),
    ['auxiliary', 'no-match'],
  );
  const none = await cli(['backups', 'list', '--policy', 'shop-db'], await workdir(await tempDir('cli-list-empty')));
  t.equal(none.code, 1, 'exit 1 when nothing would be picked');
  t.match(none.stdout, /no backup found/);
});

t.test('backups list on an S3 source: the ETag and sidecar checksums, and a denied key as an error', async (t) => {
  const s3 = await startS3Server();
  t.teardown(() => s3.stop());
  await s3.createBucket('acme-backups');
  await s3.put('acme-backups', 'shop/shop-20261126T020000Z.dump', 'older');
  await s3.put('acme-backups', 'shop/shop-20261127T020000Z.dump', 'newest');
  await s3.put('acme-backups', 'shop/SHA256SUMS', `${createHash('sha256').update('newest').digest('hex')}  shop-20261127T020000Z.dump\n`);
  const dir = await tempDir('cli-s3');
  const config = `clients:
  - name: acme
    policies:
      - name: shop-db
        kind: postgres
        source:
          driver: s3
          bucket: acme-backups
          prefix: shop/
          endpoint: ${s3.endpoint}
          maxRetries: 0
          credentials:
            accessKeyId: \${env:SHOP_S3_KEY}
            secretAccessKey: \${env:SHOP_S3_SECRET}
          select: { timestamp: name, settle: 0s }
`;
  await fs.writeFile(path.join(dir, 'backproof.yaml'), config);
  const r = await collect(start(['backups', 'list', '--policy', 'shop-db', '--json'], dir, { SHOP_S3_KEY: 'S3RVER', SHOP_S3_SECRET: 'S3RVER' }));
  t.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout) as { location: string; picked: string; backups: Array<{ key: string; checksum: string }> };
  t.match(json.location, /^s3:\/\/acme-backups\/shop\/ at http:\/\/127\.0\.0\.1:\d+$/);
  t.equal(json.picked, 'shop/shop-20261127T020000Z.dump');
  t.same(json.backups.map((b) => [b.key, b.checksum]), [
    ['shop/shop-20261127T020000Z.dump', 'SHA256SUMS, ETag (MD5 of a single-part upload)'],
    ['shop/shop-20261126T020000Z.dump', 'ETag (MD5 of a single-part upload)'],
  ]);
  const denied = await collect(start(['backups', 'list', '--policy', 'shop-db'], dir, { SHOP_S3_KEY: 'AKIAWRONG', SHOP_S3_SECRET: 'wrong-secret-value' }));
  t.not(denied.code, 0);
  t.match(denied.stderr, /source_denied|access denied/);
  t.match(denied.stderr, /\$\{env:SHOP_S3_KEY\}, \$\{env:SHOP_S3_SECRET\}/, 'says where the credentials came from');
  t.notMatch(denied.stderr + denied.stdout, 'wrong-secret-value');
});
