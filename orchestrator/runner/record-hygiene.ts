import type { PolicyConfig } from '../core/config-types.js';
import { DEFAULTS } from '../core/defaults.js';
import type { RunProgress, RunRecord } from '../core/domain.js';
import { policySecrets } from '../config/secret-fields.js';
import { combineRedactors, createRedactor, redactDeep, type Redactor } from '../core/secrets.js';

/**
 * What a run record may hold before it is sealed. A backup is untrusted input and a restore tool
 * quotes what it read (psql prints the failing statement), and a storage server may echo a
 * request's headers in its errors; so, whatever a run collected:
 * - no secret of the policy (its source's secret fields) or of the config (`also`, the config
 *   loader's list, as the logger redacts it) remains, in any field;
 * - each reason and the log tail are bounded, keeping how they began and how they ended.
 */
export function cleanRecord(run: RunRecord, policy: PolicyConfig, also: Redactor): void {
  redactDeep(run, combineRedactors(createRedactor(policySecrets(policy)), also));
  for (const r of run.reasons) r.message = bounded(r.message, DEFAULTS.reasonMaxChars);
  if (run.sandbox?.logTail) run.sandbox.logTail = bounded(run.sandbox.logTail, DEFAULTS.logTailMaxChars);
}

/** The same for a running run's progress (RunStore.recordProgress): an aborted run is sealed with it. */
export function cleanProgress(progress: RunProgress, policy: PolicyConfig, also: Redactor): void {
  redactDeep(progress, combineRedactors(createRedactor(policySecrets(policy)), also));
}

/** `text` cut to at most about `max` characters: its first and last halves around a marker. */
export function bounded(text: string, max: number): string {
  if (text.length <= max) return text;
  const half = Math.floor(max / 2);
  return `${text.slice(0, half)} [... ${text.length - 2 * half} characters omitted ...] ${text.slice(-half)}`;
}
