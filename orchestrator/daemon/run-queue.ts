import type { PolicyConfig } from '../core/config-types.js';

/**
 * Due runs wait here until a slot is free: at most `concurrency` at once overall and `perClient`
 * per client. A policy is never queued twice, nor queued while it runs (a slow run does not pile
 * up copies of itself); the queue is served first come, first served among those a limit allows.
 */
export type Trigger = 'schedule' | 'catch-up';

export interface QueuedRun {
  policy: PolicyConfig;
  trigger: Trigger;
  /** When it became due (ISO). */
  dueAt: string;
  /** The scheduled time it verifies (ISO): the firing for `schedule`, the missed one for `catch-up`. */
  slot?: string;
}

export interface ActiveRun extends QueuedRun {
  startedAt: string;
  controller: AbortController;
  done: Promise<void>;
}

export interface QueueLimits {
  concurrency: number;
  perClient: number;
}

export class RunQueue {
  private readonly waiting: QueuedRun[] = [];
  private readonly active = new Map<string, ActiveRun>();
  private paused = false;
  /** Most runs that were ever active at once overall and per client (for tests and status). */
  readonly peak = { overall: 0, perClient: new Map<string, number>() };

  constructor(
    private limits: QueueLimits,
    private readonly start: (item: QueuedRun, signal: AbortSignal) => Promise<void>,
  ) {}

  setLimits(limits: QueueLimits): void {
    this.limits = limits;
    this.pump();
  }

  /** False when the policy is already waiting or running (nothing is added). */
  enqueue(item: QueuedRun): boolean {
    if (this.paused) return false;
    const name = item.policy.name;
    if (this.active.has(name) || this.waiting.some((w) => w.policy.name === name)) return false;
    this.waiting.push(item);
    this.pump();
    return true;
  }

  get runningRuns(): ActiveRun[] {
    return [...this.active.values()];
  }

  get queuedRuns(): QueuedRun[] {
    return [...this.waiting];
  }

  isBusy(policy: string): boolean {
    return this.active.has(policy) || this.waiting.some((w) => w.policy.name === policy);
  }

  /** Stops taking and starting runs; returns what was waiting (dropped). */
  close(): QueuedRun[] {
    this.paused = true;
    return this.waiting.splice(0);
  }

  /** Resolves when no run is active, or at `deadlineMs` (then false). */
  async idle(deadlineMs?: number): Promise<boolean> {
    const all = Promise.all([...this.active.values()].map((a) => a.done)).then(() => true);
    if (deadlineMs === undefined) return all;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, deadlineMs));
    });
    try {
      return await Promise.race([all, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Aborts every active run with `reason`. */
  cancelAll(reason: unknown): void {
    for (const a of this.active.values()) a.controller.abort(reason);
  }

  private clientCount(client: string): number {
    let n = 0;
    for (const a of this.active.values()) if (a.policy.client === client) n++;
    return n;
  }

  private pump(): void {
    if (this.paused) return;
    for (let i = 0; i < this.waiting.length && this.active.size < this.limits.concurrency; ) {
      const item = this.waiting[i]!;
      if (this.clientCount(item.policy.client) >= this.limits.perClient) {
        i++;
        continue;
      }
      this.waiting.splice(i, 1);
      this.launch(item);
    }
  }

  private launch(item: QueuedRun): void {
    const controller = new AbortController();
    const name = item.policy.name;
    const active: ActiveRun = { ...item, startedAt: new Date().toISOString(), controller, done: Promise.resolve() };
    this.active.set(name, active);
    this.peak.overall = Math.max(this.peak.overall, this.active.size);
    const client = item.policy.client;
    this.peak.perClient.set(client, Math.max(this.peak.perClient.get(client) ?? 0, this.clientCount(client)));
    active.done = this.start(item, controller.signal)
      .catch(() => undefined)
      .finally(() => {
        this.active.delete(name);
        this.pump();
      });
  }
}
