import type { ResolvedConfig } from '../core/config-types.js';
import type { SqlExecutor } from '../evidence/executor.js';
import { quoteSchema } from '../evidence/migrate.js';
import { formatAge } from '../core/format.js';
import { renderTable } from '../../reports/text-table.js';
import { configHash } from './cluster-worker.js';
import { WorkerRegistry, type WorkerInfo } from './worker-registry.js';

/** Cluster mode as `backproof status` shows it: the workers, and the runs waiting for one. */
export interface ClusterStatus {
  workers: Array<WorkerInfo & { sameConfig: boolean }>;
  /** Runs enqueued and not yet started by any worker. */
  waiting: number;
  oldestWaitingSince: string | null;
}

/** Undefined when this store has never seen a worker (not in cluster mode). */
export async function clusterStatus(db: SqlExecutor, schema: string, config: Pick<ResolvedConfig, 'clients' | 'policies'>, staleS = 30): Promise<ClusterStatus | undefined> {
  const s = quoteSchema(schema);
  const { rows: any } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${s}.workers`);
  if (!any[0]?.n) return undefined;
  const mine = configHash(config);
  const workers = (await new WorkerRegistry(db, schema).list(staleS)).map((w) => ({ ...w, sameConfig: w.configHash === mine }));
  const { rows } = await db.query<{ n: number; oldest: string | null }>(
    `SELECT count(*)::int AS n, min(s.enqueued_at) AS oldest FROM ${s}.run_slots s WHERE NOT EXISTS (SELECT 1 FROM ${s}.runs r WHERE r.id = s.run_id)`,
  );
  const oldest = rows[0]?.oldest;
  return { workers, waiting: rows[0]?.n ?? 0, oldestWaitingSince: oldest ? new Date(oldest).toISOString() : null };
}

export function renderClusterStatus(c: ClusterStatus, now = Date.now()): string {
  const rows = c.workers.map((w) => [
    w.id.slice(0, 8),
    `${w.host}:${w.pid}`,
    Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-',
    `${w.running}/${w.capacity}`,
    `${formatAge(Math.max(0, w.silentForS * 1000))} ago`,
    w.alive ? 'alive' : 'SILENT (presumed dead)',
    w.sameConfig ? 'same' : 'DIFFERS from this node\'s',
    w.docker,
  ]);
  const waiting = c.waiting === 0 ? 'no run waiting for a worker' : `${c.waiting} run(s) waiting for a worker, the oldest since ${formatAge(now - Date.parse(c.oldestWaitingSince!))} ago`;
  return `cluster: ${c.workers.filter((w) => w.alive).length} live worker(s); ${waiting}\n${renderTable(['WORKER', 'HOST:PID', 'LABELS', 'RUNNING', 'LAST BEAT', 'STATE', 'CONFIG', 'ENGINE'], rows)}`;
}
