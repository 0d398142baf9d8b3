import { randomBytes } from 'node:crypto';
import { pipeline, Readable } from 'node:stream';
import path from 'node:path';
import { constants as zlibConstants, gunzipSync } from 'node:zlib';
import type { PolicyConfig } from '../../orchestrator/core/config-types.js';
import { DEFAULTS } from '../../orchestrator/core/defaults.js';
import { formatBytes } from '../../orchestrator/core/format.js';
import type { ProbeResult } from '../../orchestrator/core/domain.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { peek } from '../../orchestrator/core/integrity.js';
import { decompress, decompressHeadOnHost, decompressInSandbox, detectCompression } from '../compression.js';
import { POSTGRES_IMAGE_MAJORS } from '../images/build-image.js';
import { emptyDatabaseReasons, sandboxLimits, type ImageChoice, type Inspection, type RestoreContext, type RestoreOutcome, type Restorer } from '../restorer.js';
import type { Sandbox, SandboxSpec } from '../sandbox-runtime.js';
import { DATA_DIR, DATA_ROOT, INITDB_ARGS, POSTGRES_LIB, PREMADE_DATABASE, shellWords, templateName } from './cluster.js';
import { detectDumpFormat } from './dump-format.js';
import { detectBarmanStream, restoreBarman } from './barman-restore.js';
import { detectPgbackrestStream, restorePgbackrest, type PhysicalRestore } from './pgbackrest-restore.js';
import { PlainSqlFilter, quoteIdent } from './plain-sql-filter.js';
import { SqlActionGuard } from './sql-action-guard.js';
import { baselineOf, runSqlProbes, type SqlDialect } from '../probes/sql-probes.js';
import { truncate } from '../bytes.js';

const SOCKET_DIR = '/tmp';
const LOG_FILE = '/tmp/postgres.log';
/**
 * The server's options. The sandbox is disposable: durability settings off make restores
 * faster; nothing listens on TCP.
 */
export const SERVER_OPTIONS = [
  `-k ${SOCKET_DIR}`,
  "-c listen_addresses=''",
  '-c fsync=off',
  '-c synchronous_commit=off',
  '-c full_page_writes=off',
  '-c wal_level=minimal',
  '-c max_wal_senders=0',
  '-c max_wal_size=4GB',
  '-c maintenance_work_mem=256MB',
].join(' ');

/**
 * PostgreSQL: pg_dump custom format (and tar) through pg_restore, plain SQL through psql with
 * ON_ERROR_STOP, either of them optionally gzip'd; the format comes from the bytes.
 *
 * Sandbox: runs as the image's `postgres` user with NO capabilities (CapDrop ALL, nothing
 * added): initdb and the server need none when the data directory is owned by that user. Root
 * filesystem read-only; data in a per-run volume at /var/lib/postgresql (the image's copy of
 * that folder, owned by postgres, seeds it); sockets and logs in a size-limited /tmp tmpfs.
 * Works with the image built by `backproof images build postgres` (which carries an empty
 * cluster made at build time: no initdb per run) and with the official `postgres:<major>` images
 * and other PostgreSQL images (initdb per run; same layout: /usr/lib/postgresql/<major>/bin).
 */
export class PostgresRestorer implements Restorer<'postgres'> {
  readonly kind = 'postgres' as const;
  private bin = '';
  private major = 0;
  private probeDatabase = '';
  private locales: Set<string> | undefined;
  private psqlRestricts = false;
  /** The cluster came with PREMADE_DATABASE, empty (the image's template), now named as the probe database: restore into it. */
  private premade = false;
  /** Set when the backup was a physical one (pgBackRest, barman) and came up. */
  private physical?: PhysicalRestore;

  sandboxSpec(policy: PolicyConfig, runId: string, image?: string): SandboxSpec {
    return {
      runId,
      policy: policy.name,
      image: image ?? policy.sandbox.image ?? DEFAULTS.postgresImage,
      cmd: ['sleep', 'infinity'],
      user: 'postgres',
      capAdd: [],
      ...sandboxLimits(policy),
      volumes: [DATA_ROOT],
      readOnlyRoot: true,
    };
  }

  /** After prepare(): the policy's database exists already (the image's empty one, renamed); restore() makes it otherwise. */
  get databaseReady(): boolean {
    return this.premade;
  }

  /** The PostgreSQL bin folder in the sandbox, known once prepare() has run. */
  get binDir(): string {
    return this.bin;
  }

  async selectImage(head: Buffer, hasImage: (ref: string) => Promise<boolean>, facts?: Readonly<Record<string, string>>): Promise<ImageChoice> {
    const physical = detectPgbackrestStream(head) ?? detectBarmanStream(head);
    // An encrypted repository's stream says nothing readable: its driver read the major on the host.
    const listed = Number.parseInt(facts?.postgresMajor ?? '', 10);
    if (physical) return physicalImage(physical.major ?? (Number.isFinite(listed) ? listed : undefined), hasImage);
    let bytes = head;
    const compression = detectCompression(head);
    if (compression === 'gzip') {
      // The start of a gzip stream decompresses on its own; a sync flush yields what is there.
      try {
        bytes = gunzipSync(head, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
      } catch {
        bytes = Buffer.alloc(0); // damaged: the restore step will say so
      }
    } else if (compression !== 'none') {
      bytes = await decompressHeadOnHost(compression, head);
    }
    const info = detectDumpFormat(bytes);
    const major = info ? dumpMajor(info.header) : undefined;
    const available: number[] = [];
    for (const m of POSTGRES_IMAGE_MAJORS) if (await hasImage(`backproof/postgres:${m}`)) available.push(m);
    const image = (m: number): string => `backproof/postgres:${m}`;
    if (major === undefined) {
      const m = available.includes(15) ? 15 : available[0];
      const unread = compression !== 'none' && compression !== 'gzip' && bytes.length === 0;
      const why = !unread
        ? 'the dump does not say which PostgreSQL wrote it: the default image'
        : compression === 'bzip2'
          ? "bzip2 decodes in blocks of up to 900 kB, so the backup's first 64 KB do not show the dump's header: the default image"
          : `the dump is ${compression}-compressed and this host has no ${compression} tool to read its header before the sandbox starts: the default image`;
      return { image: m ? image(m) : DEFAULTS.postgresImage, why };
    }
    const fit = available.find((m) => m >= major);
    if (fit) return { image: image(fit), why: `the dump comes from PostgreSQL ${major}: the smallest image at least as new` };
    const newest = available.at(-1);
    const buildable = POSTGRES_IMAGE_MAJORS.find((m) => m >= major);
    return {
      image: newest ? image(newest) : DEFAULTS.postgresImage,
      why: `the dump comes from PostgreSQL ${major}, newer than every image present${buildable ? ` (build one: backproof images build postgres:${buildable})` : ''}`,
    };
  }

  /**
   * Makes and starts the run's cluster. Each exec is a round trip to the engine and a process
   * started in the sandbox (~80 ms here), so what does not depend on another runs beside it:
   * `locale -a` while the cluster is made and started, and the server's version beside the check
   * of what psql knows.
   */
  async prepare(ctx: RestoreContext<'postgres'>): Promise<{ serverVersion: string; detail: string }> {
    const { sandbox, signal } = ctx;
    const locales = sandbox.exec(['locale', '-a'], { signal, user: 'postgres' }).catch(() => undefined);
    try {
      return await this.startCluster(ctx);
    } finally {
      const listed = await locales;
      if (listed?.exitCode === 0) this.locales = new Set(listed.stdout.split('\n').map((l) => l.trim()).filter(Boolean));
    }
  }

  private async startCluster(ctx: RestoreContext<'postgres'>): Promise<{ serverVersion: string; detail: string }> {
    const { sandbox, signal } = ctx;
    this.probeDatabase = ctx.policy.postgres.database;
    // One exec (each costs ~75-110 ms of runc starting a process): find the newest server in
    // POSTGRES_LIB, make its cluster, start it. The run's data volume at DATA_ROOT is new and
    // empty (DockerRuntime.create makes a named volume for this run alone and removes it at
    // teardown; Docker seeds it with the image's /var/lib/postgresql, which holds no cluster),
    // so the cluster made here is this run's own and nothing of one run reaches another. An
    // image built by `backproof images build postgres:<major>` carries the empty cluster initdb
    // made at build time, with INITDB_ARGS, as a tar: unpacking it is faster than initdb. Other
    // images (official postgres:<major>, backproof images built before the template, a policy's
    // own sandbox.image) get initdb. The script says which on its first line; a failure exits
    // 98/99 (no PostgreSQL) or 100 + the status of making the cluster, before any start, so each
    // step keeps its own error. Its words are constants; the server's options come as "$@".
    const script = [
      `cd ${POSTGRES_LIB} || exit 98`,
      `major=$(ls | grep -E '^[0-9]+$' | sort -n | tail -n 1)`,
      `[ -n "$major" ] || exit 99`,
      `bin=${POSTGRES_LIB}/$major/bin`,
      `tpl=${templateName('$major')}`,
      `if [ -f "$tpl" ]; then echo "backproof-cluster $major template"; tar -x -f "${POSTGRES_LIB}/$tpl" -C ${DATA_ROOT} || exit $((100 + $?))`,
      `else echo "backproof-cluster $major initdb"; "$bin/initdb" ${shellWords(INITDB_ARGS)} || exit $((100 + $?)); fi`,
      `exec "$bin/pg_ctl" "$@"`,
    ].join('\n');
    const start = ['start', '-D', DATA_DIR, '-l', LOG_FILE, '-w', '-t', '60', '-o', SERVER_OPTIONS];
    const started = await sandbox.exec(['sh', '-c', script, 'sh', ...start], { signal, user: 'postgres' });
    const made = /^backproof-cluster (\d+) (template|initdb)$/m.exec(started.stdout);
    if (!made) {
      if (started.exitCode === 98 || started.exitCode === 99) {
        throw new VerificationError('sandbox_failed', `image ${sandbox.image} has no ${POSTGRES_LIB}/<major>/bin; use a PostgreSQL image`);
      }
      throw new VerificationError('sandbox_failed', `find PostgreSQL in the image failed in the sandbox (exit ${started.exitCode}): ${lastLine(started.stderr || started.stdout)}`);
    }
    const [, major, way] = made;
    this.bin = `${POSTGRES_LIB}/${major}/bin`;
    this.major = Number(major);
    const detail = way === 'template' ? `the image's PostgreSQL ${major} cluster template, unpacked (no initdb)` : `initdb: the image has no PostgreSQL ${major} cluster template`;
    ctx.logger.debug(`sandbox cluster: ${detail}`);
    if (started.exitCode !== 0) {
      const making = way === 'template' ? "unpacking the image's cluster template" : 'initdb';
      const [what, exit] = started.exitCode > 100 ? [making, started.exitCode - 100] : ['start PostgreSQL', started.exitCode];
      throw new VerificationError('sandbox_failed', `${what} failed in the sandbox (exit ${exit}): ${lastLine(started.stderr || started.stdout)}`);
    }
    // psql 17.6, 16.10, 15.14 and later know \restrict; an older psql (a sandbox.image of
    // an older release) restores without it: the filter still refuses meta-commands that start a line.
    const [version, restrict] = await Promise.allSettled([
      this.sql(
        sandbox,
        [
          // The template's empty database takes the policy's name (in the same psql, no exec of
          // its own) unless a database has that name already (CREATE DATABASE then says so).
          `DO $backproof$DECLARE premade text := ${literal(PREMADE_DATABASE)}; db text := ${literal(this.probeDatabase)}; BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = premade) THEN RETURN; END IF;
            IF db <> premade THEN
              IF EXISTS (SELECT 1 FROM pg_database WHERE datname = db) THEN RETURN; END IF;
              EXECUTE format('ALTER DATABASE %I RENAME TO %I', premade, db);
            END IF;
            PERFORM set_config('backproof.premade', 'on', false);
          END$backproof$`,
          `SELECT current_setting('server_version') || '|' || coalesce(current_setting('backproof.premade', true), 'off')`,
        ],
        'postgres',
        signal,
      ),
      sandbox.exec([`${this.bin}/psql`, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', SOCKET_DIR, '-U', 'postgres', '-d', 'postgres', '-f', '-'], {
        stdin: Readable.from(['\\restrict backproof\n\\unrestrict backproof\n']),
        signal,
        user: 'postgres',
      }),
    ]);
    if (version.status === 'rejected') throw version.reason;
    if (restrict.status === 'rejected') throw restrict.reason;
    this.psqlRestricts = restrict.value.exitCode === 0;
    const [serverVersion = '', premade] = version.value.trim().split('|');
    this.premade = premade === 'on';
    return { serverVersion, detail: this.psqlRestricts ? detail : `${detail}; this psql has no \\restrict: meta-commands are refused only at the start of a line` };
  }

  async restore(ctx: RestoreContext<'postgres'>, input: Readable): Promise<RestoreOutcome> {
    const { sandbox, signal } = ctx;
    const { compression, stream: plainBytes } = await decompress(input, (c, compressed) => decompressInSandbox(sandbox, c, compressed, { signal, user: 'postgres' }));
    const { head, stream } = await peek(plainBytes, 64 * 1024);
    if (head.length === 0) {
      throw new VerificationError('empty_backup', compression === 'none' ? 'the backup is empty (0 bytes)' : `the ${compression} backup decompresses to nothing`);
    }
    // Physical backups: a pgBackRest set or a barman backup with its archived WAL.
    const pgbackrest = detectPgbackrestStream(head);
    const barman = pgbackrest ? undefined : detectBarmanStream(head);
    if (pgbackrest || barman) {
      const server = { bin: this.bin, major: this.major, socketDir: SOCKET_DIR, logFile: LOG_FILE, serverOptions: SERVER_OPTIONS };
      const restored = pgbackrest ? await restorePgbackrest(ctx, stream, pgbackrest, server) : await restoreBarman(ctx, stream, barman!, server);
      this.physical = restored;
      this.probeDatabase = chooseClusterDatabase(ctx.policy.postgres.database, restored.databases);
      const header: Record<string, string> = { ...restored.header, databases: restored.databases.join(', ') };
      if (this.probeDatabase !== ctx.policy.postgres.database) header.probedDatabase = this.probeDatabase;
      return { format: pgbackrest ? 'pgbackrest' : 'barman', compression, header, ...(restored.dataAsOf ? { dataAsOf: restored.dataAsOf } : {}) };
    }
    const info = detectDumpFormat(head);
    if (!info) {
      stream.destroy();
      throw new VerificationError(
        'unrecognized_format',
        `not a PostgreSQL dump: the bytes are neither pg_dump's custom/tar format nor SQL text (starts with ${head.subarray(0, 8).toString('hex')})`,
      );
    }
    if (info.format === 'other-tar') {
      stream.destroy();
      throw new VerificationError(
        'unsupported_format',
        `a tar archive that is not a pg_dump archive (first member "${info.header.firstMember}"; pg_dump -Ft starts with toc.dat, and a tarred pg_dump -Fd has toc.dat among its first members): file archives are not restored by kind: postgres`,
      );
    }
    if (info.format === 'utf16-text') {
      stream.destroy();
      throw new VerificationError(
        'unrecognized_format',
        'the dump is UTF-16 text (as written by Windows PowerShell redirection, `pg_dump > file`); psql cannot read it: write dumps with pg_dump -f FILE',
      );
    }
    if (info.header.foreignDump) {
      stream.destroy();
      throw new VerificationError('unrecognized_format', `not a PostgreSQL dump: the file is a ${info.header.foreignDump}`);
    }
    const db = this.probeDatabase;
    const cluster = info.completeMarker?.includes('cluster') ?? false;
    // A cluster dump creates its own databases; everything else is restored into `db`.
    // The template's empty database, named `db` when the server started, is restored into; a
    // cluster dump creates its own databases and may name one the same: out of its way.
    if (this.premade && cluster) await this.sql(sandbox, `DROP DATABASE ${quoteIdent(db)}`, 'postgres', signal);
    else if (!this.premade && !cluster) await this.sql(sandbox, `CREATE DATABASE ${quoteIdent(db)}`, 'postgres', signal);
    const failure = (tool: string, r: { exitCode: number; stderr: string }): VerificationError =>
      restoreFailure(tool, r.exitCode, r.stderr, ctx.policy.sandbox.memoryBytes, dumpMajor(info.header), this.major);
    if (info.format === 'plain') {
      // psql runs restricted (`\restrict` with a key the dump cannot know): no meta-command of
      // the dump runs, wherever it stands; the guard refuses server-side actions it can see.
      const filter = new PlainSqlFilter({ locales: this.locales, restrictKey: this.psqlRestricts ? randomBytes(16).toString('hex') : undefined });
      const result = await sandbox.exec(
        [`${this.bin}/psql`, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', SOCKET_DIR, '-U', 'postgres', '-d', cluster ? 'postgres' : db, '-f', '-'],
        { stdin: pipeline(stream, new SqlActionGuard(), filter, () => undefined), signal, user: 'postgres' },
      );
      if (filter.rolesCreated.length > 0) info.header.rolesCreated = filter.rolesCreated.join(', ');
      if (filter.localesReplaced.length > 0) info.header.localesReplaced = `${filter.localesReplaced.join(', ')} (not in the sandbox image; C.UTF-8 used)`;
      if (filter.databasesCreated.length > 0) info.header.databases = filter.databasesCreated.join(', ');
      if (result.exitCode !== 0) throw restrictedMetaCommand(result.stderr, filter) ?? failure('psql', result);
      if (cluster) this.probeDatabase = chooseClusterDatabase(db, filter.databasesCreated);
      else if (filter.connectedDatabase) this.probeDatabase = filter.connectedDatabase;
      if (this.probeDatabase !== db) info.header.probedDatabase = this.probeDatabase;
      if (info.completeMarker && !filter.lastLines(8).includes(info.completeMarker)) {
        throw new VerificationError(
          'truncated_dump',
          `the SQL dump ends early: pg_dump's closing line "${info.completeMarker}" is missing (last line: "${truncate(filter.lastLines(1)[0] ?? '', 80)}")`,
        );
      }
    } else if (info.format === 'directory-tar') {
      // pg_restore reads a directory-format dump only from a folder: unpack it into the run's
      // volume inside the sandbox (as postgres, no owners or modes from the archive), then
      // restore with parallel jobs, which only this format and custom-on-disk allow.
      const folder = `${DATA_ROOT}/backproof-dump`;
      await sandbox.exec(['mkdir', '-p', folder], { signal, user: 'postgres' });
      const untar = await sandbox.exec(['tar', '-x', '-f', '-', '-C', folder, '--no-same-owner', '--no-same-permissions'], { stdin: stream, signal, user: 'postgres' });
      if (untar.exitCode !== 0) {
        const words = untar.stderr.trim().split('\n').slice(-2).join(' ');
        if (/unexpected EOF|unexpected end/i.test(words)) throw new VerificationError('truncated_dump', `the directory-format dump's tar ends early: ${words}`);
        throw new VerificationError('restore_failed', `unpacking the directory-format dump failed: ${words}`);
      }
      const tocDir = path.posix.join(folder, path.posix.normalize(`/${info.header.dumpFolder ?? ''}`));
      const jobs = Math.max(1, Math.min(4, Math.floor(ctx.policy.sandbox.cpus)));
      info.header.parallelJobs = String(jobs);
      const result = await sandbox.exec(
        [`${this.bin}/pg_restore`, '-F', 'd', '-j', String(jobs), '--no-owner', '--no-privileges', '--exit-on-error', '-h', SOCKET_DIR, '-U', 'postgres', '-d', db, tocDir],
        { signal, user: 'postgres' },
      );
      if (result.exitCode !== 0) throw failure('pg_restore', result);
      delete info.header.dumpFolder;
    } else {
      const result = await sandbox.exec(
        [`${this.bin}/pg_restore`, '--no-owner', '--no-privileges', '--exit-on-error', '-h', SOCKET_DIR, '-U', 'postgres', '-d', db],
        { stdin: stream, signal, user: 'postgres' },
      );
      if (result.exitCode !== 0) throw failure('pg_restore', result);
    }
    return { format: info.format, compression, header: info.header };
  }

  async ready(ctx: RestoreContext<'postgres'>): Promise<void> {
    const deadline = Date.now() + ctx.policy.postgres.readinessTimeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      ctx.signal.throwIfAborted();
      const r = await ctx.sandbox.exec(
        [`${this.bin}/psql`, '-X', '-A', '-t', '-h', SOCKET_DIR, '-U', 'postgres', '-d', this.probeDatabase, '-c', 'SELECT 1'],
        { signal: ctx.signal, user: 'postgres' },
      );
      if (r.exitCode === 0 && r.stdout.trim() === '1') return;
      last = lastLine(r.stderr);
      await new Promise((res) => setTimeout(res, 500));
    }
    throw new VerificationError('sandbox_failed', `the restored database did not answer within ${ctx.policy.postgres.readinessTimeoutMs} ms: ${last}`);
  }

  async inspect(ctx: RestoreContext<'postgres'>): Promise<Inspection> {
    const { sandbox, signal } = ctx;
    const db = this.probeDatabase;
    // One psql for both: the statistics the count reads are made just before it.
    const row = await this.sql(
      sandbox,
      [
        'ANALYZE',
        `SELECT count(*), coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint, pg_database_size(current_database())
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`,
      ],
      db,
      signal,
    );
    const [tables, rows, bytes] = row.trim().split('|').map(Number) as [number, number, number];
    const summary = { database: db, tables, estimatedRows: rows, sizeBytes: bytes, ...this.physical?.summary };
    const empty = emptyDatabaseReasons(this.physical ? 'the backup' : 'the dump', `database "${db}"`, tables, rows, ctx.policy.postgres.allowEmpty);
    return { summary, reasons: [...(this.physical?.reasons ?? []), ...empty] };
  }

  async probe(ctx: RestoreContext<'postgres'>): Promise<ProbeResult[]> {
    return runSqlProbes(ctx.policy.probes, {
      dialect: POSTGRES_DIALECT,
      backupTime: ctx.backupTime,
      signal: ctx.signal,
      ...baselineOf(ctx),
      query: async (sql, timeoutMs) => {
        const r = await ctx.sandbox.exec(
          [`${this.bin}/psql`, '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-h', SOCKET_DIR, '-U', 'postgres', '-d', this.probeDatabase, '-c', `SET statement_timeout = ${Math.round(timeoutMs)}`, '-c', sql],
          { signal: ctx.signal, user: 'postgres' },
        );
        if (r.exitCode !== 0) throw new Error(firstErrorLine(r.stderr).replace(/^psql:[^:]*:\d+: /, '') || `psql exited with ${r.exitCode}`);
        return r.stdout.replace(/\n$/, '');
      },
    });
  }

  async logTail(ctx: RestoreContext<'postgres'>): Promise<string> {
    const r = await ctx.sandbox.exec(['tail', '-c', '4000', LOG_FILE], { user: 'postgres' });
    return r.exitCode === 0 ? r.stdout : '';
  }

  /** What the statements print, in one psql: each its own -c, in turn (with -q, one that returns no rows prints nothing). */
  private async sql(sandbox: Sandbox, sql: string | string[], db: string, signal: AbortSignal): Promise<string> {
    const statements = typeof sql === 'string' ? [sql] : sql;
    const r = await run(
      sandbox,
      [`${this.bin}/psql`, '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-h', SOCKET_DIR, '-U', 'postgres', '-d', db, ...statements.flatMap((text) => ['-c', text])],
      signal,
      'sandbox_failed',
      `query "${truncate(statements.join('; ').replace(/\s+/g, ' '), 40)}"`,
    );
    return r.stdout;
  }
}

async function run(sandbox: Sandbox, argv: string[], signal: AbortSignal, code: 'sandbox_failed', what: string) {
  const r = await sandbox.exec(argv, { signal, user: 'postgres' });
  if (r.exitCode !== 0) {
    throw new VerificationError(code, `${what} failed in the sandbox (exit ${r.exitCode}): ${lastLine(r.stderr || r.stdout)}`);
  }
  return r;
}

/** psql refused a meta-command of the dump that the filter did not see at a line's start (`SELECT 1; \! id`). */
function restrictedMetaCommand(stderr: string, filter: PlainSqlFilter): VerificationError | undefined {
  const m = /^psql:[^\n]*?:(\d+): error: (backslash commands are restricted[^\n]*|\\unrestrict: wrong key)/m.exec(stderr);
  if (!m) return undefined;
  return new VerificationError(
    'unsafe_archive',
    `the dump runs a psql meta-command (a backslash command after other text) at line ${filter.dumpLine(Number(m[1]))}; psql ran restricted and refused it (${truncate(m[2] ?? '', 80)})`,
  );
}

/** A physical backup restores only into its own PostgreSQL major. */
async function physicalImage(major: number | undefined, hasImage: (ref: string) => Promise<boolean>): Promise<ImageChoice> {
  if (major === undefined) return { image: DEFAULTS.postgresImage, why: 'neither the backup nor its listing names its PostgreSQL version before it is opened: the default image' };
  if (await hasImage(`backproof/postgres:${major}`)) return { image: `backproof/postgres:${major}`, why: `a physical backup of PostgreSQL ${major}: the image of that major` };
  const buildable = POSTGRES_IMAGE_MAJORS.includes(major);
  return {
    image: DEFAULTS.postgresImage,
    why: `a physical backup of PostgreSQL ${major}, and no backproof/postgres:${major} image is present${buildable ? ` (build it: backproof images build postgres:${major})` : ''}`,
  };
}

/** The database probes run in after a cluster dump: the configured one, else the only one it made. */
function chooseClusterDatabase(configured: string, created: string[]): string {
  const candidates = ['postgres', ...created.filter((d) => d !== 'postgres' && d !== 'template1')];
  if (candidates.includes(configured)) return configured;
  const made = candidates.slice(1);
  if (made.length === 1) return made[0]!;
  if (made.length === 0) return 'postgres';
  throw new VerificationError(
    'empty_restore',
    `the cluster dump holds no database "${configured}" (it holds: ${made.join(', ')}); set postgres.database to the one to probe`,
  );
}

const POSTGRES_DIALECT: SqlDialect = {
  missingTables: (tables) => `SELECT t FROM (VALUES ${tables.map((t) => `(${literal(t)})`).join(', ')}) AS v(t) WHERE to_regclass(t) IS NULL`,
  count: (table) => `SELECT count(*) FROM ${qualified(table)}`,
  newest: (table, column) => `SELECT extract(epoch FROM max(${ident(column)}))::float8 FROM ${qualified(table)}`,
  valueColumns: () =>
    `SELECT c.table_schema || '.' || c.table_name, c.column_name, CASE WHEN c.data_type = 'bytea' THEN 'binary' ELSE 'text' END
       FROM information_schema.columns c JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
      WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
        AND c.data_type IN ('text', 'character varying', 'character', 'bytea')
      ORDER BY c.table_schema, c.table_name, c.ordinal_position LIMIT 100`,
  sampleHex: (table, column, binary, n) =>
    `SELECT encode(${binary ? `substring(${quoteIdent(column)} FROM 1 FOR 256)` : `convert_to(left(${quoteIdent(column)}::text, 256), 'UTF8')`}, 'hex') FROM ${qualified(table)} WHERE ${quoteIdent(column)} IS NOT NULL LIMIT ${n}`,
};

/** `schema.table` or `table`. */
function qualified(name: string): string {
  return name
    .split('.')
    .map((part) => ident(part))
    .join('.');
}

/** Plain lowercase names stay as SQL would read them; anything else is quoted exactly. */
function ident(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : quoteIdent(name);
}

function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** The major version of the PostgreSQL that the dump came from, when its header says. */
function dumpMajor(header: Record<string, string>): number | undefined {
  const m = /^(\d+)/.exec(header.serverVersion ?? header.pgDumpVersion ?? '');
  return m ? Number(m[1]) : undefined;
}

function restoreFailure(
  tool: string,
  exitCode: number,
  stderr: string,
  memoryBytes: number,
  fromMajor: number | undefined,
  sandboxMajor: number,
): VerificationError {
  const line = firstErrorLine(stderr);
  if (fromMajor !== undefined && fromMajor > sandboxMajor) {
    // A dump of a newer server may use what an older one lacks: we could not verify it here.
    return new VerificationError(
      'unsupported_format',
      `the dump comes from PostgreSQL ${fromMajor}, newer than the sandbox's ${sandboxMajor} (${tool}: ${line}); ${
        POSTGRES_IMAGE_MAJORS.some((m) => m >= fromMajor) ? `build backproof/postgres:${POSTGRES_IMAGE_MAJORS.find((m) => m >= fromMajor)} (backproof images build postgres:${POSTGRES_IMAGE_MAJORS.find((m) => m >= fromMajor)}) and leave sandbox.image unset, or ` : ''
      }set sandbox.image to a PostgreSQL ${fromMajor} image`,
    );
  }
  const extension = /extension "([^"]+)" is not available|could not open extension control file "[^"]*\/([^"/]+)\.control"/.exec(stderr);
  if (extension) {
    return new VerificationError(
      'sandbox_failed',
      `the dump needs the extension "${extension[1] ?? extension[2]}", which the sandbox image lacks; set sandbox.image to an image that has it`,
    );
  }
  if (exitCode >= 128) {
    // Killed by a signal (137: SIGKILL, usually the sandbox's memory limit): the verification
    // could not finish; that says nothing yet about the backup.
    const sig = exitCode - 128;
    return new VerificationError(
      'sandbox_failed',
      `${tool} was killed by signal ${sig}${sig === 9 ? ` (most often the sandbox's memory limit of ${formatBytes(memoryBytes)}: raise sandbox.memory)` : ''}`,
    );
  }
  if (/server closed the connection unexpectedly|terminating connection because of crash|database system is in recovery mode|could not fork new process/i.test(stderr)) {
    // The server in the sandbox died or ran out of resources under the restore.
    return new VerificationError(
      'sandbox_failed',
      `the PostgreSQL server in the sandbox failed during the restore (${line}); the sandbox's memory limit is ${formatBytes(memoryBytes)}: raise sandbox.memory if it is too small`,
    );
  }
  const unsupported = /unsupported version \((\d+)\.(\d+)\) in file header/.exec(stderr);
  if (unsupported && !plausibleArchiveVersion(Number(unsupported[1]), Number(unsupported[2]))) {
    // Every pg_dump so far writes archive version 1.x (1.16 in PostgreSQL 17): another major is
    // a damaged header, not a newer pg_dump.
    return new VerificationError('restore_failed', `the dump's header is corrupt: it claims archive version ${unsupported[1]}.${unsupported[2]}, which no pg_dump writes (${tool}: ${line})`);
  }
  if (unsupported) {
    return new VerificationError(
      'unsupported_format',
      `${tool} in the sandbox is older than the pg_dump that wrote this backup (${line}); set sandbox.image to the matching postgres:<major> image`,
    );
  }
  if (/could not read input file: end of file|unexpected end of file|could not read from input file|end of file/.test(stderr)) {
    return new VerificationError('truncated_dump', `the dump ends early: ${tool}: ${line}`);
  }
  if (/did not find magic string|not a valid archive|input file does not appear to be a valid archive|corrupt/i.test(stderr)) {
    return new VerificationError('restore_failed', `the dump is corrupt: ${tool}: ${line}`);
  }
  return new VerificationError('restore_failed', `${tool} failed (exit ${exitCode}): ${line}`);
}

/** An archive version some pg_dump could have written: 1.x, with room for versions not yet released. */
export function plausibleArchiveVersion(major: number, minor: number): boolean {
  return major === 1 && minor < 64;
}

function firstErrorLine(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  return truncate(lines.find((l) => /error|fatal/i.test(l)) ?? lines.at(-1) ?? 'no message', 300);
}

function lastLine(text: string): string {
  return truncate(text.trim().split('\n').at(-1) ?? '', 300);
}
