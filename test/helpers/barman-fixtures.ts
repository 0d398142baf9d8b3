import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseBarmanInfo, type BarmanBackup } from '../../orchestrator/core/barman-info.js';
import { freePort, PG_BIN_DIR } from './pg-cluster.js';
import { tempDir } from './harness.js';
import { postgresOwner, runAs, switchAndArchive } from './pgbackrest-fixtures.js';

const run = promisify(execFile);
const SERVER = 'pg';

/**
 * A real barman server folder, made by Debian's barman (3.4) from a real PostgreSQL 15 cluster:
 * WAL archived by `archive_command` into barman's incoming folder and processed by `barman
 * archive-wal` (compression gzip), a base backup by `barman backup` (backup_method postgres,
 * pg_basebackup), then rows in two batches with a known time between them, each batch's WAL
 * archived. Last, 50 "streamed" rows whose segment is never archived: it is in `streaming/` as
 * `<segment>.partial`, as barman's receive-wal keeps the segment it is writing (the cluster's
 * own pg_wal file, copied once the rows are committed). Run as the postgres OS user when we are
 * root.
 */
export interface BarmanServer {
  /** `<barman_home>/pg`: the folder a barman source names. */
  folder: string;
  backup: BarmanBackup;
  /** A time after the first batch written after the backup and before the second ("late") one. */
  betweenBatches: string;
  /** Rows of table orders at the backup (200), archived in all (1,100: 800 more, then 100 late), and with the streamed ones (1,150). */
  rows: { atBackup: number; all: number; streamed: number };
  /** The `.partial` segment in streaming/ (its file name). */
  partial: string;
  /** The archive's segment files (paths relative to folder), in order. */
  segments(folder?: string): Promise<string[]>;
  copy(): Promise<string>;
}

/**
 * `backupCompression`: barman's `backup_compression` (pg_basebackup's tar format, compressed
 * client-side): the backup's data is `base/<id>/data.tar.gz` rather than a `data/` folder.
 */
export async function makeBarmanServer(opts: { backupCompression?: 'gzip'; tablespace?: boolean } = {}): Promise<BarmanServer> {
  const base = await tempDir('barman');
  const owner = await postgresOwner();
  const home = path.join(base, 'home');
  const data = path.join(base, 'data');
  const sock = path.join(base, 'sock');
  const incoming = path.join(home, SERVER, 'incoming');
  await fs.mkdir(sock);
  await fs.mkdir(incoming, { recursive: true });
  const port = await freePort();
  const conf = path.join(base, 'barman.conf');
  await fs.writeFile(
    conf,
    [
      '[barman]',
      `barman_home = ${home}`,
      `barman_user = ${owner ? 'postgres' : os.userInfo().username}`,
      `log_file = ${path.join(base, 'barman.log')}`,
      'compression = gzip',
      '',
      `[${SERVER}]`,
      'description = backproof test server',
      `conninfo = host=${sock} port=${port} user=postgres dbname=postgres`,
      `streaming_conninfo = host=${sock} port=${port} user=postgres`,
      'backup_method = postgres',
      'archiver = on',
      // pg_basebackup's default spread checkpoint keeps an idle test cluster waiting ~90 s.
      'immediate_checkpoint = true',
      ...(opts.backupCompression ? [`backup_compression = ${opts.backupCompression}`, 'backup_compression_format = tar'] : []),
      '',
    ].join('\n'),
  );
  if (owner) await run('chown', ['-R', `${owner.uid}:${owner.gid}`, base]);
  const as = (cmd: string, args: string[]) => runAs(owner, cmd, args, base);
  const barman = (...args: string[]) => as('barman', ['-c', conf, '-q', ...args]);
  await as(path.join(PG_BIN_DIR, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
  await fs.appendFile(
    path.join(data, 'postgresql.conf'),
    [`port=${port}`, `unix_socket_directories='${sock}'`, "listen_addresses=''", 'wal_level=replica', 'archive_mode=on', `archive_command='cp %p ${incoming}/%f'`, 'fsync=off', ''].join('\n'),
  );
  const psql = (sql: string, db = 'postgres') => as(path.join(PG_BIN_DIR, 'psql'), ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-h', sock, '-p', String(port), '-U', 'postgres', '-d', db, '-c', sql]);
  const archive = async (): Promise<void> => {
    await switchAndArchive(psql);
    await barman('archive-wal', SERVER);
  };
  await as(path.join(PG_BIN_DIR, 'pg_ctl'), ['-D', data, '-l', path.join(base, 'postgres.log'), '-w', 'start']);
  let betweenBatches: string;
  let partial: string;
  try {
    await psql('CREATE DATABASE shop');
    if (opts.tablespace) {
      // A tablespace outside the data directory, holding the orders table.
      const location = path.join(base, 'tblspc');
      await fs.mkdir(location);
      if (owner) await fs.chown(location, owner.uid, owner.gid);
      await psql(`CREATE TABLESPACE fast LOCATION '${location}'`);
    }
    await psql(`CREATE TABLE orders (id int PRIMARY KEY, note text NOT NULL)${opts.tablespace ? ' TABLESPACE fast' : ''}`, 'shop');
    await psql("INSERT INTO orders (id, note) SELECT g, 'before backup' FROM generate_series(1, 200) g", 'shop');
    await archive();
    await barman('backup', SERVER);
    await archive();
    await psql("INSERT INTO orders (id, note) SELECT g, 'after backup' FROM generate_series(201, 1000) g", 'shop');
    await archive();
    await new Promise((r) => setTimeout(r, 1100));
    betweenBatches = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 1100));
    await psql("INSERT INTO orders (id, note) SELECT g, 'late' FROM generate_series(1001, 1100) g", 'shop');
    await archive();
    // Segments after the late rows' one, so that a gap there has archived WAL beyond it.
    await psql('CREATE TABLE tail_marker (x int)', 'shop');
    await archive();
    await psql("INSERT INTO orders (id, note) SELECT g, 'streamed' FROM generate_series(1101, 1150) g", 'shop');
    const current = (await psql('SELECT pg_walfile_name(pg_current_wal_lsn())')).trim();
    partial = `${current}.partial`;
    const streaming = path.join(home, SERVER, 'streaming');
    await fs.mkdir(streaming, { recursive: true });
    await fs.copyFile(path.join(data, 'pg_wal', current), path.join(streaming, partial));
    if (owner) await run('chown', ['-R', `${owner.uid}:${owner.gid}`, streaming]);
  } finally {
    await as(path.join(PG_BIN_DIR, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']);
  }
  const folder = path.join(home, SERVER);
  const [id] = await fs.readdir(path.join(folder, 'base'));
  const backup = parseBarmanInfo(id!, await fs.readFile(path.join(folder, 'base', id!, 'backup.info'), 'utf8'));
  if (!backup || backup.status !== 'DONE') throw new Error(`barman's backup ${id} is not DONE: ${backup?.status}`);
  const segments = async (f = folder): Promise<string[]> => {
    const out = await run('find', [path.join(f, 'wals'), '-type', 'f', '-regex', '.*/[0-9A-F]+']);
    return out.stdout
      .split('\n')
      .filter((l) => /\/[0-9A-F]{24}$/.test(l))
      .map((l) => path.relative(f, l))
      .sort();
  };
  return {
    folder,
    backup,
    betweenBatches,
    rows: { atBackup: 200, all: 1100, streamed: 1150 },
    partial,
    segments,
    async copy() {
      const dir = await tempDir('barman-copy');
      await run('cp', ['-a', folder, path.join(dir, SERVER)]);
      return path.join(dir, SERVER);
    },
  };
}
