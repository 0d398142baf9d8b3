import { describeExpect, selectNewest } from '../../drivers/selection.js';
import type { BackupEntry, StorageDriver } from '../../drivers/storage-driver.js';
import type { StorageFact } from '../alerts/alert-engine.js';
import type { PolicyConfig } from '../core/config-types.js';

/**
 * A look at a policy's storage between runs: the same listing and selection as a run's `select`
 * phase, nothing downloaded. Tells the alert engine whether the newest backup is stale or an
 * expected one is missing, even when no run is due.
 */
export async function checkStorage(policy: PolicyConfig, driverFor: (p: PolicyConfig) => StorageDriver, now: Date, signal?: AbortSignal): Promise<StorageFact> {
  const driver = driverFor(policy);
  try {
    const takenAt = driver.takenAt ? (e: BackupEntry) => driver.takenAt!(e, signal) : undefined;
    const selection = await selectNewest(driver.list(signal), policy.source.select, now, undefined, takenAt);
    if (!selection.picked) return { nothing: `${selection.explanation} in ${driver.location}` };
    const { entry, backupTime } = selection.picked;
    return {
      newest: { key: entry.key, size: entry.size, backupTime: backupTime.toISOString() },
      ...(selection.missingPeriod
        ? { missing: `no backup for ${selection.missingPeriod} (expect: ${describeExpect(policy.source.select.expect!)}); the newest is ${entry.key}, taken ${backupTime.toISOString()}` }
        : {}),
    };
  } finally {
    await driver.close();
  }
}
