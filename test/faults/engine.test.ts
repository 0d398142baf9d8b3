import t from 'tap';
import { startPrivateDockerd } from '../helpers/private-dockerd.js';
import { POINTS } from './cells.js';
import { checkCell, nextStart, openResticBench, runHeld } from './fault-bench.js';

// Fault matrix, column "Docker engine killed": a private engine of the test's own (so the shared
// one keeps serving other tests), SIGKILLed while the run is held at each point; the run goes on
// without it, and the engine is started again once the run has ended. The run's record says so
// (docker_unreachable where it needed the engine), and the next start reaps what the engine had.

const engine = await startPrivateDockerd();
t.teardown(() => engine.destroy());
await engine.loadImage('backproof/files');
const { bench, before } = await openResticBench(t, 'engine', engine.host);

for (const point of POINTS) {
  t.test(`engine killed at ${point}`, async (t) => {
    const held = await runHeld(bench, 'shop', point, () => engine.kill());
    await engine.start();
    t.not(held.code, null, `the run ended by itself: ${held.stderr.slice(-1500)}`);
    const next = await nextStart(bench, 'shop');
    t.equal(next.code, 0, next.stderr.slice(-2000));
    await checkCell(t, bench, 'engine', point, held, before);
  });
}
