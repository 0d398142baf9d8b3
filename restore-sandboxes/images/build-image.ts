import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import type Docker from 'dockerode';
import type { Logger } from '../../orchestrator/core/logger.js';
import { BackproofError } from '../../orchestrator/core/errors.js';
import { DATA_DIR, DATA_DIR_NAME, DATA_ROOT as POSTGRES_DATA_ROOT, INITDB_ARGS, POSTGRES_LIB, PREMADE_DATABASE, shellWords, templateName } from '../postgres/cluster.js';

/**
 * Sandbox images built from Debian packages, without a registry: mmdebstrap writes a root
 * filesystem as a tar stream that goes straight into `docker import`. Such an image has no CMD:
 * restorers give every container an explicit command.
 */
export interface ImageRecipe {
  name: string;
  tag: string;
  suite: string;
  /** Debian mirror; omitted: mmdebstrap uses this machine's apt sources. */
  mirror?: string;
  packages: string[];
  /** Shell commands run by mmdebstrap on the finished tree ("$1" is its root). */
  customize: string[];
  description: string;
}

const DEBIAN_MIRROR = process.env.BACKPROOF_DEBIAN_MIRROR || 'http://deb.debian.org/debian';

/** A PostgreSQL sandbox image from a Debian release's own postgresql-<major> packages. */
function postgresRecipe(major: number, suite: string, mirror?: string): ImageRecipe {
  return {
    name: `postgres:${major}`,
    tag: `backproof/postgres:${major}`,
    suite,
    mirror,
    // locales-all: dumps create databases with the production server's locale (en_US.UTF-8,
    // de_DE.UTF-8, ...); restoring with the same collation is restoring what production had.
    // zstd, xz and bzip2 let later restorers decompress inside the sandbox. pgbackrest restores
    // physical backups (source driver pgbackrest) inside the sandbox, from the repository copy
    // the driver streams in.
    packages: [`postgresql-${major}`, 'locales-all', 'zstd', 'xz-utils', 'bzip2', 'pgbackrest'],
    customize: [
      // The package's default cluster is not used and would be copied into every run's data volume.
      `rm -rf "$1"/var/lib/postgresql/${major} "$1"/etc/postgresql/${major}`,
      // The restorer's empty cluster, made once here by initdb with the restorer's arguments
      // and kept as a tar beside the binaries: PostgresRestorer.prepare() unpacks it into the
      // run's data volume (~0.3 s) instead of running initdb (~1 s). Not left at DATA_DIR for
      // Docker to seed the volume with: Docker's copy of its ~1,000 files took 0.7-1 s per run
      // here, and an older backproof on the same engine would find DATA_DIR taken for its initdb.
      // initdb refuses root: it runs as postgres (GNU chroot looks the user up in the tree) with
      // a sandbox exec's environment (no TZ or locale of the build host: the time zone comes
      // from the image's /etc/localtime). mmdebstrap has mounted /proc, /sys and /dev (with a
      // /dev/shm tmpfs) in the tree, so initdb's probes pick what they pick in a sandbox (posix
      // shared memory, 100 connections, 128MB shared_buffers): postgresql.conf is the same.
      `env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=${POSTGRES_DATA_ROOT} chroot --userspec=postgres:postgres "$1" ${POSTGRES_LIB}/${major}/bin/initdb ${shellWords(INITDB_ARGS)} >/dev/null`,
      // The empty database a run restores into (PREMADE_DATABASE), made once here by the server
      // in single-user mode (no socket, no start and stop) rather than by CREATE DATABASE in
      // every run. The restorer finds it by name; without it (an older image) it creates one.
      `echo 'CREATE DATABASE ${PREMADE_DATABASE}' | env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=${POSTGRES_DATA_ROOT} chroot --userspec=postgres:postgres "$1" ${POSTGRES_LIB}/${major}/bin/postgres --single -F -D ${DATA_DIR} postgres >/dev/null`,
      // The single-user server exits 0 even when a statement failed: four databases or the build fails.
      `test "$(ls "$1"${DATA_DIR}/base | wc -l)" -eq 4`,
      `tar --numeric-owner -C "$1"${POSTGRES_DATA_ROOT} -cf "$1"${POSTGRES_LIB}/${templateName(major)} ${DATA_DIR_NAME}`,
      `rm -rf "$1"${POSTGRES_DATA_ROOT}/${DATA_DIR_NAME}`,
      'rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/* "$1"/usr/share/doc "$1"/usr/share/man',
    ],
    description: `PostgreSQL ${major}, pgBackRest and all locales from Debian ${suite}'s packages`,
  };
}

/**
 * Images backproof can build. `postgres` is PostgreSQL 15 (Debian 12, this machine's release);
 * `postgres:17` comes from Debian 13. The PostgreSQL restorer picks, for each dump, the smallest
 * of these majors that is at least the dump's own (pg_restore reads older archive versions).
 */
/** The user (uid:gid) that file-archive and SQLite restores run as; it owns /restore. */
export const FILES_USER = '1000:1000';

const SLIM = 'rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/* "$1"/usr/share/doc "$1"/usr/share/man';

export const IMAGE_RECIPES: Record<string, ImageRecipe> = {
  postgres: postgresRecipe(15, 'bookworm'),
  'postgres:15': postgresRecipe(15, 'bookworm'),
  'postgres:17': postgresRecipe(17, 'trixie', DEBIAN_MIRROR),
  mariadb: {
    name: 'mariadb',
    tag: 'backproof/mariadb',
    suite: 'bookworm',
    // mariadb-server's client tools include mariadb-dump (mysqldump) and mariadb-admin;
    // mariadb-backup prepares physical backups (the mariabackup source) in the sandbox.
    packages: ['mariadb-server', 'mariadb-client', 'mariadb-backup', 'zstd', 'xz-utils', 'bzip2'],
    customize: [
      // The package's install makes a data directory with its own settings: replaced.
      'rm -rf "$1"/var/lib/mysql/* "$1"/var/log/mysql/*',
      'chroot "$1" chown mysql:mysql /var/lib/mysql',
      // An empty, initialised data directory (system tables, root over the socket without a
      // password, a small redo log the server grows at start): Docker seeds each run's volume
      // with a copy (26 MB, well under a second), where mariadb-install-db at every run took
      // 1-4 s. The restorer still runs mariadb-install-db on images that lack it.
      'chroot "$1" mariadb-install-db --no-defaults --user=mysql --datadir=/var/lib/mysql --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve --force --innodb-log-file-size=8M >/dev/null',
      'rm -f "$1"/var/lib/mysql/ib_buffer_pool',
      SLIM,
    ],
    description: "MariaDB server, client and mariadb-backup from Debian bookworm's packages",
  },
  files: {
    name: 'files',
    tag: 'backproof/files',
    suite: 'bookworm',
    // tar extracts the checked stream; bsdtar (libarchive-tools) turns a zip into a tar stream
    // inside the sandbox; sqlite3 for kind sqlite; curl runs http probes inside a sandbox's
    // network namespace; busybox is a small HTTP server for tests and custom pods.
    packages: ['tar', 'libarchive-tools', 'zstd', 'xz-utils', 'bzip2', 'sqlite3', 'curl', 'busybox'],
    customize: [`mkdir -p "$1"/restore && chown ${FILES_USER} "$1"/restore && chmod 0755 "$1"/restore`, SLIM],
    description: "tar, bsdtar, compressors, sqlite3, curl and busybox from Debian bookworm's packages",
  },
  qemu: {
    name: 'qemu',
    tag: 'backproof/qemu',
    suite: 'bookworm',
    // kind vm: qemu-system-x86 (SeaBIOS included) and qemu-utils (qemu-img), ovmf for UEFI
    // guests, socat carries QMP between the orchestrator and QEMU's socket, tesseract reads
    // graphics-mode screens, compressors expand .gz/.zst/.xz images.
    packages: ['qemu-system-x86', 'qemu-utils', 'ovmf', 'socat', 'tesseract-ocr', 'tesseract-ocr-eng', 'zstd', 'xz-utils', 'gzip', 'coreutils'],
    customize: [
      `mkdir -p "$1"/restore && chmod 1777 "$1"/restore`,
      // Firmware for display adapters and network cards the sandbox never gives a guest.
      'rm -rf "$1"/usr/share/qemu/*.rom.d "$1"/usr/share/locale',
      SLIM,
    ],
    description: "QEMU (x86-64, SeaBIOS, OVMF), qemu-img, socat and tesseract OCR from Debian bookworm's packages",
  },
};

/** A digest of what a recipe builds; images carry it, and --if-missing rebuilds when it changed. */
export function recipeDigest(recipe: ImageRecipe): string {
  return createHash('sha256').update(JSON.stringify({ suite: recipe.suite, packages: recipe.packages, customize: recipe.customize })).digest('hex').slice(0, 16);
}

export const LABEL_RECIPE = 'backproof.recipe';

/** PostgreSQL majors with a recipe, ascending. */
export const POSTGRES_IMAGE_MAJORS = [...new Set(Object.keys(IMAGE_RECIPES).filter((k) => k.startsWith('postgres:')).map((k) => Number(k.split(':')[1])))].sort((a, b) => a - b);

export interface BuildOptions {
  docker: Docker;
  recipe: ImageRecipe;
  tag?: string;
  logger: Logger;
  signal?: AbortSignal;
}

/** Builds the image and returns its id. Needs root (mmdebstrap) and a running engine. */
export async function buildImage(opts: BuildOptions): Promise<string> {
  const { recipe, logger } = opts;
  const tag = opts.tag ?? recipe.tag;
  const [repo, version] = splitTag(tag);
  const args = [
    '--variant=minbase',
    '--mode=auto',
    `--include=${recipe.packages.join(',')}`,
    ...recipe.customize.map((c) => `--customize-hook=${c}`),
    recipe.suite,
    '-',
    ...(recipe.mirror ? [recipe.mirror] : []),
  ];
  logger.info(`building ${tag}: ${recipe.description} (mmdebstrap, about a minute)`);
  const child = spawn('mmdebstrap', args, { stdio: ['ignore', 'pipe', 'pipe'], signal: opts.signal });
  let stderrTail = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    stderrTail = (stderrTail + text).slice(-4000);
    for (const line of text.split('\n')) {
      if (/^I: /.test(line)) logger.info(`  ${line.slice(3)}`);
    }
  });
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? -1));
  });
  let importError: unknown;
  const imported = importTar(opts.docker, child.stdout, repo, version, recipeDigest(recipe)).catch((err: unknown) => {
    importError = err;
  });
  let code: number;
  try {
    code = await exited;
  } catch (err) {
    const missing = (err as { code?: string }).code === 'ENOENT';
    throw new BackproofError(
      'image_build_failed',
      missing ? 'mmdebstrap is not installed; install it: apt-get install mmdebstrap' : `mmdebstrap failed to start: ${(err as Error).message}`,
      { cause: err },
    );
  }
  await imported;
  if (code !== 0 || importError) {
    // A failed build may still have imported what it streamed so far: never leave that tagged.
    await opts.docker
      .getImage(tag)
      .remove()
      .catch(() => undefined);
  }
  if (code !== 0) {
    throw new BackproofError('image_build_failed', `mmdebstrap exited with ${code}:\n${stderrTail.trim()}`);
  }
  if (importError) {
    throw new BackproofError('image_build_failed', `docker import failed: ${(importError as Error).message}`, { cause: importError });
  }
  const info = await opts.docker.getImage(tag).inspect();
  logger.info(`built ${tag} (${(info.Size / 1024 ** 2).toFixed(0)} MB, ${info.Id.slice(0, 19)})`);
  return info.Id;
}

async function importTar(docker: Docker, tar: NodeJS.ReadableStream, repo: string, tag: string, digest: string): Promise<void> {
  const response = await docker.importImage(tar, {
    repo,
    tag,
    changes: ['LABEL org.opencontainers.image.vendor=backproof', `LABEL ${LABEL_RECIPE}=${digest}`],
  } as object);
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(response, (err: Error | null, output: Array<{ error?: string }>) => {
      const failed = output?.find((o) => o.error);
      if (err) reject(err);
      else if (failed?.error) reject(new Error(failed.error));
      else resolve();
    });
  });
}

function splitTag(tag: string): [string, string] {
  const i = tag.lastIndexOf(':');
  if (i <= 0 || tag.slice(i).includes('/')) return [tag, 'latest'];
  return [tag.slice(0, i), tag.slice(i + 1)];
}
