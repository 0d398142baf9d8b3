import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import t from 'tap';
import { age } from './helpers/fixtures.js';
import { codes, leftoversOf, openEmbeddedStore, policyFromYaml, tempDir, verify } from './helpers/harness.js';
import type { RunStore } from '../orchestrator/evidence/run-store.js';

// kind: files, an archive of a million tiny entries (a tar.gz of about 9 MB that names 1,000,000
// empty files): extraction stops at the entry limit, before the end of the backup,
// in bounded time; the sandbox is removed. The tar is generated as a stream (ustar headers made
// here), never as a million files on disk.

const ENTRIES = 1_000_000;
let store: RunStore;
t.before(async () => {
  store = (await openEmbeddedStore()).store;
});
t.teardown(async () => {
  await store?.close();
});

/** The 512-byte ustar header of an empty regular file. */
function header(name: string): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write('00000000000\0', 124);
  h.write('14712345670\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

function manyEntries(count: number): Readable {
  return Readable.from(
    (function* () {
      const batch = 2000;
      for (let i = 0; i < count; i += batch) {
        const parts: Buffer[] = [];
        for (let j = i; j < Math.min(count, i + batch); j++) parts.push(header(`d${Math.floor(j / 10000)}/${j}.txt`));
        yield Buffer.concat(parts);
      }
      yield Buffer.alloc(1024); // end-of-archive marker
    })(),
  );
}

t.test('a tar.gz of a million tiny entries stops at the entry limit, before its end, in bounded time', async (t) => {
  const folder = await tempDir('million');
  const file = path.join(folder, 'share.tar.gz');
  await pipeline(manyEntries(ENTRIES), createGzip({ level: 1 }), createWriteStream(file));
  await age(file, 60_000);
  const stored = (await fs.stat(file)).size;
  const started = Date.now();
  const run = await verify(policyFromYaml({ folder, kind: 'files', glob: 'share*', probes: '          []', files: 'maxEntries: 20000' }), store);
  const took = Date.now() - started;
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['archive_limit'], JSON.stringify(run.reasons));
  t.match(run.reasons[0]?.message, /more than files.maxEntries \(20000\) entries; entry "d2\/20000.txt" is one too many/);
  t.ok(Number(run.backup?.bytesRead) < stored, `stopped reading before the end of the backup (${run.backup?.bytesRead} of ${stored} bytes)`);
  t.ok(took < 120_000, `stopped in ${took} ms`);
  t.equal(await leftoversOf(run.id), 0, 'no container or volume left');
});
