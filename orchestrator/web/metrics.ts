import { clusterStatus } from '../cluster/cluster-status.js';
import { canSee, type Principal } from './auth.js';
import type { WebDeps } from './context.js';
import { policyViews } from './policy-view.js';
import { lastRestoreTimes, runCounts } from './web-queries.js';

/**
 * GET /metrics: Prometheus text exposition format 0.0.4, one series per policy the token may see
 * (a client token's scrape holds its own client's policies only). Labels: client, policy. Series
 * that have no value yet (no run, no target) are left out rather than reported as 0.
 *
 * - backproof_last_verdict{client,policy,verdict}: 1 for the verdict of the policy's newest
 *   finished run, 0 for the two others (verdict = pass|fail|error); all 0 before the first run.
 *   Alert on `backproof_last_verdict{verdict!="pass"} == 1`.
 * - backproof_last_run_timestamp_seconds: when that run ended (Unix seconds).
 * - backproof_last_success_timestamp_seconds: when the newest passing run started.
 * - backproof_backup_age_seconds: age of the newest backup known (from a run or a storage check).
 * - backproof_rpo_target_seconds, backproof_rto_target_seconds: the policy's targets.
 * - backproof_restore_seconds: the newest measured restore time (RTO: fetch start to readiness).
 * - backproof_open_alerts: open alert incidents of the policy.
 * - backproof_running: 1 while a run of the policy is running.
 * - backproof_runs_total{client,policy,verdict}: runs recorded with each verdict.
 * - backproof_client_info{client,display_name}: 1 per client, for display names in dashboards.
 */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const VERDICTS = ['pass', 'fail', 'error'] as const;

/** Escapes a label value: backslash, double quote and line feed, as the format requires. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Escapes HELP text: backslash and line feed. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function labels(l: Record<string, string>): string {
  return `{${Object.entries(l)
    .map(([k, v]) => `${k}="${escapeLabelValue(v)}"`)
    .join(',')}}`;
}

function number(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  return String(Math.round(v * 1000) / 1000);
}

class Exposition {
  private readonly families: { name: string; help: string; type: 'gauge' | 'counter'; samples: string[] }[] = [];

  family(name: string, type: 'gauge' | 'counter', help: string): (l: Record<string, string>, v: number) => void {
    const f = { name, help, type, samples: [] as string[] };
    this.families.push(f);
    return (l, v) => f.samples.push(`${name}${labels(l)} ${number(v)}`);
  }

  text(): string {
    return this.families.map((f) => [`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`, ...f.samples].join('\n')).join('\n') + '\n';
  }
}

export async function renderMetrics(deps: WebDeps, principal: Principal): Promise<string> {
  const [{ views }, restore, counts] = await Promise.all([policyViews(deps, principal), lastRestoreTimes(deps.runs), runCounts(deps.runs)]);
  const config = deps.config();
  const visible = new Set(views.map((v) => v.policy));
  const m = new Exposition();

  const verdict = m.family('backproof_last_verdict', 'gauge', "1 for the verdict (pass, fail, error) of the policy's newest finished run, 0 for the others; all 0 before its first run.");
  const lastRun = m.family('backproof_last_run_timestamp_seconds', 'gauge', "When the policy's newest finished run ended, in Unix seconds.");
  const lastSuccess = m.family('backproof_last_success_timestamp_seconds', 'gauge', "When the policy's newest passing run started, in Unix seconds.");
  const age = m.family('backproof_backup_age_seconds', 'gauge', "Age of the policy's newest backup known (from its last run or storage check), in seconds.");
  const rpo = m.family('backproof_rpo_target_seconds', 'gauge', 'The policy\'s RPO target: the newest backup must be younger than this, in seconds.');
  const rto = m.family('backproof_rto_target_seconds', 'gauge', "The policy's RTO target: a restore must be ready within this, in seconds.");
  const restoreSeconds = m.family('backproof_restore_seconds', 'gauge', 'The newest measured restore time (RTO: from the start of fetch until the restored system answered readiness), in seconds.');
  const openAlerts = m.family('backproof_open_alerts', 'gauge', 'Alert incidents of the policy open now.');
  const running = m.family('backproof_running', 'gauge', '1 while a run of the policy is running.');
  const runsTotal = m.family('backproof_runs_total', 'counter', 'Runs of the policy recorded in the evidence store, by verdict.');
  const clientInfo = m.family('backproof_client_info', 'gauge', "1 per client; display_name is the name its reports show.");

  for (const v of views) {
    const l = { client: v.client, policy: v.policy };
    for (const name of VERDICTS) verdict({ ...l, verdict: name }, v.lastVerdict?.verdict === name ? 1 : 0);
    if (v.lastVerdict) lastRun(l, Date.parse(v.lastVerdict.endedAt) / 1000);
    if (v.lastSuccessAt) lastSuccess(l, Date.parse(v.lastSuccessAt) / 1000);
    if (v.newestBackup) age(l, v.newestBackup.ageMs / 1000);
    if (v.rpoMs !== undefined) rpo(l, v.rpoMs / 1000);
    if (v.rtoMs !== undefined) rto(l, v.rtoMs / 1000);
    const r = restore.get(v.policy);
    if (r) restoreSeconds(l, r.ms / 1000);
    openAlerts(l, v.openConditions.length);
    running(l, v.running ? 1 : 0);
  }
  const clientOf = new Map(views.map((v) => [v.policy, v.client]));
  for (const c of counts.sort((a, b) => a.policy.localeCompare(b.policy) || a.verdict.localeCompare(b.verdict))) {
    if (visible.has(c.policy)) runsTotal({ client: clientOf.get(c.policy)!, policy: c.policy, verdict: c.verdict }, c.count);
  }
  for (const c of config.clients) {
    if (canSee(principal, c.name)) clientInfo({ client: c.name, display_name: c.displayName }, 1);
  }
  // Cluster mode: the workers and the queue are the operator's, not a client's.
  const cluster = principal.scope.kind === 'admin' && deps.runs.kind === 'postgres' ? await clusterStatus(deps.runs.executor, deps.runs.schema, config) : undefined;
  if (cluster) {
    const alive = m.family('backproof_worker_alive', 'gauge', '1 while the worker beats (cluster mode), 0 once it is presumed dead.');
    const busy = m.family('backproof_worker_running', 'gauge', 'Runs the worker is running now.');
    const capacity = m.family('backproof_worker_capacity', 'gauge', 'Runs the worker may run at once (--concurrency).');
    const beat = m.family('backproof_worker_last_heartbeat_seconds', 'gauge', "The worker's last heartbeat, in Unix seconds.");
    for (const w of cluster.workers) {
      const l = { worker: w.id.slice(0, 8), host: w.host, labels: Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(',') };
      alive(l, w.alive ? 1 : 0);
      busy(l, w.running);
      capacity(l, w.capacity);
      beat(l, Date.parse(w.heartbeatAt) / 1000);
    }
    m.family('backproof_queue_waiting_runs', 'gauge', 'Runs enqueued that no worker has started yet.')({}, cluster.waiting);
    if (cluster.oldestWaitingSince) {
      m.family('backproof_queue_oldest_waiting_seconds', 'gauge', 'How long the oldest waiting run has waited, in seconds.')({}, (deps.now().getTime() - Date.parse(cluster.oldestWaitingSince)) / 1000);
    }
  }
  return m.text();
}
