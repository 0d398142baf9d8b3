import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parseConfigText } from '../orchestrator/config/load.js';
import type { ResolvedConfig } from '../orchestrator/core/config-types.js';
import { AlertStore } from '../orchestrator/evidence/alert-store.js';
import { EvidenceChain } from '../orchestrator/evidence/chain.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { buildMonthlyReport, renderMonthlyReport, type MonthlyReport } from '../reports/monthly/index.js';
import type { MonthlyReportJson } from '../reports/monthly/render-json.js';
import { CSV_COLUMNS } from '../reports/monthly/render-csv.js';
import { short } from '../reports/monthly/text.js';
import { parseCsv } from './helpers/csv.js';
import { COVERAGE_CONFIG, COVERAGE_MONTH, COVERAGE_NOW, FAILING_KEY, seedCoverage, type SeededCoverage } from './helpers/coverage-fixtures.js';
import { tempDir } from './helpers/harness.js';

// Retention coverage in the monthly report: coverage runs of older restore points (records with
// coverage.point, written by hand into a real RunStore on PGlite) stay out of the newest backup's
// figures and get their own section in every format; the newest plan's share as a chart.

const run = promisify(execFile);

let dir: string;
let store: RunStore;
let seeded: SeededCoverage;
let config: ResolvedConfig;
let report: MonthlyReport;

const build = (client = 'acme'): Promise<MonthlyReport> =>
  buildMonthlyReport({ runs: store, alerts: new AlertStore(store.executor, store.schema), chain: new EvidenceChain(store.executor, store.schema), config }, { client, month: COVERAGE_MONTH, now: COVERAGE_NOW });

t.before(async () => {
  dir = await tempDir('coverage-report');
  store = await RunStore.open({ dataDir: path.join(dir, 'data'), schema: 'backproof' });
  seeded = await seedCoverage(store);
  config = parseConfigText(COVERAGE_CONFIG, path.join(dir, 'backproof.yaml'), {});
  report = await build();
});

t.teardown(async () => {
  await store?.close();
});

t.test('the model: coverage runs are listed apart, not counted as runs of the newest backup', async (t) => {
  const shop = report.policies.find((p) => p.policy === 'shop-db')!;
  t.equal(shop.runs, 10, "shop-db's runs are its ten runs of the newest backup");
  t.equal(shop.passRatePercent, 100, 'the failed older point does not lower the pass rate');
  t.equal(shop.failed + shop.errored, 0);
  t.equal(shop.rpo.measured, 10, 'RPO figures over the runs of the newest backup only');
  t.equal(shop.rto.measured, 10, 'RTO figures too');
  t.equal(shop.backupSize!.minBytes, 2_000_000_001, "the older points' sizes are not the newest backup's");
  t.equal(shop.lastVerdict, 'pass');
  t.equal(report.summary.runs, 13, 'summary: 10 + 1 + 2 runs of the newest backup');
  t.equal(report.summary.failed, 0);
  t.equal(report.summary.errored, 0);
  t.same(report.failures, [], 'failures of older points are in the coverage section, not among the newest backup');
  t.strictSame(report.summary.coverage, { runs: 5, passed: 3, failed: 1, errored: 1 }, 'coverage runs over every policy');
  t.equal(report.runs.length, 18, 'every run of the period is listed (the evidence appendix has them all)');
  t.equal(report.runs.filter((r) => r.coverage !== null).length, 5);
  const failedRef = report.runs.find((r) => r.runId === seeded.failedPoint.id)!.coverage;
  t.strictSame(failedRef, { key: FAILING_KEY, why: 'sample', planRunId: seeded.shopRuns[6]!.id });

  const c = shop.coverage!;
  t.strictSame(
    c.plan,
    {
      runId: seeded.shopPlan.id,
      at: seeded.shopPlan.startedAt,
      everyMs: 30 * 86_400_000,
      points: 49,
      proven: 12,
      sharePercent: 24.5,
      targetPercent: 90,
      targetMet: false,
      neverVerified: 5,
      planned: [
        { key: 'shop-db/2026-06-01.dump', why: 'never' },
        { key: 'shop-db/2026-07-02.dump', why: 'oldest' },
      ],
    },
    'the newest plan of the period',
  );
  t.strictSame([c.runs, c.passed, c.failed, c.errored], [4, 2, 1, 1]);
  t.strictSame(
    c.coverageRuns.map((r) => [r.runId, r.key, r.why, r.verdict, r.restoreMs, r.reason?.code ?? null]),
    [
      [seeded.shopPoints[0]!.id, 'shop-db/2026-07-03.dump', 'never', 'pass', 45_000, null],
      [seeded.shopPoints[1]!.id, 'shop-db/2026-07-20.dump', 'oldest', 'pass', 52_000, null],
      [seeded.failedPoint.id, FAILING_KEY, 'sample', 'fail', null, 'restore_failed'],
      [seeded.erroredPoint.id, 'shop-db/2026-09-01.dump', 'oldest', 'error', null, 'docker_unreachable'],
    ],
    'each coverage run, oldest first',
  );

  const mail = report.policies.find((p) => p.policy === 'mail-db')!.coverage!;
  t.equal(mail.plan!.targetPercent, null, 'a plan without a target has none');
  t.equal(mail.plan!.targetMet, null);
  t.equal(mail.plan!.sharePercent, 80);
  t.equal(report.policies.find((p) => p.policy === 'files')!.coverage, null, 'a policy without coverage has none');

  const globex = await build('globex');
  t.equal(globex.summary.coverage, null, 'a client without coverage has no coverage figures');
  t.notMatch((await renderMonthlyReport(globex, 'html')).toString('utf8'), /Retention coverage|coverage-chart/, '... and no section');
});

t.test('HTML: the section, the chart, and the failing older point standing out', async (t) => {
  const page = (await renderMonthlyReport(report, 'html')).toString('utf8');
  const section = page.slice(page.indexOf('<section class="coverage" id="coverage">'), page.indexOf('</section>', page.indexOf('<section class="coverage"')));
  t.match(section, /<h2>Retention coverage<\/h2>/);
  t.match(section, /12 of 49 restore points proven within 30\.0d \(24\.5%\); target 90%: BELOW TARGET; 5 never verified/, 'the plan in numbers');
  t.match(section, /4 coverage runs of older restore points: 2 passed, 1 failed, 1 error/, 'the counts');
  // The chart: an SVG with one bar per policy with a plan, as wide as its share, the target marked.
  const svg = /<svg[^>]*class="coverage-chart"[\s\S]*?<\/svg>/.exec(section)?.[0] ?? '';
  t.ok(svg, 'an inline SVG chart');
  const bars = [...svg.matchAll(/<rect class="coverage-bar" data-policy="([^"]+)" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"/g)].map((m) => [m[1], Number(m[3])] as const);
  t.strictSame(bars.map(([p]) => p), ['shop-db', 'mail-db'], 'a bar per policy with a plan');
  const plotWidth = 520 - 130 - 80;
  t.ok(Math.abs(bars[0]![1] - plotWidth * 0.245) < 0.2, `shop-db's bar is 24.5% of the plot (${bars[0]![1]})`);
  t.ok(Math.abs(bars[1]![1] - plotWidth * 0.8) < 0.2, "mail-db's bar is 80%");
  t.equal([...svg.matchAll(/class="coverage-target"/g)].length, 1, 'the target line of the one policy that has a target');
  t.match(svg, /fill="#c62828"><title>shop-db: 12 of 49/, 'a bar below its target is red');
  t.match(svg, /12\/49 \(24\.5%\)/);
  // The failing older point: a failure box and a marked table row; its key escaped.
  t.match(section, /<div class="failure fail"><strong>[^<]* &middot; restore point <code>shop-db\/2026-08-14 &lt;b&gt;&amp;&quot;old&quot;&lt;\/b&gt;\.dump<\/code> &middot; <span class="v-fail">FAIL<\/span><\/strong>/);
  t.match(section, /restore_failed: pg_restore: error: could not read from input file: end of file/);
  t.match(section, new RegExp(`<tr class="bad fail" data-run="${seeded.failedPoint.id}">`), 'its row is marked');
  t.notMatch(page, /<b>&"old"<\/b>/, 'no markup from a key reaches the page');
  t.match(page, /<p class="coverage-summary bad">Retention coverage: 5 coverage runs of older restore points: 3 passed, 1 failed, 1 error <strong>\(1 older restore point FAILED to restore\)<\/strong>/, 'the summary says so');
  // The run table of shop-db lists its runs of the newest backup only.
  const shopSection = page.slice(page.indexOf('<h2>Policy shop-db'), page.indexOf('</section>', page.indexOf('<h2>Policy shop-db')));
  t.notMatch(shopSection, new RegExp(short(seeded.failedPoint.id)), 'no coverage run in the policy table');
  t.match(shopSection, new RegExp(short(seeded.shopPlan.id)));
  // The restore-time chart has ten markers for shop-db (not fourteen).
  t.match(page, /10 runs: 10 passed, 0 failed, 0 errors/);
});

t.test('PDF: the section, the chart and the failing point in its text', async (t) => {
  const file = path.join(dir, 'report.pdf');
  await fs.writeFile(file, await renderMonthlyReport(report, 'pdf'));
  const text = (await run('pdftotext', [file, '-'])).stdout.replace(/\s+/g, ' ');
  t.match(text, /Retention coverage: 5 coverage runs of older restore points: 3 passed, 1 failed, 1 error \(1 older restore point FAILED to restore\)/, 'the summary line');
  const at = text.lastIndexOf('Retention coverage Besides the newest backup');
  t.ok(at > 0, 'the section');
  const section = text.slice(at);
  t.match(section, /Restore points proven restorable/, "the chart's title");
  t.match(section, /12\/49 \(24\.5%\)/, "the chart's label of shop-db");
  t.match(section, /8\/10 \(80%\)/, "the chart's label of mail-db");
  t.match(section, /target 90%/, 'the target marked');
  t.match(section, /12 of 49 restore points proven within 30\.0d \(24\.5%\); target 90%: BELOW TARGET; 5 never verified/);
  t.match(section, /restore point shop-db\/2026-08-14 <b>&"old"<\/b>\.dump FAILED/, 'the failed older point');
  t.match(section, /restore_failed: pg_restore: error/);
  t.match(section, /Started Restore point Why Verdict Restore time Run First reason/, 'the table of coverage runs, its header on one line');
  t.match(section, /shop-db\/2026-07-20\.dump oldest proof pass 52\.0s/);
});

t.test('JSON and CSV carry the same coverage', async (t) => {
  const json = JSON.parse((await renderMonthlyReport(report, 'json')).toString('utf8')) as MonthlyReportJson;
  const shop = json.policies.find((p) => p.policy === 'shop-db')!;
  t.strictSame(Object.keys(shop.coverage!), ['plan', 'runs', 'passed', 'failed', 'errored', 'coverageRuns'], 'a coverage object per policy');
  t.equal(shop.coverage!.plan!.sharePercent, 24.5);
  t.equal(shop.coverage!.coverageRuns[2]!.key, FAILING_KEY);
  t.equal(shop.runs, 10);
  t.equal(json.policies.find((p) => p.policy === 'files')!.coverage, null);
  t.strictSame(json.summary.coverage, { runs: 5, passed: 3, failed: 1, errored: 1 });
  t.strictSame(json.runs.find((r) => r.runId === seeded.failedPoint.id)!.coverage, { key: FAILING_KEY, why: 'sample', planRunId: seeded.shopRuns[6]!.id });

  const [header, ...rows] = parseCsv((await renderMonthlyReport(report, 'csv')).toString('utf8'));
  t.strictSame(header, [...CSV_COLUMNS]);
  const get = (row: string[], column: (typeof CSV_COLUMNS)[number]): string => row[CSV_COLUMNS.indexOf(column)]!;
  const runRows = rows.filter((r) => r[0] === 'run');
  t.equal(runRows.length, 18);
  const coverageRows = runRows.filter((r) => get(r, 'coverage_why') !== '');
  t.strictSame(coverageRows.map((r) => [get(r, 'run_id'), get(r, 'coverage_why'), get(r, 'verdict'), get(r, 'backup_key')]), [
    [seeded.shopPoints[0]!.id, 'never', 'pass', 'shop-db/2026-07-03.dump'],
    [seeded.mailPoint.id, 'oldest', 'pass', 'mail-db/2026-10-01.dump'],
    [seeded.shopPoints[1]!.id, 'oldest', 'pass', 'shop-db/2026-07-20.dump'],
    [seeded.failedPoint.id, 'sample', 'fail', FAILING_KEY],
    [seeded.erroredPoint.id, 'oldest', 'error', 'shop-db/2026-09-01.dump'],
  ]);
  t.equal(get(coverageRows[3]!, 'coverage_plan_run_id'), seeded.shopRuns[6]!.id);
  const policy = rows.find((r) => r[0] === 'policy' && get(r, 'policy') === 'shop-db')!;
  t.strictSame(
    ['runs', 'coverage_points', 'coverage_proven', 'coverage_share_percent', 'coverage_target_percent', 'coverage_never_verified', 'coverage_runs', 'coverage_passed', 'coverage_failed', 'coverage_errored'].map((c) => get(policy, c as (typeof CSV_COLUMNS)[number])),
    ['10', '49', '12', '24.5', '90', '5', '4', '2', '1', '1'],
  );
  const files = rows.find((r) => r[0] === 'policy' && get(r, 'policy') === 'files')!;
  t.equal(get(files, 'coverage_points'), '', 'empty without coverage');
  const summary = rows.find((r) => r[0] === 'summary')!;
  t.strictSame([get(summary, 'runs'), get(summary, 'coverage_runs'), get(summary, 'coverage_failed')], ['13', '5', '1']);
});
