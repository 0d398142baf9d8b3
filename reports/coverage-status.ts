import { belowTarget, coverageShare, withinEvery } from '../orchestrator/core/coverage.js';
import { formatAge } from '../orchestrator/core/format.js';
import type { CoverageConfig } from '../orchestrator/core/config-types.js';
import { renderTable } from './text-table.js';

/**
 * `backproof coverage`: each restore point a policy's selector accepts in storage now, with its
 * last verification and how old that proof is, and the share proven within `every`.
 *
 * A point's state: `proven` (a passing run within every), `failed` (its last verification
 * failed), `due` (verified, but longer ago than every), `never` (no run ever verified it).
 */
export interface ListedPoint {
  key: string;
  backupTime: Date;
}

/** A point's last verification (RunStore.pointProofs). */
export interface PointProofFacts {
  runId?: string;
  verdict: 'pass' | 'fail';
  at: string;
  passedAt?: string;
}

export type PointState = 'proven' | 'failed' | 'due' | 'never';

export interface PointRow {
  key: string;
  backupTime: string;
  newest: boolean;
  state: PointState;
  lastRunId?: string;
  lastVerdict?: 'pass' | 'fail';
  lastVerifiedAt?: string;
  /** Age of the last passing run (the proof), ms. */
  proofAgeMs?: number;
}

export interface PolicyCoverage {
  policy: string;
  client: string;
  location: string;
  everyMs: number;
  target?: number;
  points: number;
  proven: number;
  share: number;
  failed: number;
  never: number;
  /** Newest first. */
  rows: PointRow[];
  /** Below target, or an older point's last verification failed. */
  attention: boolean;
}

export function policyCoverage(
  policy: { name: string; client: string },
  location: string,
  config: Pick<CoverageConfig, 'everyMs' | 'target'>,
  points: readonly ListedPoint[],
  proofs: ReadonlyMap<string, PointProofFacts>,
  now: Date,
): PolicyCoverage {
  const sorted = [...points].sort((a, b) => b.backupTime.getTime() - a.backupTime.getTime() || a.key.localeCompare(b.key));
  const rows = sorted.map((p, i): PointRow => {
    const proof = proofs.get(p.key);
    const proofAgeMs = proof?.passedAt ? now.getTime() - Date.parse(proof.passedAt) : undefined;
    const state: PointState = !proof ? 'never' : proof.verdict === 'fail' ? 'failed' : withinEvery(proof.passedAt, now, config.everyMs) ? 'proven' : 'due';
    return {
      key: p.key,
      backupTime: p.backupTime.toISOString(),
      newest: i === 0,
      state,
      ...(proof?.runId ? { lastRunId: proof.runId } : {}),
      ...(proof ? { lastVerdict: proof.verdict, lastVerifiedAt: proof.at } : {}),
      ...(proofAgeMs !== undefined ? { proofAgeMs } : {}),
    };
  });
  // Proven as the runner counts it: a pass within every, whatever came after (coverage-plan.ts).
  const proven = sorted.filter((p) => withinEvery(proofs.get(p.key)?.passedAt, now, config.everyMs)).length;
  const share = coverageShare({ points: rows.length, proven }) ?? 1;
  const failed = rows.filter((r) => r.state === 'failed').length;
  return {
    policy: policy.name,
    client: policy.client,
    location,
    everyMs: config.everyMs,
    ...(config.target !== undefined ? { target: config.target } : {}),
    points: rows.length,
    proven,
    share,
    failed,
    never: rows.filter((r) => r.state === 'never').length,
    rows,
    attention: failed > 0 || belowTarget({ points: rows.length, proven, target: config.target ?? null }),
  };
}

const STATE_TEXT: Record<PointState, string> = {
  proven: 'proven',
  failed: 'FAILED',
  due: 'due (proof too old)',
  never: 'never verified',
};

export function renderCoverage(c: PolicyCoverage): string {
  const pct = (n: number): string => `${Math.floor(n * 1000) / 10}%`;
  const head = `${c.policy} (${c.client}): ${c.location}\n${c.proven} of ${c.points} restore points proven within ${formatAge(c.everyMs)} (${pct(c.share)}${c.target !== undefined ? `, target ${pct(c.target)}` : ''})${c.failed ? `; ${c.failed} failed` : ''}${c.never ? `; ${c.never} never verified` : ''}`;
  const rows = c.rows.map((r) => [
    r.key + (r.newest ? ' (newest)' : ''),
    r.backupTime.replace('T', ' ').slice(0, 16),
    STATE_TEXT[r.state],
    r.lastVerdict ? `${r.lastVerdict} ${r.lastVerifiedAt!.replace('T', ' ').slice(0, 16)}` : '-',
    r.proofAgeMs !== undefined ? formatAge(r.proofAgeMs) : '-',
    r.lastRunId ? r.lastRunId.slice(0, 8) : '-',
  ]);
  return `${head}\n${renderTable(['RESTORE POINT', 'TAKEN (UTC)', 'STATE', 'LAST VERIFIED', 'PROOF AGE', 'RUN'], rows)}`;
}
