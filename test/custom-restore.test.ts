import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import type { RunStore } from '../orchestrator/evidence/run-store.js';
import { age } from './helpers/fixtures.js';
import { codes, leftoversOf, openEmbeddedStore, policyFromYaml, tempDir, verify } from './helpers/harness.js';

// kind: custom: a pod of the user's own containers. A static site's tar.gz (made with the
// host's tar) is unpacked by the restore command and served by a busybox httpd service that
// shares the main container's network namespace and /restore volume.

const run = promisify(execFile);

let store: RunStore;
let siteTarGz: string;
let siteTarZst: string;

t.before(async () => {
  store = (await openEmbeddedStore()).store;
  const dir = await tempDir('custom-site');
  await fs.mkdir(path.join(dir, 'site', 'css'), { recursive: true });
  await fs.writeFile(path.join(dir, 'site', 'index.html'), '<html><body><h1>Hello from the restored site</h1></body></html>\n');
  await fs.writeFile(path.join(dir, 'site', 'css', 'main.css'), 'h1 { color: teal }\n');
  siteTarGz = path.join(dir, 'site.tar.gz');
  siteTarZst = path.join(dir, 'site.tar.zst');
  await run('tar', ['-c', '-z', '-f', siteTarGz, '-C', dir, 'site']);
  await run('tar', ['-c', '-f', path.join(dir, 'site.tar'), '-C', dir, 'site']);
  await run('zstd', ['-q', '-o', siteTarZst, path.join(dir, 'site.tar')]);
});

t.teardown(async () => {
  await store?.close();
});

/** A folder holding `source` as the aged backup `name`. */
async function backup(name: string, source: string | Buffer): Promise<string> {
  const folder = await tempDir('custom');
  const file = path.join(folder, name);
  if (typeof source === 'string') await fs.copyFile(source, file);
  else await fs.writeFile(file, source);
  await age(file, 60_000);
  return folder;
}

/** The web service: busybox httpd on 127.0.0.1:8080 serving the volume (its folder exists from the start). */
const WEB = `          services:
            - name: web
              image: backproof/files
              user: "1000:1000"
              cmd: [busybox, httpd, -f, -p, "127.0.0.1:8080", -h, /restore]`;

t.test('a site restored by tar over stdin, served by a service in the same namespace, passes', async (t) => {
  const policy = policyFromYaml({
    folder: await backup('shop-site.tar.gz', siteTarGz),
    kind: 'custom',
    // The ready command fetches a page from the web service over 127.0.0.1 in the MAIN
    // container: it only succeeds when both share one network namespace and one volume.
    extra: `        custom:
          image: backproof/files
          user: "1000:1000"
          restore: [tar, -x, -f, "-", -C, /restore]
          ready: [busybox, wget, -q, -O, /dev/null, "http://127.0.0.1:8080/site/index.html"]
          readinessTimeout: 30s
${WEB}`,
    probes: `          - command: [cat, /restore/site/index.html]
            matches: Hello
          - command: [busybox, wget, -q, -O, "-", "http://127.0.0.1:8080/site/index.html"]
            matches: Hello
          - command: [cat, /restore/site/css/main.css]
            service: web
            matches: teal
          - http: { port: 8080, path: /site/index.html }
            matches: Hello`,
  });
  const r = await verify(policy, store);
  t.equal(r.verdict, 'pass', JSON.stringify(r.reasons));
  t.equal(r.backup?.format, 'custom');
  t.equal(r.backup?.compression, 'gzip', 'backproof decompressed it; tar got a plain tar');
  t.match(r.backup?.header, { input: 'stdin', restoreCommand: 'tar -x -f - -C /restore' });
  t.equal(r.sandbox?.serverVersion, 'backproof/files');
  t.match(r.restored, { image: 'backproof/files', services: 'web' });
  t.same(r.phases.map((p) => [p.name, p.outcome]).filter(([n]) => n !== 'storage_check'), [
    ['select', 'ok'],
    ['sandbox', 'ok'],
    ['fetch_restore', 'ok'],
    ['readiness', 'ok'],
    ['probes', 'ok'],
    ['teardown', 'ok'],
  ]);
  t.equal(r.probes.length, 4, 'the runner ran the command and http probes');
  t.ok(r.probes.every((p) => p.pass), JSON.stringify(r.probes));
  t.equal(await leftoversOf(r.id), 0, 'no container (main, service, helper) or volume left');
});

t.test('input: file: a zstd backup lands as /restore/backup (mode 0644), read by the restore command', async (t) => {
  const policy = policyFromYaml({
    folder: await backup('shop-site.tar.zst', siteTarZst),
    kind: 'custom',
    extra: `        custom:
          image: backproof/files
          user: "1000:1000"
          input: file
          restore: [tar, -x, -f, /restore/backup, -C, /restore]
          ready: [test, -f, /restore/site/index.html]`,
    probes: `          - command: [stat, -c, "%a", /restore/backup]
            equals: "644"`,
  });
  const r = await verify(policy, store);
  t.equal(r.verdict, 'pass', JSON.stringify(r.reasons));
  t.equal(r.backup?.compression, 'zstd');
  t.match(r.backup?.header, { input: 'file', backupFile: '/restore/backup' });
  t.ok(r.probes.every((p) => p.pass), JSON.stringify(r.probes));
  t.equal(await leftoversOf(r.id), 0, 'the loader service is gone too');
});

t.test('input: file with decompress: false: the image user (root, no capabilities) reads the bytes as stored', async (t) => {
  const policy = policyFromYaml({
    folder: await backup('shop-site.tgz', siteTarGz),
    kind: 'custom',
    extra: `        custom:
          image: backproof/files
          input: file
          decompress: false
          restore: [tar, -t, -z, -f, /restore/backup]`,
  });
  const r = await verify(policy, store);
  t.equal(r.verdict, 'pass', JSON.stringify(r.reasons));
  t.equal(r.backup?.compression, 'gzip');
  t.match(r.backup?.header?.decompressed, /^no \(decompress: false\)/);
  t.equal(await leftoversOf(r.id), 0);
});

t.test('a restore command that fails is restore_failed, with its last words', async (t) => {
  const policy = policyFromYaml({
    folder: await backup('shop-site.tar', Buffer.from('this is not a tar archive at all\n'.repeat(40))),
    kind: 'custom',
    extra: `        custom:
          image: backproof/files
          user: "1000:1000"
          restore: [tar, -x, -f, "-", -C, /restore]
          ready: [test, -f, /restore/site/index.html]`,
  });
  const r = await verify(policy, store);
  t.equal(r.verdict, 'fail', JSON.stringify(r.reasons));
  t.same(codes(r), ['restore_failed']);
  t.match(r.reasons[0]?.message, /the restore command \(tar -x -f - -C \/restore\) failed with exit 2: .*does not look like a tar archive/);
  t.match(r.sandbox?.logTail, /does not look like a tar archive/);
  t.equal(await leftoversOf(r.id), 0);
});

t.test('a restore command missing from the image is an error, not a bad backup', async (t) => {
  const policy = policyFromYaml({
    folder: await backup('shop-site.tar.gz', siteTarGz),
    kind: 'custom',
    extra: `        custom:
          image: backproof/files
          restore: [mongorestore, --archive]`,
  });
  const r = await verify(policy, store);
  t.equal(r.verdict, 'error', JSON.stringify(r.reasons));
  t.same(codes(r), ['sandbox_failed']);
  t.match(r.reasons[0]?.message, /mongorestore --archive\) could not be started in image backproof\/files \(exit 126\): .*executable file not found/);
  t.equal(await leftoversOf(r.id), 0);
});

t.test('a ready command that never succeeds is an error after readinessTimeout', async (t) => {
  const policy = policyFromYaml({
    folder: await backup('shop-site.tar.gz', siteTarGz),
    kind: 'custom',
    extra: `        custom:
          image: backproof/files
          user: "1000:1000"
          restore: [tar, -x, -f, "-", -C, /restore]
          ready: [busybox, wget, -q, -O, /dev/null, "http://127.0.0.1:9999/"]
          readinessTimeout: 3s`,
  });
  const started = Date.now();
  const r = await verify(policy, store);
  t.equal(r.verdict, 'error', JSON.stringify(r.reasons));
  t.same(codes(r), ['sandbox_failed']);
  t.match(r.reasons[0]?.message, /the ready command \(busybox wget .*127\.0\.0\.1:9999\/\) did not succeed within 3000 ms \(\d+ attempt\(s\); last exit 1: .*(refused|can't connect)/i);
  const readiness = r.phases.find((p) => p.name === 'readiness');
  t.equal(readiness?.outcome, 'error');
  t.ok(readiness!.durationMs >= 2900 && readiness!.durationMs < 10_000, `readiness took ${readiness?.durationMs} ms`);
  t.ok(Date.now() - started < 30_000);
  t.equal(await leftoversOf(r.id), 0);
});

t.test('a truncated gzip fails as corrupt compression before the restore command sees a clean end', async (t) => {
  const bytes = await fs.readFile(siteTarGz);
  const policy = policyFromYaml({
    folder: await backup('shop-site.tar.gz', bytes.subarray(0, Math.floor(bytes.length * 0.6))),
    kind: 'custom',
    extra: `        custom:
          image: backproof/files
          user: "1000:1000"
          input: file
          restore: [tar, -x, -f, /restore/backup, -C, /restore]`,
  });
  const r = await verify(policy, store);
  t.equal(r.verdict, 'fail', JSON.stringify(r.reasons));
  t.same(codes(r), ['corrupt_compression']);
  t.match(r.reasons[0]?.message, /gzip stream is truncated/);
  t.equal(await leftoversOf(r.id), 0);
});
