import { execFile } from 'node:child_process';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { createGzip } from 'node:zlib';
import { tempDir } from './harness.js';
import { startMysqlFixtureServer } from './mysql-fixtures.js';

const run = promisify(execFile);

/**
 * A real mariadb-backup chain: a MariaDB server (a throwaway container of the sandbox image, no
 * network) with a shop database, backed up by the image's own mariadb-backup: a full backup,
 * rows, an incremental on it, rows, an incremental on that. Each target directory is made in the
 * container and copied out with tar into `folder/<name>` (times kept: a backup's checkpoints file
 * is written when it ends).
 */
export interface MariabackupChain {
  folder: string;
  /** Backup names, oldest first: full, inc1, inc2. */
  names: [string, string, string];
  /** Rows of shop.orders at each backup. */
  rows: [number, number, number];
  /** A copy of the folder to break. */
  copy(): Promise<string>;
  /**
   * Single-file backups as `mariadb-backup --backup --stream=xbstream` writes them, taken after
   * the chain and 100 more rows: `full` a full backup, gzipped (`.xb.gz`, rows `streamRows`);
   * `incremental` an incremental on the chain's last backup (`.xb`), whose base is not a file.
   */
  streams: { full: string; incremental: string };
  streamRows: number;
  /**
   * The server's binary logs (it logs in row format throughout), copied after two more batches of
   * rows: 100 "after backups", then, after `betweenBatches`, 50 "late" (1,750 rows in all).
   */
  binlogs: string;
  betweenBatches: string;
  allRows: number;
}

export async function makeMariabackupChain(): Promise<MariabackupChain> {
  const folder = path.join(await tempDir('mariabackup'), 'backups');
  await fs.mkdir(folder);
  const server = await startMysqlFixtureServer({ binlog: true });
  const binlogs = path.join(path.dirname(folder), 'binlogs');
  let betweenBatches: string;
  const names: [string, string, string] = ['full-20261206', 'inc1-20261206', 'inc2-20261206'];
  const streamDir = path.join(path.dirname(folder), 'streams');
  const incDir = path.join(path.dirname(folder), 'incremental-stream');
  const streams = { full: path.join(streamDir, 'shop-20261206.xb.gz'), incremental: path.join(incDir, 'shop-inc-20261206.xb') };
  try {
    await server.sql('CREATE DATABASE shop');
    await server.sql("CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(40) NOT NULL) ENGINE=InnoDB; INSERT INTO orders SELECT seq, 'before full' FROM seq_1_to_200", 'shop');
    await server.sandbox.exec(['mkdir', '-p', '/tmp/mb'], { user: 'mysql' });
    // A busy server checkpoints all the time, so each backup ends at its own LSN (to_lsn is the
    // checkpoint's); this idle one is restarted before each backup (InnoDB checkpoints at a clean
    // shutdown), or all three could share one to_lsn, and any of them would be a base for the next.
    const backup = async (name: string, base?: string): Promise<void> => {
      await server.restart();
      const argv = ['mariadb-backup', '--no-defaults', '--backup', '--user=root', '--socket=/tmp/fixture.sock', `--target-dir=/tmp/mb/${name}`, ...(base ? [`--incremental-basedir=/tmp/mb/${base}`] : [])];
      const r = await server.sandbox.exec(argv, { user: 'mysql', maxOutputBytes: 64 * 1024 });
      if (r.exitCode !== 0) throw new Error(`mariadb-backup failed (exit ${r.exitCode}): ${r.stderr.slice(-800)}`);
      // Out of the container with tar, into a file on the host, then unpacked into the folder.
      const tarFile = path.join(path.dirname(folder), `${name}.tar`);
      const t = await server.sandbox.exec(['tar', '-c', '-f', '-', '-C', '/tmp/mb', name], { user: 'mysql', stdout: createWriteStream(tarFile) });
      if (t.exitCode !== 0) throw new Error(`copying backup ${name} out failed: ${t.stderr}`);
      await run('tar', ['-x', '-f', tarFile, '-C', folder]);
      await fs.rm(tarFile);
    };
    await backup(names[0]);
    await server.sql("INSERT INTO orders SELECT seq, 'before inc1' FROM seq_201_to_1000", 'shop');
    await new Promise((r) => setTimeout(r, 1100));
    await backup(names[1], names[0]);
    await server.sql("INSERT INTO orders SELECT seq, 'before inc2' FROM seq_1001_to_1500", 'shop');
    await new Promise((r) => setTimeout(r, 1100));
    await backup(names[2], names[1]);
    await server.sql("INSERT INTO orders SELECT seq, 'before the streams' FROM seq_1501_to_1600", 'shop');
    const stream = async (file: string, base?: string): Promise<void> => {
      await server.restart();
      const argv = ['mariadb-backup', '--no-defaults', '--backup', '--stream=xbstream', '--user=root', '--socket=/tmp/fixture.sock', `--target-dir=/tmp/mb/stream-${path.basename(file)}`, ...(base ? [`--incremental-basedir=/tmp/mb/${base}`] : [])];
      const out = createWriteStream(file);
      const r = await server.sandbox.exec(argv, { user: 'mysql', stdout: file.endsWith('.gz') ? pipeInto(createGzip(), out) : out, maxOutputBytes: 64 * 1024 });
      await new Promise<void>((resolve) => (out.writableFinished ? resolve() : out.once('finish', () => resolve())));
      if (r.exitCode !== 0) throw new Error(`mariadb-backup --stream failed (exit ${r.exitCode}): ${r.stderr.slice(-800)}`);
    };
    await fs.mkdir(streamDir);
    await fs.mkdir(incDir);
    await stream(streams.full);
    await stream(streams.incremental, names[2]);
    await server.sql("INSERT INTO orders SELECT seq, 'after backups' FROM seq_1601_to_1700", 'shop');
    await new Promise((r) => setTimeout(r, 1100));
    betweenBatches = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 1100));
    await server.sql("INSERT INTO orders SELECT seq, 'late' FROM seq_1701_to_1750", 'shop');
    await server.sql('FLUSH BINARY LOGS');
    // The logs, out of the container as the tar of them (the index file left behind).
    await fs.mkdir(binlogs);
    const tarFile = path.join(path.dirname(folder), 'binlogs.tar');
    const t = await server.sandbox.exec(['sh', '-c', 'cd /var/lib/mysql && tar -c -f - mariadb-bin.[0-9]*'], { user: 'mysql', stdout: createWriteStream(tarFile) });
    if (t.exitCode !== 0) throw new Error(`copying the binary logs out failed: ${t.stderr}`);
    await run('tar', ['-x', '-f', tarFile, '-C', binlogs]);
    await fs.rm(tarFile);
  } finally {
    await server.stop();
  }
  return {
    folder,
    names,
    rows: [200, 1000, 1500],
    streams,
    streamRows: 1600,
    binlogs,
    betweenBatches,
    allRows: 1750,
    async copy() {
      const dir = path.join(await tempDir('mariabackup-copy'), 'backups');
      await fs.cp(folder, dir, { recursive: true, preserveTimestamps: true });
      return dir;
    },
  };
}

/** `first`, whose output goes on into `then`: write into the returned stream. */
function pipeInto(first: NodeJS.ReadWriteStream & Writable, then: Writable): Writable {
  first.pipe(then);
  return first;
}
