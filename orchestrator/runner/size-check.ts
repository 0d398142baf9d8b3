import type { SizeAnomalyConfig } from '../core/config-types.js';
import type { ProbeResult } from '../core/domain.js';
import { formatBytes } from '../core/format.js';

/**
 * The size check against history: a backup much smaller than the policy's recent passing ones
 * ("shrunken") is a fail even when it restores, since a dump of a half-empty database restores
 * perfectly. The median of the last `lastRuns` passing runs is the yardstick, so one odd backup
 * in the history does not move it.
 */
export function judgeSize(size: number, history: readonly number[], cfg: SizeAnomalyConfig): ProbeResult {
  const started = performance.now();
  const expected = `at least ${cfg.minPercent}% of the median size of the last ${cfg.lastRuns} passing runs`;
  const base = { name: 'size vs history', type: 'sizeAnomaly', expected };
  if (history.length < cfg.minHistory) {
    return { ...base, actual: `not judged yet: ${history.length} of ${cfg.minHistory} passing runs needed`, pass: true, durationMs: 0 };
  }
  const median = medianOf(history);
  const percent = median > 0 ? (size / median) * 100 : 100;
  return {
    ...base,
    actual: `${formatBytes(size)}, ${percent.toFixed(1)}% of the median ${formatBytes(median)} (${history.length} runs)`,
    pass: percent >= cfg.minPercent,
    durationMs: Math.round(performance.now() - started),
  };
}

function medianOf(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
