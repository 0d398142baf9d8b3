import t from 'tap';
import { exhaustionOf, isFull, mountUse, oomKills } from '../restore-sandboxes/sandbox-exhaustion.js';
import type { ExecResult } from '../restore-sandboxes/sandbox-runtime.js';

// What the kernel says of a sandbox's memory and disk, parsed (the fault matrix's "sandbox out of
// memory / disk" columns run it against real containers: test/faults/sandbox.test.ts).

const V1 = 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n';
const V2 = 'low 0\nhigh 0\nmax 14\noom 1\noom_kill 1\n';
const DF = `Filesystem     1024-blocks      Used Available Capacity Mounted on
tmpfs                65536     65536         0     100% /tmp
/dev/vda1         40000000  20000000  18000000      53% /restore
`;

t.test('oom_kill from cgroup v1 and v2, 0 when neither is there', async (t) => {
  t.equal(oomKills(V1), 2);
  t.equal(oomKills(V2), 1);
  t.equal(oomKills(''), 0);
  t.equal(oomKills('cat: /sys/fs/cgroup/memory.events: No such file or directory'), 0);
});

t.test('df -P -k rows; full below max(1 MiB, 0.5%)', async (t) => {
  const rows = mountUse(DF);
  t.same(rows.map((r) => [r.mount, r.sizeBytes, r.freeBytes]), [
    ['/tmp', 65536 * 1024, 0],
    ['/restore', 40000000 * 1024, 18000000 * 1024],
  ]);
  t.same(rows.map(isFull), [true, false]);
  t.equal(isFull({ mount: '/x', sizeBytes: 64 * 2 ** 20, freeBytes: 2 ** 20 - 1 }), true, 'under 1 MiB free');
  t.equal(isFull({ mount: '/x', sizeBytes: 64 * 2 ** 20, freeBytes: 2 ** 20 + 1 }), false);
  t.equal(isFull({ mount: '/x', sizeBytes: 1000 * 2 ** 30, freeBytes: 2 * 2 ** 30 }), true, 'under 0.5% of a large disk');
  t.same(mountUse('df: /nope: No such file or directory\n'), []);
});

t.test('exhaustionOf asks every container for memory and the main one for disk', async (t) => {
  const asked: string[] = [];
  const exec = async (argv: string[], container: string | undefined): Promise<ExecResult> => {
    asked.push(`${container ?? 'main'}:${argv[0]}`);
    const stdout = argv[0] === 'df' ? DF : container === 'loader' ? V2 : 'oom_kill 0\n';
    return { exitCode: 0, stdout, stderr: '', stdinComplete: true };
  };
  const why = await exhaustionOf({ memoryBytes: 256 * 2 ** 20, tmpfs: { '/tmp': 64 * 2 ** 20 }, volumes: ['/restore'] }, ['loader'], exec);
  t.same(asked, ['main:cat', 'loader:cat', 'main:df']);
  t.match(why, /ran out of memory: the kernel killed 1 process\(es\) at its memory limit of 256\.0 MiB; raise sandbox\.memory/);
  t.match(why, /ran out of disk space: \/tmp has 0 B free of 64\.0 MiB; raise sandbox\.tmp/);
  t.notMatch(why, /\/restore/);
});

t.test('an image without cat or df, or a container that is gone, tells nothing', async (t) => {
  const missing = async (): Promise<ExecResult> => ({ exitCode: 127, stdout: '', stderr: 'exec: "cat": executable file not found', stdinComplete: true });
  t.equal(await exhaustionOf({ memoryBytes: 1, tmpfs: { '/tmp': 1 }, volumes: [] }, [], missing), undefined);
  const gone = async (): Promise<ExecResult> => {
    throw new Error('container is not running');
  };
  t.equal(await exhaustionOf({ memoryBytes: 1, tmpfs: { '/tmp': 1 }, volumes: [] }, [], gone), undefined);
});
