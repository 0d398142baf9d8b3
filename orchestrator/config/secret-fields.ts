import type { PolicyConfig, SourceConfig } from '../core/config-types.js';

/**
 * The secret fields of each storage driver's source, in one table: a new driver with a secret
 * must list it here, and `policySecrets` then keeps it out of every record of its runs. Values
 * written through `${env:}` / `${file:}` are secrets too; the config loader collects those.
 */
const SOURCE_SECRETS: { [D in SourceConfig['driver']]: (source: Extract<SourceConfig, { driver: D }>) => Array<string | undefined> } = {
  local: () => [],
  s3: (s) => [s.credentials?.accessKeyId, s.credentials?.secretAccessKey, s.credentials?.sessionToken, s.sseCustomerKey],
  restic: (s) => [s.password],
  borg: (s) => [s.passphrase],
  pgbackrest: (s) => [s.cipherPass],
  barman: () => [],
  mariabackup: () => [],
};

/** The values of a source's secret fields. */
export function sourceSecrets(source: SourceConfig): string[] {
  const pick = SOURCE_SECRETS[source.driver] as (s: SourceConfig) => Array<string | undefined>;
  return pick(source).filter((v): v is string => typeof v === 'string' && v.length > 0);
}

/** The values of a policy's secret fields. */
export function policySecrets(policy: PolicyConfig): string[] {
  return sourceSecrets(policy.source);
}
