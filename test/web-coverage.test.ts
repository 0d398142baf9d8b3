import path from 'node:path';
import t from 'tap';
import { parseConfigText } from '../orchestrator/config/load.js';
import { Logger } from '../orchestrator/core/logger.js';
import { AlertStore } from '../orchestrator/evidence/alert-store.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { startWebServer } from '../orchestrator/web/server.js';
import { TokenStore } from '../orchestrator/web/token-store.js';
import { COVERAGE_CONFIG, FAILING_KEY, pointRun, seedCoverage } from './helpers/coverage-fixtures.js';
import { tempDir } from './helpers/harness.js';

/**
 * Retention coverage on the dashboard over real HTTP, against coverage records written by hand
 * into an embedded PGlite store: the board's figure from each policy's newest plan (one query for
 * every policy), the policy page's figure and coverage runs, and the run pages of a plan and of a
 * coverage run. A coverage run that fails after the newest backup's run is no word on the newest
 * backup: the board's last run and health stay the newest backup's.
 */

const NOW = new Date('2026-11-10T12:00:00Z');
const dir = await tempDir('web-coverage');
const store = await RunStore.open({ dataDir: path.join(dir, 'data'), schema: 'backproof' });
t.teardown(() => store.close());
const seeded = await seedCoverage(store);
// After the newest plan (the 10th, 02:00): an older point fails, the newest run of shop-db.
const lateFail = pointRun({
  policy: 'shop-db',
  startedAt: '2026-11-10T03:00:07.000Z',
  key: 'shop-db/2026-06-01.dump',
  why: 'never',
  planRunId: seeded.shopPlan.id,
  verdict: 'fail',
  restoreMs: null,
  reasons: [{ code: 'truncated_dump', message: 'the dump ends inside a COPY block' }],
});
await store.recordStart({ ...lateFail, status: 'running', verdict: null, reasons: [], finishedAt: null, durationMs: null });
await store.finalize(lateFail);

const config = parseConfigText(COVERAGE_CONFIG, path.join(dir, 'backproof.yaml'), {});
const tokens = new TokenStore(store.executor, store.schema);
const admin = await tokens.create({ scope: { kind: 'admin' }, name: 'ops' });
const logger = new Logger({ json: true, level: 'warn', write: () => undefined });
const server = await startWebServer({ config, runs: store, alerts: new AlertStore(store.executor, store.schema), logger, host: '127.0.0.1', port: 0, now: () => NOW });
t.teardown(() => server.close());

// Every SQL text the store runs, to count the board's coverage queries.
const queries: string[] = [];
const query = store.executor.query.bind(store.executor);
store.executor.query = ((text: string, params?: unknown[]) => {
  queries.push(text);
  return query(text, params);
}) as typeof store.executor.query;

async function page(path: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`, { headers: { authorization: `Bearer ${admin.token}` } });
  t.equal(res.status, 200, `${path}: 200`);
  return res.text();
}

const row = (board: string, policy: string): string => [...board.matchAll(/<tr[^>]*data-policy="([^"]+)"[\s\S]*?<\/tr>/g)].find((m) => m[1] === policy)?.[0] ?? '';

t.test('the board: a coverage figure per policy with coverage, from one query', async (t) => {
  queries.length = 0;
  const board = await page('/');
  const planQueries = queries.filter((q) => q.includes("coverage ? 'plan'"));
  t.equal(planQueries.length, 1, 'one query reads the newest plan of every policy');
  const shop = row(board, 'shop-db');
  t.match(shop, /<span class="coverage err" data-coverage="12\/49" title="12 of 49 restore points proven restorable within 30\.0d; target 90%; 5 never verified">coverage 12\/49 \(24%\)<\/span>/, 'shop-db: 12/49, red below its target');
  t.match(row(board, 'mail-db'), /<span class="coverage" data-coverage="8\/10"[^>]*>coverage 8\/10 \(80%\)<\/span>/, 'mail-db: no target, not red');
  t.notMatch(row(board, 'files'), /coverage/, 'a policy without coverage shows none');
  // The failing coverage run after it is no word on the newest backup.
  t.notMatch(shop, /data-health="fail"/, 'the health is not the failed older point');
  t.match(shop, new RegExp(`<a class="last-run" href="/runs/${seeded.shopPlan.id}">pass `), 'the last run is the newest backup');
  t.notMatch(shop, /truncated_dump/);
});

t.test('the policy page: the figure and the recent coverage runs', async (t) => {
  const html = await page('/policies/shop-db');
  t.match(html, /<dt>Coverage<\/dt><dd><span class="coverage err" data-coverage="12\/49"/);
  t.match(html, /proven within 30\.0d, target 90%, 5 never verified; plan of <a href="\/runs\/[0-9a-f-]+">run [0-9a-f]{8}<\/a>/);
  t.match(html, /below target/);
  const table = /<table class="coverage-runs">[\s\S]*?<\/table>/.exec(html)?.[0] ?? '';
  const rows = [...table.matchAll(/<tr class="(\w*)" data-run="([^"]+)">([\s\S]*?)<\/tr>/g)];
  t.strictSame(
    rows.map((m) => m[2]),
    [lateFail.id, ...[...seeded.shopPoints].reverse().map((r) => r.id)],
    'every coverage run, newest first',
  );
  t.match(rows[0]![3], /shop-db\/2026-06-01\.dump<\/td><td>never verified<\/td><td><span class="badge fail">FAIL<\/span><\/td><td class="small">truncated_dump<\/td>/, 'key, why, verdict, reasons');
  t.equal(rows[0]![1], 'bad', 'a failed point is marked');
  const failing = rows.find((m) => m[2] === seeded.failedPoint.id)![3];
  t.match(failing, /shop-db\/2026-08-14 &lt;b&gt;&amp;&quot;old&quot;&lt;\/b&gt;\.dump/, 'the key escaped');
  t.notMatch(html, /<b>&"old"/, 'no markup from a key reaches the page');
  t.match(html, /coverage run: older point \(never verified\)/, 'the recent runs mark coverage runs');

  const files = await page('/policies/files');
  t.notMatch(files, /Coverage runs|class="coverage/, 'no coverage on a policy without it');
});

t.test('run pages: a coverage run names its point and plan; a plan shows itself', async (t) => {
  const point = await page(`/runs/${seeded.failedPoint.id}`);
  t.match(point, /<h2>Coverage run<\/h2>/);
  t.match(point, /A coverage run of an <b>older restore point<\/b>: <code>shop-db\/2026-08-14 &lt;b&gt;&amp;&quot;old&quot;&lt;\/b&gt;\.dump<\/code> \(random sample\), planned by <a href="\/runs\/([0-9a-f-]+)">run \1<\/a>/);
  t.match(point, new RegExp(`href="/runs/${seeded.shopRuns[6]!.id}"`), 'the link is to the run that planned it');
  t.equal(FAILING_KEY.includes('<b>'), true);

  const plan = await page(`/runs/${seeded.shopPlan.id}`);
  t.match(plan, /<h2>Retention coverage<\/h2>/);
  t.match(plan, /<dt>Restore points<\/dt><dd>49<\/dd><dt>Proven<\/dt><dd>12 \(24%\) <span class="muted">within 30\.0d<\/span> <b class="err">below target<\/b><\/dd>/);
  t.match(plan, /<dt>Target<\/dt><dd>90%<\/dd><dt>Never verified<\/dt><dd>5<\/dd>/);
  t.match(plan, /<ol class="planned"><li><code>shop-db\/2026-06-01\.dump<\/code> <span class="muted">never verified<\/span><\/li><li><code>shop-db\/2026-07-02\.dump<\/code> <span class="muted">oldest proof<\/span><\/li><\/ol>/);

  const mail = await page(`/runs/${seeded.mailPlan.id}`);
  t.match(mail, /<dt>Target<\/dt><dd><span class="muted">none<\/span><\/dd>/, 'a plan without a target');
  const plain = await page(`/runs/${seeded.filesRuns[0]!.id}`);
  t.notMatch(plain, /id="coverage"/, 'a run without coverage has no such part');
});

t.test('/api/policies: a policy with coverage carries its newest plan', async (t) => {
  const res = await fetch(`http://127.0.0.1:${server.port}/api/policies`, { headers: { authorization: `Bearer ${admin.token}` } });
  t.equal(res.status, 200);
  const body = (await res.json()) as { policies: Array<{ policy: string; coverage?: { runId: string; plan: { points: number; proven: number } } }> };
  const shop = body.policies.find((p) => p.policy === 'shop-db');
  t.equal(shop?.coverage?.runId, seeded.shopPlan.id);
  t.same([shop?.coverage?.plan.proven, shop?.coverage?.plan.points], [12, 49]);
  t.equal(body.policies.find((p) => p.policy === 'files')?.coverage, undefined, 'none without coverage:');
});
