import type { RunRecord, RunStatus, Verdict } from '../core/domain.js';
import { iso, json, num } from './row-values.js';

/**
 * A `runs` row and the RunRecord it reads back as: shared by the run store (run-store.ts) and the
 * evidence chain (chain.ts), which hashes the record exactly as the store returns it.
 */
export const COLUMNS =
  'id, client, policy, kind, status, verdict, reasons, started_at, finished_at, duration_ms, host, pid, backproof_version, backup, phases, probes, metrics, sandbox, restored, boot, coverage';

export type Row = Record<string, unknown>;

/**
 * The COLUMNS of the `runs` row aliased `alias` as one JSON text (SQL), for reading many records
 * at once: one value a row instead of 21 typed ones is less to pass from the driver (a chain walk
 * reads a month of every client's records). `recordOfJson` gives the same RunRecord as `toRecord`
 * of the row: timestamps come as ISO 8601 with an offset, bigints as JSON numbers, jsonb embedded.
 */
export function recordJsonSql(alias: string): string {
  return `json_build_object(${COLUMNS.split(', ')
    .map((c) => `'${c}', ${alias}.${c}`)
    .join(', ')})::text`;
}

export function recordOfJson(text: string): RunRecord {
  return toRecord(JSON.parse(text) as Row);
}

export function toRecord(r: Row): RunRecord {
  return {
    id: String(r.id),
    client: String(r.client),
    policy: String(r.policy),
    kind: String(r.kind),
    status: String(r.status) as RunStatus,
    verdict: r.verdict === null || r.verdict === undefined ? null : (String(r.verdict) as Verdict),
    reasons: json(r.reasons) as RunRecord['reasons'],
    startedAt: iso(r.started_at) ?? '',
    finishedAt: iso(r.finished_at),
    durationMs: num(r.duration_ms),
    host: String(r.host),
    pid: Number(r.pid),
    backproofVersion: String(r.backproof_version),
    backup: json(r.backup) as RunRecord['backup'],
    phases: json(r.phases) as RunRecord['phases'],
    probes: json(r.probes) as RunRecord['probes'],
    metrics: json(r.metrics) as RunRecord['metrics'],
    sandbox: json(r.sandbox) as RunRecord['sandbox'],
    restored: json(r.restored) as RunRecord['restored'],
    // Only when there is one: records of other kinds read back (and hash) as they always did.
    ...(r.boot !== null && r.boot !== undefined ? { boot: json(r.boot) as NonNullable<RunRecord['boot']> } : {}),
    ...(r.coverage !== null && r.coverage !== undefined ? { coverage: json(r.coverage) as NonNullable<RunRecord['coverage']> } : {}),
  };
}
