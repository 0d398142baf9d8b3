import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { archive, craftTar, craftZip, makeShareTree, writeManifest, type ArchiveKind } from './helpers/archive-fixtures.js';
import { age, corruptFile, truncateFile } from './helpers/fixtures.js';
import { codes, leftoversOf, openEmbeddedStore, policyFromYaml, tempDir, verify } from './helpers/harness.js';
import type { RunStore } from '../orchestrator/evidence/run-store.js';
import type { RunRecord } from '../orchestrator/core/domain.js';

// File-share archives: good ones of every format pass with their probes; broken and hostile ones
// fail with a reason that names the defect (and the entry); nothing is left behind and nothing
// is written outside the sandbox.

let store: RunStore;
t.before(async () => {
  store = (await openEmbeddedStore()).store;
});
t.teardown(() => store.close());

const PROBES = `          - files: { exist: ["docs/*.txt", "finance/", "office/letter.docx"], minCount: 50, nonEmpty: true }
          - manifest: SHA256SUMS
          - encryptedLooking: { maxShare: 10% }`;

async function shareFolder(damage?: (tree: string, files: string[]) => Promise<void>): Promise<{ tree: string; files: string[]; folder: string }> {
  const tree = await tempDir('tree');
  const files = await makeShareTree(tree, { manifest: true });
  if (damage) await damage(tree, files);
  return { tree, files, folder: await tempDir('backups') };
}

async function backupOf(tree: string, kind: ArchiveKind, folder?: string): Promise<{ folder: string; file: string }> {
  const dir = folder ?? (await tempDir('backups'));
  const file = path.join(dir, `share.${kind}`);
  await archive(tree, file, kind);
  await age(file, 60_000);
  return { folder: dir, file };
}

async function check(folder: string, probes = PROBES, opts: { files?: string } = {}): Promise<RunRecord> {
  return verify(policyFromYaml({ folder, kind: 'files', glob: 'share*', probes, ...opts }), store);
}

async function nothingLeft(t: Test, run: RunRecord): Promise<void> {
  t.equal(await leftoversOf(run.id), 0, 'no container or volume left');
  t.ok(await store.get(run.id), 'the run is recorded');
}

t.test('good archives pass in every format, probes included', async (t) => {
  const { tree } = await shareFolder();
  for (const kind of ['tar.gz', 'tar', 'tar.zst', 'tar.xz', 'tar.bz2', 'zip'] as const) {
    const { folder } = await backupOf(tree, kind);
    const run = await check(folder);
    t.equal(run.verdict, 'pass', `${kind}: ${JSON.stringify(run.reasons)}`);
    t.equal(run.backup?.format, kind === 'zip' ? 'zip' : 'tar');
    t.equal(run.backup?.compression, { tar: 'none', zip: 'none', 'tar.gz': 'gzip', 'tar.zst': 'zstd', 'tar.xz': 'xz', 'tar.bz2': 'bzip2' }[kind]);
    t.equal(run.restored?.files, 54, `${kind}: every file restored`);
    t.match(run.probes.find((p) => p.type === 'manifest')?.actual, /^53 files match SHA256SUMS/);
    // Judged from the bytes: the random blob, and the "PDF" that is a header over random bytes.
    t.match(run.probes.find((p) => p.type === 'encryptedLooking')?.actual, /^2 of 54 files \(3\.7%\) look random: scans\/contract\.pdf, data\/blob\.bin$/);
    t.ok(run.phases.find((p) => p.name === 'fetch_restore')!.durationMs > 0);
    await nothingLeft(t, run);
  }
});

t.test('a truncated tar.gz fails as corrupt compression; a truncated tar as cut short', async (t) => {
  const { tree } = await shareFolder();
  const gz = await backupOf(tree, 'tar.gz');
  await truncateFile(gz.file, 0.6);
  await age(gz.file, 60_000);
  let run = await check(gz.folder);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['corrupt_compression']);
  await nothingLeft(t, run);

  const plain = await backupOf(tree, 'tar');
  await truncateFile(plain.file, 0.6);
  await age(plain.file, 60_000);
  run = await check(plain.folder);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['truncated_dump']);
  t.match(run.reasons[0]?.message, /tar archive (ends in the middle of an entry|ends without its end-of-archive marker)/);
  await nothingLeft(t, run);
});

t.test('a tar cut exactly between two entries still fails: its end-of-archive marker is missing', async (t) => {
  const folder = await tempDir('backups');
  const file = path.join(folder, 'share.tar');
  await craftTar(file, [{ name: 'a.txt', data: 'x'.repeat(1000) }, { name: 'b.txt', data: 'y'.repeat(1000) }]);
  const bytes = await fs.readFile(file);
  await fs.writeFile(file, bytes.subarray(0, 512 + 1024)); // header + data of a.txt only
  await age(file, 60_000);
  const run = await check(folder, '          []');
  t.same(codes(run), ['truncated_dump']);
  t.match(run.reasons[0]?.message, /end-of-archive marker/);
  await nothingLeft(t, run);
});

t.test('corrupted bytes in a tar fail', async (t) => {
  const { tree } = await shareFolder();
  const { folder, file } = await backupOf(tree, 'tar');
  await corruptFile(file, 0.3, 2048);
  await age(file, 60_000);
  const run = await check(folder);
  t.equal(run.verdict, 'fail', JSON.stringify(run.reasons));
  t.ok(codes(run).some((c) => ['restore_failed', 'truncated_dump', 'probe_failed'].includes(c)), JSON.stringify(run.reasons));
  await nothingLeft(t, run);
});

t.test('an archive without files, or with only empty ones, is an empty restore', async (t) => {
  let folder = await tempDir('backups');
  await craftTar(path.join(folder, 'share.tar'), [{ name: 'only/', type: 'directory' }]);
  await age(path.join(folder, 'share.tar'), 60_000);
  let run = await check(folder, '          []');
  t.same(codes(run), ['empty_restore']);
  t.match(run.reasons[0]?.message, /holds no files/);
  await nothingLeft(t, run);

  folder = await tempDir('backups');
  await craftTar(path.join(folder, 'share.tar'), [{ name: 'a.txt', data: '' }, { name: 'b.txt', data: '' }]);
  await age(path.join(folder, 'share.tar'), 60_000);
  run = await check(folder, '          []');
  t.same(codes(run), ['empty_restore']);
  t.match(run.reasons[0]?.message, /2 files, but every one of them is empty/);
});

t.test('a file changed after the manifest was written fails the manifest probe, naming it', async (t) => {
  const { tree } = await shareFolder(async (dir) => {
    await fs.appendFile(path.join(dir, 'finance/ledger-3.csv'), '999,3,0.00,EUR\n');
    await fs.rm(path.join(dir, 'docs/report-7.txt'));
  });
  const { folder } = await backupOf(tree, 'tar.gz');
  const run = await check(folder);
  t.same(codes(run), ['probe_failed']);
  const manifest = run.probes.find((p) => p.type === 'manifest')!;
  t.notOk(manifest.pass);
  t.match(manifest.actual, /sha256 differs: finance\/ledger-3\.csv/);
  t.match(manifest.actual, /missing: docs\/report-7\.txt/);
  await nothingLeft(t, run);
});

t.test('a required file of zero bytes, or a missing path, fails the files probe', async (t) => {
  const { tree } = await shareFolder(async (dir, files) => {
    await fs.writeFile(path.join(dir, 'docs/report-3.txt'), '');
    await writeManifest(dir, files);
  });
  const { folder } = await backupOf(tree, 'tar.zst');
  const run = await check(folder, `${PROBES}\n          - files: [db/*.sql]`);
  t.same(codes(run), ['probe_failed', 'probe_failed']);
  const [files, , , missing] = run.probes.filter((p) => p.type === 'files' || p.type === 'manifest' || p.type === 'encryptedLooking');
  t.match(files?.actual, /zero-byte: docs\/report-3\.txt/);
  t.match(missing?.actual, /nothing matches db\/\*\.sql/);
});

t.test('documents whose bytes look random (ransomware) fail the encrypted-looking probe', async (t) => {
  const { tree } = await shareFolder(async (dir, files) => {
    // Encrypted in place, names unchanged, the manifest re-written by the attacker's victim job.
    for (const f of files.filter((f) => /report-[0-9]\.txt$|ledger-[0-4]\.csv|letter\.docx|contract\.pdf/.test(f))) {
      const size = (await fs.stat(path.join(dir, f))).size;
      await fs.writeFile(path.join(dir, f), randomBytes(size));
    }
    await writeManifest(dir, files);
  });
  const { folder } = await backupOf(tree, 'zip');
  const run = await check(folder);
  t.same(codes(run), ['probe_failed']);
  const probe = run.probes.find((p) => p.type === 'encryptedLooking')!;
  t.notOk(probe.pass);
  t.match(probe.actual, /^18 of 54 files \(33\.3%\) look random: /);
  t.match(run.reasons[0]?.message, /encrypted-looking files/);
  await nothingLeft(t, run);
});

t.test('hostile archives fail as unsafe, naming the entry, and write nothing outside the sandbox', async (t) => {
  const canary = `backproof-canary-${randomBytes(4).toString('hex')}`;
  const cases: Array<{ name: string; entries: Parameters<typeof craftTar>[1]; message: RegExp }> = [
    { name: 'traversal', entries: [{ name: 'ok.txt', data: 'fine' }, { name: `../../${canary}`, data: 'owned' }], message: new RegExp(`entry "\\.\\./\\.\\./${canary}" leaves the archive root`) },
    { name: 'absolute path', entries: [{ name: `/tmp/${canary}`, data: 'owned' }], message: new RegExp(`entry "/tmp/${canary}" has an absolute path`) },
    { name: 'symlink to an absolute path', entries: [{ name: 'etc', type: 'symlink', linkname: '/etc' }, { name: 'a.txt', data: 'x' }], message: /entry "etc" is a symlink to the absolute path "\/etc"/ },
    { name: 'symlink leaving the root', entries: [{ name: 'sub/up', type: 'symlink', linkname: '../../..' }], message: /entry "sub\/up" is a symlink to "\.\.\/\.\.\/\.\.", which leaves the archive root/ },
    {
      name: 'symlink chain leaving the root',
      entries: [{ name: 'q', type: 'symlink', linkname: '.' }, { name: 'p', type: 'symlink', linkname: 'q/../escape' }, { name: 'a.txt', data: 'x' }],
      message: /symlink "p" -> "q\/\.\.\/escape" leaves the archive root/,
    },
    { name: 'write through a symlink', entries: [{ name: 'd', type: 'symlink', linkname: 'sub' }, { name: 'd/x.txt', data: 'x' }], message: /entry "d\/x\.txt" would be written through the symlink "d"/ },
    { name: 'character device', entries: [{ name: 'dev/null', type: 'character-device' }], message: /entry "dev\/null" is a character device/ },
    { name: 'named pipe', entries: [{ name: 'pipe', type: 'fifo' }], message: /entry "pipe" is a named pipe/ },
    { name: 'hard link outside', entries: [{ name: 'h', type: 'link', linkname: '/etc/passwd' }], message: /hard link "h" to "\/etc\/passwd" has an absolute path/ },
  ];
  for (const c of cases) {
    const folder = await tempDir('hostile');
    await craftTar(path.join(folder, 'share.tar.gz'), c.entries, { gzip: true });
    await age(path.join(folder, 'share.tar.gz'), 60_000);
    const run = await check(folder, '          []');
    t.equal(run.verdict, 'fail', c.name);
    t.same(codes(run), ['unsafe_archive'], `${c.name}: ${JSON.stringify(run.reasons)}`);
    t.match(run.reasons[0]?.message, c.message, c.name);
    await nothingLeft(t, run);
    for (const where of [path.join(folder, '..', '..', canary), path.join('/tmp', canary), path.join(folder, canary)]) {
      await t.rejects(fs.access(where), `${c.name}: nothing at ${where}`);
    }
  }
});

t.test('hostile zips fail the same way', async (t) => {
  const cases = [
    { entries: [{ name: 'ok.txt', data: 'fine' }, { name: '../evil.txt', data: 'owned' }], message: /entry "\.\.\/evil\.txt" leaves the archive root/ },
    { entries: [{ name: 'link', data: '/etc/passwd', symlink: true }], message: /entry "link" is a symlink to the absolute path "\/etc\/passwd"/ },
    { entries: [{ name: 'a\\..\\..\\evil.txt', data: 'owned' }], message: /leaves the archive root/ },
  ];
  for (const c of cases) {
    const folder = await tempDir('hostile-zip');
    await craftZip(path.join(folder, 'share.zip'), c.entries);
    await age(path.join(folder, 'share.zip'), 60_000);
    const run = await check(folder, '          []');
    t.same(codes(run), ['unsafe_archive'], JSON.stringify(run.reasons));
    t.match(run.reasons[0]?.message, c.message);
    await nothingLeft(t, run);
  }
});

t.test('a decompression bomb stops at the ratio limit; too many entries at the entry limit', async (t) => {
  let folder = await tempDir('bomb');
  await craftTar(path.join(folder, 'share.tar.gz'), [{ name: 'readme.txt', data: 'hello' }, { name: 'zeros.bin', zeros: 200 * 1024 * 1024 }], { gzip: true });
  await age(path.join(folder, 'share.tar.gz'), 60_000);
  const stored = (await fs.stat(path.join(folder, 'share.tar.gz'))).size;
  t.ok(stored < 2 * 1024 * 1024, `the bomb is small when stored (${stored} bytes)`);
  let run = await check(folder, '          []', { files: 'maxRatio: 20, ratioFloor: 8m' });
  t.same(codes(run), ['archive_limit']);
  t.match(run.reasons[0]?.message, /expands more than 20 times its stored size .* at entry "zeros\.bin": a decompression bomb/);
  t.ok(Number(run.backup?.bytesRead) <= stored, 'read at most the whole backup');
  await nothingLeft(t, run);

  const zipBomb = await tempDir('zipbomb');
  await fs.writeFile(path.join(zipBomb, 'zeros.bin'), Buffer.alloc(200 * 1024 * 1024));
  const zipFolder = await tempDir('bomb');
  await archive(zipBomb, path.join(zipFolder, 'share.zip'), 'zip');
  await fs.rm(zipBomb, { recursive: true });
  await age(path.join(zipFolder, 'share.zip'), 60_000);
  run = await check(zipFolder, '          []', { files: 'maxRatio: 20, ratioFloor: 8m' });
  t.same(codes(run), ['archive_limit'], 'a zip bomb made by the real zip');
  t.match(run.reasons[0]?.message, /at entry "zeros\.bin": a decompression bomb/);
  await nothingLeft(t, run);

  run = await check(folder, '          []', { files: 'maxBytes: 50m' });
  t.same(codes(run), ['archive_limit']);
  t.match(run.reasons[0]?.message, /expands beyond files.maxBytes \(50(\.0)? MiB\) at entry "zeros\.bin"/);

  folder = await tempDir('many');
  await craftTar(path.join(folder, 'share.tar'), Array.from({ length: 300 }, (_, i) => ({ name: `f/${i}.txt`, data: `${i}` })));
  await age(path.join(folder, 'share.tar'), 60_000);
  run = await check(folder, '          []', { files: 'maxEntries: 100' });
  t.same(codes(run), ['archive_limit']);
  t.match(run.reasons[0]?.message, /more than files.maxEntries \(100\) entries; entry "f\/100.txt" is one too many/);
  await nothingLeft(t, run);
});

t.test('bytes that are no archive fail as unrecognized, whatever the name says', async (t) => {
  const folder = await tempDir('notarchive');
  await fs.writeFile(path.join(folder, 'share.tar.gz'), 'PGDMP this is not an archive'.repeat(100));
  await age(path.join(folder, 'share.tar.gz'), 60_000);
  const run = await check(folder, '          []');
  t.same(codes(run), ['unrecognized_format']);
  t.match(run.reasons[0]?.message, /not a tar or zip archive: it starts with the text "PGDMP this is no/);
  await nothingLeft(t, run);
});

t.test('a command probe runs inside the sandbox on the restored tree', async (t) => {
  const { tree } = await shareFolder();
  const { folder } = await backupOf(tree, 'tar.gz');
  const run = await check(
    folder,
    `          - command: [cat, /restore/root/finance/ledger-2.csv]
            matches: "^0,2,0.00,EUR"
          - command: [ls, /restore/root/docs]
            exitCode: 0
          - command: [test, -f, /restore/root/nothing-here]`,
  );
  t.same(codes(run), ['probe_failed']);
  t.same(run.probes.map((p) => p.pass), [true, true, false]);
  t.match(run.probes[2]?.actual, /^exit 1/);
});

t.test('tar dialects: pax (with a global header), GNU incremental pass; sparse files are an error, not a fail', async (t) => {
  const tree = await tempDir('dialects');
  await fs.mkdir(path.join(tree, 'inc'), { recursive: true });
  await fs.writeFile(path.join(tree, 'inc', 'notes.txt'), 'quarterly numbers\n'.repeat(50));
  const tarRun = async (folder: string, args: string[]): Promise<void> => {
    const { execFile } = await import('node:child_process');
    await new Promise<void>((resolve, reject) => execFile('tar', args, { cwd: tree }, (err) => (err ? reject(err) : resolve())));
    for (const f of await fs.readdir(folder)) await age(path.join(folder, f), 60_000);
  };
  let folder = await tempDir('dialect');
  await tarRun(folder, ['--format=posix', '--pax-option=comment=made-by-backproof-tests', '-c', '-f', path.join(folder, 'share.tar'), 'inc']);
  let run = await check(folder, '          - files: [inc/notes.txt]');
  t.equal(run.verdict, 'pass', `pax: ${JSON.stringify(run.reasons)}`);

  folder = await tempDir('dialect');
  await tarRun(folder, ['-g', path.join(tree, 'snapshot.snar'), '-c', '-f', path.join(folder, 'share.tar'), 'inc']);
  run = await check(folder, '          - files: [inc/notes.txt]');
  t.equal(run.verdict, 'pass', `GNU incremental: ${JSON.stringify(run.reasons)}`);

  folder = await tempDir('dialect');
  const sparse = path.join(tree, 'inc', 'disk.img');
  await fs.writeFile(sparse, '');
  await fs.truncate(sparse, 8 * 1024 * 1024);
  await fs.appendFile(sparse, 'end');
  await tarRun(folder, ['-S', '-c', '-f', path.join(folder, 'share.tar'), 'inc']);
  run = await check(folder, '          []');
  t.equal(run.verdict, 'error');
  t.same(codes(run), ['unsupported_format']);
  t.match(run.reasons[0]?.message, /entry "inc\/disk\.img" is of a tar entry type backproof does not extract \(a GNU sparse file/);
  await nothingLeft(t, run);
});

t.test('cancelled in the middle of an extraction: recorded as cancelled at once, nothing left', async (t) => {
  const folder = await tempDir('cancel');
  await craftTar(
    path.join(folder, 'share.tar'),
    Array.from({ length: 40 }, (_, i) => ({ name: `big/${i}.bin`, data: randomBytes(4 * 1024 * 1024) })),
  );
  await age(path.join(folder, 'share.tar'), 60_000);
  const { runPolicy } = await import('../orchestrator/runner/run-policy.js');
  const { driverFor, restorerFor } = await import('../orchestrator/cli/plugins.js');
  const { DockerRuntime } = await import('../restore-sandboxes/docker/docker-runtime.js');
  const { quietLogger } = await import('./helpers/harness.js');
  const controller = new AbortController();
  let cancelledAt = 0;
  const run = await runPolicy(policyFromYaml({ folder, kind: 'files', glob: 'share*', probes: '          []' }), {
    store,
    runtime: new DockerRuntime(),
    driverFor,
    restorerFor,
    logger: quietLogger(),
    onProgress: ({ bytes }) => {
      if (bytes > 30 * 1024 * 1024 && !controller.signal.aborted) {
        cancelledAt = performance.now();
        controller.abort(new Error('operator pressed ^C'));
      }
    },
  }, { signal: controller.signal });
  t.ok(cancelledAt > 0, 'cancelled while bytes were streaming');
  t.equal(run.status, 'cancelled');
  t.same(codes(run), ['cancelled']);
  t.ok(performance.now() - cancelledAt < 15_000, `ended soon after (${Math.round(performance.now() - cancelledAt)} ms, teardown included)`);
  await nothingLeft(t, run);
});
