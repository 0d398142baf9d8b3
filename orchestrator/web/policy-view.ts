import { buildStatus, type PolicyStatus, type StatusReport } from '../../reports/status-report.js';
import type { PolicyConfig } from '../core/config-types.js';
import { policyHeads } from '../evidence/policy-heads.js';
import { canSee, type Principal } from './auth.js';
import type { WebDeps } from './context.js';
import type { LastVerdict } from './web-queries.js';

/**
 * The board's model: `backproof status` (reports/status-report.ts) for the policies the principal
 * may see, each with a health the board colours by:
 * - ok (green): the last finished run passed, the newest backup is within the RPO, no alert open;
 * - fail (red): the last run failed: the backup is bad;
 * - error (orange): the last run could not verify (our side or the infrastructure);
 * - stale / alert (red): the last run passed, but the newest backup is now older than the RPO, or
 *   an alert condition is open (missing, overdue, size anomaly, RTO exceeded, ...);
 * - running / never (grey): no finished run yet.
 */
export type Health = 'ok' | 'fail' | 'error' | 'stale' | 'alert' | 'running' | 'never';

export interface PolicyView extends PolicyStatus {
  health: Health;
  /** The newest run with a verdict (a running run has none yet). */
  lastVerdict?: LastVerdict;
  /** A run of the policy is running now. */
  running: boolean;
  rtoMs?: number;
  displayName: string;
}

export const BAD_HEALTH: readonly Health[] = ['fail', 'error', 'stale', 'alert'];

export function visiblePolicies(deps: WebDeps, principal: Principal): PolicyConfig[] {
  return deps.config().policies.filter((p) => canSee(principal, p.client));
}

export async function policyViews(deps: WebDeps, principal: Principal): Promise<{ report: StatusReport; views: PolicyView[] }> {
  const config = deps.config();
  const policies = visiblePolicies(deps, principal);
  // Each policy's runs read once: for the status and for its last verdict.
  const heads = await policyHeads(deps.runs, policies.map((p) => p.name));
  const status = await buildStatus({ policies }, deps.runs, deps.alerts, deps.now(), heads);
  const visible = new Set(policies.map((p) => p.name));
  const report: StatusReport = {
    ...status,
    openIncidents: status.openIncidents.filter((i) => canSee(principal, i.client) && visible.has(i.policy)),
    failedDeliveries: status.failedDeliveries.filter((d) => canSee(principal, d.client)),
  };
  const names = new Map(config.clients.map((c) => [c.name, c.displayName]));
  const views = status.policies.map((p, i): PolicyView => {
    const head = heads.get(p.policy)?.lastVerdict;
    const last: LastVerdict | undefined = head?.verdict ? { verdict: head.verdict, startedAt: head.startedAt, endedAt: head.endedAt } : undefined;
    const running = p.inProgress !== undefined;
    const rto = policies[i]!.targets.rtoMs;
    return {
      ...p,
      health: healthOf(p, last, running),
      ...(last ? { lastVerdict: last } : {}),
      running,
      ...(rto !== undefined ? { rtoMs: rto } : {}),
      displayName: names.get(p.client) ?? p.client,
    };
  });
  return { report, views };
}

function healthOf(p: PolicyStatus, last: LastVerdict | undefined, running: boolean): Health {
  if (!last) return running ? 'running' : 'never';
  if (last.verdict === 'fail') return 'fail';
  if (last.verdict === 'error') return 'error';
  if (p.rpoMet === false) return 'stale';
  if (p.openConditions.length > 0) return 'alert';
  return 'ok';
}

/** localeCompare's order (the default locale), without looking the collator up on every call: a board of 1,000 policies sorts in ~10,000 comparisons. */
const byLocale = new Intl.Collator().compare;

/** Problems first, then the rest; by client and policy within each. */
export function boardOrder(a: PolicyView, b: PolicyView): number {
  const rank = (v: PolicyView): number => (BAD_HEALTH.includes(v.health) ? 0 : v.health === 'ok' ? 2 : 1);
  return rank(a) - rank(b) || byLocale(a.client, b.client) || byLocale(a.policy, b.policy);
}
