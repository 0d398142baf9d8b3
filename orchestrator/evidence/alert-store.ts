import { randomUUID } from 'node:crypto';
import { BackproofError } from '../core/errors.js';
import type { SqlExecutor } from './executor.js';
import { quoteSchema } from './migrate.js';
import { DEFAULT_LIST_LIMIT } from './run-store.js';
import { iso, json, jsonOrNull, num, str } from './row-values.js';

/**
 * The evidence store's alerting state (migration 0002): incidents (one per episode of an alert
 * condition of a policy), deliveries (one per alert or heartbeat sent to one channel) and
 * policy_state (what the daemon keeps per policy between runs). Runs over the executor of a
 * RunStore (`new AlertStore(store.executor, store.schema)`); the caller owns and closes it.
 * Like RunStore, records read back are deep-equal to what was written: times as ISO strings with
 * ms precision, bigints as numbers, jsonb as objects, absent values as null.
 */

export const INCIDENT_CONDITIONS = ['fail', 'error', 'stale', 'missing', 'size_anomaly', 'rto_exceeded', 'overdue', 'delivery_failed', 'no_worker', 'coverage'] as const;
export type IncidentCondition = (typeof INCIDENT_CONDITIONS)[number];

/** A reason as alerts carry it: a code (usually a domain.ts ReasonCode) and one line. */
export interface IncidentReason {
  code: string;
  message: string;
}

export interface Incident {
  id: string;
  client: string;
  policy: string;
  condition: IncidentCondition;
  /** Tells apart several incidents of one condition (e.g. the channel of a delivery_failed); '' by default. */
  key: string;
  openedAt: string;
  resolvedAt: string | null;
  lastNotifiedAt: string | null;
  /** Notifications sent: the firing plus reminders. */
  notifications: number;
  summary: string;
  reasons: IncidentReason[];
  /** The latest run that confirmed the condition. */
  runId: string | null;
  since: string | null;
  resolvedRunId: string | null;
}

export interface IncidentInput {
  client: string;
  policy: string;
  condition: IncidentCondition;
  key?: string;
  openedAt: string;
  summary: string;
  reasons: IncidentReason[];
  runId?: string | null;
  since?: string | null;
}

export interface IncidentPatch {
  summary?: string;
  reasons?: IncidentReason[];
  /** null clears; undefined leaves unchanged (likewise `since`). */
  runId?: string | null;
  since?: string | null;
}

export interface IncidentFilter {
  policy?: string;
  client?: string;
  /** Only incidents opened at or after this ISO time. */
  since?: string;
  /** At most this many, newest first. Default 100. */
  limit?: number;
}

/** `report`: a monthly report mailed by the daemon (migration 0005). */
export type DeliveryKind = 'alert' | 'heartbeat' | 'report';
export type DeliveryState = 'firing' | 'reminder' | 'resolved';

export interface DeliveryRow {
  id: string;
  incidentId: string | null;
  kind: DeliveryKind;
  client: string;
  policy: string;
  channel: string;
  /** The alert's condition (may be `recovery`); null for heartbeats. */
  condition: string | null;
  state: DeliveryState | null;
  runId: string | null;
  ok: boolean;
  /** Attempts over all rounds. */
  attempts: number;
  rounds: number;
  error: string | null;
  detail: string | null;
  /** When the first attempt started. */
  createdAt: string;
  /** When the last round ended. */
  at: string;
  durationMs: number;
  retryPending: boolean;
  /** The alert object delivered (no secrets by construction), kept for a later retry. */
  payload: object | null;
}

export interface DeliveryInput {
  /** Generated when absent. */
  id?: string;
  incidentId?: string | null;
  kind: DeliveryKind;
  client: string;
  policy: string;
  channel: string;
  condition?: string | null;
  state?: DeliveryState | null;
  runId?: string | null;
  ok: boolean;
  attempts: number;
  /** Default 1. */
  rounds?: number;
  error?: string | null;
  detail?: string | null;
  createdAt: string;
  at: string;
  durationMs: number;
  /** Default false. */
  retryPending?: boolean;
  payload?: object | null;
}

/** The outcome after another round; `error` and `detail` are replaced (absent means null). */
export interface DeliveryPatch {
  ok: boolean;
  attempts: number;
  rounds: number;
  error?: string | null;
  detail?: string | null;
  at: string;
  durationMs: number;
  retryPending: boolean;
}

export interface DeliveryFilter {
  policy?: string;
  client?: string;
  /** Only deliveries created at or after this ISO time. */
  since?: string;
  /** At most this many, newest first. Default 100. */
  limit?: number;
  /** Only deliveries that failed (ok = false). */
  failedOnly?: boolean;
}

export interface PolicyState {
  policy: string;
  client: string;
  /** When the daemon first scheduled the policy. */
  firstSeenAt: string;
  newestBackupAt: string | null;
  newestBackupKey: string | null;
  newestBackupSize: number | null;
  /** The last storage check between runs. */
  checkedAt: string | null;
  checkError: string | null;
}

export interface BackupCheckFact {
  checkedAt: string;
  newestBackupAt?: string | null;
  newestBackupKey?: string | null;
  newestBackupSize?: number | null;
  /** The check failed: the previous newest_backup_* values are kept. */
  error?: string | null;
}

const INCIDENT_COLUMNS =
  'id, client, policy, condition, "key", opened_at, resolved_at, last_notified_at, notifications, summary, reasons, run_id, since, resolved_run_id';
const DELIVERY_COLUMNS =
  'id, incident_id, kind, client, policy, channel, condition, state, run_id, ok, attempts, rounds, error, detail, created_at, "at", duration_ms, retry_pending, payload';
const POLICY_COLUMNS = 'policy, client, first_seen_at, newest_backup_at, newest_backup_key, newest_backup_size, checked_at, check_error';
/** Tries of openIncident when the open incident it collided with got resolved before it was read. */
const OPEN_TRIES = 5;

type Row = Record<string, unknown>;

export class AlertStore {
  private readonly incidentsTable: string;
  private readonly deliveriesTable: string;
  private readonly policyTable: string;

  constructor(
    readonly executor: SqlExecutor,
    readonly schema: string,
  ) {
    const q = quoteSchema(schema);
    this.incidentsTable = `${q}.incidents`;
    this.deliveriesTable = `${q}.deliveries`;
    this.policyTable = `${q}.policy_state`;
  }

  // -------------------------------------------------------------------------------------------
  // Incidents

  /**
   * Opens an incident, or returns the one already open for (policy, condition, key) with
   * `created: false` (it is left as it was). Safe under concurrency: of several callers at once,
   * exactly one gets `created: true`.
   */
  async openIncident(input: IncidentInput): Promise<{ incident: Incident; created: boolean }> {
    const key = input.key ?? '';
    for (let i = 0; i < OPEN_TRIES; i++) {
      const { rows } = await this.executor.query<Row>(
        `INSERT INTO ${this.incidentsTable} (id, client, policy, condition, "key", opened_at, summary, reasons, run_id, since)
         VALUES ($1::uuid, $2, $3, $4, $5, $6::timestamptz, $7, $8::jsonb, $9::uuid, $10::timestamptz)
         ON CONFLICT (policy, condition, "key") WHERE resolved_at IS NULL DO NOTHING
         RETURNING ${INCIDENT_COLUMNS}`,
        [
          randomUUID(),
          input.client,
          input.policy,
          input.condition,
          key,
          input.openedAt,
          input.summary,
          JSON.stringify(input.reasons),
          input.runId ?? null,
          input.since ?? null,
        ],
      );
      if (rows[0]) return { incident: toIncident(rows[0]), created: true };
      const existing = await this.openIncidentFor(input.policy, input.condition, key);
      if (existing) return { incident: existing, created: false };
      // The open one was resolved between our insert and our read: try again.
    }
    throw new BackproofError(
      'incident_open_failed',
      `cannot open a ${input.condition} incident for policy ${input.policy}: the open one kept changing under concurrent updates`,
    );
  }

  /** The open incident of (policy, condition, key), if any. */
  async openIncidentFor(policy: string, condition: IncidentCondition, key = ''): Promise<Incident | null> {
    const { rows } = await this.executor.query<Row>(
      `SELECT ${INCIDENT_COLUMNS} FROM ${this.incidentsTable}
        WHERE policy = $1 AND condition = $2 AND "key" = $3 AND resolved_at IS NULL`,
      [policy, condition, key],
    );
    return rows[0] ? toIncident(rows[0]) : null;
  }

  /** Open incidents, oldest first. */
  async openIncidents(filter: { policy?: string; client?: string } = {}): Promise<Incident[]> {
    const w = new Where();
    w.add('resolved_at IS NULL');
    if (filter.policy !== undefined) w.add('policy = ?', filter.policy);
    if (filter.client !== undefined) w.add('client = ?', filter.client);
    const { rows } = await this.executor.query<Row>(
      `SELECT ${INCIDENT_COLUMNS} FROM ${this.incidentsTable} ${w.sql()} ORDER BY opened_at ASC, id ASC`,
      w.params,
    );
    return rows.map(toIncident);
  }

  /** Incidents open or resolved, newest first (the history). */
  async incidents(filter: IncidentFilter = {}): Promise<Incident[]> {
    const w = new Where();
    if (filter.policy !== undefined) w.add('policy = ?', filter.policy);
    if (filter.client !== undefined) w.add('client = ?', filter.client);
    if (filter.since !== undefined) w.add('opened_at >= ?::timestamptz', filter.since);
    const limit = w.limit(filter.limit);
    const { rows } = await this.executor.query<Row>(
      `SELECT ${INCIDENT_COLUMNS} FROM ${this.incidentsTable} ${w.sql()} ORDER BY opened_at DESC, id DESC LIMIT ${limit}`,
      w.params,
    );
    return rows.map(toIncident);
  }

  /** Changes the given fields of an open incident; a resolved (or unknown) one is left alone. */
  async updateIncident(id: string, patch: IncidentPatch): Promise<void> {
    const sets: string[] = [];
    const params: unknown[] = [id];
    const set = (column: string, value: unknown, cast = ''): void => {
      params.push(value);
      sets.push(`${column} = $${params.length}${cast}`);
    };
    if (patch.summary !== undefined) set('summary', patch.summary);
    if (patch.reasons !== undefined) set('reasons', JSON.stringify(patch.reasons), '::jsonb');
    if (patch.runId !== undefined) set('run_id', patch.runId, '::uuid');
    if (patch.since !== undefined) set('since', patch.since, '::timestamptz');
    if (sets.length === 0) return;
    await this.executor.query(`UPDATE ${this.incidentsTable} SET ${sets.join(', ')} WHERE id = $1::uuid AND resolved_at IS NULL`, params);
  }

  /** Counts one notification (the firing or a reminder) sent at `at`. */
  async markNotified(id: string, at: string): Promise<void> {
    await this.executor.query(
      `UPDATE ${this.incidentsTable} SET notifications = notifications + 1, last_notified_at = $2::timestamptz WHERE id = $1::uuid`,
      [id, at],
    );
  }

  /** Resolves an open incident; true only for the one call that resolved it. */
  async resolveIncident(id: string, at: string, runId?: string | null): Promise<boolean> {
    const { rows } = await this.executor.query<Row>(
      `UPDATE ${this.incidentsTable} SET resolved_at = $2::timestamptz, resolved_run_id = $3::uuid
        WHERE id = $1::uuid AND resolved_at IS NULL RETURNING id`,
      [id, at, runId ?? null],
    );
    return rows.length === 1;
  }

  // -------------------------------------------------------------------------------------------
  // Deliveries

  async recordDelivery(input: DeliveryInput): Promise<DeliveryRow> {
    const { rows } = await this.executor.query<Row>(
      `INSERT INTO ${this.deliveriesTable} (${DELIVERY_COLUMNS})
       VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, $8, $9::uuid, $10::boolean, $11::int, $12::int, $13, $14,
               $15::timestamptz, $16::timestamptz, $17::bigint, $18::boolean, $19::jsonb)
       RETURNING ${DELIVERY_COLUMNS}`,
      [
        input.id ?? randomUUID(),
        input.incidentId ?? null,
        input.kind,
        input.client,
        input.policy,
        input.channel,
        input.condition ?? null,
        input.state ?? null,
        input.runId ?? null,
        input.ok,
        input.attempts,
        input.rounds ?? 1,
        input.error ?? null,
        input.detail ?? null,
        input.createdAt,
        input.at,
        input.durationMs,
        input.retryPending ?? false,
        jsonOrNull(input.payload),
      ],
    );
    return toDelivery(rows[0]!);
  }

  /** Records the outcome after another round of attempts. */
  async updateDelivery(id: string, patch: DeliveryPatch): Promise<void> {
    await this.executor.query(
      `UPDATE ${this.deliveriesTable} SET ok = $2::boolean, attempts = $3::int, rounds = $4::int, error = $5, detail = $6,
         "at" = $7::timestamptz, duration_ms = $8::bigint, retry_pending = $9::boolean
       WHERE id = $1::uuid`,
      [id, patch.ok, patch.attempts, patch.rounds, patch.error ?? null, patch.detail ?? null, patch.at, patch.durationMs, patch.retryPending],
    );
  }

  /** Deliveries waiting for a retry, oldest first. */
  async pendingDeliveries(): Promise<DeliveryRow[]> {
    const { rows } = await this.executor.query<Row>(
      `SELECT ${DELIVERY_COLUMNS} FROM ${this.deliveriesTable} WHERE retry_pending ORDER BY created_at ASC, id ASC`,
    );
    return rows.map(toDelivery);
  }

  /** Deliveries newest first. */
  async deliveries(filter: DeliveryFilter = {}): Promise<DeliveryRow[]> {
    const w = new Where();
    if (filter.policy !== undefined) w.add('policy = ?', filter.policy);
    if (filter.client !== undefined) w.add('client = ?', filter.client);
    if (filter.since !== undefined) w.add('created_at >= ?::timestamptz', filter.since);
    if (filter.failedOnly) w.add('NOT ok');
    const limit = w.limit(filter.limit);
    const { rows } = await this.executor.query<Row>(
      `SELECT ${DELIVERY_COLUMNS} FROM ${this.deliveriesTable} ${w.sql()} ORDER BY created_at DESC, id DESC LIMIT ${limit}`,
      w.params,
    );
    return rows.map(toDelivery);
  }

  // -------------------------------------------------------------------------------------------
  // Policy state

  /** The policy's state, created with first_seen_at = `at` when absent (never moved after). */
  async touchPolicy(policy: string, client: string, at: string): Promise<PolicyState> {
    return (await this.touchPolicies([{ policy, client }], at)).get(policy)!;
  }

  /** touchPolicy for many policies in one statement (a check of 1,000 policies is one round trip, not 1,000). */
  async touchPolicies(policies: ReadonlyArray<{ policy: string; client: string }>, at: string): Promise<Map<string, PolicyState>> {
    if (policies.length === 0) return new Map();
    const { rows } = await this.executor.query<Row>(
      `INSERT INTO ${this.policyTable} (policy, client, first_seen_at)
       SELECT p, c, $3::timestamptz FROM unnest($1::text[], $2::text[]) AS t(p, c)
       ON CONFLICT (policy) DO UPDATE SET client = EXCLUDED.client
       RETURNING ${POLICY_COLUMNS}`,
      [policies.map((p) => p.policy), policies.map((p) => p.client), at],
    );
    return new Map(rows.map((r) => [String(r.policy), toPolicyState(r)]));
  }

  /**
   * Records a storage check between runs (creating the row, first_seen_at = checkedAt, when
   * absent). A successful check sets newest_backup_* (absent means none found) and clears
   * check_error; a failed one (`error` set) records the error and keeps the previous values.
   */
  async recordBackupCheck(policy: string, client: string, fact: BackupCheckFact): Promise<void> {
    await this.recordBackupChecks([{ policy, client, fact }]);
  }

  /** recordBackupCheck for many policies in one statement (each policy once; a failed check is one with check_error). */
  async recordBackupChecks(checks: ReadonlyArray<{ policy: string; client: string; fact: BackupCheckFact }>): Promise<void> {
    if (checks.length === 0) return;
    const failed = (f: BackupCheckFact): boolean => f.error !== undefined && f.error !== null;
    const column = <T>(pick: (f: BackupCheckFact) => T): T[] => checks.map((c) => pick(c.fact));
    await this.executor.query(
      `INSERT INTO ${this.policyTable} AS s (${POLICY_COLUMNS})
       SELECT p, c, at, nb_at, nb_key, nb_size, at, err
         FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[], $6::bigint[], $7::text[])
              AS t(p, c, at, nb_at, nb_key, nb_size, err)
       ON CONFLICT (policy) DO UPDATE SET
         client = EXCLUDED.client,
         checked_at = EXCLUDED.checked_at,
         check_error = EXCLUDED.check_error,
         newest_backup_at = CASE WHEN EXCLUDED.check_error IS NOT NULL THEN s.newest_backup_at ELSE EXCLUDED.newest_backup_at END,
         newest_backup_key = CASE WHEN EXCLUDED.check_error IS NOT NULL THEN s.newest_backup_key ELSE EXCLUDED.newest_backup_key END,
         newest_backup_size = CASE WHEN EXCLUDED.check_error IS NOT NULL THEN s.newest_backup_size ELSE EXCLUDED.newest_backup_size END`,
      [
        checks.map((c) => c.policy),
        checks.map((c) => c.client),
        column((f) => f.checkedAt),
        column((f) => (failed(f) ? null : (f.newestBackupAt ?? null))),
        column((f) => (failed(f) ? null : (f.newestBackupKey ?? null))),
        column((f) => (failed(f) ? null : (f.newestBackupSize ?? null))),
        column((f) => (failed(f) ? f.error : null)),
      ],
    );
  }

  /** Every policy's state, by policy name. */
  async policyStates(): Promise<PolicyState[]> {
    const { rows } = await this.executor.query<Row>(`SELECT ${POLICY_COLUMNS} FROM ${this.policyTable} ORDER BY policy ASC`);
    return rows.map(toPolicyState);
  }

  async policyState(policy: string): Promise<PolicyState | null> {
    const { rows } = await this.executor.query<Row>(`SELECT ${POLICY_COLUMNS} FROM ${this.policyTable} WHERE policy = $1`, [policy]);
    return rows[0] ? toPolicyState(rows[0]) : null;
  }
}

/** A WHERE clause built from `?` placeholders, numbered $1..$n in order. */
class Where {
  readonly params: unknown[] = [];
  private readonly clauses: string[] = [];

  add(clause: string, ...values: unknown[]): void {
    let text = clause;
    for (const value of values) {
      this.params.push(value);
      text = text.replace('?', `$${this.params.length}`);
    }
    this.clauses.push(text);
  }

  /** The checked limit, inlined as a literal (a whole number, so safe). */
  limit(limit: number = DEFAULT_LIST_LIMIT): number {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new BackproofError('list_limit_invalid', `limit must be a whole number of 1 or more, not ${limit}`);
    }
    return limit;
  }

  sql(): string {
    return this.clauses.length ? `WHERE ${this.clauses.join(' AND ')}` : '';
  }
}

function toIncident(r: Row): Incident {
  return {
    id: String(r.id),
    client: String(r.client),
    policy: String(r.policy),
    condition: String(r.condition) as IncidentCondition,
    key: String(r.key),
    openedAt: iso(r.opened_at) ?? '',
    resolvedAt: iso(r.resolved_at),
    lastNotifiedAt: iso(r.last_notified_at),
    notifications: Number(r.notifications),
    summary: String(r.summary),
    reasons: (json(r.reasons) ?? []) as IncidentReason[],
    runId: str(r.run_id),
    since: iso(r.since),
    resolvedRunId: str(r.resolved_run_id),
  };
}

function toDelivery(r: Row): DeliveryRow {
  return {
    id: String(r.id),
    incidentId: str(r.incident_id),
    kind: String(r.kind) as DeliveryKind,
    client: String(r.client),
    policy: String(r.policy),
    channel: String(r.channel),
    condition: str(r.condition),
    state: str(r.state) as DeliveryState | null,
    runId: str(r.run_id),
    ok: Boolean(r.ok),
    attempts: Number(r.attempts),
    rounds: Number(r.rounds),
    error: str(r.error),
    detail: str(r.detail),
    createdAt: iso(r.created_at) ?? '',
    at: iso(r.at) ?? '',
    durationMs: Number(r.duration_ms),
    retryPending: Boolean(r.retry_pending),
    payload: json(r.payload) as object | null,
  };
}

function toPolicyState(r: Row): PolicyState {
  return {
    policy: String(r.policy),
    client: String(r.client),
    firstSeenAt: iso(r.first_seen_at) ?? '',
    newestBackupAt: iso(r.newest_backup_at),
    newestBackupKey: str(r.newest_backup_key),
    newestBackupSize: num(r.newest_backup_size),
    checkedAt: iso(r.checked_at),
    checkError: str(r.check_error),
  };
}
