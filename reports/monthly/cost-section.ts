import type { StorageBudget } from '../../orchestrator/core/config-types.js';
import type { RunRecord } from '../../orchestrator/core/domain.js';

/**
 * What the period's verification cost in storage (RunMetrics.storage.cost, estimated from the
 * sources' prices), per currency, per policy, and against the client's monthly budget.
 */
export interface StorageCostSummary {
  currency: string;
  amount: number;
  /** Runs with a cost estimate in this currency. */
  runs: number;
  /** Of it, what coverage runs of older restore points cost. */
  coverageAmount: number;
  byPolicy: Array<{ policy: string; amount: number }>;
  /** The client's budget when it is in this currency; `over`: the period spent more. */
  budget?: { monthly: number; over: boolean };
}

export function storageCosts(records: readonly RunRecord[], budget: StorageBudget | undefined): StorageCostSummary[] {
  const byCurrency = new Map<string, { amount: number; runs: number; coverage: number; policies: Map<string, number> }>();
  for (const r of records) {
    const cost = r.metrics.storage?.cost;
    if (!cost) continue;
    const c = byCurrency.get(cost.currency) ?? { amount: 0, runs: 0, coverage: 0, policies: new Map<string, number>() };
    c.amount += cost.amount;
    c.runs++;
    if (r.coverage?.point) c.coverage += cost.amount;
    c.policies.set(r.policy, (c.policies.get(r.policy) ?? 0) + cost.amount);
    byCurrency.set(cost.currency, c);
  }
  const round = (n: number): number => Math.round(n * 1e6) / 1e6;
  return [...byCurrency]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([currency, c]) => ({
      currency,
      amount: round(c.amount),
      runs: c.runs,
      coverageAmount: round(c.coverage),
      byPolicy: [...c.policies].map(([policy, amount]) => ({ policy, amount: round(amount) })).sort((a, b) => b.amount - a.amount || a.policy.localeCompare(b.policy)),
      ...(budget && budget.currency === currency ? { budget: { monthly: budget.monthly, over: c.amount > budget.monthly } } : {}),
    }));
}

/** "Storage cost (estimated): 12.3400 USD over 31 runs (coverage runs 4.1000 USD), budget 50 USD: within" */
export function storageCostText(c: StorageCostSummary): string {
  const money = (n: number): string => `${n.toFixed(n < 0.01 && n > 0 ? 6 : 2)} ${c.currency}`;
  const budget = c.budget ? `; budget ${money(c.budget.monthly)} a month: ${c.budget.over ? 'OVER BUDGET' : `${Math.round((c.amount / Math.max(c.budget.monthly, 1e-9)) * 100)}% used`}` : '';
  return `Storage cost (estimated from the sources' prices): ${money(c.amount)} over ${c.runs} run${c.runs === 1 ? '' : 's'}${c.coverageAmount > 0 ? ` (coverage runs ${money(c.coverageAmount)})` : ''}${budget}`;
}
