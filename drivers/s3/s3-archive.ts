import type { HeadObjectCommandOutput } from '@aws-sdk/client-s3';

/**
 * Whether an object can be read now, from its HeadObject answer. Objects in GLACIER (Flexible
 * Retrieval), DEEP_ARCHIVE, or an Intelligent-Tiering archive access tier return 403
 * InvalidObjectState to a GET until a restore request (RestoreObject) made a temporary copy;
 * HEAD tells which: `x-amz-restore: ongoing-request="true"` while it is being made,
 * `ongoing-request="false", expiry-date="..."` once it is readable. GLACIER_IR and the other
 * classes read at once.
 */
export type ArchiveState =
  | { state: 'readable' }
  | { state: 'archived'; storageClass: string }
  | { state: 'restoring'; storageClass: string }
  | { state: 'restored'; storageClass: string; expiry?: string };

const ARCHIVE_CLASSES = new Set(['GLACIER', 'DEEP_ARCHIVE']);

export function archiveState(head: Pick<HeadObjectCommandOutput, 'StorageClass' | 'ArchiveStatus' | 'Restore'>): ArchiveState {
  const tier = head.ArchiveStatus ? `INTELLIGENT_TIERING ${head.ArchiveStatus}` : head.StorageClass && ARCHIVE_CLASSES.has(head.StorageClass) ? head.StorageClass : undefined;
  if (!tier) return { state: 'readable' };
  const restore = head.Restore ?? '';
  if (/ongoing-request\s*=\s*"true"/i.test(restore)) return { state: 'restoring', storageClass: tier };
  if (/ongoing-request\s*=\s*"false"/i.test(restore)) {
    const expiry = /expiry-date\s*=\s*"([^"]+)"/i.exec(restore)?.[1];
    return { state: 'restored', storageClass: tier, ...(expiry ? { expiry: new Date(expiry).toISOString() } : {}) };
  }
  return { state: 'archived', storageClass: tier };
}

/** What the SDK's RestoreObject takes for a tier (Intelligent-Tiering archive objects take no Days). */
export function restoreRequest(state: { storageClass: string }, tier: 'bulk' | 'standard' | 'expedited', days: number): { Days?: number; GlacierJobParameters?: { Tier: 'Bulk' | 'Standard' | 'Expedited' } } {
  const Tier = tier === 'bulk' ? 'Bulk' : tier === 'standard' ? 'Standard' : 'Expedited';
  if (state.storageClass.startsWith('INTELLIGENT_TIERING')) return {};
  return { Days: days, GlacierJobParameters: { Tier } };
}

/** How long a retrieval takes, as AWS documents it, for the run's message. */
export function retrievalTime(storageClass: string, tier: 'bulk' | 'standard' | 'expedited'): string {
  const deep = storageClass.includes('DEEP_ARCHIVE');
  if (tier === 'expedited') return deep ? 'expedited is not offered for DEEP_ARCHIVE (S3 refuses it)' : '1-5 minutes';
  if (tier === 'standard') return deep ? 'within 12 hours' : '3-5 hours';
  return deep ? 'within 48 hours' : '5-12 hours';
}
