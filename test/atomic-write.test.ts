import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { writeFileAtomic } from '../orchestrator/daemon/liveness.js';
import { tempDir } from './helpers/harness.js';

// The daemon rewrites its status snapshot after each run and at each check, sometimes at once:
// concurrent writes of one file each complete, and a reader only ever sees one whole version.
t.test('concurrent atomic writes of one file: each completes, the file is one whole version', async (t) => {
  const file = path.join(await tempDir('atomic'), 'daemon-status.json');
  const versions = Array.from({ length: 40 }, (_, i) => JSON.stringify({ version: i, pad: String(i).repeat(200_000) }));
  let reads = 0;
  let torn = 0;
  let reading = true;
  const reader = (async () => {
    while (reading) {
      const text = await fs.readFile(file, 'utf8').catch(() => undefined);
      if (text !== undefined) {
        reads++;
        if (!versions.includes(text)) torn++;
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  const results = await Promise.allSettled(versions.map((v) => writeFileAtomic(file, v)));
  reading = false;
  await reader;
  t.same(results.filter((r) => r.status === 'rejected'), [], 'every write completed');
  t.ok(versions.includes(await fs.readFile(file, 'utf8')), 'the file is one whole version');
  t.equal(torn, 0, `no reader saw a mix (${reads} reads)`);
  t.same((await fs.readdir(path.dirname(file))).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left');
});
