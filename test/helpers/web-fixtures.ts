import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfigText } from '../../orchestrator/config/load.js';
import type { ResolvedConfig } from '../../orchestrator/core/config-types.js';
import type { PhaseRecord, ProbeResult, Reason, RunRecord } from '../../orchestrator/core/domain.js';
import { AlertStore } from '../../orchestrator/evidence/alert-store.js';
import { RunStore } from '../../orchestrator/evidence/run-store.js';
import { sampleRun } from './store-backends.js';

/**
 * Evidence for the dashboard and API tests, without Docker: runs recorded through a real
 * RunStore (embedded PGlite in a temp dir; recordStart then finalize, as the runner does) for two
 * clients, with passes, failures, an error and a recovery, realistic phases, probes, reasons and
 * log tails, and open and resolved alert incidents. The clock of the server is fixed at NOW.
 */
export const NOW = new Date('2026-11-19T12:00:00.000Z');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** The acme display name holds characters HTML and the metrics label format must escape. */
export const ACME_DISPLAY = 'ACME "Shop" <b>&</b> \\ GmbH';

export const CONFIG_TEXT = `version: 1
clients:
  - name: acme
    displayName: '${ACME_DISPLAY.replace(/'/g, "''")}'
    policies:
      - name: acme-db
        kind: postgres
        source: { driver: local, path: ./acme/db }
        targets: { rpo: 26h, rto: 10m }
        schedule: "daily at 02:30"
        probes:
          - rowCount: { table: orders, atLeast: 1000 }
      - name: acme-files
        kind: files
        source: { driver: local, path: ./acme/files }
        targets: { rpo: 26h }
        schedule: "daily at 03:00"
        probes:
          - files: ["docs/**"]
  - name: globex
    displayName: Globex Corporation
    policies:
      - name: globex-db
        kind: postgres
        source: { driver: local, path: ./globex/db }
        targets: { rpo: 26h, rto: 5m }
        schedule: "daily at 01:00"
      - name: globex-notes
        kind: sqlite
        source: { driver: local, path: ./globex/notes }
        targets: { rpo: 8d }
        schedule: "weekly"
`;

export interface WebFixture {
  dir: string;
  store: RunStore;
  alerts: AlertStore;
  config: ResolvedConfig;
  /** Every run recorded, by a name the tests use. */
  runs: {
    acmeDbLatest: RunRecord;
    acmeDbFailed: RunRecord;
    acmeFilesFailed: RunRecord;
    globexDbError: RunRecord;
    globexDbPassed: RunRecord;
    globexNotesLatest: RunRecord;
  };
  all: RunRecord[];
  close(): Promise<void>;
}

export async function buildWebFixture(): Promise<WebFixture> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-web-test-'));
  const config = parseConfigText(CONFIG_TEXT, path.join(dir, 'backproof.yaml'), {});
  const store = await RunStore.open({ dataDir: path.join(dir, 'data'), schema: 'backproof' });
  const alerts = new AlertStore(store.executor, store.schema);
  const all: RunRecord[] = [];
  const record = async (run: RunRecord): Promise<RunRecord> => {
    await store.recordStart({ ...run, status: 'running', verdict: null, finishedAt: null, durationMs: null });
    await store.finalize(run);
    all.push(run);
    return run;
  };

  // acme-db: nightly since late October; 2026-11-14 failed (checksum mismatch), passes again since (a recovery).
  let acmeDbLatest: RunRecord | undefined;
  let acmeDbFailed: RunRecord | undefined;
  for (let day = -20; day <= 0; day++) {
    const start = Date.UTC(2026, 10, 19, 2, 30) + day * DAY;
    const rto = 60_000 + ((day * 7919) % 9 + 9) * 4_000;
    const failed = day === -5;
    const run = await record(
      dbRun({
        client: 'acme',
        policy: 'acme-db',
        start,
        backupKey: `shop-${new Date(start - 90 * 60_000).toISOString().slice(0, 10)}.dump`,
        backupAgeMs: 90 * 60_000,
        size: 1_840_000_000 + day * 3_000_000,
        rtoMs: failed ? undefined : rto,
        rtoTargetMs: 10 * 60_000,
        reasons: failed ? [{ code: 'checksum_mismatch', message: 'sha256 of the bytes read (3f2a...) does not match the sidecar shop-2026-11-14.dump.sha256 (9c1b...)' }] : [],
      }),
    );
    if (failed) acmeDbFailed = run;
    acmeDbLatest = run;
  }

  // acme-files: passed on the 17th and 18th, failed on the 19th: the docs folder is gone.
  for (const day of [-2, -1]) {
    await record(filesRun({ start: Date.UTC(2026, 10, 19, 3, 0) + day * DAY, pass: true }));
  }
  const acmeFilesFailed = await record(filesRun({ start: Date.UTC(2026, 10, 19, 3, 0), pass: false }));

  // globex-db: passed on the 18th; on the 19th Docker was down: an error, not a fail.
  const globexDbPassed = await record(
    dbRun({ client: 'globex', policy: 'globex-db', start: Date.UTC(2026, 10, 18, 1, 0), backupKey: 'erp-2026-11-18.dump', backupAgeMs: HOUR, size: 420_000_000, rtoMs: 95_000, rtoTargetMs: 5 * 60_000, reasons: [] }),
  );
  const globexDbError = await record(errorRun(Date.UTC(2026, 10, 19, 1, 0)));

  // globex-notes: weekly, always passing; one run in October too.
  let globexNotesLatest: RunRecord | undefined;
  for (const start of [Date.UTC(2026, 9, 29, 4, 0), Date.UTC(2026, 10, 5, 4, 0), Date.UTC(2026, 10, 12, 4, 0), Date.UTC(2026, 10, 19, 4, 0) - 6 * HOUR]) {
    globexNotesLatest = await record(
      dbRun({ client: 'globex', policy: 'globex-notes', kind: 'sqlite', start, backupKey: `notes-${new Date(start).toISOString().slice(0, 10)}.sqlite`, backupAgeMs: 2 * HOUR, size: 12_000_000, rtoMs: 4_000, reasons: [] }),
    );
  }

  // Alerts: acme-files' failure is open; globex-db's error is open; acme-db's failure was resolved by the next pass.
  await alerts.openIncident({
    client: 'acme',
    policy: 'acme-files',
    condition: 'fail',
    openedAt: acmeFilesFailed.finishedAt!,
    summary: 'acme-files failed: probe docs/** found no file',
    reasons: acmeFilesFailed.reasons,
    runId: acmeFilesFailed.id,
  });
  await alerts.openIncident({
    client: 'globex',
    policy: 'globex-db',
    condition: 'error',
    openedAt: globexDbError.finishedAt!,
    summary: 'globex-db could not be verified: Docker is unreachable',
    reasons: globexDbError.reasons,
    runId: globexDbError.id,
  });
  const resolved = await alerts.openIncident({
    client: 'acme',
    policy: 'acme-db',
    condition: 'fail',
    openedAt: acmeDbFailed!.finishedAt!,
    summary: 'acme-db failed: checksum mismatch',
    reasons: acmeDbFailed!.reasons,
    runId: acmeDbFailed!.id,
  });
  await alerts.resolveIncident(resolved.incident.id, new Date(Date.parse(acmeDbFailed!.startedAt) + DAY).toISOString());

  return {
    dir,
    store,
    alerts,
    config,
    runs: { acmeDbLatest: acmeDbLatest!, acmeDbFailed: acmeDbFailed!, acmeFilesFailed, globexDbError, globexDbPassed, globexNotesLatest: globexNotesLatest! },
    all,
    async close() {
      await store.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

function base(over: Pick<RunRecord, 'client' | 'policy' | 'kind'> & { start: number }): RunRecord {
  return sampleRun(new Date(over.start).toISOString(), { client: over.client, policy: over.policy, kind: over.kind, status: 'finished', verdict: 'pass', host: 'backproof-1' });
}

/** Phases laid end to end from `start`: [name, ms, outcome, detail?]. */
function phases(start: number, list: [PhaseRecord['name'], number, PhaseRecord['outcome'], string?][]): { phases: PhaseRecord[]; end: number } {
  let t = start;
  const out = list.map(([name, ms, outcome, detail]): PhaseRecord => {
    const p: PhaseRecord = { name, startedAt: new Date(t).toISOString(), endedAt: new Date(t + ms).toISOString(), durationMs: ms, outcome, ...(detail ? { detail } : {}) };
    t += ms;
    return p;
  });
  return { phases: out, end: t };
}

function dbRun(o: {
  client: string;
  policy: string;
  kind?: string;
  start: number;
  backupKey: string;
  backupAgeMs: number;
  size: number;
  rtoMs?: number;
  rtoTargetMs?: number;
  reasons: Reason[];
}): RunRecord {
  const failed = o.reasons.length > 0;
  const fetch = o.rtoMs !== undefined ? o.rtoMs - 3_000 : 41_000;
  const { phases: ps, end } = phases(o.start, [
    ['select', 180, 'ok'],
    ['sandbox', 2_400, 'ok', 'container 3f9e2c'],
    ['fetch_restore', fetch, failed ? 'fail' : 'ok'],
    ['readiness', failed ? 0 : 3_000, failed ? 'skipped' : 'ok', failed ? 'restore failed' : undefined],
    ['probes', failed ? 0 : 1_200, failed ? 'skipped' : 'ok', failed ? 'restore failed' : undefined],
    ['teardown', 900, 'ok'],
  ]);
  const probes: ProbeResult[] = failed ? [] : [{ name: 'rowCount: orders >= 1000', type: 'rowCount', expected: '>= 1000', actual: '48213', pass: true, durationMs: 1_100 }];
  const rpoTarget = 26 * HOUR;
  return {
    ...base({ client: o.client, policy: o.policy, kind: o.kind ?? 'postgres', start: o.start }),
    verdict: failed ? 'fail' : 'pass',
    reasons: o.reasons,
    finishedAt: new Date(end).toISOString(),
    durationMs: end - o.start,
    backup: {
      driver: 'local',
      location: `/srv/backups/${o.client}`,
      key: o.backupKey,
      size: o.size,
      modifiedAt: new Date(o.start - o.backupAgeMs + 60_000).toISOString(),
      backupTime: new Date(o.start - o.backupAgeMs).toISOString(),
      timestampSource: 'name',
      ageMs: o.backupAgeMs,
      sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      bytesRead: o.size,
      checksums: [{ algorithm: 'sha256', expected: failed ? '9c1b'.padEnd(64, '0') : 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', source: 'sidecar', verified: !failed }],
      format: 'pg_dump_custom',
      compression: 'none',
      header: { serverVersion: '15.8', database: 'shop' },
    },
    phases: ps,
    probes,
    metrics: {
      rpoTargetMs: rpoTarget,
      rpoMeasuredMs: o.backupAgeMs,
      rpoMet: o.backupAgeMs <= rpoTarget,
      ...(o.rtoMs !== undefined ? { rtoMeasuredMs: o.rtoMs, ...(o.rtoTargetMs !== undefined ? { rtoTargetMs: o.rtoTargetMs, rtoMet: o.rtoMs <= o.rtoTargetMs } : {}) } : {}),
      fetchBytesPerSec: Math.round(o.size / (fetch / 1000)),
    },
    sandbox: {
      runtime: 'docker',
      image: 'backproof/postgres:15',
      serverVersion: '15.8',
      limits: { memoryBytes: 2_147_483_648, cpus: 2, network: 'none' },
      logTail: failed ? '' : 'LOG:  database system is ready to accept connections\n',
    },
    restored: failed ? null : { database: 'shop', tables: 42 },
  };
}

function filesRun(o: { start: number; pass: boolean }): RunRecord {
  const { phases: ps, end } = phases(o.start, [
    ['select', 90, 'ok'],
    ['sandbox', 1_800, 'ok'],
    ['fetch_restore', 22_000, 'ok'],
    ['probes', 2_500, o.pass ? 'ok' : 'fail', o.pass ? undefined : '1 of 2 probes failed'],
    ['teardown', 600, 'ok'],
  ]);
  const probes: ProbeResult[] = [
    o.pass
      ? { name: 'files: docs/**', type: 'files', expected: 'docs/** matches at least 1 file', actual: '1,204 files', pass: true, durationMs: 1_200 }
      : { name: 'files: docs/**', type: 'files', expected: 'docs/** matches at least 1 file', actual: '0 files', pass: false, durationMs: 1_300 },
    { name: 'encryptedLooking', type: 'encryptedLooking', expected: '<= 10% of documents look random', actual: o.pass ? '0.4%' : '0.0%', pass: true, durationMs: 1_100 },
  ];
  const size = o.pass ? 5_300_000_000 : 310_000_000;
  return {
    ...base({ client: 'acme', policy: 'acme-files', kind: 'files', start: o.start }),
    verdict: o.pass ? 'pass' : 'fail',
    reasons: o.pass ? [] : [{ code: 'probe_failed', message: "probe 'files: docs/**' expected docs/** to match at least 1 file; found 0 <none>" }],
    finishedAt: new Date(end).toISOString(),
    durationMs: end - o.start,
    backup: {
      driver: 'local',
      location: '/srv/backups/acme/files',
      key: `files-${new Date(o.start).toISOString().slice(0, 10)}.tar.gz`,
      size,
      modifiedAt: new Date(o.start - 2 * HOUR).toISOString(),
      backupTime: new Date(o.start - 2 * HOUR).toISOString(),
      timestampSource: 'name',
      ageMs: 2 * HOUR,
      sha256: 'a'.repeat(64),
      bytesRead: size,
      checksums: [],
      format: 'tar',
      compression: 'gzip',
    },
    phases: ps,
    probes,
    metrics: { rpoTargetMs: 26 * HOUR, rpoMeasuredMs: 2 * HOUR, rpoMet: true, rtoMeasuredMs: 23_800, fetchBytesPerSec: Math.round(size / 22) },
    sandbox: {
      runtime: 'docker',
      image: 'backproof/files',
      limits: { memoryBytes: 2_147_483_648, cpus: 2, network: 'none' },
      logTail: o.pass
        ? 'extracted 1204 entries (5.3 GB)\n'
        : 'tar: extracting to /restore\nextracted 88 entries (310 MB)\nwarning: <script>alert("x")</script> is a file name\nprobe files: docs/** matched 0 files\n',
    },
    restored: { files: o.pass ? 1204 : 88, sizeBytes: o.pass ? 5_300_000_000 : 310_000_000 },
  };
}

function errorRun(start: number): RunRecord {
  const { phases: ps, end } = phases(start, [
    ['select', 150, 'ok'],
    ['sandbox', 5_000, 'error', 'connect ENOENT /var/run/docker.sock'],
  ]);
  return {
    ...base({ client: 'globex', policy: 'globex-db', kind: 'postgres', start }),
    verdict: 'error',
    reasons: [{ code: 'docker_unreachable', message: 'cannot reach the Docker engine at /var/run/docker.sock: connect ENOENT; is dockerd running?' }],
    finishedAt: new Date(end).toISOString(),
    durationMs: end - start,
    backup: {
      driver: 'local',
      location: '/srv/backups/globex',
      key: 'erp-2026-11-19.dump',
      size: 421_000_000,
      modifiedAt: new Date(start - HOUR).toISOString(),
      backupTime: new Date(start - HOUR).toISOString(),
      timestampSource: 'name',
      ageMs: HOUR,
    },
    phases: ps,
    probes: [],
    metrics: { rpoTargetMs: 26 * HOUR, rpoMeasuredMs: HOUR, rpoMet: true },
    sandbox: null,
    restored: null,
  };
}
