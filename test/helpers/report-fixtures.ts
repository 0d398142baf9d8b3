import { randomUUID } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import type { PhaseRecord, Reason, RunRecord, Verdict } from '../../orchestrator/core/domain.js';
import type { AlertStore, IncidentCondition } from '../../orchestrator/evidence/alert-store.js';
import type { RunStore } from '../../orchestrator/evidence/run-store.js';

/**
 * A month of evidence without Docker: runs recorded through a real RunStore (recordStart, then
 * finalize, which seals them into the evidence chain) and alert incidents through a real
 * AlertStore, as the runner and the alert engine write them. November 2026 for client `acme`:
 * - acme-shop-db (postgres, RPO 26h, RTO 30m): daily; fails on the 10th (probe) and 11th
 *   (truncated dump), recovers on the 12th; an error on the 20th (Docker down); the 25th passes
 *   but beyond its RTO.
 * - acme-files (files, RPO 26h, RTO 10m): daily; a size anomaly on the 15th, a stale backup on
 *   the 18th.
 * - acme-mail (postgres): passed in October, errors three times in November (open incident).
 * Plus runs of acme in October and December, and of globex in November: none may show.
 */

export const MONTH = '2026-11';
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const H = 3_600_000;

export interface SeededMonth {
  /** acme's runs in November, oldest first, as finalized. */
  novemberRuns: RunRecord[];
  otherRunIds: string[];
  octoberPassOfMail: RunRecord;
  incidentIds: { shopFail: string; shopError: string; filesSize: string; filesStale: string; shopRto: string; mailError: string; deliveryFailed: string; globex: string };
}

interface RunSpec {
  client?: string;
  policy: string;
  kind: string;
  startedAt: string;
  verdict: Verdict;
  reasons?: Reason[];
  size: number | null;
  ageMs: number;
  rpoTargetMs?: number;
  rtoTargetMs?: number;
  restoreMs: number | null;
  status?: RunRecord['status'];
}

export function buildRun(spec: RunSpec): RunRecord {
  const t0 = Date.parse(spec.startedAt);
  const at = (ms: number): string => new Date(t0 + ms).toISOString();
  const restore = spec.restoreMs ?? 0;
  const phases: PhaseRecord[] = [
    { name: 'select', startedAt: at(0), endedAt: at(350), durationMs: 350, outcome: 'ok' },
    { name: 'sandbox', startedAt: at(350), endedAt: at(2_350), durationMs: 2_000, outcome: spec.reasons?.some((r) => r.code === 'docker_unreachable') ? 'error' : 'ok' },
  ];
  if (spec.restoreMs !== null) {
    phases.push({ name: 'fetch_restore', startedAt: at(2_350), endedAt: at(2_350 + restore - 1_500), durationMs: restore - 1_500, outcome: spec.verdict === 'fail' && !spec.reasons?.some((r) => r.code === 'probe_failed') ? 'fail' : 'ok' });
    phases.push({ name: 'readiness', startedAt: at(2_350 + restore - 1_500), endedAt: at(2_350 + restore), durationMs: 1_500, outcome: 'ok' });
    phases.push({ name: 'probes', startedAt: at(2_350 + restore), endedAt: at(4_350 + restore), durationMs: 2_000, outcome: spec.reasons?.some((r) => r.code === 'probe_failed') ? 'fail' : 'ok' });
  }
  const end = 6_000 + restore;
  phases.push({ name: 'teardown', startedAt: at(end - 1_000), endedAt: at(end), durationMs: 1_000, outcome: 'ok' });
  const backupTime = new Date(t0 - spec.ageMs).toISOString();
  const metrics: RunRecord['metrics'] = {};
  if (spec.size !== null) {
    metrics.rpoMeasuredMs = spec.ageMs;
    if (spec.rpoTargetMs !== undefined) {
      metrics.rpoTargetMs = spec.rpoTargetMs;
      metrics.rpoMet = spec.ageMs <= spec.rpoTargetMs;
    }
  }
  if (spec.restoreMs !== null) {
    metrics.rtoMeasuredMs = spec.restoreMs;
    metrics.fetchBytesPerSec = spec.size ? Math.round(spec.size / (spec.restoreMs / 1000)) : 0;
    if (spec.rtoTargetMs !== undefined) {
      metrics.rtoTargetMs = spec.rtoTargetMs;
      metrics.rtoMet = spec.restoreMs <= spec.rtoTargetMs;
    }
  }
  return {
    id: randomUUID(),
    client: spec.client ?? 'acme',
    policy: spec.policy,
    kind: spec.kind,
    status: spec.status ?? 'finished',
    verdict: spec.verdict,
    reasons: spec.reasons ?? [],
    startedAt: spec.startedAt,
    finishedAt: at(end),
    durationMs: end,
    host: 'verify-01',
    pid: 4242,
    backproofVersion: '0.1.0',
    backup:
      spec.size === null
        ? null
        : {
            driver: 's3',
            location: `s3://acme-backups/${spec.policy}/`,
            key: `${spec.policy}/${backupTime.slice(0, 10)}T01-00.${spec.kind === 'files' ? 'tar.gz' : 'dump'}`,
            size: spec.size,
            modifiedAt: backupTime,
            backupTime,
            timestampSource: 'name',
            ageMs: spec.ageMs,
            sha256: 'ab'.repeat(32),
            bytesRead: spec.size,
          },
    phases,
    probes: [],
    metrics,
    sandbox: { runtime: 'docker', image: 'backproof-postgres:16', limits: { memory: '2g' } },
    restored: spec.verdict === 'pass' ? { tables: 42, rows: 1_250_000 } : null,
  };
}

async function record(store: RunStore, run: RunRecord): Promise<RunRecord> {
  await store.recordStart({ ...run, status: 'running', verdict: null, reasons: [], finishedAt: null, durationMs: null });
  await store.finalize(run);
  return run;
}

const day = (d: number, hour = 2, minute = 0, month = 11): string => new Date(Date.UTC(2026, month - 1, d, hour, minute, 7)).toISOString();

export async function seedMonth(store: RunStore, alerts: AlertStore): Promise<SeededMonth> {
  const november: RunRecord[] = [];
  const others: string[] = [];
  const shop = (d: number, over: Partial<RunSpec> = {}): RunSpec => ({
    policy: 'acme-shop-db',
    kind: 'postgres',
    startedAt: day(d, 2, 0),
    verdict: 'pass',
    size: Math.round(1.2 * GiB + d * 9 * MiB),
    ageMs: 1 * H + d * 60_000,
    rpoTargetMs: 26 * H,
    rtoTargetMs: 30 * 60_000,
    restoreMs: 240_000 + d * 3_000,
    ...over,
  });
  const files = (d: number, over: Partial<RunSpec> = {}): RunSpec => ({
    policy: 'acme-files',
    kind: 'files',
    startedAt: day(d, 3, 30),
    verdict: 'pass',
    size: Math.round(480 * MiB + d * 2 * MiB),
    ageMs: 2.5 * H,
    rpoTargetMs: 26 * H,
    rtoTargetMs: 10 * 60_000,
    restoreMs: 95_000 + (d % 5) * 4_000,
    ...over,
  });

  // Before the period: October (one pass of acme-mail, the last success it will have).
  const octoberPassOfMail = await record(store, buildRun({ policy: 'acme-mail', kind: 'postgres', startedAt: day(28, 4, 0, 10), verdict: 'pass', size: 300 * MiB, ageMs: 3 * H, restoreMs: 60_000 }));
  others.push(octoberPassOfMail.id);
  others.push((await record(store, buildRun(shop(31, { startedAt: day(31, 2, 0, 10) })))).id);

  for (let d = 1; d <= 30; d++) {
    let s = shop(d);
    if (d === 10) s = shop(d, { verdict: 'fail', reasons: [{ code: 'probe_failed', message: "probe rowCount(orders) expected >= 1000 rows, got 12" }] });
    if (d === 11) s = shop(d, { verdict: 'fail', reasons: [{ code: 'truncated_dump', message: 'the dump ends after 412.0 MiB without its trailer: the backup job was cut short' }], size: 412 * MiB, restoreMs: null });
    if (d === 20) s = shop(d, { verdict: 'error', reasons: [{ code: 'docker_unreachable', message: 'cannot reach the Docker engine at unix:///var/run/docker.sock (ECONNREFUSED)' }], restoreMs: null });
    if (d === 25) s = shop(d, { restoreMs: 34 * 60_000 + 12_000 });
    november.push(await record(store, buildRun(s)));

    let f = files(d);
    if (d === 15) f = files(d, { verdict: 'fail', size: 12 * MiB, reasons: [{ code: 'size_anomaly', message: 'the backup is 12.0 MiB, 97% smaller than the median of the last 7 passing backups (510.0 MiB)' }] });
    if (d === 18) f = files(d, { verdict: 'fail', ageMs: 30 * H, reasons: [{ code: 'stale_backup', message: 'the newest backup is 30.0h old; the RPO target is 26.0h' }] });
    november.push(await record(store, buildRun(f)));
  }
  for (const d of [5, 6, 7]) {
    november.push(
      await record(
        store,
        buildRun({ policy: 'acme-mail', kind: 'postgres', startedAt: day(d, 4, 0), verdict: 'error', size: null, ageMs: 0, restoreMs: null, reasons: [{ code: 'source_denied', message: 'S3 refused the credentials of acme-mail (AccessDenied on ListObjectsV2 of bucket acme-mail)' }] }),
      ),
    );
  }
  november.sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id));

  // After the period, and another client's runs in it.
  others.push((await record(store, buildRun(shop(1, { startedAt: day(1, 2, 0, 12) })))).id);
  for (const d of [3, 13]) {
    others.push((await record(store, buildRun({ client: 'globex', policy: 'globex-crm', kind: 'mysql', startedAt: day(d, 1, 0), verdict: d === 13 ? 'fail' : 'pass', size: 77 * MiB, ageMs: H, restoreMs: 50_000, reasons: d === 13 ? [{ code: 'restore_failed', message: 'globex secret failure' }] : [] }))).id);
  }

  const runOf = (policy: string, d: number): RunRecord => november.find((r) => r.policy === policy && new Date(r.startedAt).getUTCDate() === d)!;
  const incident = async (
    policy: string,
    condition: IncidentCondition,
    opened: RunRecord | string,
    resolved: RunRecord | null,
    notices: Array<{ at: string; channel: string; ok: boolean }>,
    summary: string,
    client = 'acme',
  ): Promise<string> => {
    const openRun = typeof opened === 'string' ? null : opened;
    const openedAt = openRun ? openRun.finishedAt! : (opened as string);
    const { incident: inc } = await alerts.openIncident({
      client,
      policy,
      condition,
      openedAt,
      summary,
      reasons: openRun?.reasons.map((r) => ({ code: r.code, message: r.message })) ?? [{ code: condition, message: summary }],
      runId: openRun?.id ?? null,
    });
    for (const n of notices) {
      await alerts.recordDelivery({ incidentId: inc.id, kind: 'alert', client, policy, channel: n.channel, condition, state: 'firing', runId: openRun?.id ?? null, ok: n.ok, attempts: n.ok ? 1 : 4, createdAt: n.at, at: n.at, durationMs: 180, ...(n.ok ? {} : { error: 'SMTP 451' }) });
      if (n.ok) await alerts.markNotified(inc.id, n.at);
    }
    if (resolved) await alerts.resolveIncident(inc.id, resolved.finishedAt!, resolved.id);
    return inc.id;
  };
  const plus = (iso: string, ms: number): string => new Date(Date.parse(iso) + ms).toISOString();

  const shop10 = runOf('acme-shop-db', 10);
  const ids: SeededMonth['incidentIds'] = {
    shopFail: await incident('acme-shop-db', 'fail', shop10, runOf('acme-shop-db', 12), [
      { at: plus(shop10.finishedAt!, 2_000), channel: 'ops-email', ok: true },
      { at: plus(shop10.finishedAt!, 2_500), channel: 'ops-slack', ok: true },
      { at: plus(shop10.finishedAt!, 24 * H), channel: 'ops-email', ok: true },
    ], 'probe rowCount(orders) expected >= 1000 rows, got 12'),
    shopError: await incident('acme-shop-db', 'error', runOf('acme-shop-db', 20), runOf('acme-shop-db', 21), [{ at: plus(runOf('acme-shop-db', 20).finishedAt!, 1_000), channel: 'ops-email', ok: true }], 'cannot reach the Docker engine'),
    filesSize: await incident('acme-files', 'size_anomaly', runOf('acme-files', 15), runOf('acme-files', 16), [{ at: plus(runOf('acme-files', 15).finishedAt!, 1_000), channel: 'ops-email', ok: true }], 'the backup is 97% smaller than usual'),
    filesStale: await incident('acme-files', 'stale', runOf('acme-files', 18), runOf('acme-files', 19), [{ at: plus(runOf('acme-files', 18).finishedAt!, 1_000), channel: 'ops-email', ok: false }], 'the newest backup is 30.0h old'),
    shopRto: await incident('acme-shop-db', 'rto_exceeded', runOf('acme-shop-db', 25), runOf('acme-shop-db', 26), [{ at: plus(runOf('acme-shop-db', 25).finishedAt!, 1_000), channel: 'ops-email', ok: true }], 'restoring took 34m12s; the target is 30m'),
    mailError: await incident('acme-mail', 'error', runOf('acme-mail', 5), null, [{ at: plus(runOf('acme-mail', 5).finishedAt!, 1_000), channel: 'ops-email', ok: true }], 'S3 refused the credentials'),
    deliveryFailed: await incident('acme-files', 'delivery_failed', day(18, 3, 40), null, [], 'ops-email could not deliver'),
    globex: await incident('globex-crm', 'fail', day(13, 1, 5), null, [], 'globex secret incident', 'globex'),
  };
  return { novemberRuns: november, otherRunIds: others, octoberPassOfMail, incidentIds: ids };
}

/** A small PNG (an RGB gradient with a bar), encoded by hand: no image library needed. */
export function makePng(width = 160, height = 48): Buffer {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0;
    for (let x = 0; x < width; x++) {
      const o = y * (width * 3 + 1) + 1 + x * 3;
      const bar = y > height * 0.35 && y < height * 0.65 && x > 10 && x < width - 10;
      raw[o] = bar ? 255 : 21;
      raw[o + 1] = bar ? 255 : Math.round(101 + (x / width) * 80);
      raw[o + 2] = bar ? 255 : 192;
    }
  }
  const chunk = (type: string, data: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const byte of buf) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** The config of the seeded month (policies named as the runs); `extra` goes at the top level. */
export function reportConfigYaml(opts: { displayName?: string; logo?: string; extra?: string; reportsExtra?: string; clientExtra?: string; globexExtra?: string } = {}): string {
  return `version: 1
${opts.extra ?? ''}
reports:
  mspName: "Northwind IT Services"
${opts.logo ? `  logo: ${JSON.stringify(opts.logo)}\n` : ''}${opts.reportsExtra ?? ''}clients:
  - name: acme
    displayName: ${JSON.stringify(opts.displayName ?? 'ACME Corporation')}
${opts.clientExtra ?? ''}    policies:
      - name: acme-shop-db
        kind: postgres
        source: { driver: local, path: /srv/backups/shop }
        targets: { rpo: 26h, rto: 30m }
        schedule: daily at 02:00
      - name: acme-files
        kind: files
        source: { driver: local, path: /srv/backups/files }
        targets: { rpo: 26h, rto: 10m }
        schedule: daily at 03:30
      - name: acme-mail
        kind: postgres
        source: { driver: local, path: /srv/backups/mail }
        schedule: daily at 04:00
  - name: globex
${opts.globexExtra ?? ''}    policies:
      - name: globex-crm
        kind: mysql
        source: { driver: local, path: /srv/backups/globex }
`;
}
