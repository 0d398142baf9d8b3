import os from 'node:os';
import type { SqlExecutor } from '../evidence/executor.js';
import { quoteSchema } from '../evidence/migrate.js';

/** A worker as the cluster sees it (`workers` table, migration 0007). */
export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  labels: Record<string, string>;
  capacity: number;
  running: number;
  docker: string;
  configHash: string;
  startedAt: string;
  heartbeatAt: string;
  /** Seconds since the last heartbeat, by the database's clock. */
  silentForS: number;
  /** Not silent for too long (see `list`). */
  alive: boolean;
}

/** SQL: whether worker `w` (or the row in scope) has been silent too long, `staleS` the parameter. */
const STALE = (staleS: string, w = ''): string =>
  `(${w}heartbeat_at < now() - make_interval(secs => greatest(${staleS}::float8, 3 * ${w}heartbeat_ms / 1000.0)))`;

/** A run whose worker stopped beating. */
export interface OrphanRun {
  runId: string;
  policy: string;
  workerId: string;
  host: string;
  pid: number;
  docker: string;
  slot?: string;
  attempt?: number;
  queue?: string;
}

/** Worker rows and the queries over them; every time comparison uses the database's clock. */
export class WorkerRegistry {
  private readonly workers: string;
  private readonly runs: string;
  private readonly slots: string;

  constructor(
    private readonly db: SqlExecutor,
    schema: string,
  ) {
    const s = quoteSchema(schema);
    this.workers = `${s}.workers`;
    this.runs = `${s}.runs`;
    this.slots = `${s}.run_slots`;
  }

  async register(w: { id: string; labels: Record<string, string>; capacity: number; heartbeatMs: number; docker: string; configHash: string }): Promise<void> {
    await this.db.query(
      `INSERT INTO ${this.workers} (id, host, pid, labels, capacity, heartbeat_ms, docker, config_hash, started_at, heartbeat_at)
       VALUES ($1::uuid, $2, $3::int, $4::jsonb, $5::int, $6::int, $7, $8, now(), now())`,
      [w.id, os.hostname(), process.pid, JSON.stringify(w.labels), w.capacity, w.heartbeatMs, w.docker, w.configHash],
    );
  }

  async beat(id: string, running: number): Promise<void> {
    await this.db.query(`UPDATE ${this.workers} SET heartbeat_at = now(), running = $2::int WHERE id = $1::uuid`, [id, running]);
  }

  async stopped(id: string): Promise<void> {
    await this.db.query(`UPDATE ${this.workers} SET stopped_at = now(), running = 0 WHERE id = $1::uuid`, [id]);
  }

  /**
   * Workers not stopped, newest first, with how long each has been silent and whether that is
   * too long: over `staleS` and over three of its own heartbeat intervals.
   */
  async list(staleS: number): Promise<WorkerInfo[]> {
    const { rows } = await this.db.query<Record<string, unknown>>(
      `SELECT id, host, pid, labels, capacity, running, docker, config_hash, started_at, heartbeat_at,
              extract(epoch FROM now() - heartbeat_at)::float8 AS silent,
              ${STALE('$1')} AS stale
         FROM ${this.workers} WHERE stopped_at IS NULL ORDER BY started_at DESC`,
      [staleS],
    );
    return rows.map((r) => ({
      id: String(r.id),
      host: String(r.host),
      pid: Number(r.pid),
      labels: r.labels as Record<string, string>,
      capacity: Number(r.capacity),
      running: Number(r.running),
      docker: String(r.docker),
      configHash: String(r.config_hash),
      startedAt: new Date(r.started_at as string).toISOString(),
      heartbeatAt: new Date(r.heartbeat_at as string).toISOString(),
      silentForS: Number(r.silent),
      alive: r.stale !== true,
    }));
  }

  /**
   * Runs still `running` whose worker (matched by host and pid) has been silent for more than
   * `staleS` seconds, with the slot they verify when the scheduler enqueued them.
   */
  async orphanRuns(staleS: number): Promise<OrphanRun[]> {
    const { rows } = await this.db.query<Record<string, unknown>>(
      `SELECT r.id AS run_id, r.policy, w.id AS worker_id, w.host, w.pid, w.docker, s.slot, s.attempt, s.queue
         FROM ${this.runs} r
         JOIN ${this.workers} w ON w.host = r.host AND w.pid = r.pid AND w.started_at <= r.started_at
              -- the latest worker with that pid before the run (pids are reused)
              AND NOT EXISTS (SELECT 1 FROM ${this.workers} w2 WHERE w2.host = w.host AND w2.pid = w.pid
                              AND w2.started_at > w.started_at AND w2.started_at <= r.started_at)
         LEFT JOIN ${this.slots} s ON s.run_id = r.id
        WHERE r.status = 'running' AND (w.stopped_at IS NOT NULL OR ${STALE('$1', 'w.')})`,
      [staleS],
    );
    return rows.map((r) => ({
      runId: String(r.run_id),
      policy: String(r.policy),
      workerId: String(r.worker_id),
      host: String(r.host),
      pid: Number(r.pid),
      docker: String(r.docker),
      ...(r.slot ? { slot: new Date(r.slot as string).toISOString(), attempt: Number(r.attempt), queue: String(r.queue) } : {}),
    }));
  }

  /** Records an enqueued run; false when that (policy, slot, attempt) was enqueued before. */
  async claimSlot(runId: string, policy: string, slot: Date, attempt: number, queue: string): Promise<boolean> {
    const { rows } = await this.db.query(
      `INSERT INTO ${this.slots} (run_id, policy, slot, attempt, queue) VALUES ($1::uuid, $2, $3::timestamptz, $4::int, $5)
       ON CONFLICT DO NOTHING RETURNING run_id`,
      [runId, policy, slot.toISOString(), attempt, queue],
    );
    return rows.length === 1;
  }
}
