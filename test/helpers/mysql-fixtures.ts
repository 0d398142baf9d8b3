import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import { promisify } from 'node:util';
import { DEFAULTS } from '../../orchestrator/core/defaults.js';
import { DockerRuntime } from '../../restore-sandboxes/docker/docker-runtime.js';
import type { ExecResult, Sandbox } from '../../restore-sandboxes/sandbox-runtime.js';

const run = promisify(execFile);

/**
 * Real MySQL-family backups for tests: databases created on a real MariaDB server (a throwaway
 * container of the sandbox image, with no network) and dumped with the real mariadb-dump, its
 * output streamed to a file on the host. Compressed copies come from the host's gzip and zstd.
 */
export interface MysqlFixtureServer {
  /** SQL through the mariadb client; returns stdout (tab-separated rows). */
  sql(text: string, db?: string): Promise<string>;
  /** mariadb-dump with `args` (a database name, or --databases a b ...) into `file`. */
  dump(file: string, args: string[]): Promise<void>;
  /** A clean shutdown and start (InnoDB checkpoints at shutdown). */
  restart(): Promise<void>;
  stop(): Promise<void>;
  /** The container the server runs in (mariadb-backup runs beside it). */
  readonly sandbox: Sandbox;
}

/** The MariaDB image fixtures run in and tests restore into. */
export const MARIADB_TEST_IMAGE = process.env.BACKPROOF_TEST_MARIADB_IMAGE ?? DEFAULTS.mysqlImage;

const SOCKET = '/tmp/fixture.sock';
const CLIENT = ['--no-defaults', '--user=root', `--socket=${SOCKET}`];

/**
 * `image`: default the sandbox image (BACKPROOF_TEST_MARIADB_IMAGE pins another). `binlog`: the
 * server writes binary logs (row format) to /var/lib/mysql/mariadb-bin.NNNNNN.
 */
export async function startMysqlFixtureServer(opts: { image?: string; binlog?: boolean } = {}): Promise<MysqlFixtureServer> {
  const runtime = new DockerRuntime();
  const sandbox = await runtime.create({
    runId: `fixture-mysql-${randomUUID().slice(0, 8)}`,
    policy: 'test-fixtures',
    image: opts.image ?? MARIADB_TEST_IMAGE,
    cmd: ['sleep', 'infinity'],
    user: 'mysql',
    memoryBytes: 1024 ** 3,
    cpus: 2,
    pids: 256,
    shmBytes: 64 * 1024 ** 2,
    tmpfs: { '/tmp': 256 * 1024 ** 2 },
    volumes: ['/var/lib/mysql'],
    readOnlyRoot: true,
  });
  try {
    const initialised = await sandbox.exec(['test', '-d', '/var/lib/mysql/mysql'], { user: 'mysql' });
    if (initialised.exitCode !== 0) await must(sandbox, ['mariadb-install-db', '--no-defaults', '--datadir=/var/lib/mysql', '--auth-root-authentication-method=normal', '--skip-test-db', '--skip-name-resolve', '--force']);
    await startServer(sandbox, opts.binlog);
  } catch (err) {
    await sandbox.remove();
    throw err;
  }
  return {
    sandbox,
    async sql(text, db) {
      return (await must(sandbox, ['mariadb', ...CLIENT, '-N', '-B', ...(db ? [`--database=${db}`] : []), '-e', text])).stdout;
    },
    async dump(file, args) {
      const out = createWriteStream(file);
      const r = await sandbox.exec(['mariadb-dump', ...CLIENT, '--single-transaction', ...args], { user: 'mysql', stdout: out });
      if (r.exitCode !== 0) throw new Error(`mariadb-dump ${args.join(' ')} failed: ${r.stderr}`);
    },
    async restart() {
      await must(sandbox, ['mariadb-admin', ...CLIENT, 'shutdown']);
      await startServer(sandbox, opts.binlog);
    },
    stop: () => sandbox.remove(),
  };
}

async function startServer(sandbox: Sandbox, binlog = false): Promise<void> {
  await must(sandbox, [
    'start-stop-daemon', '--start', '--background', '--exec', '/usr/sbin/mariadbd', '--',
    '--no-defaults', '--datadir=/var/lib/mysql', `--socket=${SOCKET}`, '--skip-networking', '--log-error=/tmp/fixture.log', '--pid-file=/tmp/fixture.pid',
    '--innodb-flush-log-at-trx-commit=0', '--innodb-doublewrite=0', '--character-set-server=utf8mb4',
    ...(binlog ? ['--log-bin=/var/lib/mysql/mariadb-bin', '--server-id=1', '--binlog-format=ROW'] : []),
  ]);
  for (let i = 0; ; i++) {
    const r = await sandbox.exec(['mariadb-admin', ...CLIENT, 'ping'], { user: 'mysql' });
    if (r.exitCode === 0) break;
    if (i > 150) throw new Error(`the fixture MariaDB did not start: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

async function must(sandbox: Sandbox, argv: string[]): Promise<ExecResult> {
  const r = await sandbox.exec(argv, { user: 'mysql', maxOutputBytes: 1024 * 1024 });
  if (r.exitCode !== 0) throw new Error(`${argv[0]} failed in the fixture container (exit ${r.exitCode}): ${r.stderr.trim().slice(-500)}`);
  return r;
}

export interface MysqlShopOptions {
  customers?: number;
  orders?: number;
  /** Tables but no rows. */
  empty?: boolean;
  /** Newest order's age at dump time, hours. */
  newestOrderAgeHours?: number;
}

/** A shop database: customers, orders (a foreign key, a DATETIME created_at in UTC), a view and a trigger. */
export async function createMysqlShop(server: MysqlFixtureServer, name: string, opts: MysqlShopOptions = {}): Promise<void> {
  const customers = opts.customers ?? 500;
  const orders = opts.orders ?? 5000;
  const newest = opts.newestOrderAgeHours ?? 1;
  await server.sql(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  await server.sql(
    `CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(200) NOT NULL UNIQUE) ENGINE=InnoDB;
     CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, total_cents INT NOT NULL, note VARCHAR(200),
                          created_at DATETIME NOT NULL, KEY (created_at), CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)) ENGINE=InnoDB;
     CREATE TABLE audit (id BIGINT AUTO_INCREMENT PRIMARY KEY, order_id BIGINT NOT NULL) ENGINE=InnoDB;
     CREATE VIEW big_orders AS SELECT id, total_cents FROM orders WHERE total_cents > 40000;
     CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit (order_id) VALUES (NEW.id);`,
    name,
  );
  if (opts.empty) return;
  await server.sql(
    `INSERT INTO customers SELECT seq, CONCAT('Customer ', seq), CONCAT('c', seq, '@example.com') FROM seq_1_to_${customers};
     INSERT INTO orders SELECT seq, 1 + seq % ${customers}, 100 + (seq * 7919) % 50000, CONCAT('it''s line\\twith tab ', seq, ' \u2713'),
            UTC_TIMESTAMP() - INTERVAL ${newest} HOUR - INTERVAL (seq % 500) HOUR FROM seq_1_to_${orders};`,
    name,
  );
}

/** `file` compressed by the host's tool (gzip, zstd) into `out`. */
export async function compressWith(tool: 'gzip' | 'zstd', file: string, out: string): Promise<void> {
  const { stdout } = await run(tool, ['-c', '-q', file], { encoding: 'buffer', maxBuffer: 1024 ** 3 });
  await fs.writeFile(out, stdout);
}

/**
 * Makes a mariadb-dump look as MySQL 8's mysqldump writes it: its header, utf8mb4_0900_ai_ci
 * wherever the dump names utf8mb4_unicode_ci, and (optionally) the GTID state of a server with
 * gtid_mode=ON, spread over two lines as mysqldump writes long GTID sets.
 */
export async function asMysql8Dump(file: string, out: string, opts: { gtid?: boolean } = {}): Promise<void> {
  let text = await fs.readFile(file, 'utf8');
  text = text
    .replace(/^\/\*M!999999\\- enable the sandbox mode \*\/ ?\n/, '')
    .replace(/^-- MariaDB dump .*$/m, '-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)')
    .replace(/^-- Server version\t.*$/m, '-- Server version\t8.0.36')
    .replace(/utf8mb4_unicode_ci/g, 'utf8mb4_0900_ai_ci');
  if (opts.gtid) {
    text = text.replace(
      /^(\/\*!40111 SET @OLD_SQL_NOTES.*\n)/m,
      `$1SET @MYSQLDUMP_TEMP_LOG_BIN = @@SESSION.SQL_LOG_BIN;\nSET @@SESSION.SQL_LOG_BIN= 0;\n\n--\n-- GTID state at the beginning of the backup \n--\n\n` +
        `SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5120,\n4f21ab58-71ca-11e1-9e33-c80aa9429562:1-77';\n`,
    );
    text = text.replace(/^(-- Dump completed)/m, 'SET @@SESSION.SQL_LOG_BIN = @MYSQLDUMP_TEMP_LOG_BIN;\n$1');
  }
  await fs.writeFile(out, text);
}
