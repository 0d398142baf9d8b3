import type { PolicyConfig, SourceConfig, SourceOf, StorageDriverName } from '../orchestrator/core/config-types.js';
import { BarmanStorageDriver } from './barman/barman-storage-driver.js';
import { BorgStorageDriver } from './borg/borg-storage-driver.js';
import { PgbackrestStorageDriver } from './pgbackrest/pgbackrest-storage-driver.js';
import { LocalStorageDriver } from './local/local-storage-driver.js';
import { MariabackupStorageDriver } from './mariabackup/mariabackup-storage-driver.js';
import { ResticStorageDriver } from './restic/restic-storage-driver.js';
import { S3StorageDriver } from './s3/s3-storage-driver.js';
import type { StorageDriver } from './storage-driver.js';

/**
 * One driver per name of STORAGE_DRIVERS, built from that driver's own source block; the type
 * makes a name without a driver a compile error. Each driver loads its SDK (if it has one) only
 * when it first talks to its storage, so naming all of them here costs a command nothing.
 */
export const STORAGE_DRIVER_FACTORIES: { readonly [D in StorageDriverName]: (source: SourceOf<D>, policy: PolicyConfig) => StorageDriver } = {
  local: (source) => new LocalStorageDriver({ path: source.path, recursive: source.recursive }),
  s3: (source) =>
    new S3StorageDriver({
      ...source,
      ...(source.select.timestamp.from === 'metadata' ? { metadataKey: source.select.timestamp.key } : {}),
    }),
  restic: (source) => new ResticStorageDriver(source),
  // A point-in-time target restores from the newest set that ended before it: only those are listed.
  pgbackrest: (source, policy) => {
    const recovery = policy.kind === 'postgres' ? policy.postgres.recovery : 'latest';
    return new PgbackrestStorageDriver({
      repository: source.repository,
      ...(source.s3 ? { s3: source.s3 } : {}),
      stanza: source.stanza,
      check: source.check,
      binary: source.binary,
      ...(source.cipherPass ? { cipherPass: source.cipherPass } : {}),
      ...(typeof recovery === 'object' ? { endedBefore: new Date(recovery.time) } : {}),
    });
  },
  barman: (source, policy) => {
    const recovery = policy.kind === 'postgres' ? policy.postgres.recovery : 'latest';
    return new BarmanStorageDriver({ path: source.path, check: source.check, ...(typeof recovery === 'object' ? { endedBefore: new Date(recovery.time) } : {}) });
  },
  mariabackup: (source, policy) => {
    const recovery = policy.kind === 'mysql' ? policy.mysql.recovery : 'latest';
    return new MariabackupStorageDriver({
      path: source.path,
      ...(source.binlogs ? { binlogs: source.binlogs } : {}),
      ...(typeof recovery === 'object' && source.binlogs ? { endedBefore: new Date(recovery.time) } : {}),
    });
  },
  borg: ({ lockWaitMs, ...source }) => new BorgStorageDriver({ ...source, lockWaitSeconds: Math.max(1, Math.ceil(lockWaitMs / 1000)) }),
};

/** The storage driver for a policy's source. */
export function driverFor(policy: PolicyConfig): StorageDriver {
  const make = STORAGE_DRIVER_FACTORIES[policy.source.driver] as (source: SourceConfig, policy: PolicyConfig) => StorageDriver;
  return make(policy.source, policy);
}
