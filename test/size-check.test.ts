import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { judgeSize } from '../orchestrator/runner/size-check.js';
import { craftTar } from './helpers/archive-fixtures.js';
import { age } from './helpers/fixtures.js';
import { codes, leftoversOf, openEmbeddedStore, policyFromYaml, tempDir, verify } from './helpers/harness.js';

// A backup much smaller than the policy's recent passing ones fails as shrunken, even though it
// restores: the median of the last passing runs is the yardstick, from the evidence store.

t.test('the median of the history is the yardstick', async (t) => {
  const cfg = { minPercent: 50, lastRuns: 10, minHistory: 3 };
  t.match(judgeSize(100, [1000, 1000], cfg), { pass: true, actual: /not judged yet: 2 of 3 passing runs needed/ });
  t.match(judgeSize(400, [1000, 1000, 100], cfg), { pass: false, actual: /40\.0% of the median 1000 B/ });
  t.match(judgeSize(600, [1000, 1100, 900, 5], cfg), { pass: true, actual: /63\.2% of the median 950 B \(4 runs\)/ });
});

t.test('a shrunken backup fails after passing runs of the usual size; passing runs are the only history', async (t) => {
  const { store } = await openEmbeddedStore();
  t.teardown(() => store.close());
  const folder = await tempDir('sizes');
  const policy = policyFromYaml({ folder, kind: 'files', glob: 'share*', probes: '          []', sizeAnomaly: '{ minPercent: 50, lastRuns: 5, minHistory: 2 }' });
  const backup = async (name: string, kb: number): Promise<void> => {
    for (const f of await fs.readdir(folder)) await fs.rm(path.join(folder, f));
    const file = path.join(folder, name);
    await craftTar(file, [{ name: 'data.bin', data: randomBytes(kb * 1024) }]);
    await age(file, 60_000);
  };
  await backup('share-1.tar', 400);
  let run = await verify(policy, store);
  t.equal(run.verdict, 'pass');
  t.match(run.probes[0], { name: 'size vs history', pass: true, actual: /not judged yet: 0 of 2/ });
  await backup('share-2.tar', 420);
  t.equal((await verify(policy, store)).verdict, 'pass');
  await backup('share-3.tar', 100);
  run = await verify(policy, store);
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['size_anomaly']);
  t.match(run.reasons[0]?.message, /the backup share-3\.tar shrank: 10\d(\.\d)? KiB, 2\d\.\d% of the median 4\d\d(\.\d)? KiB \(2 runs\); expected at least 50% of the median size of the last 5 passing runs/);
  t.equal(run.phases.find((p) => p.name === 'fetch_restore')?.outcome, 'ok', 'it still restored');
  t.equal(await leftoversOf(run.id), 0);
  // The failed run is not history: the next small backup is judged against the same passing runs.
  run = await verify(policy, store);
  t.same(codes(run), ['size_anomaly']);
  t.match(run.probes[0]?.actual, /\(2 runs\)/);
});
