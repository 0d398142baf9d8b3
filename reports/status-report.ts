import type { ResolvedConfig } from '../orchestrator/core/config-types.js';
import type { Verdict } from '../orchestrator/core/domain.js';
import type { AlertStore, DeliveryRow, Incident } from '../orchestrator/evidence/alert-store.js';
import { policyHeads, type PolicyHead } from '../orchestrator/evidence/policy-heads.js';
import type { RunStore, RunSummary } from '../orchestrator/evidence/run-store.js';
import { formatAge } from '../orchestrator/core/format.js';
import { describeSchedule, nextRunTimes } from '../orchestrator/scheduler/schedule.js';

/**
 * `backproof status`: per policy, the last verdict, the last success, the newest backup's age
 * against the RPO, the next scheduled run and the open alert conditions; then the open incidents
 * and the deliveries that failed. Built from the evidence store and the config; the daemon
 * writes the same model to a snapshot file so that status can be read while it holds the
 * embedded store.
 */
export interface PolicyStatus {
  client: string;
  policy: string;
  kind: string;
  /** The newest run that has a verdict: a run in progress does not hide the last one's. */
  lastRun?: { id: string; verdict: Verdict | null; status: string; startedAt: string; reasons: string[] };
  /** A run of this policy in progress now. */
  inProgress?: { id: string; startedAt: string };
  lastSuccessAt?: string;
  newestBackup?: { key?: string; takenAt: string; ageMs: number; from: 'run' | 'storage check' };
  rpoMs?: number;
  /** true: within the RPO; false: stale; absent: no target or no backup known. */
  rpoMet?: boolean;
  schedule?: string;
  nextRunAt?: string;
  openConditions: string[];
  storageCheckError?: string;
}

export interface StatusReport {
  generatedAt: string;
  policies: PolicyStatus[];
  openIncidents: Incident[];
  /** Deliveries that failed in the last 7 days, newest first (retrying or given up). */
  failedDeliveries: DeliveryRow[];
}

const FAILED_DELIVERY_WINDOW_MS = 7 * 24 * 3_600_000;

/**
 * `heads`: each policy's runs as policyHeads reads them, when the caller has read them already
 * (the board reads them once for this and for each policy's last verdict).
 */
export async function buildStatus(
  config: Pick<ResolvedConfig, 'policies'>,
  runs: RunStore,
  alerts: AlertStore,
  now = new Date(),
  heads?: Map<string, PolicyHead>,
): Promise<StatusReport> {
  const [head, incidents, states, failed] = await Promise.all([
    heads ?? policyHeads(runs, config.policies.map((p) => p.name)),
    alerts.openIncidents(),
    alerts.policyStates(),
    alerts.deliveries({ failedOnly: true, since: new Date(now.getTime() - FAILED_DELIVERY_WINDOW_MS).toISOString(), limit: 50 }),
  ]);
  const stateOf = new Map(states.map((s) => [s.policy, s]));
  const conditionsOf = new Map<string, string[]>();
  for (const i of incidents) conditionsOf.set(i.policy, [...(conditionsOf.get(i.policy) ?? []), i.key ? `${i.condition}:${i.key}` : i.condition]);
  const policies = config.policies.map((p): PolicyStatus => {
    const { latest: newestRun, lastVerdict, lastPassAt } = head.get(p.name) ?? {};
    const running = newestRun?.status === 'running' ? newestRun : undefined;
    // A run in progress: the last verdict is the newest finished run's.
    const last: RunSummary | undefined = running ? lastVerdict : newestRun;
    const state = stateOf.get(p.name);
    const fromRun = last?.backup ? { key: last.backup.key, takenAt: last.backup.backupTime, at: Date.parse(last.startedAt) } : undefined;
    const fromCheck =
      state?.newestBackupAt && state.checkedAt ? { key: state.newestBackupKey ?? undefined, takenAt: state.newestBackupAt, at: Date.parse(state.checkedAt) } : undefined;
    const newest = fromCheck && (!fromRun || fromCheck.at > fromRun.at) ? { ...fromCheck, from: 'storage check' as const } : fromRun ? { ...fromRun, from: 'run' as const } : undefined;
    const ageMs = newest ? now.getTime() - Date.parse(newest.takenAt) : undefined;
    const next = p.schedule ? nextRunTimes(p.schedule, now, 1)[0] : undefined;
    return {
      client: p.client,
      policy: p.name,
      kind: p.kind,
      ...(last
        ? { lastRun: { id: last.id, verdict: last.verdict, status: last.status, startedAt: last.startedAt, reasons: [...new Set(last.reasons.map((r) => r.code))] } }
        : {}),
      ...(running ? { inProgress: { id: running.id, startedAt: running.startedAt } } : {}),
      ...(lastPassAt ? { lastSuccessAt: lastPassAt } : {}),
      ...(newest && ageMs !== undefined
        ? { newestBackup: { ...(newest.key !== undefined ? { key: newest.key } : {}), takenAt: newest.takenAt, ageMs, from: newest.from } }
        : {}),
      ...(p.targets.rpoMs !== undefined ? { rpoMs: p.targets.rpoMs } : {}),
      ...(p.targets.rpoMs !== undefined && ageMs !== undefined ? { rpoMet: ageMs <= p.targets.rpoMs } : {}),
      ...(p.schedule ? { schedule: describeSchedule(p.schedule) } : {}),
      ...(next ? { nextRunAt: next.toISOString() } : {}),
      openConditions: conditionsOf.get(p.name) ?? [],
      ...(state?.checkError ? { storageCheckError: state.checkError } : {}),
    };
  });
  return { generatedAt: now.toISOString(), policies, openIncidents: incidents, failedDeliveries: failed };
}

/** The terminal view. */
export function renderStatus(report: StatusReport, header: string[] = []): string {
  const now = Date.parse(report.generatedAt);
  const ago = (iso: string): string => `${formatAge(Math.max(0, now - Date.parse(iso)))} ago`;
  const when = (iso: string): string => iso.slice(0, 16).replace('T', ' ') + 'Z';
  const rows: string[][] = [['POLICY', 'CLIENT', 'LAST RUN', 'LAST SUCCESS', 'NEWEST BACKUP / RPO', 'NEXT RUN', 'OPEN ALERTS']];
  for (const p of report.policies) {
    const last = p.lastRun
      ? `${p.lastRun.status === 'finished' ? (p.lastRun.verdict ?? '?') : p.lastRun.status} ${ago(p.lastRun.startedAt)}${p.lastRun.reasons.length ? ` (${p.lastRun.reasons.slice(0, 2).join(', ')})` : ''}`
      : 'never';
    const lastCell = p.inProgress ? `${last === 'never' ? '' : `${last}; `}running for ${formatAge(Math.max(0, now - Date.parse(p.inProgress.startedAt)))}` : last;
    const backup = p.newestBackup
      ? `${formatAge(p.newestBackup.ageMs)} old${p.rpoMs !== undefined ? ` / ${formatAge(p.rpoMs)} ${p.rpoMet ? 'ok' : 'STALE'}` : ''}`
      : p.storageCheckError ? 'unknown (storage check failed)' : 'unknown';
    rows.push([
      p.policy,
      p.client,
      lastCell,
      p.lastSuccessAt ? ago(p.lastSuccessAt) : 'never',
      backup,
      p.nextRunAt ? when(p.nextRunAt) : p.schedule ? '-' : 'not scheduled',
      p.openConditions.length ? p.openConditions.join(', ') : '-',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = [...header, ...rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd())];
  if (report.openIncidents.length > 0) {
    lines.push('', 'Open alerts:');
    for (const i of report.openIncidents) {
      lines.push(`  ${i.policy}  ${i.condition}${i.key ? ` (${i.key})` : ''} since ${when(i.openedAt)}, notified ${i.notifications}x: ${i.summary}`);
    }
  }
  if (report.failedDeliveries.length > 0) {
    lines.push('', 'Failed alert deliveries (last 7 days):');
    for (const d of report.failedDeliveries) {
      const what = d.kind === 'heartbeat' ? `heartbeat (${d.condition ?? '?'})` : `${d.condition ?? '?'} ${d.state ?? ''}`.trim();
      lines.push(`  ${when(d.at)}  ${d.channel}  ${d.policy}  ${what}: ${d.retryPending ? 'retrying' : 'gave up'} after ${d.attempts} attempt(s): ${d.error ?? 'no reason'}`);
    }
  }
  return lines.join('\n');
}
