import type { PhaseName, PhaseOutcome, PhaseRecord, RunRecord } from '../core/domain.js';
import { FAIL_CODES, PHASE_ORDER } from '../core/domain.js';
import { VerificationError } from '../core/errors.js';

const ORDER = PHASE_ORDER;

/**
 * Where a run is, told to the store as it goes (run-state.ts): `current` is the phase under way
 * (none between phases). Never throws and never waits on the store.
 */
export type ProgressSink = (current?: PhaseRecord, at?: string) => void;

/** Times each phase of a run and records its outcome; phases never reached are `skipped`. */
export class PhaseClock {
  constructor(
    private readonly run: RunRecord,
    private readonly now: () => Date,
    private readonly progress: ProgressSink = () => undefined,
    /** Awaited once a phase has started, before its work (the fault-injection seam, fault-gate.ts). */
    private readonly gate?: (name: PhaseName) => Promise<void>,
  ) {}

  async phase<T>(name: PhaseName, fn: (mark: (outcome: PhaseOutcome, detail?: string) => void) => Promise<T>): Promise<T> {
    const startedAt = this.now();
    const t0 = performance.now();
    const at = startedAt.toISOString();
    this.progress({ name, startedAt: at, endedAt: at, durationMs: 0, outcome: 'unfinished' });
    if (this.gate) await this.gate(name);
    let outcome: PhaseOutcome = 'ok';
    let detail: string | undefined;
    const record = (): void => {
      const endedAt = new Date(startedAt.getTime() + (performance.now() - t0)).toISOString();
      this.run.phases.push({
        name,
        startedAt: startedAt.toISOString(),
        endedAt,
        durationMs: Math.round(performance.now() - t0),
        outcome,
        ...(detail ? { detail } : {}),
      });
      this.progress(undefined, endedAt);
    };
    try {
      const value = await fn((o, d) => {
        outcome = o;
        detail = d;
      });
      record();
      return value;
    } catch (err) {
      const isFail = err instanceof VerificationError && (FAIL_CODES as readonly string[]).includes(err.reason);
      outcome = isFail ? 'fail' : 'error';
      detail = (err as Error)?.message;
      record();
      throw err;
    }
  }

  /** Records a phase that does not apply to this run (e.g. a store with no check of its own). */
  skip(name: PhaseName, detail: string): void {
    const at = this.now().toISOString();
    this.run.phases.push({ name, startedAt: at, endedAt: at, durationMs: 0, outcome: 'skipped', detail });
  }

  /** Adds `skipped` entries for phases never reached, keeping the record's shape constant. */
  skipRemaining(): void {
    const seen = new Set(this.run.phases.map((p) => p.name));
    const at = this.now().toISOString();
    for (const name of ORDER) {
      if (!seen.has(name)) this.run.phases.push({ name, startedAt: at, endedAt: at, durationMs: 0, outcome: 'skipped' });
    }
    this.run.phases.sort((a, b) => ORDER.indexOf(a.name) - ORDER.indexOf(b.name));
  }
}
