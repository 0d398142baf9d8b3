import type { Reason, RunRecord } from '../core/domain.js';
import { quoteSchema } from './migrate.js';
import { iso, json } from './row-values.js';
import type { RunStore, RunSummary } from './run-store.js';

/**
 * What `status` and the board read of each policy's runs, in one statement: its newest run, its
 * newest run with a verdict, and when it last passed (coverage runs of older restore points
 * excluded: they are no word on the newest backup). Each is one probe of the (policy,
 * started_at, id) index; the second and third are skipped when the newest run already answers
 * them (it has a verdict; it passed), so a board of healthy policies costs one probe each. With
 * 1,045 policies this replaced three queries of a probe per policy each.
 */
export interface PolicyHead {
  /** The newest run (any status). */
  latest?: RunSummary;
  /** The newest run that has a verdict (a running run has none yet), with when it ended. */
  lastVerdict?: RunSummary & { endedAt: string };
  /** When the newest passing run started. */
  lastPassAt?: string;
}

type Row = Record<string, unknown>;

const NOT_POINT = "(r.coverage IS NULL OR NOT (r.coverage ? 'point'))";
const COLUMNS = ['id', 'status', 'verdict', 'reasons', 'started_at', 'backup', 'finished_at'];

export async function policyHeads(runs: RunStore, policies: readonly string[]): Promise<Map<string, PolicyHead>> {
  if (policies.length === 0) return new Map();
  const table = `${quoteSchema(runs.schema)}.runs`;
  const pick = (alias: string): string => COLUMNS.map((c) => `${alias}.${c} AS ${alias}_${c}`).join(', ');
  const newest = (where: string, columns = COLUMNS.map((c) => `r.${c}`).join(', ')): string =>
    `SELECT ${columns} FROM ${table} r WHERE r.policy = names.policy AND ${where} ORDER BY r.started_at DESC, r.id DESC LIMIT 1`;
  // The conditions on l and v reference only the outer row: PostgreSQL checks them once per
  // policy before the probe (a one-time filter), and skips the probe when they are false.
  const { rows } = await runs.executor.query<Row>(
    `SELECT names.policy, ${pick('l')}, ${pick('v')}, p.started_at AS p_started_at
       FROM unnest($1::text[]) AS names(policy)
       LEFT JOIN LATERAL (${newest(NOT_POINT)}) l ON true
       LEFT JOIN LATERAL (${newest(`l.verdict IS NULL AND r.verdict IS NOT NULL AND ${NOT_POINT}`)}) v ON true
       LEFT JOIN LATERAL (${newest(`l.verdict IS DISTINCT FROM 'pass' AND v.verdict IS DISTINCT FROM 'pass' AND r.verdict = 'pass' AND ${NOT_POINT}`, 'r.started_at')}) p ON true`,
    [[...policies]],
  );
  const out = new Map<string, PolicyHead>();
  for (const r of rows) {
    const policy = String(r.policy);
    const latest = summary(r, 'l', policy);
    const lastVerdict = latest?.verdict ? latest : summary(r, 'v', policy);
    const lastPassAt = lastVerdict?.verdict === 'pass' ? lastVerdict.startedAt : (iso(r.p_started_at) ?? undefined);
    out.set(policy, { ...(latest ? { latest } : {}), ...(lastVerdict ? { lastVerdict } : {}), ...(lastPassAt ? { lastPassAt } : {}) });
  }
  return out;
}

function summary(r: Row, alias: string, policy: string): (RunSummary & { endedAt: string }) | undefined {
  const id = r[`${alias}_id`];
  if (id === null || id === undefined) return undefined;
  const verdict = r[`${alias}_verdict`];
  const startedAt = iso(r[`${alias}_started_at`]) ?? '';
  return {
    id: String(id),
    policy,
    status: String(r[`${alias}_status`]) as RunRecord['status'],
    verdict: verdict === null || verdict === undefined ? null : (String(verdict) as NonNullable<RunRecord['verdict']>),
    reasons: (json(r[`${alias}_reasons`]) as Reason[] | null) ?? [],
    startedAt,
    backup: json(r[`${alias}_backup`]) as RunRecord['backup'],
    endedAt: iso(r[`${alias}_finished_at`]) ?? startedAt,
  };
}
