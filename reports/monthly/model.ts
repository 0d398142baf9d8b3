import { storageCosts, type StorageCostSummary } from './cost-section.js';
import { readFileSync } from 'node:fs';
import { createAlert, alertRunOf, type AlertCondition } from '../../orchestrator/alerts/alert.js';
import { conditionOfReason } from '../../orchestrator/alerts/run-conditions.js';
import { logoMediaType } from '../../orchestrator/config/reports-schema.js';
import type { ClientConfig, ResolvedConfig } from '../../orchestrator/core/config-types.js';
import { createHash } from 'node:crypto';
import type { ArtifactRef, BootVerdict, RunRecord, RunStatus, Verdict } from '../../orchestrator/core/domain.js';
import type { AlertStore, DeliveryRow, Incident } from '../../orchestrator/evidence/alert-store.js';
import type { ChainVerification, EvidenceChain } from '../../orchestrator/evidence/chain.js';
import type { RunStore } from '../../orchestrator/evidence/run-store.js';
import { BackproofError } from '../../orchestrator/core/errors.js';
import { BACKPROOF_VERSION } from '../../orchestrator/version.js';
import { coverageRef, coverageTotals, policyCoverage, type CoverageCounts, type PolicyCoverage, type ReportCoverageRef } from './coverage-section.js';
import { monthPeriod, type MonthPeriod } from './period.js';

/**
 * The monthly client report as data: every number any renderer (HTML, PDF, CSV, JSON) shows is
 * computed here once, so the four formats cannot disagree. Plain JSON: times are ISO strings
 * (UTC), durations in ms, sizes in bytes, rates in percent rounded to one decimal.
 *
 * Glossary
 * - Counted run: a run of the period with a verdict that was not cancelled (cancelled runs and
 *   runs still going are listed but not counted).
 * - Pass rate: passed counted runs / counted runs (errors count against it: a verification
 *   that could not run proved nothing).
 * - Restore time: the run's measured RTO (fetch start until the restored system answered).
 * - Boot time (kind vm): QEMU's start until the boot verdict (BootRecord.bootMs).
 * - Coverage run: a run of an older restore point (policy `coverage:`, coverage-section.ts). It is
 *   listed with every run (`coverage` set) but is no run of the newest backup: the pass rates,
 *   RPO/RTO figures, charts, run tables and failures leave it out; PolicySection.coverage counts it.
 */

/** The part of the evidence chain (orchestrator/evidence/chain.ts) a report reads. */
export type ChainReader = Pick<EvidenceChain, 'links' | 'verify' | 'verifyClient' | 'publicKeys'>;

/**
 * The chain for one batch of reports (the daemon's mailing on the 1st): each verification asked
 * for again (the same client and month, the same period) is done once.
 */
export function chainForBatch(chain: ChainReader): ChainReader {
  const verified = new Map<string, Promise<ChainVerification>>();
  const once = async (key: string, fresh: boolean, run: () => Promise<ChainVerification>): Promise<ChainVerification> => {
    let result = verified.get(key);
    if (!result || fresh) verified.set(key, (result = run()));
    return structuredClone(await result);
  };
  return {
    links: (ids) => chain.links(ids),
    publicKeys: () => chain.publicKeys(),
    verify: (opts = {}) => once(JSON.stringify({ from: opts.from, to: opts.to, full: opts.full }), opts.writeCheckpoint === true, () => chain.verify(opts)),
    verifyClient: (opts) => once(JSON.stringify({ client: opts.client, from: opts.from, to: opts.to }), false, () => chain.verifyClient(opts)),
  };
}

export interface MonthlyReportDeps {
  /** The runs, and the files kept with them (`artifact()`: a vm run's screenshot). */
  runs: RunStore;
  alerts: AlertStore;
  chain: ChainReader;
  config: ResolvedConfig;
}

export interface MonthlyReportOptions {
  client: string;
  /** `YYYY-MM`, counted in `config.reports.timezone` (default UTC). */
  month: string;
  /** When the report is generated. Default: now. */
  now?: Date;
}

export const REPORT_MODEL_VERSION = 1;

export interface MonthlyReport {
  reportVersion: typeof REPORT_MODEL_VERSION;
  generatedAt: string;
  generator: string;
  client: { name: string; displayName: string };
  msp: { name: string; logo: { mediaType: 'image/png' | 'image/jpeg'; base64: string } | null };
  period: MonthPeriod;
  summary: ReportSummary;
  policies: PolicySection[];
  /** Every run of the period, oldest first. */
  runs: ReportRun[];
  /** Every failed or erroring run, oldest first, with what was done about it. */
  failures: ReportFailure[];
  /** Alert incidents open at some time in the period, oldest first. */
  incidents: ReportIncident[];
  evidence: EvidenceAppendix;
}

export interface TargetFigures {
  /** The target (the newest run's, else the config's); null when none is set. */
  targetMs: number | null;
  /** Runs with a measurement. */
  measured: number;
  medianMs: number | null;
  worstMs: number | null;
  /** Measured runs within the target, and beyond it (0 and 0 without a target). */
  met: number;
  missed: number;
}

export interface ReportSummary {
  policiesConfigured: number;
  /** Policies with at least one counted run in the period. */
  policiesTested: number;
  /** Counted runs. */
  runs: number;
  passed: number;
  failed: number;
  errored: number;
  /** Not counted: cancelled runs and runs still going. */
  cancelled: number;
  inProgress: number;
  /** null without counted runs. */
  passRatePercent: number | null;
  rto: TargetFigures;
  rpo: TargetFigures;
  /** Incidents of the period, and those still open at its end. */
  incidents: number;
  openAtEnd: number;
  /** Coverage runs of older restore points, over every policy; null when no policy has coverage in the period. */
  coverage: CoverageCounts | null;
  /** The estimated storage cost of the period's runs, per currency (sources with `prices`); empty without. */
  storageCost: StorageCostSummary[];
}

export interface PolicySection {
  policy: string;
  kind: string;
  /** Config policy that had no runs in the period (or a policy no longer configured that had some). */
  configured: boolean;
  schedule: string | null;
  runs: number;
  passed: number;
  failed: number;
  errored: number;
  passRatePercent: number | null;
  /** The newest passing run up to the period's end (possibly before the period). */
  lastSuccessfulRestore: { runId: string; at: string; rtoMs: number | null; inPeriod: boolean } | null;
  /** Verdict of the policy's last counted run in the period. */
  lastVerdict: Verdict | null;
  rto: TargetFigures;
  rpo: TargetFigures;
  backupSize: { firstBytes: number; lastBytes: number; minBytes: number; maxBytes: number } | null;
  /** Kind vm: the boots of the counted runs; null when no run of the period recorded a boot. */
  boot: BootFigures | null;
  /**
   * Kind vm: the screen of the newest counted run that recorded a boot and, when that one did not
   * boot, the screen of the period's last run that did (if any). Empty for other kinds.
   */
  screenshots: ReportScreenshot[];
  /** Retention coverage: the period's newest plan and coverage runs; null when the period has neither. */
  coverage: PolicyCoverage | null;
}

export interface BootFigures {
  /** Counted runs that recorded a boot. */
  runs: number;
  booted: number;
  notBooted: number;
  inconclusive: number;
  /** Over the runs that booted. */
  medianMs: number | null;
  worstMs: number | null;
}

export interface ReportScreenshot {
  /** `latest`: the newest boot of the period; `last_booted`: the last that booted, shown beside a latest that did not. */
  role: 'latest' | 'last_booted';
  runId: string;
  startedAt: string;
  verdict: Verdict | null;
  bootVerdict: BootVerdict;
  bootMs: number;
  reason: string;
  /** The screenshot as the run's sealed record names it; null when the run kept none. */
  image: ArtifactRef | null;
  /** The image's bytes (base64) read from the evidence store; null when missing or not matching `image.sha256` (see `problem`). Not in the JSON. */
  base64: string | null;
  /** Why there is no image to show. */
  problem: string | null;
}

export interface ReportReason {
  code: string;
  message: string;
}

export interface ReportRun {
  runId: string;
  policy: string;
  kind: string;
  startedAt: string;
  status: RunStatus;
  verdict: Verdict | null;
  /** Whether the run counts (see the glossary). */
  counted: boolean;
  /** A coverage run of an older restore point (see the glossary); null for a run of the newest backup. */
  coverage: ReportCoverageRef | null;
  reasons: ReportReason[];
  durationMs: number | null;
  backupKey: string | null;
  backupSizeBytes: number | null;
  backupTakenAt: string | null;
  rpoMeasuredMs: number | null;
  rpoTargetMs: number | null;
  rpoMet: boolean | null;
  rtoMeasuredMs: number | null;
  rtoTargetMs: number | null;
  rtoMet: boolean | null;
  /** Kind vm: how the machine booted, and how long it took; null for other kinds. */
  bootVerdict: BootVerdict | null;
  bootMs: number | null;
  /** The sha256 of the run's last screenshot, as its sealed record names it. */
  screenshotSha256: string | null;
  /** The run's evidence hash and place in the chain; null while the run is not chained. */
  hash: string | null;
  chainSeq: number | null;
}

export interface ReportIncidentRef {
  id: string;
  condition: string;
  openedAt: string;
  resolvedAt: string | null;
}

export interface ReportFailure {
  runId: string;
  policy: string;
  at: string;
  verdict: 'fail' | 'error';
  reasons: ReportReason[];
  /** What to do, from the alert's next steps (orchestrator/alerts/alert.ts). */
  nextSteps: string[];
  /** The alert incidents this run confirmed. */
  incidents: ReportIncidentRef[];
  /** The policy's next passing run, when there was one by the report's generation. */
  recoveredAt: string | null;
  recoveredByRunId: string | null;
}

export interface ReportIncident {
  id: string;
  policy: string;
  condition: string;
  summary: string;
  reasons: ReportReason[];
  openedAt: string;
  resolvedAt: string | null;
  resolvedRunId: string | null;
  /** How long it was open, up to its resolution or the report's generation. */
  openForMs: number;
  /** Notifications sent: the firing and reminders. */
  notifications: number;
  lastNotifiedAt: string | null;
  /** Channels that delivered a notice of it (firing, reminder, resolution). */
  notifiedVia: string[];
  failedDeliveries: number;
  nextSteps: string[];
  runId: string | null;
}

export interface EvidenceAppendix {
  /** The chain's verification over the period; `error` when it could not be read at all. */
  verification: ChainVerification | { ok: false; checked: 0; error: string };
  /** The key that signed the chain head, as verified. */
  signingKeyFingerprint: string | null;
  publicKeys: string[];
  chainedRuns: number;
  unchainedRuns: number;
}

/** Incidents about backproof's own delivery channels and workers are internal, not the client's. */
const INTERNAL_CONDITIONS = new Set(['delivery_failed', 'no_worker']);
/** How far back incidents still open in the period may have been opened. */
const INCIDENT_LOOKBACK_MS = 400 * 24 * 3_600_000;
const MAX_ROWS = 100_000;

export async function buildMonthlyReport(deps: MonthlyReportDeps, opts: MonthlyReportOptions): Promise<MonthlyReport> {
  const { config } = deps;
  const client = findClient(config, opts.client);
  const now = opts.now ?? new Date();
  const period = monthPeriod(opts.month, config.reports?.timezone ?? 'UTC');

  const records = await deps.runs.runsBetween(client.name, period.from, period.to);
  const links = records.length > 0 ? await deps.chain.links(records.map((r) => r.id)) : new Map();
  const runs = records.map((r): ReportRun => toReportRun(r, links.get(r.id)));

  // Every policy configured now, plus any that ran in the period and has since been removed.
  const configured = client.policies.map((p) => p.name);
  const names = [...configured, ...[...new Set(records.map((r) => r.policy))].filter((n) => !configured.includes(n)).sort()];
  const policies: PolicySection[] = [];
  for (const name of names) {
    const cfg = client.policies.find((p) => p.name === name);
    // The runs of the newest backup: coverage runs of older restore points are shown apart.
    const own = runs.filter((r) => r.policy === name && r.coverage === null);
    const lastPass = [...own].reverse().find((r) => r.verdict === 'pass' && r.counted);
    let lastSuccessfulRestore: PolicySection['lastSuccessfulRestore'] = lastPass ? { runId: lastPass.runId, at: lastPass.startedAt, rtoMs: lastPass.rtoMeasuredMs, inPeriod: true } : null;
    if (!lastPass) {
      const before = await deps.runs.lastPassBefore(name, period.from);
      if (before) lastSuccessfulRestore = { runId: before.id, at: before.startedAt, rtoMs: before.metrics.rtoMeasuredMs ?? null, inPeriod: false };
    }
    const counted = own.filter((r) => r.counted);
    const sizes = counted.map((r) => r.backupSizeBytes).filter((s): s is number => s !== null);
    policies.push({
      policy: name,
      kind: cfg?.kind ?? own[0]?.kind ?? '',
      configured: cfg !== undefined,
      schedule: cfg?.schedule?.text ?? null,
      ...verdictCounts(counted),
      lastSuccessfulRestore,
      lastVerdict: counted.at(-1)?.verdict ?? null,
      rto: targetFigures(counted, 'rto', cfg?.targets.rtoMs),
      rpo: targetFigures(counted, 'rpo', cfg?.targets.rpoMs),
      backupSize: sizes.length > 0 ? { firstBytes: sizes[0]!, lastBytes: sizes.at(-1)!, minBytes: Math.min(...sizes), maxBytes: Math.max(...sizes) } : null,
      boot: bootFigures(counted),
      screenshots: await screenshotsOf(deps.runs, records.filter((r) => r.policy === name && r.boot && countedRecord(r) && !r.coverage?.point)),
      coverage: policyCoverage(records.filter((r) => r.policy === name)),
    });
  }

  const incidents = await periodIncidents(deps.alerts, client.name, period, now, records);
  const failures = runs
    .filter((r) => r.counted && r.coverage === null && (r.verdict === 'fail' || r.verdict === 'error'))
    .map((r): ReportFailure => {
      const record = records.find((x) => x.id === r.runId)!;
      const recovery = runs.find((x) => x.policy === r.policy && x.verdict === 'pass' && x.counted && x.coverage === null && x.startedAt > r.startedAt);
      return {
        runId: r.runId,
        policy: r.policy,
        at: r.startedAt,
        verdict: r.verdict as 'fail' | 'error',
        reasons: r.reasons,
        nextSteps: createAlert({
          id: r.runId,
          condition: r.verdict as 'fail' | 'error',
          state: 'firing',
          client: { name: client.name, displayName: client.displayName },
          policy: r.policy,
          kind: r.kind,
          occurredAt: r.startedAt,
          summary: '',
          reasons: r.reasons,
          run: alertRunOf(record),
        }).nextSteps,
        incidents: incidents.filter((i) => confirms(i, record)).map((i) => ({ id: i.id, condition: i.condition, openedAt: i.openedAt, resolvedAt: i.resolvedAt })),
        recoveredAt: recovery?.startedAt ?? null,
        recoveredByRunId: recovery?.runId ?? null,
      };
    });

  const newest = runs.filter((r) => r.coverage === null);
  const countedRuns = newest.filter((r) => r.counted);
  const rtoTargets = policies.map((p) => p.rto);
  const rpoTargets = policies.map((p) => p.rpo);
  const summary: ReportSummary = {
    policiesConfigured: client.policies.length,
    policiesTested: policies.filter((p) => p.runs > 0).length,
    ...verdictCounts(countedRuns),
    cancelled: newest.filter((r) => r.status === 'cancelled').length,
    inProgress: newest.filter((r) => r.status === 'running').length,
    rto: combineTargets(rtoTargets, countedRuns, 'rto'),
    rpo: combineTargets(rpoTargets, countedRuns, 'rpo'),
    incidents: incidents.length,
    openAtEnd: incidents.filter((i) => i.openedAt < period.to && (i.resolvedAt === null || i.resolvedAt >= period.to)).length,
    coverage: coverageTotals(policies.map((p) => p.coverage)),
    storageCost: storageCosts(records, client.budget),
  };

  return {
    reportVersion: REPORT_MODEL_VERSION,
    generatedAt: now.toISOString(),
    generator: `backproof ${BACKPROOF_VERSION}`,
    client: { name: client.name, displayName: client.displayName },
    msp: { name: config.reports?.mspName ?? 'backproof', logo: readLogo(config.reports?.logo) },
    period,
    summary,
    policies,
    runs,
    failures,
    incidents,
    evidence: await evidenceAppendix(deps.chain, client.name, period, runs),
  };
}

/** The client named, or a usage error listing the clients there are. */
export function findClient(config: Pick<ResolvedConfig, 'clients' | 'file'>, name: string): ClientConfig {
  const client = config.clients.find((c) => c.name === name);
  if (!client) {
    throw new BackproofError('unknown_client', `no client named "${name}" in ${config.file}; clients: ${config.clients.map((c) => c.name).join(', ')}`);
  }
  return client;
}

function readLogo(file: string | undefined): MonthlyReport['msp']['logo'] {
  if (file === undefined) return null;
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new BackproofError('report_logo_unreadable', `reports.logo ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)}): correct the path or remove logo`);
  }
  const mediaType = logoMediaType(bytes);
  if (!mediaType) throw new BackproofError('report_logo_invalid', `reports.logo ${file} is not a PNG or JPEG image: convert it, or remove logo`);
  return { mediaType, base64: bytes.toString('base64') };
}

function toReportRun(r: RunRecord, link: { seq: number; hash: string } | undefined): ReportRun {
  const m = r.metrics;
  const rpoMeasured = m.rpoMeasuredMs ?? null;
  const rtoMeasured = m.rtoMeasuredMs ?? null;
  return {
    runId: r.id,
    policy: r.policy,
    kind: r.kind,
    startedAt: r.startedAt,
    status: r.status,
    verdict: r.verdict,
    counted: countedRecord(r),
    coverage: coverageRef(r),
    reasons: r.reasons.map((x) => ({ code: x.code, message: x.message })),
    durationMs: r.durationMs,
    backupKey: r.backup?.key ?? null,
    backupSizeBytes: r.backup?.size ?? null,
    backupTakenAt: r.backup?.backupTime ?? null,
    rpoMeasuredMs: rpoMeasured,
    rpoTargetMs: m.rpoTargetMs ?? null,
    rpoMet: m.rpoMet ?? (rpoMeasured !== null && m.rpoTargetMs !== undefined ? rpoMeasured <= m.rpoTargetMs : null),
    rtoMeasuredMs: rtoMeasured,
    rtoTargetMs: m.rtoTargetMs ?? null,
    rtoMet: m.rtoMet ?? (rtoMeasured !== null && m.rtoTargetMs !== undefined ? rtoMeasured <= m.rtoTargetMs : null),
    bootVerdict: r.boot?.verdict ?? null,
    bootMs: r.boot?.bootMs ?? null,
    screenshotSha256: r.boot?.screenshot?.sha256 ?? null,
    hash: link?.hash ?? null,
    chainSeq: link?.seq ?? null,
  };
}

function countedRecord(r: Pick<RunRecord, 'verdict' | 'status'>): boolean {
  return r.verdict !== null && r.status !== 'cancelled' && r.status !== 'running';
}

function bootFigures(counted: ReportRun[]): BootFigures | null {
  const boots = counted.filter((r) => r.bootVerdict !== null);
  if (boots.length === 0) return null;
  const times = boots.filter((r) => r.bootVerdict === 'booted').map((r) => r.bootMs!);
  return {
    runs: boots.length,
    booted: times.length,
    notBooted: boots.filter((r) => r.bootVerdict === 'not_booted').length,
    inconclusive: boots.filter((r) => r.bootVerdict === 'inconclusive').length,
    medianMs: median(times),
    worstMs: times.length > 0 ? Math.max(...times) : null,
  };
}

/**
 * The screens a vm policy's section shows (see PolicySection.screenshots), their bytes read
 * through the store and checked against the sha256 the sealed record names: an image that does
 * not match is not shown, and the report says why.
 */
async function screenshotsOf(runs: Pick<RunStore, 'artifact'>, booted: RunRecord[]): Promise<ReportScreenshot[]> {
  const latest = booted.at(-1);
  if (!latest) return [];
  const chosen: [RunRecord, ReportScreenshot['role']][] = [[latest, 'latest']];
  if (latest.boot!.verdict !== 'booted') {
    const lastBooted = booted.findLast((r) => r.boot!.verdict === 'booted');
    if (lastBooted) chosen.push([lastBooted, 'last_booted']);
  }
  const out: ReportScreenshot[] = [];
  for (const [run, role] of chosen) {
    const boot = run.boot!;
    const image = boot.screenshot ?? null;
    let base64: string | null = null;
    let problem: string | null = image ? null : 'this run kept no screenshot';
    if (image) {
      const stored = await runs.artifact(run.id, image.name);
      if (!stored) problem = `the evidence store holds no ${image.name} for this run`;
      else if (createHash('sha256').update(stored.bytes).digest('hex') !== image.sha256) problem = `the stored ${image.name} does not match the sha256 sealed in the run's record`;
      else base64 = stored.bytes.toString('base64');
    }
    out.push({ role, runId: run.id, startedAt: run.startedAt, verdict: run.verdict, bootVerdict: boot.verdict, bootMs: boot.bootMs, reason: boot.reason, image, base64, problem });
  }
  return out;
}

function verdictCounts(counted: ReportRun[]): { runs: number; passed: number; failed: number; errored: number; passRatePercent: number | null } {
  const passed = counted.filter((r) => r.verdict === 'pass').length;
  return {
    runs: counted.length,
    passed,
    failed: counted.filter((r) => r.verdict === 'fail').length,
    errored: counted.filter((r) => r.verdict === 'error').length,
    passRatePercent: percent(passed, counted.length),
  };
}

export function percent(part: number, whole: number): number | null {
  return whole === 0 ? null : Math.round((1000 * part) / whole) / 10;
}

function targetFigures(counted: ReportRun[], which: 'rto' | 'rpo', configuredTargetMs: number | undefined): TargetFigures {
  const measured = counted.filter((r) => r[`${which}MeasuredMs`] !== null);
  const values = measured.map((r) => r[`${which}MeasuredMs`]!);
  const newestTarget = [...counted].reverse().find((r) => r[`${which}TargetMs`] !== null)?.[`${which}TargetMs`];
  return {
    targetMs: newestTarget ?? configuredTargetMs ?? null,
    measured: values.length,
    medianMs: median(values),
    worstMs: values.length > 0 ? Math.max(...values) : null,
    met: measured.filter((r) => r[`${which}Met`] === true).length,
    missed: measured.filter((r) => r[`${which}Met`] === false).length,
  };
}

/** The summary's figures over all policies: counts added, median and worst over every run; targets differ per policy, so none. */
function combineTargets(perPolicy: TargetFigures[], counted: ReportRun[], which: 'rto' | 'rpo'): TargetFigures {
  const values = counted.map((r) => r[`${which}MeasuredMs`]).filter((v): v is number => v !== null);
  return {
    targetMs: null,
    measured: values.length,
    medianMs: median(values),
    worstMs: values.length > 0 ? Math.max(...values) : null,
    met: perPolicy.reduce((n, p) => n + p.met, 0),
    missed: perPolicy.reduce((n, p) => n + p.missed, 0),
  };
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : Math.round((s[mid - 1]! + s[mid]!) / 2);
}

/** The alert conditions a run showed to be true (see run-conditions.ts). */
function conditionsOf(run: RunRecord): Set<string> {
  const out = new Set<string>(run.reasons.map((r) => conditionOfReason(r.code)));
  if (run.metrics.rtoMet === false) out.add('rto_exceeded');
  return out;
}

/** Whether the incident is about this run: its own run, or the same policy and condition open while the run ran. */
function confirms(incident: ReportIncident, run: RunRecord): boolean {
  if (incident.policy !== run.policy) return false;
  if (incident.runId === run.id) return true;
  if (!conditionsOf(run).has(incident.condition)) return false;
  const end = Date.parse(run.finishedAt ?? run.startedAt) + 60_000;
  return Date.parse(incident.openedAt) <= end && (incident.resolvedAt === null || Date.parse(incident.resolvedAt) >= Date.parse(run.startedAt));
}

async function periodIncidents(alerts: AlertStore, client: string, period: MonthPeriod, now: Date, records: RunRecord[]): Promise<ReportIncident[]> {
  const since = new Date(Date.parse(period.from) - INCIDENT_LOOKBACK_MS).toISOString();
  const [history, open] = await Promise.all([alerts.incidents({ client, since, limit: MAX_ROWS }), alerts.openIncidents({ client })]);
  const byId = new Map<string, Incident>();
  for (const i of [...history, ...open]) byId.set(i.id, i);
  const inPeriod = [...byId.values()]
    .filter((i) => !INTERNAL_CONDITIONS.has(i.condition))
    .filter((i) => i.openedAt < period.to && (i.resolvedAt === null || i.resolvedAt >= period.from))
    .sort((a, b) => a.openedAt.localeCompare(b.openedAt) || a.id.localeCompare(b.id));
  const earliest = inPeriod[0]?.openedAt;
  const deliveries: DeliveryRow[] = earliest ? await alerts.deliveries({ client, since: earliest, limit: MAX_ROWS }) : [];
  return inPeriod.map((i): ReportIncident => {
    const own = deliveries.filter((d) => d.incidentId === i.id);
    const run = i.runId ? records.find((r) => r.id === i.runId) : undefined;
    const nextSteps = createAlert({
      id: i.id,
      condition: i.condition as AlertCondition,
      state: 'firing',
      client: { name: client, displayName: client },
      policy: i.policy,
      kind: run?.kind ?? '',
      occurredAt: i.openedAt,
      summary: i.summary,
      reasons: i.reasons,
      ...(run ? { run: alertRunOf(run) } : {}),
      ...(i.since ? { since: i.since } : {}),
    }).nextSteps;
    return {
      id: i.id,
      policy: i.policy,
      condition: i.condition,
      summary: i.summary,
      reasons: i.reasons.map((r) => ({ code: r.code, message: r.message })),
      openedAt: i.openedAt,
      resolvedAt: i.resolvedAt,
      resolvedRunId: i.resolvedRunId,
      openForMs: Math.max(0, Date.parse(i.resolvedAt ?? now.toISOString()) - Date.parse(i.openedAt)),
      notifications: i.notifications,
      lastNotifiedAt: i.lastNotifiedAt,
      notifiedVia: [...new Set(own.filter((d) => d.ok).map((d) => d.channel))].sort(),
      failedDeliveries: own.filter((d) => !d.ok && !d.retryPending).length,
      nextSteps,
      runId: i.runId,
    };
  });
}

async function evidenceAppendix(chain: ChainReader, client: string, period: MonthPeriod, runs: ReportRun[]): Promise<EvidenceAppendix> {
  const chainedRuns = runs.filter((r) => r.hash !== null).length;
  let verification: EvidenceAppendix['verification'];
  let publicKeys: string[] = [];
  try {
    verification = await chain.verifyClient({ client, from: period.from, to: period.to });
    publicKeys = (await chain.publicKeys()).map((k) => k.fingerprint);
  } catch (err) {
    verification = { ok: false, checked: 0, error: `the evidence chain could not be verified: ${(err as Error).message}` };
  }
  return {
    verification,
    signingKeyFingerprint: 'head' in verification && verification.head ? verification.head.keyFingerprint : null,
    publicKeys,
    chainedRuns,
    unchainedRuns: runs.length - chainedRuns,
  };
}
