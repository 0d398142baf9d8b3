import type { Readable } from 'node:stream';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { restoreTarget } from '../../orchestrator/core/config-types.js';
import { backupSets, infoFromJson, isCiphertext, parseInfoFile, type BackupSet } from '../../orchestrator/core/pgbackrest-info.js';
import type { RestoreContext } from '../restorer.js';
import { DATA_DIR, DATA_ROOT } from './cluster.js';
import { archivedSegments, lastLines, physicalExec, postgresTime, replayToTarget, requireSameMajor, unpackInPlaceOfEmptyCluster, type PhysicalRestore, type PhysicalServer } from './physical-replay.js';

export type { PhysicalRestore } from './physical-replay.js';

/**
 * Physical PostgreSQL backups made by pgBackRest, restored by pgBackRest itself inside the
 * sandbox and brought up by the sandbox's PostgreSQL replaying the archived WAL.
 *
 * The stream (drivers/pgbackrest) is a tar of the repository's part a restore needs; its first
 * member is the stanza's `archive.info`, which is how it is recognised here and where the
 * PostgreSQL major is read before the sandbox is chosen. In the sandbox: the tar is unpacked into
 * the run's volume, `pgbackrest restore` writes the backup set into the data directory (checking
 * every file against the set's manifest), and PostgreSQL starts on it with a configuration of
 * backproof's own (the production postgresql.conf, pg_hba.conf and preloaded libraries are not
 * used; archiving is off; no hot standby, so nothing is read before replay has ended), replays
 * the archived WAL to the target, and promotes.
 *
 * A gap in the WAL archive is found from the archive's own listing: PostgreSQL treats the first
 * missing segment as the end of the archive and promotes there without a word, and
 * `pgbackrest verify` (2.45) does not report it either; a missing segment before the newest one
 * archived is a `wal_gap` naming it, with what the replay reached.
 */

export const PGBACKREST_REPO = `${DATA_ROOT}/backproof-pgbackrest`;
const TABLESPACES = `${DATA_ROOT}/backproof-tablespaces`;

export interface PgbackrestStream {
  stanza: string;
  /** The PostgreSQL major of the stanza's current database, from archive.info. */
  major?: number;
  /** The repository is encrypted (its info files are ciphertext): the policy's cipherPass opens it. */
  encrypted?: boolean;
}

/** Recognises the driver's stream from its first tar member: the stanza's archive.info. */
export function detectPgbackrestStream(head: Buffer): PgbackrestStream | undefined {
  if (head.length < 512) return undefined;
  const name = cString(head.subarray(0, 100));
  const m = /^archive\/([A-Za-z0-9_.-]+)\/archive\.info$/.exec(name);
  if (!m) return undefined;
  const size = parseInt(cString(head.subarray(124, 136)).trim(), 8);
  if (!Number.isFinite(size)) return undefined;
  const body = head.subarray(512, 512 + Math.min(size, head.length - 512)).toString('utf8');
  if (isCiphertext(body)) return { stanza: m[1]!, encrypted: true };
  if (!body.startsWith('[backrest]')) return undefined;
  const version = parseInfoFile(body).get('db')?.get('db-version');
  const major = typeof version === 'string' || typeof version === 'number' ? parseInt(String(version), 10) : NaN;
  return { stanza: m[1]!, ...(Number.isFinite(major) ? { major } : {}) };
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString('latin1');
}

/** Restores the stream into DATA_DIR and brings the cluster up at the policy's recovery target. */
export async function restorePgbackrest(
  ctx: RestoreContext<'postgres'>,
  stream: Readable,
  found: PgbackrestStream,
  server: PhysicalServer,
): Promise<PhysicalRestore> {
  const { sandbox } = ctx;
  const recovery = restoreTarget(ctx.policy.postgres.recovery);
  // An encrypted repository: the passphrase reaches pgbackrest (and the archive-get PostgreSQL
  // runs during replay) through the environment, never a command line or a file.
  const source = ctx.policy.source;
  const cipherPass = found.encrypted && source.driver === 'pgbackrest' ? source.cipherPass : undefined;
  if (found.encrypted && !cipherPass) {
    stream.destroy();
    throw new VerificationError('unsupported_format', 'the pgBackRest repository is encrypted (repo1-cipher-type): set source.cipherPass to its passphrase');
  }
  // The cipher type through the environment too: the restore_command pgBackRest writes names
  // only the repository's path, so archive-get learns of the cipher from its environment.
  const env = cipherPass ? { PGBACKREST_REPO1_CIPHER_PASS: cipherPass, PGBACKREST_REPO1_CIPHER_TYPE: 'aes-256-cbc' } : undefined;
  const cipherArgs = cipherPass ? ['--repo1-cipher-type=aes-256-cbc'] : [];
  const exec = physicalExec(ctx, env);
  requireSameMajor(found.major, server, stream, ' with pgBackRest');
  const version = await exec(['pgbackrest', 'version'], 'pgbackrest', { ok: true }).catch(() => undefined);
  if (!version || version.exitCode !== 0) {
    stream.destroy();
    throw new VerificationError('sandbox_failed', `image ${sandbox.image} has no pgbackrest; rebuild it (backproof images build postgres:${server.major}) or set sandbox.image to a PostgreSQL image with pgBackRest`);
  }
  await unpackInPlaceOfEmptyCluster(exec, server, stream, PGBACKREST_REPO);
  const stanzaBackup = `${PGBACKREST_REPO}/backup/${found.stanza}`;
  let sets: BackupSet[];
  if (cipherPass) {
    const info = await exec(
      ['pgbackrest', '--no-config', `--stanza=${found.stanza}`, `--repo1-path=${PGBACKREST_REPO}`, ...cipherArgs, '--log-path=/tmp', '--lock-path=/tmp', '--log-level-file=off', '--log-level-console=warn', '--output=json', 'info'],
      'pgbackrest info',
      { ok: true },
    );
    const read = infoFromJson(info.stdout, found.stanza);
    if (!read || read.sets.length === 0) throw new VerificationError('source_denied', `pgbackrest could not read the encrypted repository with source.cipherPass: ${lastLines(info.stdout + info.stderr, 2)}`);
    sets = read.sets;
    const newest = read.databases.get(sets.at(-1)!.dbId);
    requireSameMajor(newest ? parseInt(newest.version, 10) : undefined, server, stream, ' with pgBackRest');
  } else {
    sets = backupSets(parseInfoFile((await exec(['cat', `${stanzaBackup}/backup.info`], 'reading backup.info')).stdout));
  }
  const manifests = await exec(['find', stanzaBackup, '-mindepth', '2', '-maxdepth', '2', '-name', 'backup.manifest'], 'listing the backup sets');
  const present = new Set(manifests.stdout.split('\n').map((l) => l.split('/').at(-2) ?? '').filter(Boolean));
  const set = sets.filter((s) => present.has(s.label)).at(-1);
  if (!set) throw new VerificationError('restore_failed', `the repository stream holds no backup set that backup.info lists (sets present: ${[...present].join(', ') || 'none'})`);
  const missingRefs = set.references.filter((r) => !present.has(r));
  if (missingRefs.length > 0) {
    throw new VerificationError('restore_failed', `backup ${set.label} (${set.type}) takes files from ${missingRefs.join(', ')}, which the repository does not hold: the chain is broken`);
  }
  const archived = await exec(['find', `${PGBACKREST_REPO}/archive/${found.stanza}`, '-type', 'f'], 'listing the WAL archive');
  const segments = archivedSegments(archived.stdout);

  const args = [
    '--no-config',
    `--stanza=${found.stanza}`,
    `--repo1-path=${PGBACKREST_REPO}`,
    ...cipherArgs,
    `--pg1-path=${DATA_DIR}`,
    '--log-path=/tmp',
    '--lock-path=/tmp',
    '--log-level-file=off',
    '--log-level-console=warn',
    '--log-level-stderr=off',
    `--set=${set.label}`,
    '--archive-mode=off',
    `--tablespace-map-all=${TABLESPACES}`,
    ...(recovery === 'latest' ? [] : recovery === 'immediate' ? ['--type=immediate', '--target-action=promote'] : ['--type=time', `--target=${postgresTime(recovery.time)}`, '--target-action=promote']),
    'restore',
  ];
  const restored = await exec(['pgbackrest', ...args], 'pgbackrest restore', { ok: true });
  if (restored.exitCode !== 0) {
    throw new VerificationError('restore_failed', `pgbackrest restore of ${set.label} failed: ${lastLines(restored.stdout + restored.stderr, 2)}`);
  }
  return replayToTarget(ctx, server, set, segments, {
    tool: version.stdout.trim(),
    stanza: found.stanza,
    backupLabel: set.label,
    backupType: set.type,
    backupStoppedAt: set.stoppedAt.toISOString(),
    ...(cipherPass ? { encryption: 'aes-256-cbc (repo1-cipher-type)' } : {}),
  }, [], env);
}
