import { createHash } from 'node:crypto';
import type { PolicyConfig } from '../core/config-types.js';
import { previousRunTime } from '../scheduler/schedule.js';

/**
 * Scheduled slots and the runs that verify them. A slot is one firing of a policy's schedule
 * (`2026-12-03T02:00:00.000Z` for "daily at 02:00"). Each attempt at a slot has one run id,
 * derived from (policy, slot, attempt): every scheduler computes the same id, the queue refuses a
 * second job with it, and the evidence store a second record, so a slot is run exactly once per
 * attempt however many schedulers, workers, retries or restarts there are.
 */
export function slotRunId(policy: string, slot: Date, attempt: number): string {
  const h = createHash('sha256').update(`backproof-slot\0${policy}\0${slot.toISOString()}\0${attempt}`).digest();
  // An RFC 4122 layout (version 8, "custom"), so it is a valid uuid for PostgreSQL and pg-boss.
  h[6] = (h[6]! & 0x0f) | 0x80;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/**
 * The slot a scheduler should have enqueued by `now`: the policy's latest firing at or before
 * it, if that is no older than `catchUpMs` (a scheduler down for longer does not replay a
 * backlog: the alert engine reports the policy `overdue` instead).
 */
export function dueSlot(policy: PolicyConfig, now: Date, catchUpMs: number): Date | undefined {
  if (!policy.schedule) return undefined;
  const last = previousRunTime(policy.schedule, now);
  if (!last || now.getTime() - last.getTime() > catchUpMs) return undefined;
  return last;
}

/** The queue a policy's runs go to: one per set of required labels, so a worker takes only what it may run. */
export function queueFor(requires: Record<string, string>): string {
  const parts = Object.entries(requires)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`);
  return parts.length === 0 ? 'restore' : `restore.${parts.join('.')}`;
}

/** Whether a worker with `labels` may run a policy requiring `requires`. */
export function satisfies(labels: Record<string, string>, requires: Record<string, string>): boolean {
  return Object.entries(requires).every(([k, v]) => labels[k] === v);
}

/** What a queued job carries. */
export interface RunJob {
  runId: string;
  policy: string;
  client: string;
  slot: string;
  attempt: number;
}
