import { execFile, spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { inflateSync } from 'node:zlib';
import t from 'tap';
import { channelsFromConfig, closeChannels } from '../orchestrator/alerts/channels-from-config.js';
import { parseConfigText } from '../orchestrator/config/load.js';
import { configJsonSchema } from '../orchestrator/config/schema.js';
import type { ResolvedConfig } from '../orchestrator/core/config-types.js';
import { mailMonthlyReports, scheduleReportMailing } from '../orchestrator/daemon/report-mailer.js';
import { ConfigError } from '../orchestrator/core/errors.js';
import { AlertStore } from '../orchestrator/evidence/alert-store.js';
import { EvidenceChain } from '../orchestrator/evidence/chain.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { Logger } from '../orchestrator/core/logger.js';
import { CSV_COLUMNS } from '../reports/monthly/render-csv.js';
import { buildMonthlyReport, chainForBatch, monthPeriod, previousMonth, renderMonthlyReport, reportFileName, type ChainReader, type MonthlyReport } from '../reports/monthly/index.js';
import { toWinAnsi } from '../reports/monthly/win-ansi.js';
import { chainText } from '../reports/monthly/text.js';
import { tempDir } from './helpers/harness.js';
import { makePng, MONTH, reportConfigYaml, seedMonth, type SeededMonth } from './helpers/report-fixtures.js';
import { startSmtpReceiver } from './helpers/smtp-receiver.js';
import { parseCsv } from './helpers/csv.js';

// Monthly client reports from a month of evidence recorded without Docker (runs through a real
// RunStore on PGlite, sealed into the evidence chain; incidents through a real AlertStore):
// the model's numbers, the four formats holding the same numbers, the PDF's pages as PNG, the
// CLI end to end, and the daemon's mailing through a real SMTP server.

const run = promisify(execFile);
const BIN = path.resolve('bin/backproof.js');
const NOW = new Date('2026-12-02T06:00:00Z');
const NASTY = 'ACME <script>alert("x")</script> Zürich Łódź Ωμέγα Москва 東京';

let dir: string;
let dataDir: string;
let store: RunStore;
let storeOpen = false;
let alerts: AlertStore;
let seeded: SeededMonth;
let config: ResolvedConfig;
let report: MonthlyReport;

const configAt = (yaml: string): ResolvedConfig => parseConfigText(yaml, path.join(dir, 'backproof.yaml'), {});
const build = (cfg: ResolvedConfig, client = 'acme', month = MONTH): Promise<MonthlyReport> =>
  buildMonthlyReport({ runs: store, alerts, chain: new EvidenceChain(store.executor, store.schema), config: cfg }, { client, month, now: NOW });

t.before(async () => {
  dir = await tempDir('report');
  dataDir = path.join(dir, 'data');
  await fs.writeFile(path.join(dir, 'logo.png'), makePng());
  store = await RunStore.open({ dataDir, schema: 'backproof' });
  storeOpen = true;
  alerts = new AlertStore(store.executor, store.schema);
  seeded = await seedMonth(store, alerts);
  config = configAt(reportConfigYaml({ logo: 'logo.png' }));
  report = await build(config);
});

t.teardown(async () => {
  if (storeOpen) await store.close();
});

t.test('the model: only the client and month asked for, every number computed once', async (t) => {
  t.equal(report.period.from, '2026-11-01T00:00:00.000Z');
  t.equal(report.period.to, '2026-12-01T00:00:00.000Z');
  t.equal(report.period.label, 'November 2026');
  t.strictSame(
    report.runs.map((r) => r.runId),
    seeded.novemberRuns.map((r) => r.id),
    "every November run of acme, oldest first; none of October, December or globex",
  );
  for (const id of seeded.otherRunIds) t.notOk(report.runs.some((r) => r.runId === id), `run ${id} of another client or month is absent`);
  t.match(report.summary, { policiesConfigured: 3, policiesTested: 3, runs: 63, passed: 55, failed: 4, errored: 4, cancelled: 0, inProgress: 0, passRatePercent: 87.3, incidents: 6, openAtEnd: 1 });
  t.match(report.summary.rto, { measured: 58, met: 57, missed: 1, worstMs: 34 * 60_000 + 12_000 });
  t.match(report.summary.rpo, { measured: 60, met: 59, missed: 1, worstMs: 30 * 3_600_000 });

  const [shop, files, mail] = report.policies;
  t.match(shop, { policy: 'acme-shop-db', runs: 30, passed: 27, failed: 2, errored: 1, passRatePercent: 90, lastVerdict: 'pass', schedule: 'daily at 02:00' });
  t.match(shop!.rto, { targetMs: 30 * 60_000, measured: 28, met: 27, missed: 1 });
  t.match(shop!.lastSuccessfulRestore, { at: '2026-11-30T02:00:07.000Z', inPeriod: true });
  t.match(files, { policy: 'acme-files', runs: 30, passed: 28, failed: 2, errored: 0, passRatePercent: 93.3 });
  t.match(files!.rpo, { targetMs: 26 * 3_600_000, measured: 30, met: 29, missed: 1 });
  t.match(mail, { policy: 'acme-mail', runs: 3, passed: 0, errored: 3, passRatePercent: 0, lastVerdict: 'error' });
  t.strictSame(mail!.lastSuccessfulRestore, { runId: seeded.octoberPassOfMail.id, at: seeded.octoberPassOfMail.startedAt, rtoMs: 60_000, inPeriod: false }, 'the last success before the period');

  t.equal(report.failures.length, 8, 'every fail (4) and error (4)');
  const probe = report.failures.find((f) => f.reasons[0]?.code === 'probe_failed')!;
  t.match(probe.nextSteps.join('\n'), /a probe did not hold: compare its expected and actual values \(backproof runs show [0-9a-f-]{36}\)/, "the alert's next step for the reason");
  t.strictSame(probe.incidents.map((i) => i.id), [seeded.incidentIds.shopFail], 'linked to its incident');
  t.equal(probe.recoveredAt, '2026-11-12T02:00:07.000Z', 'recovered by the next pass');
  const docker = report.failures.find((f) => f.verdict === 'error' && f.policy === 'acme-shop-db')!;
  t.match(docker.nextSteps, ['start the Docker engine on the verification host']);
  t.strictSame(report.failures.filter((f) => f.policy === 'acme-mail').map((f) => f.recoveredAt), [null, null, null], 'acme-mail never recovered');

  t.strictSame(
    report.incidents.map((i) => i.id),
    [seeded.incidentIds.mailError, seeded.incidentIds.shopFail, seeded.incidentIds.filesSize, seeded.incidentIds.filesStale, seeded.incidentIds.shopError, seeded.incidentIds.shopRto],
    "the client's incidents of the period, oldest first; not delivery_failed, not globex's",
  );
  const shopFail = report.incidents.find((i) => i.id === seeded.incidentIds.shopFail)!;
  const recovery = seeded.novemberRuns.find((r) => r.policy === 'acme-shop-db' && r.startedAt.startsWith('2026-11-12'))!;
  t.match(shopFail, { notifications: 3, notifiedVia: ['ops-email', 'ops-slack'], failedDeliveries: 0, resolvedAt: recovery.finishedAt, resolvedRunId: recovery.id });
  t.match(report.incidents.find((i) => i.id === seeded.incidentIds.filesStale), { notifications: 0, failedDeliveries: 1 });
  t.match(report.incidents.find((i) => i.id === seeded.incidentIds.mailError), { resolvedAt: null, openForMs: Date.parse(NOW.toISOString()) - Date.parse(seeded.novemberRuns.find((r) => r.policy === 'acme-mail')!.finishedAt!) });

  t.ok(report.runs.every((r) => /^[0-9a-f]{64}$/.test(r.hash ?? '')), 'every run carries its chain hash');
  t.match(report.evidence, { chainedRuns: 63, unchainedRuns: 0, verification: { ok: true } });
  t.match(report.evidence.signingKeyFingerprint, /^SHA256:/);
  t.ok(report.evidence.publicKeys.includes(report.evidence.signingKeyFingerprint!));
  t.match(report.msp, { name: 'Northwind IT Services', logo: { mediaType: 'image/png' } });
  t.equal(reportFileName(report, 'pdf'), 'backproof-acme-2026-11.pdf');
});

t.test("a batch of reports verifies each client's month once (the daemon's mailing)", async (t) => {
  const chain = new EvidenceChain(store.executor, store.schema);
  const asked: unknown[] = [];
  const counted: ChainReader = {
    links: (ids) => chain.links(ids),
    publicKeys: () => chain.publicKeys(),
    verify: (opts) => chain.verify(opts),
    verifyClient: (opts) => (asked.push(opts), chain.verifyClient(opts)),
  };
  const batch = chainForBatch(counted);
  const deps = { runs: store, alerts, chain: batch, config };
  const acme = await buildMonthlyReport(deps, { client: 'acme', month: MONTH, now: NOW });
  const globex = await buildMonthlyReport({ ...deps, config: configAt(reportConfigYaml()) }, { client: 'globex', month: MONTH, now: NOW });
  t.equal(asked.length, 2, 'one verification of November per client');
  t.strictSame(acme.evidence.verification, report.evidence.verification, "acme's verification as built alone");
  t.equal(globex.evidence.verification.ok, true);
  await buildMonthlyReport(deps, { client: 'acme', month: MONTH, now: NOW });
  t.equal(asked.length, 2, "acme's November again: not verified again");
  await buildMonthlyReport(deps, { client: 'acme', month: '2026-10', now: NOW });
  t.equal(asked.length, 3, 'another month is verified');
});

t.test('month and client are checked; months follow reports.timezone', async (t) => {
  await t.rejects(build(config, 'acme', '2026-13'), { code: 'report_month_invalid', message: '--month 2026-13 is not a month; write YYYY-MM, e.g. 2026-11' });
  await t.rejects(build(config, 'acme', 'November'), { code: 'report_month_invalid' });
  await t.rejects(build(config, 'nobody'), { code: 'unknown_client', message: /no client named "nobody" in .*; clients: acme, globex/ });
  const berlin = monthPeriod('2026-03', 'Europe/Berlin');
  t.equal(berlin.from, '2026-02-28T23:00:00.000Z', 'March starts at CET midnight');
  t.equal(berlin.to, '2026-03-31T22:00:00.000Z', 'and ends at CEST midnight');
  t.equal(monthPeriod('2026-12', 'UTC').to, '2027-01-01T00:00:00.000Z');
  t.equal(previousMonth(new Date('2026-12-01T05:30:00Z'), 'Europe/Berlin'), '2026-11');
  t.equal(previousMonth(new Date('2026-12-31T23:30:00Z'), 'Europe/Berlin'), '2026-12', 'already January in Berlin');
  const zoned = await build(configAt(reportConfigYaml({ reportsExtra: '  timezone: America/New_York\n' })));
  t.equal(zoned.period.from, '2026-11-01T04:00:00.000Z');
  // New York's November starts at 04:00Z: the runs of Nov 1 at 02:00Z and 03:30Z are October's
  // there, and acme-shop-db's run of Dec 1 at 02:00Z is November's.
  t.equal(zoned.runs.length, 62);
  t.equal(zoned.runs[0]!.startedAt, '2026-11-02T02:00:07.000Z');
  t.equal(zoned.runs.at(-1)!.startedAt, '2026-12-01T02:00:07.000Z');
});

t.test('CSV and JSON hold the same numbers as the model', async (t) => {
  const json = JSON.parse((await renderMonthlyReport(report, 'json')).toString('utf8')) as MonthlyReport & { msp: { logo: { sha256: string; bytes: number } } };
  t.strictSame(json.summary, report.summary);
  t.strictSame(json.policies, report.policies);
  t.strictSame(json.runs, report.runs);
  t.strictSame(json.failures, report.failures);
  t.strictSame(json.evidence, report.evidence);
  t.match(json.msp.logo, { mediaType: 'image/png', bytes: makePng().length, sha256: /^[0-9a-f]{64}$/ });
  t.notOk('base64' in json.msp.logo, 'the logo itself is left out');

  const csv = parseCsv((await renderMonthlyReport(report, 'csv')).toString('utf8'));
  t.strictSame(csv[0], [...CSV_COLUMNS], 'the header');
  const rows = csv.slice(1).map((cells) => Object.fromEntries(CSV_COLUMNS.map((c, i) => [c, cells[i] ?? ''])));
  const runs = rows.filter((r) => r.section === 'run');
  t.equal(runs.length, report.runs.length, 'one row per run');
  const num = (v: number | null): string => (v === null ? '' : String(v));
  runs.forEach((row, i) => {
    const r = report.runs[i]!;
    t.strictSame(
      [row.run_id, row.policy, row.verdict, row.backup_size_bytes, row.rpo_measured_ms, row.rpo_target_ms, row.rto_measured_ms, row.rto_target_ms, row.rto_met, row.hash],
      [r.runId, r.policy, r.verdict ?? '', num(r.backupSizeBytes), num(r.rpoMeasuredMs), num(r.rpoTargetMs), num(r.rtoMeasuredMs), num(r.rtoTargetMs), r.rtoMet === null ? '' : String(r.rtoMet), r.hash ?? ''],
      `run row ${i}`,
    );
  });
  t.match(runs.find((r) => r.verdict === 'fail')!.reasons, /^probe_failed: probe rowCount\(orders\)/);
  for (const p of report.policies) {
    const row = rows.find((r) => r.section === 'policy' && r.policy === p.policy)!;
    t.strictSame(
      [row.runs, row.passed, row.failed, row.errored, row.pass_rate_percent, row.rto_within_target, row.rto_beyond_target, row.rpo_within_target, row.rpo_beyond_target, row.rto_worst_ms, row.last_success_at],
      [p.runs, p.passed, p.failed, p.errored, p.passRatePercent, p.rto.met, p.rto.missed, p.rpo.met, p.rpo.missed, p.rto.worstMs, p.lastSuccessfulRestore?.at ?? ''].map((v) => (v === null ? '' : String(v))),
      `policy row ${p.policy}`,
    );
  }
  const summary = rows.filter((r) => r.section === 'summary');
  t.equal(summary.length, 1);
  t.strictSame([summary[0]!.runs, summary[0]!.passed, summary[0]!.failed, summary[0]!.errored, summary[0]!.pass_rate_percent], ['63', '55', '4', '4', '87.3']);
});

t.test('HTML: self-contained, inline SVG charts, every value escaped', async (t) => {
  const html = (await renderMonthlyReport(report, 'html')).toString('utf8');
  t.equal((html.match(/<svg /g) ?? []).length, 2, 'two inline charts');
  t.notMatch(html, /(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\//i, 'no external resource');
  t.notMatch(html, /<script|<link|<iframe|@import|url\(/i, 'no script, stylesheet link or CSS url()');
  t.match(html, /src="data:image\/png;base64,/, 'the logo inline');
  for (const text of ['87.3%', '55', '90.0%', '93.3%', '57 of 58', '59 of 60', 'Evidence chain verified', report.evidence.signingKeyFingerprint!, report.runs[0]!.hash!]) {
    t.ok(html.includes(text), `shows ${text}`);
  }
  t.match(html, /Day of the month \(UTC\)/, 'x axis title');
  t.match(html, /Restore time \(min\)/, 'y axis with its unit');
  t.match(html, /Backup size \(MiB\)/);

  const nasty = await build(configAt(reportConfigYaml({ displayName: NASTY })));
  const page = (await renderMonthlyReport(nasty, 'html')).toString('utf8');
  t.notMatch(page, /<script/i, 'the name cannot open a script');
  t.ok(page.includes('ACME &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; Zürich Łódź Ωμέγα Москва 東京'), 'escaped, non-Latin letters kept');
  const json = JSON.parse((await renderMonthlyReport(nasty, 'json')).toString('utf8')) as MonthlyReport;
  t.equal(json.client.displayName, NASTY, 'JSON keeps the name as written');
});

t.test('PDF: pages render, none blank, every summary number present', async (t) => {
  const pdf = await renderMonthlyReport(report, 'pdf');
  t.equal(pdf.subarray(0, 5).toString('latin1'), '%PDF-');
  const out = await tempDir('report-pdf');
  const file = path.join(out, 'report.pdf');
  await fs.writeFile(file, pdf);
  const info = (await run('pdfinfo', [file])).stdout;
  const pages = Number(/^Pages:\s+(\d+)/m.exec(info)?.[1]);
  t.ok(pages >= 5 && pages <= 12, `a sensible page count (${pages})`);
  t.match(info, /Title:\s+ACME Corporation: Backup restore verification report, November 2026/);

  await run('pdftoppm', ['-r', '50', '-png', file, path.join(out, 'page')]);
  const pngs = (await fs.readdir(out)).filter((f) => f.endsWith('.png')).sort();
  t.equal(pngs.length, pages, 'one PNG per page');
  for (const png of pngs) {
    const ink = inkShare(await fs.readFile(path.join(out, png)));
    t.ok(ink > 0.01, `${png} is not blank (${(ink * 100).toFixed(1)}% ink)`);
  }

  const text = (await run('pdftotext', ['-layout', file, '-'])).stdout;
  // pdftotext spaces text by its position: compare without spaces.
  const bare = text.replace(/\s+/g, '');
  const s = report.summary;
  for (const shown of [
    'ACME Corporation',
    'Northwind IT Services',
    'November 2026',
    `${s.policiesTested} of ${s.policiesConfigured}`,
    String(s.runs),
    `${s.passRatePercent!.toFixed(1)}%`,
    `${s.failed} / ${s.errored}`,
    `${s.rto.met} of ${s.rto.met + s.rto.missed}`,
    `${s.rpo.met} of ${s.rpo.met + s.rpo.missed}`,
    '90.0%',
    '93.3%',
    '0.0%',
    '34m12s',
    'Evidence chain verified',
    'a probe did not hold',
    'start the Docker engine on the verification host',
    report.evidence.signingKeyFingerprint!,
    `page 1 of ${pages}`,
  ]) {
    t.ok(bare.includes(shown.replace(/\s+/g, '')), `the PDF shows ${shown}`);
  }
  // Hashes sit in a narrow monospace column: each one whole on its line.
  for (const r of report.runs) t.ok(text.includes(r.hash!), `hash of run ${r.runId.slice(0, 8)}`);
  t.notOk(text.includes('globex'), "nothing of the other client's");

  const nasty = await renderMonthlyReport(await build(configAt(reportConfigYaml({ displayName: NASTY }))), 'pdf');
  const nastyFile = path.join(out, 'nasty.pdf');
  await fs.writeFile(nastyFile, nasty);
  const nastyText = (await run('pdftotext', [nastyFile, '-'])).stdout;
  t.ok(nastyText.includes('ACME <script>alert("x")</script> Zürich Lódz Omega Moskva ??'), 'non-Latin letters transliterated, the rest shown as written');
  t.match((await run('pdfinfo', [nastyFile])).stdout, /Pages:\s+\d+/, 'and the PDF is whole');
});

t.test('toWinAnsi keeps Windows-1252 text and transliterates the rest', async (t) => {
  t.equal(toWinAnsi('Zürich – “Café” €5 naïve'), 'Zürich – “Café” €5 naïve');
  t.equal(toWinAnsi('Łódź Kraków Şişli Øresund Đakovo'), 'Lódz Kraków Sisli Øresund Dakovo');
  t.equal(toWinAnsi('Москва Ωμέγα'), 'Moskva Omega');
  t.equal(toWinAnsi('東京 😀'), '?? ?');
  t.equal(toWinAnsi('e\u0301'), 'é', 'combining marks composed first');
});

t.test('config: reports: and clients[].reports', async (t) => {
  t.strictSame(config.reports, { mspName: 'Northwind IT Services', logo: path.join(dir, 'logo.png'), timezone: 'UTC', schedule: { text: 'monthly on 1 at 06:00', cron: '0 6 1 * *', timezone: 'UTC' }, format: 'pdf' });
  const mail = (extra = ''): string => `alerts:\n  channels:\n    - { name: ops-mail, type: email, host: smtp.example.com, from: a@msp.example, to: [ops@msp.example] }\n${extra}`;
  const withChannel = configAt(reportConfigYaml({ extra: mail(), reportsExtra: '  timezone: Europe/Berlin\n  schedule: "0 7 2 * *"\n  format: html\n', clientExtra: '    reports: { to: [it@acme.example, it@acme.example] }\n' }));
  t.strictSame(withChannel.reports, { mspName: 'Northwind IT Services', timezone: 'Europe/Berlin', schedule: { text: '0 7 2 * *', cron: '0 7 2 * *', timezone: 'Europe/Berlin' }, channel: 'ops-mail', format: 'html' }, 'the only email channel is the default');
  t.strictSame(withChannel.clients[0]!.reports, { to: ['it@acme.example'] });
  t.equal(withChannel.clients[1]!.reports, undefined);
  t.notOk('reports' in configAt(reportConfigYaml().replace(/reports:\n {2}mspName: .*\n/, '')), 'no reports: block, no reports key');
  t.equal(configAt(reportConfigYaml({ reportsExtra: '  schedule: false\n' })).reports!.schedule, undefined, 'schedule: false mails nothing');

  type Node = { description?: string; properties?: Record<string, Node>; anyOf?: Node[]; items?: Node };
  const schema = configJsonSchema() as Node;
  const described = (node: Node | undefined): string[] =>
    Object.entries(node?.properties ?? (node?.anyOf ?? []).find((b) => b.properties)?.properties ?? {}).filter(([, n]) => !n.description).map(([k]) => k);
  t.ok(schema.properties!.reports!.description, 'reports: is described for editors');
  t.strictSame(described(schema.properties!.reports), [], 'and each of its keys');
  t.strictSame(described(schema.properties!.clients!.items!.properties!.reports), []);

  const problems = (yaml: string): Array<{ path: string; problem: string; fix: string }> => {
    try {
      configAt(yaml);
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
    return [];
  };
  t.match(problems(reportConfigYaml({ logo: 'missing.png' })), [{ path: 'reports.logo', problem: `logo file ${path.join(dir, 'missing.png')} does not exist`, fix: /relative paths start at the config file's folder/ }]);
  await fs.writeFile(path.join(dir, 'logo.svg'), '<svg/>');
  t.match(problems(reportConfigYaml({ logo: 'logo.svg' })), [{ path: 'reports.logo', problem: /is not a PNG or JPEG image/ }]);
  t.match(problems(reportConfigYaml({ reportsExtra: '  channel: nope\n', extra: mail() })), [{ path: 'reports.channel', problem: 'there is no alert channel "nope"', fix: 'use one of the email channels: ops-mail' }]);
  const hook = '    - { name: hook, type: webhook, url: "https://hooks.example.com/x" }\n';
  t.match(problems(reportConfigYaml({ reportsExtra: '  channel: hook\n', extra: mail().replace(/\n$/, '\n') + hook })), [{ path: 'reports.channel', problem: 'channel "hook" is not an email channel' }]);
  const second = '    - { name: other-mail, type: email, host: smtp.example.com, from: a@msp.example }\n';
  t.match(problems(reportConfigYaml({ extra: mail() + second })), [{ path: 'reports', problem: /several email channels \(ops-mail, other-mail\)/, fix: /reports\.channel/ }]);
  t.match(problems(reportConfigYaml({ reportsExtra: '  schedule: "monthly on 32"\n' })), [{ path: 'reports.schedule' }]);
  t.match(problems(reportConfigYaml({ reportsExtra: '  format: docx\n' })), [{ path: 'reports.format', problem: '"docx" is not a report format', fix: 'use pdf, html, csv, json' }]);
  t.match(problems(reportConfigYaml({ clientExtra: '    reports: { to: [not-an-address] }\n' })), [{ path: 'clients[0].reports.to[0]', problem: /is not an email address/ }]);
  t.match(problems(reportConfigYaml().replace('mspName: "Northwind IT Services"', 'mspNme: x')), [
    { path: 'reports.mspName', problem: 'missing required key "mspName"' },
    { path: 'reports.mspNme', problem: 'unknown key "mspNme"', fix: 'did you mean "mspName"?' },
  ]);
});

t.test("the daemon's monthly mailing through a real SMTP server", async (t) => {
  const smtp = await startSmtpReceiver({ user: 'alerts', pass: 'smtp-pw' });
  t.teardown(() => smtp.close());
  const channels = `alerts:
  maxAttempts: 1
  channels:
    - name: mail
      type: email
      host: 127.0.0.1
      port: ${smtp.port}
      startTls: never
      user: alerts
      password: smtp-pw
      from: "backproof <reports@msp.example>"
      to: [ops@msp.example]
      cc: [archive@msp.example]
`;
  const cfg = configAt(
    reportConfigYaml({
      logo: 'logo.png',
      extra: channels,
      reportsExtra: '  channel: mail\n',
      clientExtra: '    reports: { to: [it@acme.example] }\n',
    }),
  );
  const logLines: string[] = [];
  const logger = new Logger({ json: true, level: 'debug', write: (line) => logLines.push(line) });
  const routed = channelsFromConfig(cfg.alerts, cfg.secrets, logger);
  t.teardown(() => closeChannels(routed));

  const job = scheduleReportMailing(cfg, logger, () => undefined);
  t.ok(job, 'the report schedule is a node-schedule job');
  t.equal(job!.nextInvocation()?.toISOString().slice(8, 16), '01T06:00', 'next on the 1st at 06:00 UTC');
  job!.cancel();

  const mailed = await mailMonthlyReports({ config: cfg, runs: store, alerts, channels: routed, logger, now: () => NOW }, MONTH);
  t.match(mailed, [
    { client: 'acme', outcome: 'sent', to: ['it@acme.example'], filename: 'backproof-acme-2026-11.pdf' },
    { client: 'globex', outcome: 'skipped', to: [] },
  ]);
  await smtp.waitForMessages(1);
  t.equal(smtp.messages.length, 1);
  const msg = smtp.messages[0]!;
  t.strictSame(msg.envelope.to.sort(), ['archive@msp.example', 'it@acme.example'], "the client's recipients and the channel's cc, not its alert inbox");
  t.equal(msg.parsed.subject, 'ACME Corporation: backup restore verification report, November 2026');
  t.match(msg.parsed.text, /Pass rate: 87\.3%/);
  t.equal(msg.parsed.attachments.length, 1);
  const att = msg.parsed.attachments[0]!;
  t.equal(att.filename, 'backproof-acme-2026-11.pdf');
  t.equal(att.contentType, 'application/pdf');
  const out = await tempDir('report-mail');
  await fs.writeFile(path.join(out, 'attached.pdf'), att.content);
  t.match((await run('pdfinfo', [path.join(out, 'attached.pdf')])).stdout, /Pages:\s+\d+/, 'the attachment is a PDF that parses');
  t.ok((await run('pdftotext', [path.join(out, 'attached.pdf'), '-'])).stdout.includes('87.3%'));

  const deliveries = await alerts.deliveries({ client: 'acme' });
  t.match(deliveries.find((d) => d.kind === 'report'), { kind: 'report', policy: '', channel: 'mail', condition: 'report', ok: true, retryPending: false, payload: { month: MONTH, format: 'pdf', filename: 'backproof-acme-2026-11.pdf' } });
  t.ok(logLines.some((l) => l.includes('monthly report of acme for 2026-11 mailed to it@acme.example')), 'logged');
  t.ok(logLines.some((l) => l.includes('monthly report of globex for 2026-11 not mailed: no recipients')));

  // A refused sending is recorded as a failed delivery (not retried by the alert engine).
  smtp.rejectData({ code: 550, message: 'mailbox unavailable' });
  const failed = await mailMonthlyReports({ config: cfg, runs: store, alerts, channels: routed, logger, now: () => NOW }, MONTH);
  t.match(failed[0], { client: 'acme', outcome: 'failed', error: /550/ });
  t.match((await alerts.deliveries({ client: 'acme', failedOnly: true })).find((d) => d.kind === 'report'), { ok: false, retryPending: false });
});

t.test('an edited record shows in the evidence appendix', async (t) => {
  const victim = seeded.novemberRuns[20]!;
  const edit = (delta: number) => store.executor.query(`UPDATE backproof.runs SET duration_ms = duration_ms + $2 WHERE id = $1::uuid`, [victim.id, delta]);
  await edit(1);
  try {
    const tampered = await build(config);
    t.match(tampered.evidence.verification, { ok: false, firstBad: { runId: victim.id } });
    const text = (await renderMonthlyReport(tampered, 'html')).toString('utf8');
    t.match(text, 'Evidence chain verification FAILED');
    t.match(text, `first bad record: run ${victim.id}`);
  } finally {
    await edit(-1);
  }
  t.match((await build(config)).evidence.verification, { ok: true }, 'verified again once undone');
});

// Without a checkpoint that signs client digests a report re-hashes every client's records of the
// month (docs/evidence.md, "A report's check"): a run of this client moved to another client by
// editing its `client` column leaves this client's report and would read as the other client's
// record; re-hashing it finds the change. An edit of another client's record is reported the same way.
t.test("a record moved to another client, or another client's record edited, fails the period's check", async (t) => {
  const victim = seeded.novemberRuns[10]!;
  const move = (client: string) => store.executor.query(`UPDATE backproof.runs SET client = $2 WHERE id = $1::uuid`, [victim.id, client]);
  await move('globex');
  try {
    const moved = await build(config);
    t.notOk(moved.runs.some((r) => r.runId === victim.id), "the moved run is no longer in acme's report");
    t.match(moved.evidence.verification, { ok: false, firstBad: { runId: victim.id, problem: /hash differs/ } }, 'the verification finds it');
  } finally {
    await move('acme');
  }
  const globex = (await store.executor.query<{ id: string }>(`SELECT id FROM backproof.runs WHERE client = 'globex' AND started_at >= '2026-11-01' AND started_at < '2026-12-01' ORDER BY started_at LIMIT 1`)).rows[0]!.id;
  const edit = (delta: number) => store.executor.query(`UPDATE backproof.runs SET duration_ms = duration_ms + $2 WHERE id = $1::uuid`, [globex, delta]);
  await edit(1);
  try {
    t.match((await build(config)).evidence.verification, { ok: false, firstBad: { runId: globex } }, "globex's edited record fails acme's check of the month");
  } finally {
    await edit(-1);
  }
  t.match((await build(config)).evidence.verification, { ok: true }, 'verified again once undone');
});

// With a checkpoint that signs each client's digest (docs/evidence.md, "A report's check"), a
// report re-hashes only its client's records and checks the client's links against the digest:
// the moved run is still caught, another client's edited record is that client's report's problem.
t.test("with client digests signed in a checkpoint, a run moved to or from the client still fails its report", async (t) => {
  const written = await store.evidenceChain().verify({ writeCheckpoint: true });
  t.ok(written.checkpointWritten, JSON.stringify(written));
  const checkpointSeq = written.checkpointWritten?.seq;
  const globexConfig = configAt(reportConfigYaml());
  const move = (id: string, client: string) => store.executor.query(`UPDATE backproof.runs SET client = $2 WHERE id = $1::uuid`, [id, client]);
  try {
    const intact = await build(config);
    t.match(intact.evidence.verification, { ok: true, checkpoint: { seq: checkpointSeq }, clientDigest: { client: 'acme', checkpointSeq } }, "acme's links match the signed digest");
    t.ok(intact.evidence.verification.checked < written.checked, `fewer records re-hashed (${intact.evidence.verification.checked}) than the chain holds (${written.checked})`);
    t.match(chainText(intact).lines.join('\n'), /^this client's \d+ links through seq \d+ match the digest signed by the checkpoint of /m, 'the report says so');

    const victim = seeded.novemberRuns[10]!;
    await move(victim.id, 'globex');
    try {
      const moved = await build(config);
      t.notOk(moved.runs.some((r) => r.runId === victim.id), "the moved run is no longer in acme's report");
      t.match(moved.evidence.verification, { ok: false, firstBad: { runId: victim.id, problem: /hash differs/ } }, 'the verification finds it');
      t.match((await build(globexConfig, 'globex')).evidence.verification, { ok: false }, "and globex's report, which gained it");
    } finally {
      await move(victim.id, 'acme');
    }
    const october = (await store.executor.query<{ id: string }>(`SELECT id FROM backproof.runs WHERE client = 'acme' AND started_at < '2026-11-01' LIMIT 1`)).rows[0]!.id;
    await move(october, 'globex');
    try {
      t.match((await build(config)).evidence.verification, { ok: false, firstBad: { problem: /hash differs|do not match the digest/ } }, "an October run of acme moved away fails acme's November report");
    } finally {
      await move(october, 'acme');
    }
    const globexRun = (await store.executor.query<{ id: string }>(`SELECT id FROM backproof.runs WHERE client = 'globex' AND started_at >= '2026-11-01' AND started_at < '2026-12-01' ORDER BY started_at LIMIT 1`)).rows[0]!.id;
    await move(globexRun, 'acme');
    try {
      t.match((await build(config)).evidence.verification, { ok: false, firstBad: { runId: globexRun, problem: /hash differs/ } }, "a run of globex moved to acme");
    } finally {
      await move(globexRun, 'globex');
    }
    const edit = (delta: number) => store.executor.query(`UPDATE backproof.runs SET duration_ms = duration_ms + $2 WHERE id = $1::uuid`, [globexRun, delta]);
    await edit(1);
    try {
      t.match((await build(config)).evidence.verification, { ok: true }, "globex's edited record is not acme's");
      t.match((await build(globexConfig, 'globex')).evidence.verification, { ok: false, firstBad: { runId: globexRun, problem: /hash differs/ } }, "globex's report names it");
    } finally {
      await edit(-1);
    }
    t.match((await build(config)).evidence.verification, { ok: true }, 'verified again once undone');
  } finally {
    await store.executor.query('DELETE FROM backproof.evidence_checkpoints');
  }
});

t.test('backproof report on the command line', async (t) => {
  if (!existsSync(path.resolve('dist/orchestrator/cli/report-command.js'))) {
    t.fail('dist/ has no report command: run npm run build first (npm test does)');
    return;
  }
  await store.close();
  storeOpen = false;
  await fs.writeFile(path.join(dir, 'backproof.yaml'), reportConfigYaml({ logo: 'logo.png' }));
  const cli = (args: string[]) => collect(['--config', path.join(dir, 'backproof.yaml'), '--data-dir', dataDir, ...args], dir);

  const pdf = await cli(['report', '--client', 'acme', '--month', MONTH, '--format', 'pdf']);
  t.equal(pdf.code, 0, pdf.stderr);
  t.match(pdf.stderr, /reading the evidence of acme for 2026-11 \(UTC\)/);
  t.match(pdf.stderr, /rendering pdf: 63 runs of 3 policies, 8 failures, 6 incidents/);
  const file = path.join(dir, 'backproof-acme-2026-11.pdf');
  t.match(pdf.stderr, `wrote ${file}`);
  t.match((await run('pdfinfo', [file])).stdout, /Pages:\s+\d+/);

  const csv = await cli(['report', '--client', 'acme', '--month', MONTH, '--format', 'csv', '--out', '-']);
  t.equal(csv.code, 0, csv.stderr);
  const summary = parseCsv(csv.stdout).find((r) => r[0] === 'summary')!;
  t.equal(summary[CSV_COLUMNS.indexOf('pass_rate_percent')], '87.3', 'the same numbers through the CLI');

  const json = await cli(['report', '--client', 'acme', '--month', MONTH, '--format', 'json', '--out', 'r.json']);
  t.equal(json.code, 0, json.stderr);
  t.match(JSON.parse(await fs.readFile(path.join(dir, 'r.json'), 'utf8')), { summary: { runs: 63, passRatePercent: 87.3 }, evidence: { verification: { ok: true } } });

  const badMonth = await cli(['report', '--client', 'acme', '--month', '2026-13']);
  t.equal(badMonth.code, 2);
  t.match(badMonth.stderr, 'backproof: --month 2026-13 is not a month; write YYYY-MM');
  const badClient = await cli(['report', '--client', 'nobody', '--month', MONTH]);
  t.equal(badClient.code, 2);
  t.match(badClient.stderr, /no client named "nobody" .*clients: acme, globex/);
  const badFormat = await cli(['report', '--client', 'acme', '--format', 'docx']);
  t.equal(badFormat.code, 2);
  t.match(badFormat.stderr, /Allowed choices are pdf, html, csv, json/);
});

// ---- helpers ------------------------------------------------------------------------------------

function collect(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // Without tap's process-info hook (NODE_OPTIONS), which slows each start by seconds.
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, BACKPROOF_CONFIG: '', DATABASE_URL: '', NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** Share of pixels that are not near-white in an 8-bit RGB PNG (what pdftoppm writes). */
function inkShare(png: Buffer): number {
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  const channels = png[25] === 6 ? 4 : png[25] === 2 ? 3 : 1;
  const idat: Buffer[] = [];
  for (let at = 8; at < png.length; ) {
    const len = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    if (type === 'IDAT') idat.push(png.subarray(at + 8, at + 8 + len));
    at += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const prev = Buffer.alloc(stride);
  const cur = Buffer.alloc(stride);
  let ink = 0;
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? cur[x - channels]! : 0;
      const b = prev[x]!;
      const c = x >= channels ? prev[x - channels]! : 0;
      const pred = filter === 1 ? a : filter === 2 ? b : filter === 3 ? (a + b) >> 1 : filter === 4 ? paeth(a, b, c) : 0;
      cur[x] = (line[x]! + pred) & 0xff;
    }
    for (let x = 0; x < width; x++) {
      const o = x * channels;
      if (Math.min(cur[o]!, cur[o + Math.min(1, channels - 1)]!, cur[o + Math.min(2, channels - 1)]!) < 200) ink++;
    }
    cur.copy(prev);
  }
  return ink / (width * height);
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}
