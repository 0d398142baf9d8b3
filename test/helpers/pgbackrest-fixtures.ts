import { execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { backupSets, infoFromJson, parseInfoFile, type BackupSet } from '../../orchestrator/core/pgbackrest-info.js';
import { freePort, PG_BIN_DIR } from './pg-cluster.js';
import { tempDir } from './harness.js';

/**
 * A real pgBackRest repository, made by Debian's pgbackrest (2.45) from a real PostgreSQL 15
 * cluster that archives its WAL with `pgbackrest archive-push`: a full backup, rows, an
 * incremental backup, then rows written after the last backup in two batches with a known time
 * between them, each batch's WAL archived. Run as the postgres OS user when we are root.
 */
export interface PgbackrestRepo {
  /** repo1-path */
  repo: string;
  stanza: string;
  /** Database the rows are in (not backproof's default "restore"). */
  database: string;
  /** The sets, oldest first (full, incr). */
  sets: BackupSet[];
  /** A time after the first batch written after the incremental backup and before the second ("late") one. */
  betweenBatches: string;
  /** A time after the late rows and before the last commit of the archive (table tail_marker). */
  afterLate: string;
  /** Rows of table orders: after the incr backup (1,000), after the first later batch (1,500), in all (1,600). */
  rows: { atIncr: number; beforeLate: number; all: number };
  /** The archive's segment files (paths relative to repo), in order. */
  segments(repo?: string): Promise<string[]>;
  /** A copy of the repository to damage. */
  copy(): Promise<string>;
}

const run = promisify(execFile);
const STANZA = 'main';

/** Where an S3 repository goes: a bucket of an HTTPS S3 server (startS3Server with tls). */
export interface PgbackrestS3Target {
  port: number;
  bucket: string;
  /** The CA of the server's certificate (pgbackrest checks it). */
  caFile: string;
}

/**
 * `cipherPass`: an encrypted repository (repo1-cipher-type aes-256-cbc). `s3`: the repository in
 * a bucket (repo1-type=s3, repo1-path /pgbackrest), pgbackrest pushing the WAL and the backups
 * there itself; `repo` is then that path in the bucket, and `segments`/`copy` are not available.
 */
export async function makePgbackrestRepo(opts: { cipherPass?: string; s3?: PgbackrestS3Target } = {}): Promise<PgbackrestRepo> {
  const base = await tempDir('pgbackrest');
  const owner = await postgresOwner();
  const repo = path.join(base, 'repo');
  const data = path.join(base, 'data');
  const sock = path.join(base, 'sock');
  await fs.mkdir(sock);
  await fs.mkdir(repo);
  for (const dir of [base, sock, repo]) if (owner) await fs.chown(dir, owner.uid, owner.gid);
  const conf = path.join(base, 'pgbackrest.conf');
  const s3 = opts.s3;
  const repoLines = s3
    ? [
        'repo1-type=s3',
        'repo1-path=/pgbackrest',
        `repo1-s3-bucket=${s3.bucket}`,
        'repo1-s3-endpoint=127.0.0.1',
        `repo1-storage-port=${s3.port}`,
        `repo1-storage-ca-file=${s3.caFile}`,
        'repo1-s3-region=us-east-1',
        'repo1-s3-key=S3RVER',
        'repo1-s3-key-secret=S3RVER',
        'repo1-s3-uri-style=path',
      ].join('\n')
    : `repo1-path=${repo}`;
  await fs.writeFile(conf, `[${STANZA}]\npg1-path=${data}\npg1-socket-path=${sock}\npg1-port=PORT\n[global]\n${repoLines}\nlog-path=${base}\nlock-path=${base}\nlog-level-file=off\nstart-fast=y\nrepo1-retention-full=9\n${opts.cipherPass ? `repo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass=${opts.cipherPass}\n` : ''}`);
  const port = await freePort();
  await fs.writeFile(conf, (await fs.readFile(conf, 'utf8')).replace('PORT', String(port)));
  if (owner) await fs.chown(conf, owner.uid, owner.gid);
  const as = (cmd: string, args: string[]) => runAs(owner, cmd, args, base);
  await as(path.join(PG_BIN_DIR, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
  await fs.appendFile(
    path.join(data, 'postgresql.conf'),
    [
      `port=${port}`,
      `unix_socket_directories='${sock}'`,
      "listen_addresses=''",
      'wal_level=replica',
      'archive_mode=on',
      `archive_command='pgbackrest --config=${conf} --stanza=${STANZA} archive-push %p'`,
      'fsync=off',
      '',
    ].join('\n'),
  );
  const pgbackrest = (...args: string[]) => as('pgbackrest', [`--config=${conf}`, `--stanza=${STANZA}`, ...args]);
  const psql = (sql: string, db = 'postgres') => as(path.join(PG_BIN_DIR, 'psql'), ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-h', sock, '-p', String(port), '-U', 'postgres', '-d', db, '-c', sql]);
  await as(path.join(PG_BIN_DIR, 'pg_ctl'), ['-D', data, '-l', path.join(base, 'postgres.log'), '-w', 'start']);
  let betweenBatches: string;
  let afterLate: string;
  try {
    await pgbackrest('stanza-create');
    await psql('CREATE DATABASE shop');
    await psql("CREATE TABLE orders (id int PRIMARY KEY, note text NOT NULL, created_at timestamptz NOT NULL DEFAULT clock_timestamp())", 'shop');
    await psql("INSERT INTO orders (id, note) SELECT g, 'before full' FROM generate_series(1, 200) g", 'shop');
    await pgbackrest('backup', '--type=full');
    await psql("INSERT INTO orders (id, note) SELECT g, 'before incr' FROM generate_series(201, 1000) g", 'shop');
    await pgbackrest('backup', '--type=incr');
    await psql("INSERT INTO orders (id, note) SELECT g, 'after incr' FROM generate_series(1001, 1500) g", 'shop');
    await switchAndArchive(psql);
    await new Promise((r) => setTimeout(r, 1100));
    betweenBatches = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 1100));
    await psql("INSERT INTO orders (id, note) SELECT g, 'late' FROM generate_series(1501, 1600) g", 'shop');
    await switchAndArchive(psql);
    await new Promise((r) => setTimeout(r, 1100));
    afterLate = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 1100));
    // Segments after the late rows' one, so that a gap there has archived WAL beyond it.
    await psql('CREATE TABLE tail_marker (x int)', 'shop');
    await switchAndArchive(psql);
  } finally {
    await as(path.join(PG_BIN_DIR, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']);
  }
  const sets = opts.cipherPass || s3
    ? infoFromJson(await pgbackrest('--output=json', 'info'), STANZA)!.sets
    : backupSets(parseInfoFile(await fs.readFile(path.join(repo, 'backup', STANZA, 'backup.info'), 'utf8')));
  const segments = async (r = repo): Promise<string[]> => {
    const out = await run('find', [path.join(r, 'archive', STANZA), '-type', 'f', '-name', '0*-*']);
    return out.stdout
      .split('\n')
      .filter(Boolean)
      .map((f) => path.relative(r, f))
      .sort();
  };
  return {
    repo: s3 ? '/pgbackrest' : repo,
    stanza: STANZA,
    database: 'shop',
    sets,
    betweenBatches,
    afterLate,
    rows: { atIncr: 1000, beforeLate: 1500, all: 1600 },
    segments,
    async copy() {
      const dir = await tempDir('pgbackrest-copy');
      await run('cp', ['-a', repo, path.join(dir, 'repo')]);
      return path.join(dir, 'repo');
    },
  };
}

/** pg_switch_wal, then waits until the archiver has pushed the segment it closed. */
export async function switchAndArchive(psql: (sql: string) => Promise<string>): Promise<void> {
  const segment = (await psql('SELECT pg_walfile_name(pg_switch_wal())')).trim();
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const last = (await psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")).trim();
    if (last >= segment) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`segment ${segment} was not archived within 30 s`);
}

export interface Owner {
  uid: number;
  gid: number;
}

export async function postgresOwner(): Promise<Owner | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
  const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
  return { uid, gid };
}

export function runAs(owner: Owner | undefined, cmd: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8', TZ: 'UTC', ...(owner ? { HOME: cwd, USER: 'postgres', LOGNAME: 'postgres' } : {}) };
    // pg_ctl start leaves the server running with our pipes: read until the command exits, not until they close.
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], ...(owner ? { uid: owner.uid, gid: owner.gid } : {}) });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${path.basename(cmd)} ${args.join(' ')} exited ${code}: ${out.slice(-3000)}`))));
  });
}
