import type { PolicyConfig } from '../orchestrator/core/config-types.js';
import { LocalStorageDriver } from './local/local-storage-driver.js';
import { ResticStorageDriver } from './restic/restic-storage-driver.js';
import { S3StorageDriver } from './s3/s3-storage-driver.js';
import type { StorageDriver } from './storage-driver.js';

/**
 * The storage driver for a policy's source. Each driver loads its SDK (if it has one) only when
 * it first talks to its storage, so naming all of them here costs a command nothing.
 */
export function driverFor(policy: PolicyConfig): StorageDriver {
  const source = policy.source;
  switch (source.driver) {
    case 'local':
      return new LocalStorageDriver({ path: source.path, recursive: source.recursive });
    case 's3':
      return new S3StorageDriver({
        ...source,
        ...(source.select.timestamp.from === 'metadata' ? { metadataKey: source.select.timestamp.key } : {}),
      });
    case 'restic':
      return new ResticStorageDriver(source);
  }
}
