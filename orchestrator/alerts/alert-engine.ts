import type { PolicyConfig, ResolvedConfig } from '../core/config-types.js';
import type { RunRecord } from '../core/domain.js';
import type { AlertStore, DeliveryInput, Incident } from '../evidence/alert-store.js';
import type { RunFilter } from '../evidence/run-store.js';
import { formatAge } from '../core/format.js';
import type { Logger } from '../core/logger.js';
import { previousRunTime } from '../scheduler/schedule.js';
import { alertRunOf, createAlert, formatInstant, type Alert, type AlertState } from './alert.js';
import type { DeliveryResult } from './channel.js';
import type { RoutedChannel } from './channels-from-config.js';
import { EmailChannel } from './email-channel.js';
import { pingHeartbeat } from './heartbeat.js';
import { judgeRun, type FiringCondition, type Observation } from './run-conditions.js';

/** Policies checked at once between runs (overdue, and their storage listed). */
const CHECK_CONCURRENCY = 8;

/** One policy's storage check, as AlertStore.recordBackupChecks records it. */
type StorageCheck = Parameters<AlertStore['recordBackupChecks']>[0][number];

/**
 * Decides which alerts to send and sends them. Conditions come from finished runs
 * (`afterRun`) and from checks between runs (`check`: overdue, stale and missing backups in
 * storage, reminders, retries of failed deliveries). Each condition of a policy is one incident
 * in the evidence store: notified once when it opens, again after the reminder interval while
 * it stays open, and once more when it resolves. Every delivery is recorded; a failed one is
 * retried at each check for `alerts.retryFor`, and opens a `delivery_failed` incident that goes
 * out over the policy's other channels.
 */

/** What a look at the storage between runs found (see daemon/storage-check.ts). */
export interface StorageFact {
  newest?: { key: string; size: number; backupTime: string };
  /** Why nothing was picked (no backup at all): the selector's explanation. */
  nothing?: string;
  /** With `expect`: the period without a backup, as a reason message. */
  missing?: string;
}

export interface AlertEngineDeps {
  alerts: AlertStore;
  runs: {
    get(id: string): Promise<RunRecord | null>;
    list(filter: RunFilter): Promise<RunRecord[]>;
    /** Each policy's newest run (when it started is all a check reads); lets a check read them all with one query. */
    latestSummaryPerPolicy?(): Promise<Map<string, Pick<RunRecord, 'startedAt'>>>;
  };
  logger: Logger;
  now?: () => Date;
  /** Lists the policy's storage; without it `check` skips stale and missing between runs. */
  checkStorage?: (policy: PolicyConfig, now: Date, signal?: AbortSignal) => Promise<StorageFact>;
  /** When the policy's queued or running run became due, if it has one (a run on its way is not overdue yet). */
  busySince?: (policy: string) => Date | undefined;
}

export class AlertEngine {
  private config: Pick<ResolvedConfig, 'clients' | 'policies' | 'alerts' | 'secrets'> | undefined;
  private channels = new Map<string, RoutedChannel>();
  private readonly now: () => Date;
  private logger: Logger;
  private checking: Promise<void> | undefined;
  /** When each policy was first scheduled (it never changes once recorded). */
  private readonly firstSeen = new Map<string, string>();

  constructor(private readonly deps: AlertEngineDeps) {
    this.now = deps.now ?? (() => new Date());
    this.logger = deps.logger;
  }

  /** The config and channels to use from now on (at start and after a reload). */
  configure(config: Pick<ResolvedConfig, 'clients' | 'policies' | 'alerts' | 'secrets'>, channels: Map<string, RoutedChannel>, logger?: Logger): void {
    this.config = config;
    this.channels = channels;
    if (logger) this.logger = logger;
  }

  /** Conditions a finished run shows, then the policy's heartbeat. Never throws. */
  async afterRun(policy: PolicyConfig, run: RunRecord, signal?: AbortSignal): Promise<void> {
    try {
      const { firing, resolved, resolvedKeys = [] } = judgeRun(run);
      for (const o of firing) await this.raise(policy, o, run, signal);
      for (const c of resolved) await this.resolve(policy, c, run, signal);
      for (const { condition, key } of resolvedKeys) await this.resolve(policy, condition, run, signal, key);
      await this.checkOverdue(policy, signal);
    } catch (err) {
      this.logger.error(`alert evaluation after run ${run.id} failed: ${(err as Error).message}`, { policy: policy.name });
    }
    // A heartbeat says how the newest backup verified: a coverage run of an older point is not that.
    if (policy.heartbeat && run.status !== 'cancelled' && run.verdict !== null && !run.coverage?.point) {
      await this.heartbeat(policy, run, signal).catch((err: unknown) => {
        this.logger.error(`heartbeat of ${policy.name} not recorded: ${(err as Error).message}`);
      });
    }
  }

  /**
   * Between runs: overdue verifications, stale or missing backups (listing the storage), reminders
   * of open incidents, and retries of failed deliveries. Calls do not overlap; a call while one
   * is going waits for it. Never throws.
   */
  async check(signal?: AbortSignal): Promise<void> {
    if (this.checking) return this.checking;
    this.checking = this.checkOnce(signal).finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async checkOnce(signal?: AbortSignal): Promise<void> {
    const config = this.config;
    if (!config) return;
    // The incidents open when the check starts: resolving what is not among them costs no query.
    // (An incident opened meanwhile by a run is resolved by a later run or check.)
    const open = new Set((await this.deps.alerts.openIncidents()).map((i) => incidentKey(i.policy, i.condition, i.key)));
    await this.checkPolicies(config.policies, open, signal);
    await this.guard('reminders', () => this.remind(signal));
    await this.guard('delivery retries', () => this.retryDeliveries(signal));
  }

  private async checkPolicies(policies: readonly PolicyConfig[], open: Set<string>, signal?: AbortSignal): Promise<void> {
    const latest = this.deps.runs.latestSummaryPerPolicy ? await this.deps.runs.latestSummaryPerPolicy() : undefined;
    // One statement each for what every policy writes (1,000 policies: 2 round trips, not 2,000).
    const unseen = policies.filter((p) => p.schedule && !this.firstSeen.has(p.name));
    await this.guard('first-seen times', async () => {
      for (const [name, state] of await this.deps.alerts.touchPolicies(unseen.map((p) => ({ policy: p.name, client: p.client })), this.now().toISOString())) {
        this.firstSeen.set(name, state.firstSeenAt);
      }
    });
    const checked: StorageCheck[] = [];
    // A few policies at a time: listing storage waits on disks and networks, not on us.
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < policies.length && !signal?.aborted) {
        const policy = policies[next++]!;
        await this.guard(`overdue check of ${policy.name}`, () => this.checkOverdue(policy, signal, latest ? { run: latest.get(policy.name) } : undefined, open));
        if (this.deps.checkStorage) await this.guard(`storage check of ${policy.name}`, () => this.checkStorage(policy, open, checked, signal));
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(CHECK_CONCURRENCY, policies.length) }, worker));
    } finally {
      await this.guard('recording the storage checks', () => this.deps.alerts.recordBackupChecks(checked));
    }
  }

  private async guard(what: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.logger.error(`${what} failed: ${(err as Error).message}`);
    }
  }

  // ---- conditions between runs ----------------------------------------------------------------

  /** The dead man's switch on backproof: a scheduled time passed (plus grace and jitter) and no run started. */
  async checkOverdue(policy: PolicyConfig, signal?: AbortSignal, known?: { run: Pick<RunRecord, 'startedAt'> | undefined }, open?: Set<string>): Promise<void> {
    const schedule = policy.schedule;
    if (!schedule) return;
    const now = this.now();
    let firstSeenAt = this.firstSeen.get(policy.name);
    if (firstSeenAt === undefined) {
      firstSeenAt = (await this.deps.alerts.touchPolicy(policy.name, policy.client, now.toISOString())).firstSeenAt;
      this.firstSeen.set(policy.name, firstSeenAt);
    }
    // A policy owes no run from before it was first seen.
    const due = previousRunTime(schedule, new Date(now.getTime() - schedule.graceMs - schedule.jitterMs), new Date(firstSeenAt));
    const last = known ? known.run : (await this.deps.runs.list({ policy: policy.name, limit: 1 }))[0];
    const pendingSince = this.deps.busySince?.(policy.name);
    const covered =
      !due ||
      (last !== undefined && Date.parse(last.startedAt) >= due.getTime()) ||
      (pendingSince !== undefined && pendingSince.getTime() >= due.getTime() && now.getTime() - pendingSince.getTime() < schedule.graceMs);
    if (covered) {
      await this.resolve(policy, 'overdue', undefined, signal, '', open);
      return;
    }
    const lastText = last ? `the last run started ${formatInstant(last.startedAt)}` : 'it has never run';
    await this.raise(
      policy,
      {
        condition: 'overdue',
        summary: `no verification for the run scheduled at ${formatInstant(due.toISOString())} (${schedule.text}, grace ${formatAge(schedule.graceMs)}); ${lastText}`,
        reasons: [{ code: 'overdue', message: `scheduled ${formatInstant(due.toISOString())}, not started within ${formatAge(schedule.graceMs)}; ${lastText}` }],
        ...(last ? { since: last.startedAt } : {}),
      },
      undefined,
      signal,
    );
  }

  /**
   * Cluster mode: whether a live worker may run the policy (`problem` undefined) or why none may;
   * raises or resolves the `no_worker` incident.
   */
  async checkPlacement(policy: PolicyConfig, problem: string | undefined, signal?: AbortSignal): Promise<void> {
    if (problem === undefined) {
      await this.resolve(policy, 'no_worker', undefined, signal);
      return;
    }
    await this.raise(policy, { condition: 'no_worker', summary: problem, reasons: [{ code: 'no_worker', message: problem }] }, undefined, signal);
  }

  /** Lists the policy's backups; what it found goes into `checked` (recorded together at the end of the check). */
  private async checkStorage(policy: PolicyConfig, open: Set<string>, checked: StorageCheck[], signal?: AbortSignal): Promise<void> {
    const now = this.now();
    let fact: StorageFact;
    try {
      fact = await this.deps.checkStorage!(policy, now, signal);
    } catch (err) {
      const message = (err as Error).message;
      checked.push({ policy: policy.name, client: policy.client, fact: { checkedAt: now.toISOString(), error: message } });
      this.logger.warn(`could not list the backups of ${policy.name}: ${message}`);
      return;
    }
    checked.push({
      policy: policy.name,
      client: policy.client,
      fact: { checkedAt: now.toISOString(), newestBackupAt: fact.newest?.backupTime ?? null, newestBackupKey: fact.newest?.key ?? null, newestBackupSize: fact.newest?.size ?? null, error: null },
    });
    const missing = fact.nothing ?? fact.missing;
    if (missing) {
      await this.raise(policy, { condition: 'missing', summary: missing, reasons: [{ code: fact.nothing ? 'no_backup' : 'missing_backup', message: missing }] }, undefined, signal);
    } else {
      await this.resolve(policy, 'missing', undefined, signal, '', open);
    }
    const rpo = policy.targets.rpoMs;
    if (rpo === undefined || !fact.newest) return;
    const ageMs = now.getTime() - Date.parse(fact.newest.backupTime);
    if (ageMs > rpo) {
      const message = `the newest backup ${fact.newest.key} is ${formatAge(ageMs)} old; the RPO target is ${formatAge(rpo)}`;
      await this.raise(policy, { condition: 'stale', summary: message, reasons: [{ code: 'stale_backup', message }], since: fact.newest.backupTime }, undefined, signal);
    } else {
      await this.resolve(policy, 'stale', undefined, signal, '', open);
    }
  }

  private async remind(signal?: AbortSignal): Promise<void> {
    const now = this.now().getTime();
    for (const incident of await this.deps.alerts.openIncidents()) {
      if (signal?.aborted) return;
      const policy = this.policy(incident.policy);
      if (!policy) {
        // The policy left the config: nothing will ever resolve its incidents.
        if (await this.deps.alerts.resolveIncident(incident.id, new Date(now).toISOString())) {
          this.logger.info(`closed the ${incident.condition} incident of ${incident.policy}: the policy is no longer in the config`);
        }
        continue;
      }
      if (policy.alerts.reminderAfterMs <= 0 || incident.lastNotifiedAt === null) continue;
      if (now - Date.parse(incident.lastNotifiedAt) < policy.alerts.reminderAfterMs) continue;
      const run = incident.runId ? await this.deps.runs.get(incident.runId) : null;
      await this.notify(policy, incident, incident.condition, 'reminder', incident.summary, run ?? undefined, signal);
    }
  }

  private async retryDeliveries(signal?: AbortSignal): Promise<void> {
    const config = this.config!;
    const pending = await this.deps.alerts.pendingDeliveries();
    if (pending.length === 0) return;
    const openIds = new Set((await this.deps.alerts.openIncidents()).map((i) => i.id));
    for (const d of pending) {
      if (signal?.aborted) return;
      const now = this.now();
      const routed = this.channels.get(d.channel);
      const policy = this.policy(d.policy);
      const tooOld = now.getTime() - Date.parse(d.createdAt) > config.alerts.retryForMs;
      // A firing or reminder of an incident that has since resolved would reopen it at the receiver.
      const superseded = d.state !== 'resolved' && d.incidentId !== null && !openIds.has(d.incidentId);
      if (!routed || !d.payload || tooOld || superseded) {
        const why = superseded
          ? 'not resent: the condition has resolved since'
          : !routed
            ? 'the channel is no longer configured'
            : tooOld
              ? `gave up after ${formatAge(config.alerts.retryForMs)} of retries`
              : 'nothing to resend';
        await this.deps.alerts.updateDelivery(d.id, { ok: false, attempts: d.attempts, rounds: d.rounds, error: `${d.error ?? 'failed'}; ${why}`, ...(d.detail ? { detail: d.detail } : {}), at: now.toISOString(), durationMs: d.durationMs, retryPending: false });
        continue;
      }
      const result = await routed.channel.deliver(d.payload as Alert, signal, { extraTo: policy?.alerts.to ?? [] });
      await this.deps.alerts.updateDelivery(d.id, {
        ok: result.ok,
        attempts: d.attempts + result.attempts,
        rounds: d.rounds + 1,
        ...(result.error !== undefined ? { error: result.error } : {}),
        ...(result.detail !== undefined ? { detail: result.detail } : {}),
        at: result.at,
        durationMs: d.durationMs + result.durationMs,
        retryPending: !result.ok && !result.permanent,
      });
      if (policy) await this.afterDelivery(policy, d.channel, d.condition ?? '', result, signal);
    }
  }

  // ---- incidents --------------------------------------------------------------------------------

  /** Opens the condition's incident and notifies, or, when it is already open, only updates it (no repeat). */
  private async raise(policy: PolicyConfig, o: Observation, run: RunRecord | undefined, signal?: AbortSignal): Promise<void> {
    const { incident, created } = await this.deps.alerts.openIncident({
      client: policy.client,
      policy: policy.name,
      condition: o.condition,
      key: o.key ?? '',
      openedAt: this.now().toISOString(),
      summary: o.summary,
      reasons: o.reasons,
      ...(run ? { runId: run.id } : {}),
      ...(o.since ? { since: o.since } : {}),
    });
    if (!created) {
      await this.deps.alerts.updateIncident(incident.id, { summary: o.summary, reasons: o.reasons, ...(run ? { runId: run.id } : {}), ...(o.since ? { since: o.since } : {}) });
      return;
    }
    this.logger.warn(`${o.condition}: ${policy.name}: ${o.summary}`, { policy: policy.name, incident: incident.id });
    await this.notify(policy, incident, o.condition, 'firing', o.summary, run, signal);
  }

  /** Resolves the condition's open incident, if any, and sends the resolution to whoever heard of it. */
  private async resolve(policy: PolicyConfig, condition: FiringCondition, run: RunRecord | undefined, signal?: AbortSignal, key = '', open?: Set<string>): Promise<void> {
    if (open && !open.has(incidentKey(policy.name, condition, key))) return;
    const incident = await this.deps.alerts.openIncidentFor(policy.name, condition, key);
    if (!incident) return;
    if (!(await this.deps.alerts.resolveIncident(incident.id, this.now().toISOString(), run?.id))) return;
    const recovered = condition === 'fail' || condition === 'error';
    const summary = recovered
      ? `verifies again${run ? `: run ${run.id.slice(0, 8)} ${run.verdict === 'pass' ? 'passed' : `ended ${run.verdict}`}` : ''} (was ${condition}: ${incident.summary})`
      : `${condition.replace('_', ' ')} is over${run ? ` (run ${run.id.slice(0, 8)})` : ''}; it was: ${incident.summary}`;
    this.logger.info(`resolved ${condition}: ${policy.name}`, { policy: policy.name, incident: incident.id });
    if (incident.notifications === 0) return;
    await this.notify(policy, incident, recovered ? 'recovery' : condition, 'resolved', summary, run, signal);
  }

  /** Builds the alert and delivers it to every channel routed for the policy and the incident's condition. */
  private async notify(
    policy: PolicyConfig,
    incident: Incident,
    condition: Alert['condition'],
    state: AlertState,
    summary: string,
    run: RunRecord | undefined,
    signal?: AbortSignal,
  ): Promise<void> {
    const now = this.now().toISOString();
    const client = this.config?.clients.find((c) => c.name === policy.client);
    const alert = createAlert({
      id: incident.id,
      condition,
      state,
      client: { name: policy.client, displayName: client?.displayName ?? policy.client },
      policy: policy.name,
      kind: policy.kind,
      occurredAt: now,
      summary,
      reasons: state === 'resolved' ? [] : incident.reasons,
      ...(run ? { run: alertRunOf(run) } : {}),
      ...(incident.since ? { since: incident.since } : {}),
    });
    const targets = this.route(policy, incident.condition, incident.key);
    await Promise.all(targets.map(([name, routed]) => this.deliver(policy, incident, alert, name, routed, signal)));
    await this.deps.alerts.markNotified(incident.id, now);
  }

  /** The policy's channels that take this condition; a delivery failure is not told over the failing channel. */
  private route(policy: PolicyConfig, condition: FiringCondition, key: string): [string, RoutedChannel][] {
    const out: [string, RoutedChannel][] = [];
    for (const name of policy.alerts.channels) {
      const routed = this.channels.get(name);
      if (!routed || !routed.conditions.has(condition)) continue;
      if (condition === 'delivery_failed' && name === key) continue;
      if (routed.channel instanceof EmailChannel && routed.channel.recipients(policy.alerts.to).length === 0) continue;
      out.push([name, routed]);
    }
    return out;
  }

  private async deliver(policy: PolicyConfig, incident: Incident, alert: Alert, name: string, routed: RoutedChannel, signal?: AbortSignal): Promise<void> {
    const createdAt = this.now().toISOString();
    const result = await routed.channel.deliver(alert, signal, { extraTo: policy.alerts.to });
    await this.deps.alerts.recordDelivery(this.deliveryRow(policy, result, createdAt, {
      kind: 'alert',
      incidentId: incident.id,
      channel: name,
      condition: alert.condition,
      state: alert.state,
      ...(alert.run ? { runId: alert.run.id } : {}),
      retryPending: !result.ok && !result.permanent,
      payload: alert,
    }));
    await this.afterDelivery(policy, name, incident.condition, result, signal);
  }

  /** A failed delivery opens `delivery_failed` for the channel; a good one ends it. */
  private async afterDelivery(policy: PolicyConfig, channel: string, condition: string, result: DeliveryResult, signal?: AbortSignal): Promise<void> {
    if (result.ok) {
      await this.resolve(policy, 'delivery_failed', undefined, signal, channel);
      return;
    }
    this.logger.warn(`alert delivery to ${channel} failed: ${result.error ?? 'no reason given'}`, { policy: policy.name, channel });
    if (condition === 'delivery_failed' || signal?.aborted) return;
    const message = `alerts of ${policy.name} to ${channel} could not be delivered: ${result.error ?? 'no reason given'}`;
    await this.raise(policy, { condition: 'delivery_failed', key: channel, summary: message, reasons: [{ code: 'delivery_failed', message }] }, undefined, signal);
  }

  private async heartbeat(policy: PolicyConfig, run: RunRecord, signal?: AbortSignal): Promise<void> {
    const createdAt = this.now().toISOString();
    const result = await pingHeartbeat(policy.heartbeat!, run.verdict === 'pass' ? 'pass' : 'fail', {
      runId: run.id,
      secrets: this.config?.secrets ?? [],
      ...(signal ? { signal } : {}),
    });
    if (!result.ok) this.logger.warn(`heartbeat of ${policy.name} failed: ${result.error ?? ''}`, { policy: policy.name });
    await this.deps.alerts.recordDelivery(this.deliveryRow(policy, result, createdAt, { kind: 'heartbeat', channel: 'heartbeat', runId: run.id, condition: run.verdict === 'pass' ? 'pass' : 'fail', retryPending: false }));
  }

  private deliveryRow(policy: PolicyConfig, result: DeliveryResult, createdAt: string, extra: Partial<DeliveryInput> & Pick<DeliveryInput, 'kind' | 'channel' | 'retryPending'>): DeliveryInput {
    return {
      client: policy.client,
      policy: policy.name,
      ok: result.ok,
      attempts: result.attempts,
      rounds: 1,
      ...(result.error !== undefined ? { error: result.error } : {}),
      ...(result.detail !== undefined ? { detail: result.detail } : {}),
      createdAt,
      at: result.at,
      durationMs: result.durationMs,
      ...extra,
    };
  }

  private policy(name: string): PolicyConfig | undefined {
    return this.config?.policies.find((p) => p.name === name);
  }
}

function incidentKey(policy: string, condition: string, key: string): string {
  return `${policy}\u0000${condition}\u0000${key}`;
}
