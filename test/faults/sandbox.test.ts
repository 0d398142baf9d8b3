import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { tempDir } from '../helpers/harness.js';
import { cellOf, POINTS, type FaultName, type Point } from './cells.js';
import { backupFolder, checkCell, customPolicy, openBench, runHeld, snapshotOf } from './fault-bench.js';

// Fault matrix, the columns inside the sandbox: a command that hangs, the sandbox out of memory,
// the sandbox out of disk. The run is held at each point where its sandbox exists, the fault is
// made there for real through the engine (`docker exec` into the run's container), and the run
// let go:
// - hang and out of memory: a marker file in the sandbox's /tmp that the policy's restore, ready
//   and probe commands heed, as a tool with a bug or a bigger appetite would: `sleep 3600`, or
//   `tail` swallowing a gigabyte against the sandbox's 256 MiB limit (the kernel kills it);
// - out of disk: the sandbox's /tmp (a 64 MiB tmpfs, where the policy restores to and writes)
//   filled to the last byte by another process in the sandbox.
// At teardown each fault is made without a marker (a hung exec, a process killed at the limit,
// the disk filled): teardown removes the sandbox whatever is in it.

const exec = promisify(execFile);

const folder = path.join(await tempDir('faults-sandbox-backups'), 'backups');
await backupFolder(folder);
const source = `{ driver: local, path: ${JSON.stringify(folder)}, select: { glob: "shop-*.bin", settle: 0s } }`;
// What each command does first: heed the markers.
const heed = 'if [ -e /tmp/fault-oom ]; then head -c 1073741824 /dev/zero | tail > /dev/null || exit 1; fi; if [ -e /tmp/fault-hang ]; then sleep 3600; fi;';
const bench = await openBench(t, {
  name: 'sandbox',
  policies: customPolicy({
    name: 'shop',
    source,
    sandbox: 'tmp: 64m, timeout: 45s',
    restore: `cat > /tmp/backup.bin || exit 1; ${heed} test -s /tmp/backup.bin`,
    ready: `${heed} date > /tmp/ready.stamp && test -s /tmp/backup.bin`,
    readinessTimeout: '8s',
    probe: `${heed} cp /tmp/backup.bin /tmp/copy.bin && wc -c < /tmp/copy.bin`,
    probeTimeout: '15s',
  }),
  sources: [folder],
});
const before = await snapshotOf(bench.sources);

/** `docker exec` in the run's main container, as the sandbox's user. */
function inSandbox(runId: string, line: string, opts: { detach?: boolean } = {}): Promise<{ stdout: string }> {
  return exec('docker', ['exec', ...(opts.detach ? ['-d'] : []), '-u', '1000:1000', `backproof-${runId}`, 'sh', '-c', line]);
}

/** Makes `fault` in the held run's sandbox. */
async function inject(fault: FaultName, point: Point, runId: string): Promise<void> {
  if (fault === 'disk') {
    // cat stops at ENOSPC, which is the point.
    await inSandbox(runId, 'cat /dev/zero > /tmp/fill 2>/dev/null; df -k /tmp').catch(() => undefined);
    const { stdout } = await inSandbox(runId, 'df -P -k /tmp | tail -n 1');
    t.comment(`/tmp after the fill: ${stdout.trim()}`);
    return;
  }
  if (point !== 'teardown') {
    await inSandbox(runId, `touch /tmp/fault-${fault}`);
    return;
  }
  if (fault === 'hang') await inSandbox(runId, 'sleep 3600', { detach: true });
  else await inSandbox(runId, 'head -c 1073741824 /dev/zero | tail > /dev/null').catch(() => undefined); // killed at the limit
}

for (const fault of ['hang', 'oom', 'disk'] as const) {
  for (const point of POINTS.filter((p) => !('na' in cellOf(fault, p)))) {
    t.test(`${fault} at ${point}`, async (t) => {
      const held = await runHeld(bench, 'shop', point, (_child, runId) => inject(fault, point, runId));
      t.not(held.code, null, `the run ended by itself: ${held.stderr.slice(-1500)}`);
      await checkCell(t, bench, fault, point, held, before);
    });
  }
}
