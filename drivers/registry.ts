import type { PolicyConfig, SourceConfig, SourceOf, StorageDriverName } from '../orchestrator/core/config-types.js';
import { BorgStorageDriver } from './borg/borg-storage-driver.js';
import { LocalStorageDriver } from './local/local-storage-driver.js';
import { ResticStorageDriver } from './restic/restic-storage-driver.js';
import { S3StorageDriver } from './s3/s3-storage-driver.js';
import type { StorageDriver } from './storage-driver.js';

/**
 * One driver per name of STORAGE_DRIVERS, built from that driver's own source block; the type
 * makes a name without a driver a compile error. Each driver loads its SDK (if it has one) only
 * when it first talks to its storage, so naming all of them here costs a command nothing.
 */
export const STORAGE_DRIVER_FACTORIES: { readonly [D in StorageDriverName]: (source: SourceOf<D>) => StorageDriver } = {
  local: (source) => new LocalStorageDriver({ path: source.path, recursive: source.recursive }),
  s3: (source) =>
    new S3StorageDriver({
      ...source,
      ...(source.select.timestamp.from === 'metadata' ? { metadataKey: source.select.timestamp.key } : {}),
    }),
  restic: (source) => new ResticStorageDriver(source),
  borg: ({ lockWaitMs, ...source }) => new BorgStorageDriver({ ...source, lockWaitSeconds: Math.max(1, Math.ceil(lockWaitMs / 1000)) }),
};

/** The storage driver for a policy's source. */
export function driverFor(policy: PolicyConfig): StorageDriver {
  const make = STORAGE_DRIVER_FACTORIES[policy.source.driver] as (source: SourceConfig) => StorageDriver;
  return make(policy.source);
}
