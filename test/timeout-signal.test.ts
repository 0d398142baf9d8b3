import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import { timeoutSignal } from '../orchestrator/core/timeout-signal.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

// The run's signal combined with a step's deadline, the way the ready loop, the probes and the
// engine calls use it; a garbage collection in between must not lose the deadline.
t.test('a deadline inside AbortSignal.any fires after a garbage collection', async (t) => {
  const run = new AbortController();
  const step = AbortSignal.any([run.signal, timeoutSignal(100)]);
  const fired = new Promise<unknown>((resolve) => step.addEventListener('abort', () => resolve(step.reason), { once: true }));
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  const reason = await Promise.race([fired, new Promise((resolve) => setTimeout(() => resolve('never fired'), 2_000))]);
  t.equal((reason as DOMException).name, 'TimeoutError', 'aborted with a TimeoutError, like AbortSignal.timeout');
  t.equal(run.signal.aborted, false, 'the run itself goes on');
});

t.test('the timer keeps no process alive', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const started = Date.now();
  const r = spawnSync(process.execPath, ['--import=tsx', '-e', "import('./orchestrator/core/timeout-signal.ts').then((m) => { m.timeoutSignal(60_000); })"], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.ok(Date.now() - started < 30_000, 'the process exited long before the 60 s deadline');
});
