import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import type { PhaseName } from '../core/domain.js';

/** Where a run can be held: each phase at its start, and `record` before the final record is written. */
export type GatePoint = PhaseName | 'record';

/** Holds a run at a point until the gate opens; resolves at once when nothing holds it there. */
export type PhaseGate = (point: GatePoint, runId: string) => Promise<void>;

/** A held run gives up waiting after this long and goes on (a test that forgot it must not hang a run forever). */
const MAX_HOLD_MS = 10 * 60_000;
const POLL_MS = 20;

/**
 * A test seam for fault injection (test/faults/): with `BACKPROOF_FAULT_GATE=<dir>`, a run that
 * reaches a point named by a file `<dir>/hold-<point>` writes `<dir>/reached-<point>` (its pid and
 * run id) and waits until the hold file is gone, so a test can stop a server, kill the process or
 * the engine while the run is known to be in that phase. Unset (always, outside tests), there is
 * no gate and nothing is read. Never changes what a run does, only when.
 */
export function phaseGateFromEnv(env: NodeJS.ProcessEnv = process.env): PhaseGate | undefined {
  const dir = env.BACKPROOF_FAULT_GATE;
  if (!dir) return undefined;
  return async (point, runId) => {
    const hold = path.join(dir, `hold-${point}`);
    if (!existsSync(hold)) return;
    // Written whole, then named: whoever waits for the file never reads half of it.
    const reached = path.join(dir, `reached-${point}`);
    await fs.writeFile(`${reached}.${process.pid}.tmp`, JSON.stringify({ pid: process.pid, runId }));
    await fs.rename(`${reached}.${process.pid}.tmp`, reached);
    const deadline = Date.now() + MAX_HOLD_MS;
    while (existsSync(hold) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  };
}
