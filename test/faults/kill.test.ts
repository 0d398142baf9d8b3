import t from 'tap';
import { POINTS } from './cells.js';
import { checkCell, nextStart, openResticBench, runHeld } from './fault-bench.js';

// Fault matrix, column "backproof SIGKILLed": the CLI killed while its run is held at each point
// (the restic source gives storage_check a real phase); the next start records it aborted with
// the point's phase unfinished, reaps its sandbox, and the chain still verifies. Needs the built
// CLI (npm run build), restic, dockerd and the backproof/files image.

const { bench, before } = await openResticBench(t, 'kill');

for (const point of POINTS) {
  t.test(`SIGKILL at ${point}`, async (t) => {
    const held = await runHeld(bench, 'shop', point, async (child) => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    });
    t.equal(held.code, null, 'the process died');
    const next = await nextStart(bench, 'shop');
    t.equal(next.code, 0, next.stderr.slice(-2000));
    t.match(next.stderr, /recorded as aborted/);
    await checkCell(t, bench, 'kill', point, held, before);
  });
}
