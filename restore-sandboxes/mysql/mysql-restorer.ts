import { randomBytes } from 'node:crypto';
import { pipeline, type Readable } from 'node:stream';
import { restoreTarget, type PolicyConfig } from '../../orchestrator/core/config-types.js';
import { DEFAULTS } from '../../orchestrator/core/defaults.js';
import type { ProbeResult } from '../../orchestrator/core/domain.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { peek } from '../../orchestrator/core/integrity.js';
import { decompress, decompressInSandbox } from '../compression.js';
import { baselineOf, runSqlProbes } from '../probes/sql-probes.js';
import { emptyDatabaseReasons, sandboxLimits, type Inspection, type RestoreContext, type RestoreOutcome, type Restorer } from '../restorer.js';
import type { Sandbox, SandboxSpec } from '../sandbox-runtime.js';
import { truncate } from '../bytes.js';
import { detectMysqlDump } from './dump-format.js';
import { detectMariabackupStream, isXbstream, restoreMariabackup } from './mariabackup-restore.js';
import { MysqlDumpFilter } from './dump-filter.js';
import { literal, MYSQL_DIALECT, quoteIdent } from './mysql-sql.js';
import { firstErrorLine, restoreFailure } from './restore-failure.js';
import { timeoutSignal } from '../../orchestrator/core/timeout-signal.js';

const USER = 'mysql';
const DATA_DIR = '/var/lib/mysql';
const SOCKET = '/tmp/mysqld.sock';
const LOG_FILE = '/tmp/mysqld.log';
const PID_FILE = '/tmp/mysqld.pid';
/** Databases of the server itself, never the one probed. */
const SYSTEM_DATABASES = new Set(['mysql', 'sys', 'information_schema', 'performance_schema']);
/** Tables counted exactly (count(*)) after a restore; beyond, the statistics' estimate. */
const COUNTED_TABLES = 1000;
const COUNT_BATCH = 100;
const COUNT_TIMEOUT_S = 120;


/**
 * The server's options (exported for the benchmark's by-hand baseline). The sandbox is
 * disposable: durability off (no doublewrite, log flushed once a second, no binary log) makes
 * restores faster; no TCP, only the socket in /tmp; no LOAD DATA LOCAL; server files out of
 * reach: `--secure-file-priv=/mnt` (empty in Debian images, and on the sandbox's read-only root)
 * makes SELECT ... INTO OUTFILE/DUMPFILE and LOAD DATA INFILE of any other path fail (ERROR
 * 1290), writing there fail, and LOAD_FILE() return NULL.
 */
export function serverOptions(memoryBytes: number): string[] {
  const pool = Math.min(4096, Math.max(128, Math.floor(memoryBytes / 4 / 1024 ** 2)));
  return [
    '--no-defaults',
    `--datadir=${DATA_DIR}`,
    `--socket=${SOCKET}`,
    '--skip-networking',
    `--pid-file=${PID_FILE}`,
    '--tmpdir=/tmp',
    `--log-error=${LOG_FILE}`,
    '--skip-name-resolve',
    '--local-infile=0',
    '--secure-file-priv=/mnt',
    '--character-set-server=utf8mb4',
    '--skip-log-bin',
    '--innodb-flush-log-at-trx-commit=0',
    '--innodb-doublewrite=0',
    `--innodb-buffer-pool-size=${pool}M`,
    '--innodb-log-file-size=256M',
    '--max-allowed-packet=1G',
  ];
}

/**
 * MySQL and MariaDB: mysqldump / mariadb-dump output (plain SQL), optionally gzip, zstd, xz or
 * bzip2 compressed (from the bytes), restored with the mariadb client into MariaDB.
 *
 * Sandbox: runs as the image's `mysql` user with NO capabilities (CapDrop ALL, nothing added):
 * mariadb-install-db and mariadbd need none when the data directory is that user's. Root
 * filesystem read-only; data in a per-run volume at /var/lib/mysql (seeded from the image's
 * empty folder, owned by mysql); socket, pid file, temporary files and the error log in the
 * size-limited /tmp tmpfs. The server listens on no TCP port. Works with the image built by
 * `backproof images build mariadb` and any image with the same Debian MariaDB layout.
 */
export class MysqlRestorer implements Restorer<'mysql'> {
  readonly kind = 'mysql' as const;
  private probeDatabase = '';
  /** What was restored, as reasons name it: "the dump", or "the mariadb-backup backup". */
  private restoredFrom = 'the dump';
  private serverVersion = '';
  private collations = new Set<string>();
  /** The client knows --sandbox (MariaDB 10.5.25/10.6.18/10.11.8 on): no \! or other file commands. */
  private clientSandbox = false;
  /**
   * The account every connection after prepare() uses, over the socket, without a password:
   * made with a random name, so that a dump that restores the mysql schema, alters root or drops
   * users cannot lock the verification out of its own sandbox.
   */
  private account = 'root';

  /** The mariadb client, connected over the sandbox's socket. */
  private client(): string[] {
    return ['mariadb', '--no-defaults', `--user=${this.account}`, `--socket=${SOCKET}`, '--default-character-set=utf8mb4'];
  }

  sandboxSpec(policy: PolicyConfig, runId: string, image?: string): SandboxSpec {
    return {
      runId,
      policy: policy.name,
      image: image ?? policy.sandbox.image ?? DEFAULTS.mysqlImage,
      cmd: ['sleep', 'infinity'],
      user: USER,
      capAdd: [],
      ...sandboxLimits(policy),
      volumes: [DATA_DIR],
      readOnlyRoot: true,
    };
  }

  async prepare(ctx: RestoreContext<'mysql'>): Promise<{ serverVersion: string; detail: string }> {
    const { sandbox, signal } = ctx;
    this.probeDatabase = ctx.policy.mysql.database;
    // backproof/mariadb carries an initialised, empty data directory (the run's volume is new
    // and empty, and Docker seeds it with a copy of the image's /var/lib/mysql: every run
    // starts from the image's pristine copy); other images get one made here.
    const initialised = await sandbox.exec(['test', '-d', `${DATA_DIR}/mysql`], { signal, user: USER });
    const detail = initialised.exitCode === 0 ? "the image's initialised data directory (no mariadb-install-db)" : 'mariadb-install-db: the image has no initialised data directory';
    ctx.logger.debug(`sandbox data directory: ${detail}`);
    if (initialised.exitCode !== 0) {
      await run(
        sandbox,
        ['mariadb-install-db', '--no-defaults', `--datadir=${DATA_DIR}`, '--auth-root-authentication-method=normal', '--skip-test-db', '--skip-name-resolve', '--force', '--tmpdir=/tmp'],
        signal,
        'mariadb-install-db',
      );
    }
    await run(
      sandbox,
      ['start-stop-daemon', '--start', '--background', '--exec', '/usr/sbin/mariadbd', '--', ...serverOptions(ctx.policy.sandbox.memoryBytes)],
      signal,
      'start MariaDB',
    );
    await this.waitForServer(sandbox, ctx.policy.mysql.readinessTimeoutMs, signal);
    // One round trip: the verification's own account, the version, the collations (MariaDB
    // 10.10+ names utf8mb4_uca1400_* only in FULL_COLLATION_NAME), whether the client knows --sandbox.
    const account = `backproof_${randomBytes(6).toString('hex')}`;
    const facts = async (sandboxFlag: boolean, fullNames: boolean) =>
      sandbox.exec(
        [
          ...this.client(),
          ...(sandboxFlag ? ['--sandbox'] : []),
          '-N',
          '-B',
          '-e',
          `CREATE USER IF NOT EXISTS '${account}'@'localhost'; GRANT ALL PRIVILEGES ON *.* TO '${account}'@'localhost' WITH GRANT OPTION; ` +
            `SELECT VERSION(); SELECT LOWER(${fullNames ? 'FULL_COLLATION_NAME' : 'COLLATION_NAME'}) FROM information_schema.${fullNames ? 'COLLATION_CHARACTER_SET_APPLICABILITY' : 'COLLATIONS'} WHERE CHARACTER_SET_NAME = 'utf8mb4'`,
        ],
        { signal, user: USER, maxOutputBytes: 256 * 1024 },
      );
    let sandboxFlag = true;
    let fullNames = true;
    let r = await facts(sandboxFlag, fullNames);
    for (let i = 0; r.exitCode !== 0 && i < 2; i++) {
      if (/unknown (variable|option).*sandbox/i.test(r.stderr)) sandboxFlag = false;
      else if (/FULL_COLLATION_NAME/.test(r.stderr)) fullNames = false;
      else break;
      r = await facts(sandboxFlag, fullNames);
    }
    this.clientSandbox = sandboxFlag;
    this.account = account;
    if (r.exitCode !== 0) throw new VerificationError('sandbox_failed', `querying the sandbox's MariaDB failed (exit ${r.exitCode}): ${firstErrorLine(r.stderr)}`);
    const [version = '', ...collations] = r.stdout.split('\n').filter(Boolean);
    this.serverVersion = version.trim();
    this.collations = new Set(collations);
    return { serverVersion: this.serverVersion, detail };
  }

  async restore(ctx: RestoreContext<'mysql'>, input: Readable): Promise<RestoreOutcome> {
    const { sandbox, signal } = ctx;
    const { compression, stream: plainBytes } = await decompress(input, (c, compressed) => decompressInSandbox(sandbox, c, compressed, { signal, user: USER }));
    const { head, stream } = await peek(plainBytes, 64 * 1024);
    if (head.length === 0) {
      throw new VerificationError('empty_backup', compression === 'none' ? 'the backup is empty (0 bytes)' : `the ${compression} backup decompresses to nothing`);
    }
    if (detectMariabackupStream(head)) return this.restorePhysical(ctx, stream, compression, 'tar');
    if (isXbstream(head)) return this.restorePhysical(ctx, stream, compression, 'xbstream');
    const found = detectMysqlDump(head);
    if (found.kind === 'foreign') {
      stream.destroy();
      throw new VerificationError(found.code, found.message);
    }
    const header = { ...found.header };
    const db = ctx.policy.mysql.database;
    // A single-database dump goes into `db`; a dump with its own CREATE DATABASE/USE goes where it says.
    await this.sql(sandbox, `CREATE DATABASE IF NOT EXISTS ${quoteIdent(db)} CHARACTER SET utf8mb4`, signal);
    const filter = new MysqlDumpFilter({ collations: this.collations });
    const result = await sandbox.exec([...this.client(), '--max-allowed-packet=1G', '--local-infile=0', ...(this.clientSandbox ? ['--sandbox'] : []), db], {
      stdin: pipeline(stream, filter, () => undefined),
      signal,
      user: USER,
    });
    if (filter.collationsReplaced.size > 0) {
      const pairs = [...filter.collationsReplaced].map(([from, to]) => `${from} -> ${to}`).join(', ');
      header.collationsReplaced = `${pairs} (MySQL 8 collations MariaDB ${this.serverVersion} lacks)`;
    }
    if (filter.gtidLinesDropped > 0) header.gtidStateDropped = `SET @@GLOBAL.GTID_PURGED (${filter.gtidLinesDropped} line(s)): MariaDB has no such variable`;
    if (filter.databases.length > 0) header.databases = filter.databases.join(', ');
    if (filter.databasesAdded.length > 0) header.databasesCreatedForUse = filter.databasesAdded.join(', ');
    if (filter.flushPrivilegesSkipped > 0) header.flushPrivilegesSkipped = 'yes: the restored accounts are in the mysql schema, not loaded';
    if (result.exitCode !== 0) {
      const lostServer = /^ERROR 20(06|13)\b/m.test(result.stderr);
      throw restoreFailure({
        exitCode: result.exitCode,
        stderr: result.stderr,
        memoryBytes: ctx.policy.sandbox.memoryBytes,
        header,
        serverVersion: this.serverVersion,
        serverAlive: lostServer ? await this.ping(sandbox, signal) : undefined,
        serverError: lostServer ? await this.serverError(sandbox) : undefined,
        readAll: result.stdinComplete,
        expectsCompletionLine: found.expectsCompletionLine,
        completed: filter.completed,
      });
    }
    if (found.expectsCompletionLine && !filter.completed) {
      throw new VerificationError(
        'truncated_dump',
        `the dump ends early: mysqldump's closing line "-- Dump completed" is missing (last line: "${truncate(filter.lastLines(1)[0] ?? '', 80)}")`,
      );
    }
    this.probeDatabase = chooseDatabase(db, filter.databases);
    if (this.probeDatabase !== db) header.probedDatabase = this.probeDatabase;
    return { format: found.format, compression, header };
  }

  /**
   * A mariadb-backup chain (the mariabackup source's tar) or one backup streamed as xbstream:
   * prepared and served in place of the empty server.
   */
  private async restorePhysical(ctx: RestoreContext<'mysql'>, stream: Readable, compression: string, format: 'tar' | 'xbstream'): Promise<RestoreOutcome> {
    const memory = ctx.policy.sandbox.memoryBytes;
    const restored = await restoreMariabackup(stream, {
      sandbox: ctx.sandbox,
      signal: ctx.signal,
      user: USER,
      dataDir: DATA_DIR,
      socket: SOCKET,
      logFile: LOG_FILE,
      serverVersion: this.serverVersion,
      options: (dataDir) => serverOptions(memory).map((o) => (o.startsWith('--datadir=') ? `--datadir=${dataDir}` : o)),
      prepareMemoryMb: Math.max(64, Math.floor(memory / 4 / 1024 ** 2)),
      account: this.account,
      connection: this.client().slice(1),
      readinessTimeoutMs: ctx.policy.mysql.readinessTimeoutMs,
      recovery: restoreTarget(ctx.policy.mysql.recovery),
    }, format);
    const header: Record<string, string> = { ...restored.header };
    if (format === 'xbstream') header.stream = 'xbstream';
    if (restored.databases.length === 0) throw new VerificationError('empty_restore', `backup ${header.backup} holds no database besides MariaDB's own (mysql, sys, ...)`);
    this.probeDatabase = chooseDatabase(ctx.policy.mysql.database, restored.databases, 'the mariadb-backup backup');
    this.restoredFrom = 'the mariadb-backup backup';
    if (this.probeDatabase !== ctx.policy.mysql.database) header.probedDatabase = this.probeDatabase;
    return { format: 'mariabackup', compression, header, ...(restored.dataAsOf ? { dataAsOf: restored.dataAsOf } : {}) };
  }

  async ready(ctx: RestoreContext<'mysql'>): Promise<void> {
    const deadline = Date.now() + ctx.policy.mysql.readinessTimeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      ctx.signal.throwIfAborted();
      const r = await ctx.sandbox.exec([...this.client(), '-N', '-B', `--database=${this.probeDatabase}`, '-e', 'SELECT 1'], { signal: ctx.signal, user: USER });
      if (r.exitCode === 0 && r.stdout.trim() === '1') return;
      last = firstErrorLine(r.stderr);
      await new Promise((res) => setTimeout(res, 500));
    }
    throw new VerificationError('sandbox_failed', `the restored database did not answer within ${ctx.policy.mysql.readinessTimeoutMs} ms: ${last}`);
  }

  async inspect(ctx: RestoreContext<'mysql'>): Promise<Inspection> {
    const { sandbox, signal } = ctx;
    const db = this.probeDatabase;
    const tables = (await this.sql(sandbox, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${literal(db)} AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME`, signal))
      .split('\n')
      .filter(Boolean);
    const counted = tables.slice(0, COUNTED_TABLES);
    // InnoDB's TABLE_ROWS is an estimate (and may still be 0 right after a bulk load): count.
    let rows = 0;
    let exact = true;
    for (let i = 0; i < counted.length; i += COUNT_BATCH) {
      const batch = counted.slice(i, i + COUNT_BATCH);
      await this.sql(sandbox, `ANALYZE TABLE ${batch.map((t) => `${quoteIdent(db)}.${quoteIdent(t)}`).join(', ')}`, signal);
      const union = batch.map((t) => `SELECT COUNT(*) AS n FROM ${quoteIdent(db)}.${quoteIdent(t)}`).join(' UNION ALL ');
      const out = await this.sql(sandbox, `SET STATEMENT max_statement_time = ${COUNT_TIMEOUT_S} FOR SELECT COALESCE(SUM(n), 0) FROM (${union}) c`, signal).catch(() => undefined);
      if (out === undefined) exact = false;
      rows += out === undefined ? await this.estimatedRows(sandbox, db, batch, signal) : Number(out.trim());
    }
    if (tables.length > counted.length) {
      exact = false;
      rows += await this.estimatedRows(sandbox, db, tables.slice(counted.length), signal);
    }
    const bytes = Number(
      (await this.sql(sandbox, `SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${literal(db)}`, signal)).trim(),
    );
    const summary = { database: db, tables: tables.length, estimatedRows: rows, rowsCounted: exact ? 'exact' : 'partly estimated', sizeBytes: bytes };
    return { summary, reasons: emptyDatabaseReasons(this.restoredFrom, `database "${db}"`, tables.length, rows, ctx.policy.mysql.allowEmpty) };
  }

  async probe(ctx: RestoreContext<'mysql'>): Promise<ProbeResult[]> {
    return runSqlProbes(ctx.policy.probes, {
      dialect: MYSQL_DIALECT,
      backupTime: ctx.backupTime,
      signal: ctx.signal,
      ...baselineOf(ctx),
      query: async (sql, timeoutMs) => {
        const seconds = Math.max(0.001, timeoutMs / 1000);
        const r = await ctx.sandbox.exec(
          [...this.client(), '-N', '-B', `--database=${this.probeDatabase}`, '-e', `SET time_zone = '+00:00'; SET max_statement_time = ${seconds}; ${sql}`],
          { signal: ctx.signal, user: USER },
        );
        if (r.exitCode !== 0) throw new Error(firstErrorLine(r.stderr).replace(/ at line \d+:/, ':') || `mariadb exited with ${r.exitCode}`);
        return r.stdout.replace(/\n$/, '').replace(/\t/g, '|');
      },
    });
  }

  async logTail(ctx: RestoreContext<'mysql'>): Promise<string> {
    const r = await ctx.sandbox.exec(['tail', '-c', '4000', LOG_FILE], { user: USER });
    return r.exitCode === 0 ? r.stdout : '';
  }

  /** Waits for the server's socket to answer; a server that aborts at start says why in its log. */
  private async waitForServer(sandbox: Sandbox, timeoutMs: number, signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await this.ping(sandbox, signal)) return;
      const log = (await sandbox.exec(['tail', '-c', '8000', LOG_FILE], { signal, user: USER })).stdout;
      const late = Date.now() > deadline;
      if (/\[ERROR\] Aborting/.test(log) || late) {
        const why = log.split('\n').find((l) => l.includes('[ERROR]')) ?? log.trim().split('\n').at(-1) ?? '';
        throw new VerificationError('sandbox_failed', `MariaDB did not start in the sandbox${late ? ` within ${timeoutMs} ms` : ''}: ${truncate(why.trim(), 300) || 'no log'}`);
      }
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  private async ping(sandbox: Sandbox, signal: AbortSignal): Promise<boolean> {
    const r = await sandbox.exec(['mariadb-admin', '--no-defaults', `--user=${this.account}`, `--socket=${SOCKET}`, 'ping'], { signal, user: USER });
    return r.exitCode === 0;
  }

  /** The server log's first [ERROR] line, if any. */
  private async serverError(sandbox: Sandbox): Promise<string | undefined> {
    const r = await sandbox.exec(['grep', '-m', '1', '-F', '[ERROR]', LOG_FILE], { user: USER, signal: timeoutSignal(10_000) }).catch(() => undefined);
    return r?.exitCode === 0 ? truncate(r.stdout.trim(), 300) : undefined;
  }

  private async estimatedRows(sandbox: Sandbox, db: string, tables: string[], signal: AbortSignal): Promise<number> {
    const out = await this.sql(
      sandbox,
      `SELECT COALESCE(SUM(TABLE_ROWS), 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${literal(db)} AND TABLE_NAME IN (${tables.map(literal).join(', ')})`,
      signal,
    );
    return Number(out.trim());
  }

  private async sql(sandbox: Sandbox, sql: string, signal: AbortSignal): Promise<string> {
    const r = await run(sandbox, [...this.client(), '-N', '-B', '-e', sql], signal, `query "${truncate(sql.replace(/\s+/g, ' '), 40)}"`);
    return r.stdout;
  }
}

async function run(sandbox: Sandbox, argv: string[], signal: AbortSignal, what: string) {
  const r = await sandbox.exec(argv, { signal, user: USER });
  if (r.exitCode !== 0) {
    // mariadb-install-db says why on stdout, after its warnings on stderr.
    const why = /error|fatal/i.test(r.stderr) || !r.stdout.trim() ? firstErrorLine(r.stderr) : truncate(r.stdout.trim().split('\n').slice(0, 2).join(' '), 300);
    throw new VerificationError('sandbox_failed', `${what} failed in the sandbox (exit ${r.exitCode}): ${why}`);
  }
  return r;
}

/**
 * The database probes run in. A dump without CREATE DATABASE/USE went into `configured`; one
 * that names its own databases is probed in `configured` when among them, else in the only one
 * (the server's own databases aside).
 */
export function chooseDatabase(configured: string, named: readonly string[], what = 'the dump'): string {
  const candidates = named.filter((d) => !SYSTEM_DATABASES.has(d.toLowerCase()));
  if (candidates.length === 0 || candidates.includes(configured)) return configured;
  if (candidates.length === 1) return candidates[0]!;
  throw new VerificationError(
    'empty_restore',
    `${what} holds no database "${configured}" (it holds: ${candidates.join(', ')}); set mysql.database to the one to probe`,
  );
}
