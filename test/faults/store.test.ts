import t from 'tap';
import { POINTS } from './cells.js';
import { checkCell, openResticBench, runHeld } from './fault-bench.js';

// Fault matrix, column "evidence PostgreSQL restarted": the store's server is shut down (every
// connection cut) while the run is held at each point, the run let go while it is down, and the
// server started again 3 s later. Progress writes that fail only warn; the final record waits for
// the server (retry with backoff, else the local journal): every run is recorded once, as a pass.

const { bench, before } = await openResticBench(t, 'store');

for (const point of POINTS) {
  t.test(`evidence PostgreSQL restarted at ${point}`, async (t) => {
    let restarted: Promise<void> | undefined;
    const held = await runHeld(bench, 'shop', point, async () => {
      restarted = bench.pg.restart(3_000);
      await waitDown(bench.pg.port); // the run goes on while the server is down
    });
    await restarted;
    t.equal(held.code, 0, `the run ended with its verdict: ${held.stderr.slice(-1500)}`);
    await checkCell(t, bench, 'store', point, held, before);
  });
}

async function waitDown(port: number): Promise<void> {
  const net = await import('node:net');
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (!open) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
