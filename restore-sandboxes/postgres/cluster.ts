/**
 * The PostgreSQL sandbox's cluster: where it lives and how initdb makes it. One definition for
 * the image recipe (`backproof images build postgres:<major>` runs initdb once, at build time,
 * and keeps the result as a template) and for PostgresRestorer.prepare() (which unpacks that
 * template, or runs initdb itself on images without one). No imports: build-image.ts and the
 * restorer both read this file.
 */

/** The sandbox's per-run data volume. */
export const DATA_ROOT = '/var/lib/postgresql';
/** The cluster's folder inside DATA_ROOT. */
export const DATA_DIR_NAME = 'backproof-restore';
/** The cluster's data directory. */
export const DATA_DIR = `${DATA_ROOT}/${DATA_DIR_NAME}`;
/** initdb arguments of the sandbox's server (also the benchmark's by-hand baseline's). */
export const INITDB_ARGS = ['-D', DATA_DIR, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync'];

/** Debian's (and the official images') PostgreSQL folder: one <major>/bin per server. */
export const POSTGRES_LIB = '/usr/lib/postgresql';

/**
 * backproof's images keep the cluster initdb made at build time as a tar of DATA_DIR_NAME
 * (relative to DATA_ROOT) in POSTGRES_LIB, named after its major: the look in POSTGRES_LIB that
 * finds the server also finds its template.
 */
export const templateName = (major: number | string): string => `backproof-${major}-cluster.tar`;

/**
 * The empty database the image's cluster template carries beside postgres and the templates,
 * made at build time: a run renames it to the policy's `postgres.database` and restores into it
 * instead of paying CREATE DATABASE, ~0.2-0.3 s of copying template1 at every run. A name of its
 * own, so an older backproof sharing the engine (which creates `restore` itself) never meets it.
 */
export const PREMADE_DATABASE = 'backproof_restore';

/** Words for a shell command line, each quoted unless it is plainly safe. */
export function shellWords(words: readonly string[]): string {
  return words.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}
