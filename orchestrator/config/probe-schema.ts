/** The config schema's `probes:` list: which checks each kind can run and how each is written. Messages follow schema.ts. */
import { z } from 'zod';
import { DEFAULTS } from '../core/defaults.js';
import { DURATION_EXAMPLES } from './duration.js';
import { addProblem, compactDuration, duration, durationKey, identifier, isRecordPayload, nonEmptyText, regexString, share, size, sizeText, typeError } from './schema-helpers.js';
import type { Expectation, ProbeConfig, RestoreKind } from '../core/config-types.js';
import { argv } from './kind-schema.js';

// ---- Probes ----------------------------------------------------------------------------------

const PROBE_KINDS = ['sql', 'tablesExist', 'rowCount', 'freshness', 'randomValues', 'files', 'manifest', 'encryptedLooking', 'command', 'http'] as const;
export type ProbeKey = (typeof PROBE_KINDS)[number];
const EXPECTATIONS = ['equals', 'atLeast', 'atMost', 'matches', 'nonEmpty'] as const;
/** Probe checks that take one of the expectations (on the query's value, the command's output, the body). */
const WITH_EXPECTATION: readonly ProbeKey[] = ['sql', 'command', 'http'];
/** Which probe checks each kind can run. */
export const PROBES_OF_KIND: Record<RestoreKind, readonly ProbeKey[]> = {
  postgres: ['sql', 'tablesExist', 'rowCount', 'freshness', 'randomValues', 'command', 'http'],
  mysql: ['sql', 'tablesExist', 'rowCount', 'freshness', 'randomValues', 'command', 'http'],
  sqlite: ['sql', 'tablesExist', 'rowCount', 'freshness', 'randomValues', 'command', 'http'],
  files: ['files', 'manifest', 'encryptedLooking', 'command', 'http'],
  custom: ['command', 'http'],
  // A VM's own checks are vm.expect (screen, serial): the sandbox holds QEMU, not the guest.
  vm: [],
};

export const probe = z
  .strictObject({
    sql: nonEmptyText('SQL').optional().describe('A query whose first column of the first row is checked by one of equals, atLeast, atMost, matches, nonEmpty.'),
    equals: z
      .union([z.string(), z.number()], { error: typeError('text or a number', () => 'write the expected value, e.g. equals: 42') })
      .optional()
      .describe('sql/command/http probe: the value (output, body) must equal this (compared as text).'),
    atLeast: z.number().optional().describe('sql/command probe: the value must be a number >= this.'),
    atMost: z.number().optional().describe('sql/command probe: the value must be a number <= this.'),
    matches: regexString.optional().describe('sql/command/http probe: the value (output, body) must match this regular expression.'),
    nonEmpty: z
      .literal(true, { error: typeError('allowed here', () => 'write nonEmpty: true, or use another expectation') })
      .optional()
      .describe('sql/command/http probe: the value (output, body) must not be empty.'),
    tablesExist: z.array(nonEmptyText('table name')).min(1).optional().describe('Tables that must exist, e.g. [orders, public.customers].'),
    rowCount: z
      .strictObject({
        table: nonEmptyText('table').describe('Table to count.'),
        atLeast: z.number().int().min(0).default(1).describe('Minimum row count. Default 1.'),
      })
      .optional()
      .describe('The table must hold at least atLeast rows.'),
    freshness: z
      .strictObject({
        table: nonEmptyText('table').describe('Table to check.'),
        column: nonEmptyText('column').describe('Timestamp column (or epoch seconds); its newest value is checked.'),
        within: duration.describe(`The newest value must be younger than this, relative to the backup's time. A duration: ${DURATION_EXAMPLES}.`),
      })
      .optional()
      .describe('The newest value of a timestamp column must be recent.'),
    files: z
      .union([
        z.array(nonEmptyText('path')).min(1).transform((exist) => ({ exist, nonEmpty: false })),
        z.strictObject({
          exist: z.array(nonEmptyText('path')).default([]).describe('Paths or globs (picomatch) relative to the archive\'s root; each must match at least one file.'),
          minCount: z.number().int().min(0).optional().describe('At least this many files among those matched (all files when exist is empty).'),
          minTotalBytes: size.optional().describe('Their total size at least this: 10m, 1g or bytes.'),
          nonEmpty: z.boolean().default(false).describe('No matched file may be zero bytes long.'),
        }),
      ])
      .optional()
      .describe('kind files: paths that must exist, how many files and bytes at least, no zero-byte files.'),
    manifest: nonEmptyText('manifest path')
      .optional()
      .describe('kind files: a sha256sum-style manifest inside the archive (path or glob, e.g. SHA256SUMS): every file it lists must be there with that sha256.'),
    randomValues: z
      .union([
        z.literal(true).transform(() => ({ maxRise: DEFAULTS.randomValuesMaxRise, sample: DEFAULTS.randomValuesSample })),
        z.strictObject({
          maxRise: share.default(DEFAULTS.randomValuesMaxRise).describe(`The share of random-looking values, in all and in any one column, may rise by at most this much since the last passing run. Default ${DEFAULTS.randomValuesMaxRise * 100}%.`),
          sample: z.number().int().min(10).max(10_000).default(DEFAULTS.randomValuesSample).describe(`Values read per column. Default ${DEFAULTS.randomValuesSample}.`),
        }),
      ])
      .optional()
      .describe('postgres, mysql, sqlite: text and binary columns are sampled (up to 100 columns); values that look random (binary noise, long base64 or hex tokens) are counted, and a sharp rise against the last passing run, as when an attacker encrypts the values in place, fails the probe naming the columns.'),
    encryptedLooking: z
      .union([z.literal(true).transform(() => ({ maxShare: DEFAULTS.encryptedMaxShare })), z.strictObject({ maxShare: share.default(DEFAULTS.encryptedMaxShare).describe(`At most this share of the files may look random: a fraction (0.1) or a percentage ("10%"). Default ${DEFAULTS.encryptedMaxShare * 100}%.`) })])
      .optional()
      .describe(`kind files: the share of files whose content looks random (judged from the bytes, whatever the names), as ransomware leaves them, must stay at or below maxShare. Default ${DEFAULTS.encryptedMaxShare}.`),
    command: argv.optional().describe('A command run inside the sandbox (argv, never through a shell); its exit code and stdout are checked.'),
    service: identifier('service').optional().describe('command probe: the custom.services container to run in. Default the main one.'),
    exitCode: z.number().int().min(0).max(255).optional().describe('command probe: expected exit code. Default 0.'),
    http: z
      .strictObject({
        port: z.number().int().min(1).max(65535).describe('Port inside the sandbox\'s network namespace.'),
        path: z.string().startsWith('/').default('/').describe('Path to GET. Default /.'),
        status: z.number().int().min(100).max(599).default(200).describe('Expected status. Default 200.'),
      })
      .optional()
      .describe('GET http://127.0.0.1:PORT/PATH inside the sandbox\'s own network namespace; status and body (equals, matches, nonEmpty) are checked.'),
    name: nonEmptyText('name').optional().describe('Name shown in reports. Default derived from the check.'),
    timeout: durationKey('Limit for this probe.', DEFAULTS.probeTimeoutMs),
  })
  .superRefine((value, ctx) => {
    const has = (key: string) => (value as Record<string, unknown>)[key] !== undefined;
    const kinds = PROBE_KINDS.filter(has);
    const expectations = EXPECTATIONS.filter(has);
    const kind = kinds[0];
    if (kinds.length === 0) addProblem(ctx, 'probe has no check', `add exactly one of ${PROBE_KINDS.join(', ')}`);
    else if (kinds.length > 1) addProblem(ctx, `probe has several checks (${kinds.join(', ')})`, 'split them into separate probes, one check each');
    else if (kind === 'sql' && expectations.length === 0) {
      addProblem(ctx, 'sql probe has no expectation', 'add exactly one of equals, atLeast, atMost, matches, nonEmpty: true');
    } else if (expectations.length > 1) {
      addProblem(ctx, `${kind} probe has several expectations (${expectations.join(', ')})`, 'keep exactly one, or split into separate probes');
    } else if (kind && !WITH_EXPECTATION.includes(kind)) {
      const hint = kind === 'rowCount' ? ' (rowCount takes its own: rowCount: { table, atLeast })' : '';
      for (const key of expectations) addProblem(ctx, `${key} applies only to sql, command and http probes`, `remove it${hint}`, [key]);
    } else if (kind === 'http' && (has('atLeast') || has('atMost'))) {
      addProblem(ctx, 'http probes check the body with equals, matches or nonEmpty', 'use matches: "..." on the body, or a command probe for numbers');
    }
    if (kind !== 'command') {
      for (const key of ['service', 'exitCode'] as const) if (has(key)) addProblem(ctx, `${key} applies only to command probes`, `remove it`, [key]);
    }
  }, { when: isRecordPayload })
  .transform((value): ProbeConfig => {
    const timeoutMs = value.timeout ?? DEFAULTS.probeTimeoutMs;
    const named = (derived: string) => value.name ?? shorten(derived);
    const hasExpectation = EXPECTATIONS.some((k) => value[k] !== undefined);
    if (value.sql !== undefined) {
      return { type: 'sql', name: named(`sql: ${value.sql}`), sql: value.sql, expect: expectationOf(value), timeoutMs };
    }
    if (value.tablesExist !== undefined) {
      return { type: 'tablesExist', name: named(`tablesExist: ${value.tablesExist.join(', ')}`), tables: value.tablesExist, timeoutMs };
    }
    if (value.rowCount !== undefined) {
      const { table, atLeast } = value.rowCount;
      return { type: 'rowCount', name: named(`rowCount: ${table} >= ${atLeast}`), table, atLeast, timeoutMs };
    }
    if (value.freshness !== undefined) {
      const { table, column, within } = value.freshness;
      return { type: 'freshness', name: named(`freshness: ${table}.${column} within ${compactDuration(within)}`), table, column, withinMs: within, timeoutMs };
    }
    if (value.files !== undefined) {
      const f = value.files as { exist: string[]; minCount?: number; minTotalBytes?: number; nonEmpty: boolean };
      const what = [f.exist.length ? f.exist.join(', ') : 'all files', f.minCount !== undefined ? `>= ${f.minCount} files` : '', f.minTotalBytes !== undefined ? `>= ${sizeText(f.minTotalBytes)}` : '', f.nonEmpty ? 'none empty' : '']
        .filter(Boolean)
        .join(', ');
      return {
        type: 'files',
        name: named(`files: ${what}`),
        exist: f.exist,
        nonEmpty: f.nonEmpty,
        ...(f.minCount !== undefined ? { minCount: f.minCount } : {}),
        ...(f.minTotalBytes !== undefined ? { minTotalBytes: f.minTotalBytes } : {}),
        timeoutMs,
      };
    }
    if (value.manifest !== undefined) return { type: 'manifest', name: named(`manifest: ${value.manifest}`), path: value.manifest, timeoutMs };
    if (value.randomValues !== undefined) {
      const { maxRise, sample } = value.randomValues;
      return { type: 'randomValues', name: named(`random-looking values rise <= ${Math.round(maxRise * 1000) / 10}%`), maxRise, sample, timeoutMs };
    }
    if (value.encryptedLooking !== undefined) {
      const { maxShare } = value.encryptedLooking;
      return { type: 'encryptedLooking', name: named(`encrypted-looking files <= ${Math.round(maxShare * 1000) / 10}%`), maxShare, timeoutMs };
    }
    if (value.command !== undefined) {
      return {
        type: 'command',
        name: named(`command: ${value.command.join(' ')}`),
        argv: value.command,
        exitCode: value.exitCode ?? 0,
        ...(value.service !== undefined ? { service: value.service } : {}),
        ...(hasExpectation ? { expect: expectationOf(value) } : {}),
        timeoutMs,
      };
    }
    if (value.http === undefined) throw new Error('unreachable: the probe check above requires one kind');
    const { port, path, status } = value.http;
    return {
      type: 'http',
      name: named(`http: GET :${port}${path} -> ${status}`),
      port,
      path,
      status,
      ...(hasExpectation ? { expect: expectationOf(value) } : {}),
      timeoutMs,
    };
  })
  .describe(`One check on the restored data: exactly one of ${PROBE_KINDS.join(', ')}.`);

function expectationOf({ equals, atLeast, atMost, matches }: { equals?: string | number; atLeast?: number; atMost?: number; matches?: string }): Expectation {
  if (equals !== undefined) return { op: 'equals', value: String(equals) };
  if (atLeast !== undefined) return { op: 'atLeast', value: atLeast };
  if (atMost !== undefined) return { op: 'atMost', value: atMost };
  return matches !== undefined ? { op: 'matches', value: matches } : { op: 'nonEmpty' };
}

/** Default probe names: whitespace collapsed, at most 60 characters. */
function shorten(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 60 ? `${flat.slice(0, 59)}…` : flat;
}
