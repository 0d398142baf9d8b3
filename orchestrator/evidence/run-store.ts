import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { PHASE_ORDER, type PhaseRecord, type Reason, type RunArtifact, type RunProgress, type RunRecord } from '../core/domain.js';
import { DEFAULTS } from '../core/defaults.js';
import { BackproofError } from '../core/errors.js';
import { sqlStateOf, type SqlExecutor } from './executor.js';
import { migrate, quoteSchema, type MigrateResult } from './migrate.js';
import { createPgliteExecutor, isPidAlive } from './pglite-executor.js';
import { iso, json, jsonOrNull } from './row-values.js';
import { RunJournal } from './run-journal.js';
import { COLUMNS, toRecord, type Row } from './run-row.js';
import { appendLink, EvidenceChain } from './chain.js';
import { loadOrCreateSigningKey, signerFromPem, type EvidenceSigner, type SignerSource } from './signing-key.js';

/**
 * The evidence store's queries over runs. Works the same over PostgreSQL and PGlite: records read
 * back are deep-equal to what was written (timestamps as ISO strings with ms precision, bigints as
 * numbers, jsonb as objects).
 */
export interface RunStoreOptions {
  /** A PostgreSQL URL; without it the embedded PGlite store in `dataDir` is used. */
  url?: string;
  dataDir: string;
  schema: string;
  /**
   * PEM Ed25519 private key that signs the evidence chain (config `evidence.signingKey`); without
   * it `<dataDir>/evidence-key.pem`, created when a run is first sealed.
   */
  signingKey?: string | undefined;
  /**
   * When finalizing a run fails because the store is unreachable, the waits before each retry;
   * after the last, the record goes to the journal in `<dataDir>/journal` (written at the next
   * open). Default DEFAULTS.finalizeRetryDelaysMs.
   */
  finalizeRetryDelaysMs?: readonly number[];
  /**
   * The embedded store held by another backproof process on this host is used through it (default
   * true; see PgliteOptions.join). The daemon and `serve` pass false: they hold it themselves.
   */
  join?: boolean;
}

export interface RunFilter {
  policy?: string;
  client?: string;
  /** At most this many runs, newest first. Default 100. */
  limit?: number;
  /** Only runs started at or after this ISO time. */
  since?: string;
}

export const DEFAULT_LIST_LIMIT = 100;

/** An artifact read back from the store. */
export interface StoredArtifact extends RunArtifact {
  sha256: string;
}

/** What `status` and the board show of a run (RunStore.latestSummaryPerPolicy). */
export type RunSummary = Pick<RunRecord, 'id' | 'policy' | 'status' | 'verdict' | 'reasons' | 'startedAt' | 'backup'>;
const SUMMARY_COLUMNS = 'id, policy, status, verdict, reasons, started_at, backup';

const FULL_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** A restore point's last verification (RunStore.pointProofs). */
export interface PointProof {
  runId: string;
  verdict: 'pass' | 'fail';
  /** When that run started (ISO). */
  at: string;
  /** When its newest passing run started, if one ever passed. */
  passedAt?: string;
}

/** SQL over the runs table as `r`: the run is not a coverage run of an older restore point. */
const NOT_POINT = "(r.coverage IS NULL OR NOT (r.coverage ? 'point'))";

/** Whether `id` is a whole run id (a UUID), as opposed to a prefix or anything else. */
export function isRunId(id: string): boolean {
  return FULL_ID.test(id);
}
const ID_PREFIX = /^[0-9a-f]{8}[0-9a-f-]{0,27}$/;

export class RunStore {
  /** Runs this open marked `aborted` (their process had died), for the caller to log. */
  abortedAtOpen: RunRecord[] = [];
  /** What the migration step did at open. */
  migration: MigrateResult = { applied: [], version: 0 };
  private readonly runs: string;
  private readonly artifacts: string;
  private signerPromise: Promise<EvidenceSigner | undefined> | undefined;
  /** Runs finalized or aborted since the last maintain() (each left a dead row version). */
  private changedRuns = 0;
  private closed = false;

  /** What the last open wrote back from the journal (records kept while the store was down). */
  journalReplay: { replayed: RunRecord[]; rejected: Array<{ run: RunRecord; why: string }> } = { replayed: [], rejected: [] };

  private constructor(
    readonly executor: SqlExecutor,
    readonly schema: string,
    private readonly signerSource: SignerSource | undefined,
    private readonly durability: { journal?: RunJournal; retryDelaysMs: readonly number[] },
  ) {
    this.runs = `${quoteSchema(schema)}.runs`;
    this.artifacts = `${quoteSchema(schema)}.run_artifacts`;
  }

  get kind(): SqlExecutor['kind'] {
    return this.executor.kind;
  }

  /** PostgreSQL when `url` is set, else PGlite in `dataDir`; migrates, then marks aborted runs. */
  static async open(opts: RunStoreOptions): Promise<RunStore> {
    quoteSchema(opts.schema); // refuse a bad name before connecting
    const dataDir = opts.dataDir;
    // A config key is checked now; the data dir's key is read or created when first needed.
    const signer: SignerSource =
      opts.signingKey !== undefined ? signerFromPem(opts.signingKey, 'evidence.signingKey in the config') : () => loadOrCreateSigningKey(dataDir);
    // Each engine's driver loads only when it is used: `pg` is not needed on the embedded store.
    const executor = opts.url ? await (await import('./pg-executor.js')).createPgExecutor(opts.url) : await createPgliteExecutor(opts.dataDir, { join: opts.join !== false });
    try {
      return await RunStore.over(executor, opts.schema, signer, { journal: new RunJournal(path.join(dataDir, 'journal')), retryDelaysMs: opts.finalizeRetryDelaysMs ?? DEFAULTS.finalizeRetryDelaysMs });
    } catch (err) {
      await executor.close();
      throw err;
    }
  }

  /**
   * A store over an executor the caller opened; the store's close() closes it. Without `signer`
   * the runs it seals are chained but unsigned (and `evidence verify` says so).
   */
  static async over(executor: SqlExecutor, schema: string, signer?: SignerSource, durability: { journal?: RunJournal; retryDelaysMs?: readonly number[] } = {}): Promise<RunStore> {
    const store = new RunStore(executor, schema, signer, { ...(durability.journal ? { journal: durability.journal } : {}), retryDelaysMs: durability.retryDelaysMs ?? [] });
    store.migration = await migrate(executor, schema);
    await store.sealUnsealed();
    // Records kept while the store was down go in before their runs could be taken for aborted.
    if (durability.journal) {
      store.journalReplay = await durability.journal.replay(
        (run, artifacts) => store.finalizeOnce(run, artifacts),
        (err) => err instanceof BackproofError && (err.code === 'run_not_running' || err.code === 'run_not_found'),
      );
    }
    store.abortedAtOpen = await store.markAbortedRuns();
    return store;
  }

  /** The store's evidence chain (verify, export), signing with the store's key. */
  evidenceChain(): EvidenceChain {
    const signer = async (): Promise<EvidenceSigner> => {
      const found = await this.signer();
      if (!found) throw new BackproofError('evidence_no_signer', 'this evidence store was opened without a signing key');
      return found;
    };
    return new EvidenceChain(this.executor, this.schema, this.signerSource === undefined ? undefined : signer);
  }

  /** Inserts a run with status `running`. */
  async recordStart(run: RunRecord): Promise<void> {
    try {
      await this.executor.query(
        `INSERT INTO ${this.runs} (${COLUMNS}) VALUES ($1::uuid, $2, $3, $4, $5, $6, $7::jsonb, $8::timestamptz,
           $9::timestamptz, $10::bigint, $11, $12::int, $13, $14::jsonb, $15::jsonb, $16::jsonb, $17::jsonb, $18::jsonb, $19::jsonb, $20::jsonb, $21::jsonb)`,
        values({ ...run, status: 'running' }),
      );
    } catch (err) {
      if (sqlStateOf(err) === '23505') {
        throw new BackproofError('run_exists', `run ${run.id} is already recorded`, { cause: err });
      }
      throw err;
    }
  }

  /**
   * Stores how far a running run got: its phases so far (the one under way last, `unfinished`), the
   * backup once picked, its metrics, and `progress.at` as its last progress (migration 0012). Only
   * while the stored run is `running`; once finalized or aborted this does nothing. If the run's
   * process dies, abortRun seals the record with these.
   */
  async recordProgress(id: string, progress: RunProgress): Promise<void> {
    await this.executor.query(
      `UPDATE ${this.runs} SET phases = $2::jsonb, backup = $3::jsonb, metrics = $4::jsonb, progress_at = $5::timestamptz
        WHERE id = $1::uuid AND status = 'running'`,
      [id, JSON.stringify(progress.phases), jsonOrNull(progress.backup), JSON.stringify(progress.metrics), progress.at],
    );
  }

  /**
   * Writes every field of `run` over the stored row; only while the stored run is `running`.
   * `artifacts` (a boot screenshot) are stored in the same transaction; the record names their
   * sha256 (see BootRecord.screenshot), so the seal covers them.
   */
  async finalize(run: RunRecord, artifacts: readonly RunArtifact[] = []): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.finalizeOnce(run, artifacts);
      } catch (err) {
        if (!isStoreDown(err)) throw err;
        const delay = this.durability.retryDelaysMs[attempt];
        if (delay !== undefined) {
          await new Promise((resolve) => setTimeout(resolve, delay));
          continue;
        }
        const journal = this.durability.journal;
        if (!journal) throw err;
        // The verdict is not lost: kept on this host, sealed into the chain at the next open.
        const file = await journal.write(run, artifacts);
        process.emitWarning(`the evidence store did not take run ${run.id} of ${run.policy} (${(err as Error).message}); its record is kept in ${file} and written at the next start`, {
          type: 'BackproofWarning',
          code: 'run_journaled',
        });
        return;
      }
    }
  }

  private async finalizeOnce(run: RunRecord, artifacts: readonly RunArtifact[]): Promise<void> {
    const signer = await this.signer();
    // The row and its chain link are written in one transaction: a run is never finalized unsealed.
    const sealed = await this.executor.transaction(async (q) => {
      const { rows } = await q<Row>(
        `UPDATE ${this.runs} SET client = $2, policy = $3, kind = $4, status = $5, verdict = $6, reasons = $7::jsonb,
           started_at = $8::timestamptz, finished_at = $9::timestamptz, duration_ms = $10::bigint, host = $11, pid = $12::int,
           backproof_version = $13, backup = $14::jsonb, phases = $15::jsonb, probes = $16::jsonb, metrics = $17::jsonb,
           sandbox = $18::jsonb, restored = $19::jsonb, boot = $20::jsonb, coverage = $21::jsonb
         WHERE id = $1::uuid AND status = 'running' RETURNING ${COLUMNS}`,
        values(run),
      );
      if (!rows[0]) return false;
      for (const a of artifacts) {
        // A coverage run restores an older point: never the yardstick for the policy's next runs.
        if (a.baseline && (run.verdict !== 'pass' || run.coverage?.point)) continue;
        if (a.baseline) {
          await q(`DELETE FROM ${this.artifacts} a USING ${this.runs} r WHERE a.run_id = r.id AND r.policy = $1 AND a.name = $2 AND a.run_id <> $3::uuid`, [run.policy, a.name, run.id]);
        }
        await q(
          `INSERT INTO ${this.artifacts} (run_id, name, media_type, sha256, size, bytes) VALUES ($1::uuid, $2, $3, $4, $5::int, $6::bytea)
           ON CONFLICT (run_id, name) DO UPDATE SET media_type = EXCLUDED.media_type, sha256 = EXCLUDED.sha256, size = EXCLUDED.size, bytes = EXCLUDED.bytes`,
          [run.id, a.name, a.mediaType, sha256Hex(a.bytes), a.bytes.length, a.bytes],
        );
      }
      await appendLink(q, this.schema, toRecord(rows[0]), signer);
      this.changedRuns++;
      return true;
    });
    if (sealed) return;
    const current = await this.get(run.id);
    if (!current) throw new BackproofError('run_not_found', `cannot finalize run ${run.id}: no such run in the evidence store`);
    throw new BackproofError(
      'run_not_running',
      `cannot finalize run ${run.id}: it is already ${current.status}${current.status === 'aborted' ? ' (its process was presumed dead)' : ''}; a run is finalized once`,
    );
  }

  /** A file kept with a run (e.g. `screenshot.png`), with the sha256 it was stored under. */
  async artifact(runId: string, name: string): Promise<StoredArtifact | null> {
    if (!isRunId(runId)) return null;
    const { rows } = await this.executor.query<Row>(`SELECT media_type, sha256, bytes FROM ${this.artifacts} WHERE run_id = $1::uuid AND name = $2`, [runId, name]);
    const r = rows[0];
    if (!r) return null;
    const bytes = Buffer.from(r.bytes as Uint8Array);
    return { name, mediaType: String(r.media_type), sha256: String(r.sha256), bytes };
  }

  /** A run by its id, or by a unique prefix of at least 8 hex characters (like git). */
  async get(id: string): Promise<RunRecord | null> {
    const key = id.trim().toLowerCase();
    if (FULL_ID.test(key)) {
      const { rows } = await this.executor.query<Row>(`SELECT ${COLUMNS} FROM ${this.runs} WHERE id = $1::uuid`, [key]);
      return rows[0] ? toRecord(rows[0]) : null;
    }
    if (!ID_PREFIX.test(key)) {
      throw new BackproofError('run_id_invalid', `${JSON.stringify(id)} is not a run id: give the full id or its first 8 or more hex characters`);
    }
    const { rows } = await this.executor.query<Row>(
      `SELECT ${COLUMNS} FROM ${this.runs} WHERE id::text LIKE $1 ORDER BY started_at DESC LIMIT 5`,
      [`${key}%`],
    );
    if (rows.length > 1) {
      const ids = rows.map((r) => String(r.id)).join(', ');
      throw new BackproofError('run_id_ambiguous', `run id prefix ${key} matches several runs (${ids}${rows.length === 5 ? ', ...' : ''}); give more characters`);
    }
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /** Runs newest first, filtered by policy, client and start time. */
  async list(filter: RunFilter = {}): Promise<RunRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (clause: string, value: unknown): void => {
      params.push(value);
      where.push(clause.replace('?', `$${params.length}`));
    };
    if (filter.policy !== undefined) add('policy = ?', filter.policy);
    if (filter.client !== undefined) add('client = ?', filter.client);
    if (filter.since !== undefined) add('started_at >= ?::timestamptz', filter.since);
    const limit = filter.limit ?? DEFAULT_LIST_LIMIT;
    if (!Number.isInteger(limit) || limit < 1) {
      throw new BackproofError('list_limit_invalid', `limit must be a whole number of 1 or more, not ${limit}`);
    }
    params.push(limit);
    const { rows } = await this.executor.query<Row>(
      `SELECT ${COLUMNS} FROM ${this.runs} ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY started_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map(toRecord);
  }

  /** Backup sizes of the policy's latest passing runs, newest first (for the size check). */
  async passingBackupSizes(policy: string, limit: number): Promise<number[]> {
    const { rows } = await this.executor.query<{ size: string | number }>(
      `SELECT (backup->>'size')::bigint AS size FROM ${this.runs} r
        WHERE policy = $1 AND verdict = 'pass' AND backup ? 'size' AND ${NOT_POINT}
        ORDER BY started_at DESC, id DESC LIMIT $2`,
      [policy, limit],
    );
    return rows.map((r) => Number(r.size));
  }

  /**
   * The artifact `name` of the policy's newest passing run that kept one (kind files: its file
   * list, which the next restore is compared with).
   */
  async lastPassingArtifact(policy: string, name: string): Promise<{ runId: string; startedAt: string; bytes: Buffer } | null> {
    const { rows } = await this.executor.query<Row>(
      `SELECT r.id, r.started_at, a.bytes FROM ${this.runs} r JOIN ${this.artifacts} a ON a.run_id = r.id AND a.name = $2
        WHERE r.policy = $1 AND r.verdict = 'pass' AND ${NOT_POINT} ORDER BY r.started_at DESC, r.id DESC LIMIT 1`,
      [policy, name],
    );
    const r = rows[0];
    if (!r) return null;
    return { runId: String(r.id), startedAt: new Date(r.started_at as string | Date).toISOString(), bytes: Buffer.from(r.bytes as Uint8Array) };
  }

  /**
   * Each policy's newest run (with `verdict`: its newest run of that verdict), by policy name.
   * The policies are found by skipping through the (policy, started_at, id) index from one name
   * to the next (a recursive CTE: one probe per policy), then each one's newest run is one more
   * probe: with 100,000 runs of 1,000 policies ~2,000 index probes, where DISTINCT ON sorted
   * every run.
   */
  async latestPerPolicy(verdict?: 'pass' | 'fail' | 'error'): Promise<Map<string, RunRecord>> {
    const rows = await this.latestRows(COLUMNS, verdict);
    return new Map(rows.map((r) => [String(r.policy), toRecord(r)]));
  }

  /**
   * As latestPerPolicy, only what `status` and the board show of each run: no phases, probes or
   * restore details, which are most of a record (with 1,000 policies, ~10x less to read and parse).
   */
  async latestSummaryPerPolicy(verdict?: 'pass' | 'fail' | 'error' | 'finished', policies?: readonly string[]): Promise<Map<string, RunSummary>> {
    const rows = await this.latestRows(SUMMARY_COLUMNS, verdict, policies);
    return new Map(
      rows.map((r) => [
        String(r.policy),
        {
          id: String(r.id),
          policy: String(r.policy),
          status: String(r.status) as RunSummary['status'],
          verdict: r.verdict === null || r.verdict === undefined ? null : (String(r.verdict) as NonNullable<RunSummary['verdict']>),
          reasons: json(r.reasons) as RunSummary['reasons'],
          startedAt: iso(r.started_at) ?? '',
          backup: json(r.backup) as RunSummary['backup'],
        },
      ]),
    );
  }

  /** `finished`: the newest run with a verdict (one still running has none). */
  private latestRows(columns: string, verdict?: 'pass' | 'fail' | 'error' | 'finished', policies?: readonly string[]): Promise<Row[]> {
    const only = policies ? { policies } : {};
    // Coverage runs of older restore points are not the policy's latest word on its newest backup.
    if (verdict === 'finished') return this.newestPerPolicy(columns, { ...only, where: `r.verdict IS NOT NULL AND ${NOT_POINT}` });
    return this.newestPerPolicy(columns, verdict ? { ...only, where: `r.verdict = $1 AND ${NOT_POINT}`, params: [verdict] } : { ...only, where: NOT_POINT });
  }

  /**
   * Retention coverage: for each restore point (backup key) the policy's runs have verified, its
   * newest verified run (pass or fail) and its newest pass. Served by the partial index of
   * migration 0013.
   */
  async pointProofs(policy: string): Promise<Map<string, PointProof>> {
    const { rows } = await this.executor.query<Row>(
      `SELECT DISTINCT ON (backup->>'key') backup->>'key' AS key, id, verdict, started_at FROM ${this.runs}
        WHERE policy = $1 AND verdict IN ('pass', 'fail') AND backup ? 'key'
        ORDER BY backup->>'key', started_at DESC, id DESC`,
      [policy],
    );
    const passes = await this.executor.query<Row>(
      `SELECT backup->>'key' AS key, max(started_at) AS passed_at FROM ${this.runs}
        WHERE policy = $1 AND verdict = 'pass' AND backup ? 'key' GROUP BY backup->>'key'`,
      [policy],
    );
    const passedAt = new Map(passes.rows.map((r) => [String(r.key), iso(r.passed_at) ?? '']));
    return new Map(
      rows.map((r) => {
        const key = String(r.key);
        const passed = passedAt.get(key);
        return [key, { runId: String(r.id), verdict: String(r.verdict) as 'pass' | 'fail', at: iso(r.started_at) ?? '', ...(passed ? { passedAt: passed } : {}) }];
      }),
    );
  }

  /** The estimated storage cost (RunMetrics.storage.cost) of the client's runs started at or after `sinceIso`, in `currency`. */
  async clientSpend(client: string, sinceIso: string, currency: string): Promise<number> {
    const { rows } = await this.executor.query<{ spent: string | number | null }>(
      `SELECT sum((metrics->'storage'->'cost'->>'amount')::numeric) AS spent FROM ${this.runs}
        WHERE client = $1 AND started_at >= $2::timestamptz AND metrics->'storage'->'cost'->>'currency' = $3`,
      [client, sinceIso, currency],
    );
    return Number(rows[0]?.spent ?? 0);
  }

  /** How many coverage runs of the policy started at or after `sinceIso` (a per-day or per-week budget). */
  async coverageRunsSince(policy: string, sinceIso: string): Promise<number> {
    const { rows } = await this.executor.query<{ n: string | number }>(
      `SELECT count(*) AS n FROM ${this.runs} r WHERE r.policy = $1 AND r.started_at >= $2::timestamptz AND r.coverage ? 'point'`,
      [policy, sinceIso],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * Each policy's newest run (started_at, then id) that matches `where`, as rows of `columns`: one
   * probe of the (policy, started_at, id) index per policy, whatever the number of runs. The
   * policies are `policies` when given, else every policy with runs (found by skipping through the
   * index from one name to the next). `where` and `columns` are SQL over the runs table as `r`,
   * written by the caller's code (never user input); `params` are `$1`.. of `where`.
   *
   * With a `where` most runs fail (boot IS NOT NULL on policies that never boot), name the
   * policies: a probe walks the policy's runs until one matches.
   */
  async newestPerPolicy(columns: string, opts: { policies?: readonly string[]; where?: string; params?: unknown[] } = {}): Promise<Row[]> {
    const params = [...(opts.params ?? [])];
    const filter = opts.where ? `AND (${opts.where})` : '';
    const latest = (names: string): string => `CROSS JOIN LATERAL (
         SELECT ${columns} FROM ${this.runs} r
          WHERE r.policy = ${names}.policy ${filter}
          ORDER BY r.started_at DESC, r.id DESC LIMIT 1
       ) latest`;
    if (opts.policies) {
      if (opts.policies.length === 0) return [];
      const { rows } = await this.executor.query<Row>(
        `SELECT latest.* FROM unnest($${params.push([...opts.policies])}::text[]) AS names(policy) ${latest('names')}`,
        params,
      );
      return rows;
    }
    const { rows } = await this.executor.query<Row>(
      `WITH RECURSIVE names AS (
         (SELECT policy FROM ${this.runs} ORDER BY policy LIMIT 1)
         UNION ALL
         SELECT (SELECT r.policy FROM ${this.runs} r WHERE r.policy > names.policy ORDER BY r.policy LIMIT 1)
           FROM names WHERE names.policy IS NOT NULL
       )
       SELECT latest.* FROM names ${latest('names')}
       WHERE names.policy IS NOT NULL`,
      params,
    );
    return rows;
  }

  /** Runs with status `running` (on any host), newest first. */
  async running(): Promise<RunRecord[]> {
    const { rows } = await this.executor.query<Row>(
      `SELECT ${COLUMNS} FROM ${this.runs} WHERE status = 'running' ORDER BY started_at DESC, id DESC`,
    );
    return rows.map(toRecord);
  }

  /**
   * Marks `aborted` the runs of this host still `running` whose process is gone, or whose pid is
   * this process's own (a pid reused after the old process died): call it before this process
   * starts runs of its own. Returns the runs marked.
   */
  async markAbortedRuns(): Promise<RunRecord[]> {
    const { rows } = await this.executor.query<{ id: string; pid: number }>(
      `SELECT id, pid FROM ${this.runs} WHERE status = 'running' AND host = $1`,
      [os.hostname()],
    );
    const marked: RunRecord[] = [];
    for (const r of rows) {
      const pid = Number(r.pid);
      if (pid !== process.pid && isPidAlive(pid)) continue;
      const record = await this.abortRun(r.id, `the backproof process (pid ${pid}) ended without finishing this run; its sandbox is reaped at the next run`);
      if (record) marked.push(record);
    }
    return marked;
  }

  /**
   * Marks a `running` run `aborted` (verdict error) with `message` and seals it; undefined when
   * it is not running any more (finished meanwhile, or marked by another node). The record keeps
   * what the run had stored as it went (recordProgress): its phases (the one under way stays
   * `unfinished`, those never reached are `skipped`), the backup and metrics; `finishedAt` is its
   * last progress (its start when it stored none), and the reason says when it was found.
   */
  async abortRun(id: string, message: string): Promise<RunRecord | undefined> {
    const signer = await this.signer();
    const found = new Date().toISOString();
    return this.executor.transaction(async (q) => {
      const { rows: current } = await q<Row>(`SELECT ${COLUMNS}, progress_at FROM ${this.runs} WHERE id = $1::uuid AND status = 'running' FOR UPDATE`, [id]);
      if (!current[0]) return undefined;
      const run = toRecord(current[0]);
      const lastSeen = iso(current[0].progress_at) ?? run.startedAt;
      const reasons: Reason[] = [{ code: 'aborted', message: `${message} (found at ${found}; last progress at ${lastSeen})` }];
      const durationMs = Math.max(0, Date.parse(lastSeen) - Date.parse(run.startedAt));
      const { rows: updated } = await q<Row>(
        `UPDATE ${this.runs} SET status = 'aborted', verdict = 'error', reasons = $2::jsonb, finished_at = $3::timestamptz,
           duration_ms = $4::bigint, phases = $5::jsonb
         WHERE id = $1::uuid AND status = 'running' RETURNING ${COLUMNS}`,
        [id, JSON.stringify(reasons), lastSeen, durationMs, JSON.stringify(abortedPhases(run.phases, lastSeen))],
      );
      if (!updated[0]) return undefined;
      this.changedRuns++;
      const aborted = toRecord(updated[0]);
      await appendLink(q, this.schema, aborted, signer);
      return aborted;
    });
  }

  /**
   * Seals the runs finalized before the evidence chain existed (listed by migration 0003), oldest
   * first, once; concurrent openers wait on the chain's head lock and find nothing left to seal.
   */
  private async sealUnsealed(): Promise<void> {
    const s = quoteSchema(this.schema);
    const { rows: pending } = await this.executor.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${s}.evidence_unsealed`);
    if (!pending[0]?.n) return;
    const signer = await this.signer();
    await this.executor.transaction(async (q) => {
      await q(`SELECT seq FROM ${s}.evidence_chain_head WHERE id = 1 FOR UPDATE`);
      const { rows } = await q<Row>(
        `SELECT ${COLUMNS} FROM ${this.runs} r WHERE r.status <> 'running'
            AND EXISTS (SELECT 1 FROM ${s}.evidence_unsealed u WHERE u.run_id = r.id)
            AND NOT EXISTS (SELECT 1 FROM ${s}.evidence_chain c WHERE c.run_id = r.id)
          ORDER BY r.started_at, r.id`,
      );
      for (const row of rows) await appendLink(q, this.schema, toRecord(row), signer);
      await q(`DELETE FROM ${s}.evidence_unsealed`);
    });
  }

  /** The signer, read (or created) once, when first needed. */
  private signer(): Promise<EvidenceSigner | undefined> {
    const source = this.signerSource;
    if (source === undefined) return Promise.resolve(undefined);
    if (typeof source !== 'function') return Promise.resolve(source);
    this.signerPromise ??= source().catch((err: unknown) => {
      this.signerPromise = undefined; // try again next time
      throw err;
    });
    return this.signerPromise;
  }

  /**
   * The embedded store has no autovacuum (PGlite runs no background workers): every finalized run
   * leaves its `running` row version behind, and without VACUUM the indexes keep pointing at all
   * of them (100,000 runs: the search for interrupted runs at every open read 25,000 pages, ~170
   * ms, and the table doubles). A process that changed runs vacuums and analyzes before it closes
   * the store, and the daemon after each check; then a vacuum touches only the pages changed since
   * (tens of ms). PostgreSQL servers vacuum themselves: nothing to do there. Says whether it ran.
   *
   * The planner's statistics are renewed only for tables whose size crossed a step of 10% (as
   * autovacuum's analyze threshold would): ANALYZE samples 30,000 rows of every table whatever
   * changed, ~1.5 s on a store of 100,000 runs, while its VACUUM takes ~20 ms.
   */
  async maintain(): Promise<boolean> {
    if (this.executor.kind !== 'pglite' || this.closed) return false;
    if (this.changedRuns === 0 && !(await this.neverVacuumed())) return false;
    this.changedRuns = 0;
    const before = await this.tableRows();
    await this.executor.exec('VACUUM');
    const stale = [...(await this.tableRows())].filter(([table, rows]) => statisticsStale(before.get(table), rows)).map(([table]) => table);
    if (stale.length > 0) await this.executor.exec(`ANALYZE ${stale.join(', ')}`);
    return true;
  }

  /** The store's tables (qualified, quoted) and their row counts as the last VACUUM or ANALYZE left them (-1: never). */
  private async tableRows(): Promise<Map<string, number>> {
    const { rows } = await this.executor.query<{ name: string; rows: number | string }>(
      `SELECT c.oid::regclass::text AS name, c.reltuples AS rows FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relkind = 'r'`,
      [this.schema],
    );
    return new Map(rows.map((r) => [r.name, Number(r.rows)]));
  }

  /** A store grown by a backproof that did not vacuum: most of the runs table never marked all-visible. */
  private async neverVacuumed(): Promise<boolean> {
    const { rows } = await this.executor.query<{ pages: string | number; visible: number }>(
      `SELECT pg_relation_size(c.oid) / 8192 AS pages, c.relallvisible AS visible FROM pg_class c WHERE c.oid = $1::regclass`,
      [this.runs],
    );
    const pages = Number(rows[0]?.pages ?? 0);
    return pages > 64 && Number(rows[0]?.visible ?? 0) * 2 < pages;
  }

  async close(): Promise<void> {
    if (!this.closed) await this.maintain().catch(() => undefined);
    this.closed = true;
    await this.executor.close();
  }

  // ---- Reports (reports/monthly) ----------------------------------------------------------------

  /** The client's runs started in [fromIso, toIso), oldest first, without a limit (a report's period). */
  async runsBetween(client: string, fromIso: string, toIso: string): Promise<RunRecord[]> {
    const { rows } = await this.executor.query<Row>(
      `SELECT ${COLUMNS} FROM ${this.runs} WHERE client = $1 AND started_at >= $2::timestamptz AND started_at < $3::timestamptz
        ORDER BY started_at ASC, id ASC`,
      [client, fromIso, toIso],
    );
    return rows.map(toRecord);
  }

  /** The policy's newest passing run started before `beforeIso`, if any. */
  async lastPassBefore(policy: string, beforeIso: string): Promise<RunRecord | null> {
    const { rows } = await this.executor.query<Row>(
      `SELECT ${COLUMNS} FROM ${this.runs} r WHERE policy = $1 AND verdict = 'pass' AND started_at < $2::timestamptz AND ${NOT_POINT}
        ORDER BY started_at DESC, id DESC LIMIT 1`,
      [policy, beforeIso],
    );
    return rows[0] ? toRecord(rows[0]) : null;
  }
}

/** Parameters $1..$21 in COLUMNS order. */
function values(run: RunRecord): unknown[] {
  return [
    run.id,
    run.client,
    run.policy,
    run.kind,
    run.status,
    run.verdict,
    JSON.stringify(run.reasons),
    run.startedAt,
    run.finishedAt,
    run.durationMs,
    run.host,
    run.pid,
    run.backproofVersion,
    jsonOrNull(run.backup),
    JSON.stringify(run.phases),
    JSON.stringify(run.probes),
    JSON.stringify(run.metrics),
    jsonOrNull(run.sandbox),
    jsonOrNull(run.restored),
    jsonOrNull(run.boot),
    jsonOrNull(run.coverage),
  ];
}

/**
 * An aborted run's phases: those it finished as they were, the one under way `unfinished` until
 * its last progress, the others `skipped` (never reached), in the usual order.
 */
function abortedPhases(phases: readonly PhaseRecord[], lastSeen: string): PhaseRecord[] {
  const out = phases.map((p): PhaseRecord => {
    if (p.outcome !== 'unfinished') return p;
    return {
      ...p,
      endedAt: lastSeen,
      durationMs: Math.max(0, Date.parse(lastSeen) - Date.parse(p.startedAt)),
      detail: 'did not finish: the run was aborted during this phase',
    };
  });
  const seen = new Set(out.map((p) => p.name));
  for (const name of PHASE_ORDER) {
    if (!seen.has(name)) out.push({ name, startedAt: lastSeen, endedAt: lastSeen, durationMs: 0, outcome: 'skipped', detail: 'not reached: the run was aborted' });
  }
  return out.sort((a, b) => PHASE_ORDER.indexOf(a.name) - PHASE_ORDER.indexOf(b.name));
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The store is down (not: the run is in a state it may not be finalized from). */
function isStoreDown(err: unknown): boolean {
  if (err instanceof BackproofError) return err.code === 'store_unreachable';
  const state = sqlStateOf(err);
  return state !== undefined && (state.startsWith('08') || state.startsWith('57P'));
}

/**
 * Whether a table's planner statistics are due, from its row count before and after this
 * process's VACUUM: never gathered, or the count moved into another 10% step (log base 1.1), so
 * the one process whose changes cross a step renews them, and a store of 100,000 runs analyzes
 * once per ~10,000 runs rather than at every close.
 */
export function statisticsStale(before: number | undefined, after: number): boolean {
  if (before === undefined || before < 0 || after < 0) return true;
  const step = (rows: number): number => (rows < 1 ? -1 : Math.floor(Math.log(rows) / Math.log(1.1)));
  return step(before) !== step(after);
}
