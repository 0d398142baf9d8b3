import { execFile } from 'node:child_process';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
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
}

export async function makeMariabackupChain(): Promise<MariabackupChain> {
  const folder = path.join(await tempDir('mariabackup'), 'backups');
  await fs.mkdir(folder);
  const server = await startMysqlFixtureServer();
  const names: [string, string, string] = ['full-20261206', 'inc1-20261206', 'inc2-20261206'];
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
  } finally {
    await server.stop();
  }
  return {
    folder,
    names,
    rows: [200, 1000, 1500],
    async copy() {
      const dir = path.join(await tempDir('mariabackup-copy'), 'backups');
      await fs.cp(folder, dir, { recursive: true, preserveTimestamps: true });
      return dir;
    },
  };
}
