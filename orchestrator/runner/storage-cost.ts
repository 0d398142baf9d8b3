import type { StorageUsage } from '../../drivers/storage-driver.js';
import type { StoragePrices } from '../core/config-types.js';
import type { StorageMetrics } from '../core/domain.js';

/**
 * A run's storage cost from the source's price table: bytes downloaded at the egress price,
 * GET/HEAD and LIST requests per 1,000, and a restore from an archive tier at its class's
 * retrieval price per GB (the object's size). GB is 10^9 bytes, as the providers bill.
 */
export function storageMetrics(usage: StorageUsage, storageClass: string | undefined, prices: StoragePrices | undefined): StorageMetrics {
  const metrics: StorageMetrics = { requests: usage.requests, bytes: usage.bytes, ...(storageClass ? { storageClass } : {}), ...(usage.retrieval ? { retrieval: usage.retrieval } : {}) };
  if (!prices) return metrics;
  const lines: string[] = [];
  let amount = 0;
  const add = (cost: number, line: string): void => {
    if (cost <= 0) return;
    amount += cost;
    lines.push(`${line}: ${money(cost, prices.currency)}`);
  };
  add((usage.bytes / 1e9) * prices.egressPerGB, `${(usage.bytes / 1e9).toFixed(3)} GB downloaded at ${prices.egressPerGB}/GB`);
  const requests = usage.requests.get + usage.requests.head + usage.requests.restore;
  add((requests / 1000) * prices.per1000Requests, `${requests} GET/HEAD/restore request(s) at ${prices.per1000Requests}/1,000`);
  add((usage.requests.list / 1000) * prices.per1000Lists, `${usage.requests.list} LIST request(s) at ${prices.per1000Lists}/1,000`);
  if (usage.retrieval) {
    const perGB = prices.retrievalPerGB[usage.retrieval.storageClass.split(' ')[0]!] ?? prices.retrievalPerGB[usage.retrieval.storageClass];
    if (perGB === undefined) lines.push(`retrieval from ${usage.retrieval.storageClass}: no price in prices.retrievalPerGB`);
    else add((usage.retrieval.bytes / 1e9) * perGB, `${(usage.retrieval.bytes / 1e9).toFixed(3)} GB retrieved from ${usage.retrieval.storageClass} (${usage.retrieval.tier}) at ${perGB}/GB`);
  }
  return { ...metrics, cost: { currency: prices.currency, amount: Math.round(amount * 1e6) / 1e6, lines } };
}

function money(n: number, currency: string): string {
  return `${n < 0.01 ? n.toFixed(6) : n.toFixed(4)} ${currency}`;
}
