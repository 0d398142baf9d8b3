import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { seededBytes } from './helpers/bytes.js';
import { age, corruptFile, createShopDatabase, dumpDatabase, truncateFile, writeSidecar } from './helpers/fixtures.js';
import { codes, leftoversOf, policyFromYaml, tempDir, useRestoreEnv, verify } from './helpers/harness.js';

const runTool = promisify(execFile);

// Broken backups are `fail` with their own reason; broken infrastructure is `error`. Every run
// is recorded, and no sandbox is left behind.

const env = useRestoreEnv(t);
let shopDb: string;

t.before(async () => {
  shopDb = await createShopDatabase(env.cluster, { orders: 20000 });
});

async function folderWith(kind: 'custom' | 'plain' | 'plain.gz', damage?: (file: string) => Promise<void>, sidecar = false) {
  const folder = await tempDir('fault');
  const file = path.join(folder, 'shop.dump');
  const hex = await dumpDatabase(env.cluster, shopDb, file, kind);
  if (sidecar) await writeSidecar(file, hex);
  if (damage) await damage(file);
  await age(file, 60_000);
  return { folder, file, hex };
}

t.test('a truncated custom-format dump fails as truncated', async (t) => {
  const { folder } = await folderWith('custom', (f) => truncateFile(f, 0.6));
  const run = await verify(policyFromYaml({ folder }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['truncated_dump']);
  t.match(run.reasons[0]?.message, /the dump ends early: pg_restore/);
  t.equal(run.phases.find((p) => p.name === 'fetch_restore')?.outcome, 'fail');
  t.equal(await leftoversOf(run.id), 0);
  t.equal((await env.store.get(run.id))?.verdict, 'fail', 'recorded');
});

t.test('a truncated plain SQL dump fails: pg_dump\'s closing line is missing or the SQL breaks', async (t) => {
  const { folder } = await folderWith('plain', (f) => truncateFile(f, 0.97));
  const run = await verify(policyFromYaml({ folder }), env.store);
  t.equal(run.verdict, 'fail');
  t.equal(run.reasons.length, 1, JSON.stringify(run.reasons));
  t.match(codes(run)[0], /^(truncated_dump|restore_failed)$/);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a plain dump cut exactly at a statement boundary still fails as truncated', async (t) => {
  const { folder } = await folderWith('plain', async (f) => {
    const text = await fs.readFile(f, 'utf8');
    const cut = text.lastIndexOf('\n-- Name: orders orders_pkey');
    await fs.writeFile(f, text.slice(0, cut + 1));
  });
  const run = await verify(policyFromYaml({ folder }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['truncated_dump']);
  t.match(run.reasons[0]?.message, /closing line "-- PostgreSQL database dump complete" is missing/);
});

t.test('a truncated gzip stream fails as corrupt compression', async (t) => {
  const { folder } = await folderWith('plain.gz', (f) => truncateFile(f, 0.5));
  const run = await verify(policyFromYaml({ folder }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['corrupt_compression']);
  t.match(run.reasons[0]?.message, /gzip stream is truncated/);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('bytes changed after the backup: checksum mismatch against the sidecar', async (t) => {
  const { folder, hex } = await folderWith('custom', (f) => corruptFile(f, 0.7, 8), true);
  const run = await verify(policyFromYaml({ folder }), env.store);
  t.equal(run.verdict, 'fail');
  t.equal(codes(run)[0], 'checksum_mismatch', JSON.stringify(run.reasons));
  t.match(run.reasons[0]?.message, new RegExp(`sidecar shop\\.dump\\.sha256 says ${hex.slice(0, 16)}`));
  t.equal(run.backup?.checksums?.[0]?.verified, false);
  t.not(run.backup?.sha256, hex);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a SHA256SUMS file beside the backups is honoured too', async (t) => {
  const { folder, file } = await folderWith('custom');
  await fs.writeFile(path.join(folder, 'SHA256SUMS'), `${'0'.repeat(64)}  ${path.basename(file)}\n`);
  const run = await verify(policyFromYaml({ folder }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['checksum_mismatch']);
  t.equal(run.backup?.checksums?.[0]?.source, 'SHA256SUMS');
  t.ok(run.probes.every((p) => p.pass), 'the restore itself was fine: only the checksum fails');
});

t.test('random bytes are not a dump', async (t) => {
  const folder = await tempDir('garbage');
  const file = path.join(folder, 'shop.dump');
  await fs.writeFile(file, seededBytes(200_000, 'not-a-dump'));
  await age(file, 60_000);
  const run = await verify(policyFromYaml({ folder }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['unrecognized_format']);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a custom dump whose header version bytes are damaged fails as corrupt, not as a newer pg_dump', async (t) => {
  // pg_restore reads "unsupported version (9.7) in file header"; no pg_dump writes a 9.x archive,
  // so no sandbox image would help: the backup is bad (a `fail`), not our configuration (an `error`).
  for (const version of [[9, 7], [0, 3], [255, 255]] as const) {
    const { folder } = await folderWith('custom', async (f) => {
      const fd = await fs.open(f, 'r+');
      await fd.write(Buffer.from(version), 0, 2, 5);
      await fd.close();
    });
    const run = await verify(policyFromYaml({ folder }), env.store);
    t.equal(run.verdict, 'fail', `${version.join('.')}: ${JSON.stringify(run.reasons)}`);
    t.notOk(codes(run).includes('unsupported_format'), 'not blamed on the sandbox image');
    t.equal(await leftoversOf(run.id), 0);
  }
});

t.test('a zero-byte backup fails as empty, without a sandbox', async (t) => {
  const folder = await tempDir('zero');
  const file = path.join(folder, 'shop.dump');
  await fs.writeFile(file, '');
  await age(file, 60_000);
  const run = await verify(policyFromYaml({ folder }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['empty_backup']);
  t.equal(run.phases.find((p) => p.name === 'sandbox')?.outcome, 'skipped');
});

t.test('no backup matching the selector fails with what was seen', async (t) => {
  const folder = await tempDir('none');
  await fs.writeFile(path.join(folder, 'notes.txt'), 'not a backup');
  const fresh = path.join(folder, 'shop-being-written.dump');
  await fs.writeFile(fresh, 'partial');
  const run = await verify(policyFromYaml({ folder }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['no_backup']);
  t.match(run.reasons[0]?.message, /no backup found: 1 match glob "shop\*", 1 still being written/);
  t.equal(run.backup, null);
});

t.test('a missing source folder is an error naming the path', async (t) => {
  const folder = path.join(await tempDir('gone'), 'not-mounted');
  const run = await verify(policyFromYaml({ folder }), env.store);
  t.equal(run.verdict, 'error');
  t.same(codes(run), ['source_unreachable']);
  t.match(run.reasons[0]?.message, `source folder ${folder} does not exist`);
});

t.test('Docker unreachable (an engine socket nobody answers on) is an error with a hint', async (t) => {
  const { folder } = await folderWith('custom');
  const deadSocket = `unix://${path.join(await tempDir('nodocker'), 'docker.sock')}`;
  const run = await verify(policyFromYaml({ folder }), env.store, new DockerRuntime({ host: deadSocket }));
  t.equal(run.verdict, 'error');
  t.same(codes(run), ['docker_unreachable']);
  t.match(run.reasons[0]?.message, /Docker engine at unix:\/\/.*docker\.sock is unreachable .*start it/);
  t.equal((await env.store.get(run.id))?.status, 'finished', 'the run is recorded');
});

t.test('a missing sandbox image is an error that says how to build it', async (t) => {
  const { folder } = await folderWith('custom');
  const policy = policyFromYaml({ folder });
  const run = await verify({ ...policy, sandbox: { ...policy.sandbox, image: 'backproof/postgres:0-missing' } }, env.store);
  t.equal(run.verdict, 'error');
  t.same(codes(run), ['image_missing']);
  t.match(run.reasons[0]?.message, /backproof images build postgres/);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a sidecar without a checksum for the file fails as invalid', async (t) => {
  const { folder, file } = await folderWith('custom');
  await fs.writeFile(`${file}.sha256`, 'not a checksum\n');
  const run = await verify(policyFromYaml({ folder }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['sidecar_invalid']);
});

t.test('the hard timeout stops the run, removes the sandbox and records an error', async (t) => {
  const { folder } = await folderWith('custom');
  const policy = policyFromYaml({ folder });
  const run = await verify({ ...policy, sandbox: { ...policy.sandbox, timeoutMs: 1500 } }, env.store);
  t.equal(run.verdict, 'error');
  t.same(codes(run), ['timeout']);
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a directory-format dump in a tar restores with parallel jobs; cut short it fails as truncated', async (t) => {
  const folder = await tempDir('dirtar');
  const file = path.join(folder, 'shop.dump');
  await dumpDatabase(env.cluster, shopDb, file, 'directory');
  await age(file, 60_000);
  const run = await verify(policyFromYaml({ folder }), env.store);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(run.backup?.format, 'directory-tar');
  t.match(run.backup?.header, { parallelJobs: '2' });
  // pg_dump writes toc.dat last, so here (a 236 KB data file first) the head names no version.
  t.match(run.sandbox?.imageChoice, /the default image/);
  t.ok(run.probes.every((p) => p.pass));

  const cutFolder = await tempDir('dirtar-cut');
  const cut = path.join(cutFolder, 'shop.dump');
  const bytes = await fs.readFile(file);
  await fs.writeFile(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
  await age(cut, 60_000);
  const short = await verify(policyFromYaml({ folder: cutFolder }), env.store);
  t.equal(short.verdict, 'fail');
  t.same(codes(short), ['truncated_dump'], JSON.stringify(short.reasons));
  t.match(short.reasons[0]?.message, /directory-format dump's tar ends early/);
  t.equal(await leftoversOf(short.id), 0);
});

t.test('a tar of something else is not a PostgreSQL dump it can restore: error naming it', async (t) => {
  const folder = await tempDir('othertar');
  const src = await tempDir('othertar-src');
  await fs.writeFile(path.join(src, 'invoice.pdf'), 'not a dump');
  await runTool('tar', ['-cf', path.join(folder, 'files.backup'), '-C', src, 'invoice.pdf']);
  await age(path.join(folder, 'files.backup'), 60_000);
  const r = await verify(policyFromYaml({ folder, glob: '*.backup' }), env.store);
  t.equal(r.verdict, 'error');
  t.same(codes(r), ['unsupported_format']);
  t.match(r.reasons[0]?.message, /first member "invoice\.pdf"/);
  t.equal(await leftoversOf(r.id), 0);
});

t.test('a MySQL dump and UTF-16 SQL are not PostgreSQL dumps: fail with what they are', async (t) => {
  const folder = await tempDir('foreign');
  const mysql = path.join(folder, 'shop-mysql.dump');
  await fs.writeFile(mysql, '-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n--\n-- Host: localhost    Database: shop\n\nCREATE TABLE `orders` (`id` int NOT NULL);\n');
  await age(mysql, 60_000);
  const run = await verify(policyFromYaml({ folder, glob: 'shop-mysql*' }), env.store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['unrecognized_format']);
  t.match(run.reasons[0]?.message, /a MySQL dump/);
  const utf16 = path.join(folder, 'shop-ps.sql');
  const plain = path.join(folder, 'plain.tmp');
  await dumpDatabase(env.cluster, shopDb, plain, 'plain');
  await fs.writeFile(utf16, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(await fs.readFile(plain, 'utf8'), 'utf16le')]));
  await age(utf16, 60_000);
  const run16 = await verify(policyFromYaml({ folder, glob: 'shop-ps*' }), env.store);
  t.equal(run16.verdict, 'fail');
  t.same(codes(run16), ['unrecognized_format']);
  t.match(run16.reasons[0]?.message, /UTF-16 text/);
});
