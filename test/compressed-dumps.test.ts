import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { PostgresRestorer } from '../restore-sandboxes/postgres/postgres-restorer.js';
import { age, createShopDatabase, dumpDatabase } from './helpers/fixtures.js';
import { codes, leftoversOf, policyFromYaml, tempDir, useRestoreEnv, verify } from './helpers/harness.js';

// zstd, xz and bzip2 dumps, made by the real tools: decompressed inside the sandbox (Node 20 has
// no zstd/xz/bzip2), told apart by their magic bytes, never their names.

const run = promisify(execFile);
const env = useRestoreEnv(t);
let shopDb: string;
t.before(async () => {
  shopDb = await createShopDatabase(env.cluster);
});

for (const kind of ['custom.zst', 'plain.xz', 'tar.bz2'] as const) {
  t.test(`a ${kind} dump restores and passes`, async (t) => {
    const folder = await tempDir(`comp-${kind}`);
    const file = path.join(folder, 'shop.backup'); // the name says nothing
    const hex = await dumpDatabase(env.cluster, shopDb, file, kind);
    await age(file, 60_000);
    const run = await verify(policyFromYaml({ folder }), env.store);
    t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
    t.equal(run.backup?.compression, { 'custom.zst': 'zstd', 'plain.xz': 'xz', 'tar.bz2': 'bzip2' }[kind]);
    t.equal(run.backup?.format, kind.split('.')[0]);
    t.equal(run.backup?.sha256, hex, 'the compressed bytes were hashed as stored');
    // zstd and xz stream: their first 64 KB decode (with the host's tool) to the dump's header.
    // (A tar-format dump's head names no server version: the default image, as uncompressed.)
    const why = kind === 'tar.bz2' ? /the default image/ : /the dump comes from PostgreSQL 15/;
    t.match(run.sandbox?.imageChoice, why);
    t.match(run.restored, { tables: 2, estimatedRows: 5500 });
    t.equal(await leftoversOf(run.id), 0);
  });
}

t.test('a truncated zstd dump and a damaged xz dump fail as corrupt_compression', async (t) => {
  const folder = await tempDir('comp-bad');
  const zst = path.join(folder, 'shop.backup');
  await dumpDatabase(env.cluster, shopDb, zst, 'custom.zst');
  const bytes = await fs.readFile(zst);
  await fs.writeFile(zst, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
  await age(zst, 60_000);
  const cut = await verify(policyFromYaml({ folder }), env.store);
  t.equal(cut.verdict, 'fail');
  t.same(codes(cut), ['corrupt_compression'], JSON.stringify(cut.reasons));
  t.match(cut.reasons[0]?.message, /^zstd stream is truncated/);
  t.equal(await leftoversOf(cut.id), 0);

  const folder2 = await tempDir('comp-bad-xz');
  const xz = path.join(folder2, 'shop.backup');
  await dumpDatabase(env.cluster, shopDb, xz, 'plain.xz');
  const raw = await fs.readFile(xz);
  raw.fill(0x55, Math.floor(raw.length / 2), Math.floor(raw.length / 2) + 64);
  await fs.writeFile(xz, raw);
  await age(xz, 60_000);
  const damaged = await verify(policyFromYaml({ folder: folder2 }), env.store);
  t.equal(damaged.verdict, 'fail');
  t.same(codes(damaged), ['corrupt_compression'], JSON.stringify(damaged.reasons));
  t.match(damaged.reasons[0]?.message, /^xz stream is corrupt/);
  t.equal(await leftoversOf(damaged.id), 0);
});

t.test("the image is chosen from a compressed dump's head; bzip2's head says nothing", async (t) => {
  const restorer = new PostgresRestorer();
  const folder = await tempDir('comp-head');
  const big = path.join(folder, 'big.sql');
  await fs.writeFile(big, `-- ${randomBytes(1536 * 1024).toString('base64')}\n`); // barely compressible: the first block is far longer than 64 KB
  const bz = (await run('bzip2', ['-c', big], { encoding: 'buffer', maxBuffer: 64 * 1024 ** 2 })).stdout;
  const choice = await restorer.selectImage(bz.subarray(0, 64 * 1024), async () => true);
  t.match(choice.why, /bzip2 decodes in blocks of up to 900 kB/);
  const zst = path.join(folder, 'shop.zst');
  await dumpDatabase(env.cluster, shopDb, zst, 'custom.zst');
  const head = (await fs.readFile(zst)).subarray(0, 64 * 1024);
  t.match((await restorer.selectImage(head, async () => true)).why, /the dump comes from PostgreSQL 15/);
});
