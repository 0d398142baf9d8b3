import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, pipeline, type Readable } from 'node:stream';
import t from 'tap';
import { giveBack, givesBack, pooledFileStream } from '../orchestrator/core/chunk-pool.js';
import { HashingCounter, peek } from '../orchestrator/core/integrity.js';
import type { RunStore } from '../orchestrator/evidence/run-store.js';
import { readAll, seededBytes, sha256 } from './helpers/bytes.js';
import { age } from './helpers/fixtures.js';
import { openEmbeddedStore, policyFromYaml, tempDir, verify } from './helpers/harness.js';

// Pooled reads (orchestrator/core/chunk-pool.ts): a backup file is read into a few buffers that
// the sandbox's input gives back once written. Reuse must never change bytes someone still holds.

const CHUNK = 1000;

async function fileOf(bytes: Buffer): Promise<string> {
  const file = path.join(await tempDir('chunk-pool'), 'blob.bin');
  await fs.writeFile(file, bytes);
  return file;
}

async function pooled(file: string, keep?: number): Promise<Readable> {
  return pooledFileStream(await open(file, 'r'), { chunkBytes: CHUNK, ...(keep ? { keep } : {}) });
}

t.test('a pooled stream yields the file exactly, whatever its length against the chunk size', async (t) => {
  for (const length of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 7 * CHUNK, 7 * CHUNK + 13]) {
    const bytes = seededBytes(length, `len-${length}`);
    t.equal(sha256(await readAll(await pooled(await fileOf(bytes)))), sha256(bytes), `${length} bytes`);
  }
});

t.test('chunks given back are read into again; one still held is never overwritten', async (t) => {
  const bytes = seededBytes(20 * CHUNK + 5, 'reuse');
  const stream = await pooled(await fileOf(bytes), 2);
  const copies: Buffer[] = [];
  const buffers = new Set<ArrayBufferLike>();
  let held: { chunk: Buffer; copy: Buffer } | undefined;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    copies.push(Buffer.from(chunk));
    buffers.add(chunk.buffer);
    if (!held) held = { chunk, copy: Buffer.from(chunk) };
    else giveBack(chunk);
  }
  t.equal(sha256(Buffer.concat(copies)), sha256(bytes), 'every chunk read as stored');
  t.ok(buffers.size <= 4, `21 chunks read into ${buffers.size} buffers`);
  t.same(held!.chunk, held!.copy, 'the chunk not given back still holds its bytes');
  giveBack(held!.chunk);
  giveBack(held!.chunk); // twice, and a buffer never lent: both harmless
  giveBack(Buffer.alloc(CHUNK));
});

t.test('only a pooled stream with the sink as its one reader gives chunks back', async (t) => {
  const file = await fileOf(seededBytes(3 * CHUNK, 'marks'));
  const raw = await pooled(file);
  t.ok(givesBack(raw), 'the pooled source itself');
  const hasher = new HashingCounter();
  const hashed = pipeline(raw, hasher.from(raw), () => undefined);
  const { head, stream } = await peek(hashed, 10);
  t.ok(givesBack(stream), 'through the hash and the replay of the head');
  const headCopy = Buffer.from(head);
  stream.on('data', () => undefined);
  t.ok(givesBack(stream), 'one reader');
  stream.on('data', () => undefined);
  t.notOk(givesBack(stream), 'a second reader might keep a chunk');
  await readAll(stream);
  t.same(head, headCopy, 'the head is a copy of its own');
  const plain = new PassThrough();
  t.notOk(givesBack(plain), 'a stream that is not pooled');
  const transformed = new PassThrough();
  pipeline(await pooled(file), transformed, () => undefined);
  t.notOk(givesBack(transformed), 'a stage that does not declare it passes chunks unchanged');
  await readAll(transformed);
});

t.test('destroying a pooled stream mid-read closes its file', async (t) => {
  const file = await fileOf(seededBytes(50 * CHUNK, 'cut'));
  const handle = await open(file, 'r');
  const stream = pooledFileStream(handle, { chunkBytes: CHUNK });
  await new Promise<void>((resolve) => stream.once('data', () => resolve()));
  stream.destroy();
  await new Promise((resolve) => stream.once('close', resolve));
  await t.rejects(handle.stat(), { code: 'EBADF' }, 'the handle is closed');
});

t.test('an abort signal ends the read with the abort', async (t) => {
  const controller = new AbortController();
  const stream = pooledFileStream(await open(await fileOf(seededBytes(50 * CHUNK, 'abort')), 'r'), { chunkBytes: CHUNK, signal: controller.signal });
  stream.once('data', () => controller.abort());
  await t.rejects(readAll(stream), { name: 'AbortError' });
});

t.test('a run streams many pooled chunks into the sandbox byte for byte', async (t) => {
  const store: RunStore = (await openEmbeddedStore()).store;
  t.teardown(() => store.close());
  // 24 MiB: two dozen 1 MiB chunks, each buffer written, given back and read into again.
  const bytes = randomBytes(24 * 1024 * 1024 + 12_345);
  const folder = await tempDir('chunk-pool-run');
  const file = path.join(folder, 'blob-1.bin');
  await fs.writeFile(file, bytes);
  await fs.writeFile(`${file}.sha256`, `${sha256(bytes)}  blob-1.bin\n`);
  await age(file, 60_000);
  // The sandbox hashes what reaches its stdin; a probe compares that with the file's digest.
  const policy = policyFromYaml({
    folder,
    kind: 'custom',
    glob: 'blob-*.bin',
    extra: `        custom:
          image: backproof/files
          user: "1000:1000"
          restore: [sh, -c, "sha256sum > /restore/received"]`,
    probes: `          - command: [cat, /restore/received]
            equals: "${sha256(bytes)}  -"`,
  });
  const r = await verify(policy, store);
  t.equal(r.verdict, 'pass', JSON.stringify([r.reasons, r.probes]));
  t.equal(r.backup?.sha256, sha256(bytes), 'the evidence hashed the bytes as stored');
  t.match(r.backup?.checksums, [{ algorithm: 'sha256', verified: true }], 'and checked them against the sidecar');
  t.equal(r.backup?.bytesRead, bytes.length);
});

