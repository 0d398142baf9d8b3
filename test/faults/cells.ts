import type { PhaseName, ReasonCode } from '../../orchestrator/core/domain.js';

// The fault matrix (README "Fault matrix"): for each point of a run x each fault, what the run
// must come to. test/faults/*.test.ts inject each fault for real and check these; the README's
// table is checked against this file (test/faults/readme-table.test.ts), so the two never differ.

export const POINTS = ['select', 'storage_check', 'sandbox', 'fetch_restore', 'readiness', 'probes', 'teardown', 'record'] as const;
export type Point = (typeof POINTS)[number];

export const FAULTS = {
  kill: 'backproof SIGKILLed',
  engine: 'Docker engine killed (restarted after the run)',
  s3: 'S3 server killed',
  folder: 'backup folder unmounted',
  store: 'evidence PostgreSQL restarted',
  hang: 'a command in the sandbox hangs',
  oom: 'sandbox out of memory',
  disk: 'sandbox out of disk',
} as const;
export type FaultName = keyof typeof FAULTS;

/**
 * A cell: the verdict (`aborted`: recorded so at the next start), a reason code the record must
 * hold (and words its message must contain), and the phase whose outcome is that verdict
 * (`unfinished` for aborted). `na`: why the fault cannot happen at that point.
 */
export type Expected = { verdict: 'pass' | 'fail' | 'error' | 'aborted'; reason?: ReasonCode; says?: string; phase?: PhaseName } | { na: string };

const pass: Expected = { verdict: 'pass' };
const aborted = (phase?: PhaseName): Expected => ({ verdict: 'aborted', reason: 'aborted', ...(phase ? { phase } : {}) });
const error = (reason: ReasonCode, phase: PhaseName, says?: string): Expected => ({ verdict: 'error', reason, phase, ...(says ? { says } : {}) });
const na = (why: string): Expected => ({ na: why });

// A fault inside the sandbox needs a sandbox: none exists before the sandbox phase has run, and
// none after teardown.
const noSandboxYet = na('no sandbox exists yet');
const sandboxGone = na('the sandbox is gone');

export const CELLS: Record<FaultName, Record<Point, Expected>> = {
  kill: {
    select: aborted('select'),
    storage_check: aborted('storage_check'),
    sandbox: aborted('sandbox'),
    fetch_restore: aborted('fetch_restore'),
    readiness: aborted('readiness'),
    probes: aborted('probes'),
    teardown: aborted('teardown'),
    record: aborted(),
  },
  engine: {
    select: error('docker_unreachable', 'sandbox'),
    storage_check: error('docker_unreachable', 'sandbox'),
    sandbox: error('docker_unreachable', 'sandbox'),
    fetch_restore: error('docker_unreachable', 'fetch_restore'),
    readiness: error('docker_unreachable', 'readiness'),
    probes: error('docker_unreachable', 'probes'),
    teardown: error('sandbox_failed', 'teardown'),
    record: pass,
  },
  s3: {
    select: error('source_unreachable', 'select'),
    storage_check: na('the S3 driver has no storage check of its own'),
    sandbox: error('source_unreachable', 'sandbox'),
    fetch_restore: error('source_unreachable', 'fetch_restore'),
    readiness: pass,
    probes: pass,
    teardown: pass,
    record: pass,
  },
  folder: {
    select: { verdict: 'fail', reason: 'no_backup', phase: 'select' },
    storage_check: na('the folder driver has no storage check of its own'),
    sandbox: error('source_unreachable', 'sandbox'),
    fetch_restore: pass,
    readiness: pass,
    probes: pass,
    teardown: pass,
    record: pass,
  },
  store: {
    select: pass,
    storage_check: pass,
    sandbox: pass,
    fetch_restore: pass,
    readiness: pass,
    probes: pass,
    teardown: pass,
    record: pass,
  },
  hang: {
    select: noSandboxYet,
    storage_check: noSandboxYet,
    sandbox: noSandboxYet,
    fetch_restore: error('timeout', 'fetch_restore', 'hard timeout'),
    readiness: error('sandbox_failed', 'readiness', 'still running when the time was up'),
    probes: { verdict: 'fail', reason: 'probe_failed', says: 'timed out', phase: 'probes' },
    teardown: pass,
    record: sandboxGone,
  },
  oom: {
    select: noSandboxYet,
    storage_check: noSandboxYet,
    sandbox: noSandboxYet,
    fetch_restore: error('sandbox_failed', 'fetch_restore', 'ran out of memory'),
    readiness: error('sandbox_failed', 'readiness', 'ran out of memory'),
    probes: error('sandbox_failed', 'probes', 'ran out of memory'),
    teardown: pass,
    record: sandboxGone,
  },
  disk: {
    select: noSandboxYet,
    storage_check: noSandboxYet,
    sandbox: noSandboxYet,
    fetch_restore: error('sandbox_failed', 'fetch_restore', 'ran out of disk space'),
    readiness: error('sandbox_failed', 'readiness', 'ran out of disk space'),
    probes: error('sandbox_failed', 'probes', 'ran out of disk space'),
    teardown: pass,
    record: sandboxGone,
  },
};

export function cellOf(fault: FaultName, point: Point): Expected {
  return CELLS[fault][point];
}

/** A cell as the README's table shows it. */
export function cellText(e: Expected): string {
  if ('na' in e) return `n/a: ${e.na}`;
  if (e.verdict === 'aborted') return `aborted${e.phase ? ` (${e.phase} unfinished)` : ''}`;
  if (e.verdict === 'pass') return 'pass';
  return `${e.verdict} \`${e.reason}\` in ${e.phase}`;
}

/** The README's table: a row per point, a column per fault. */
export function matrixTable(): string {
  const faults = Object.keys(FAULTS) as FaultName[];
  const lines = [`| point | ${faults.map((f) => FAULTS[f]).join(' | ')} |`, `|---|${faults.map(() => '---').join('|')}|`];
  for (const point of POINTS) lines.push(`| ${point} | ${faults.map((f) => cellText(CELLS[f][point])).join(' | ')} |`);
  return lines.join('\n');
}
