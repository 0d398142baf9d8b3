import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import t from 'tap';
import { Logger } from '../orchestrator/core/logger.js';
import { startWebServer, type WebServer } from '../orchestrator/web/server.js';
import { TokenStore } from '../orchestrator/web/token-store.js';
import { buildWebFixture, NOW } from './helpers/web-fixtures.js';

/**
 * The dashboard in a real browser: Debian's chromium driven by playwright-core. Logs in with a
 * pasted token (the cookie then holds a session id, never the token), reads the board, opens a
 * failed run, downloads the month's PDF, logs out (a kept copy of the cookie then opens nothing),
 * and checks that a client token's session shows nothing of the other client. Screenshots go to .scratch/web-shots/.
 */
const CHROMIUM = '/usr/bin/chromium';
const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const shots = path.join(repoRoot, '.scratch', 'web-shots');

const haveChromium = await fs.access(CHROMIUM).then(
  () => true,
  () => false,
);
if (!haveChromium) {
  t.fail(`${CHROMIUM} is missing: apt-get install chromium (scripts/test-env.sh does)`);
} else {
  await fs.mkdir(shots, { recursive: true });
  const fx = await buildWebFixture();
  t.teardown(() => fx.close());
  const tokens = new TokenStore(fx.store.executor, fx.store.schema);
  const admin = await tokens.create({ scope: { kind: 'admin' }, name: 'ops' });
  const acme = await tokens.create({ scope: { kind: 'client', client: 'acme' }, name: 'acme-portal' });
  const logger = new Logger({ json: true, level: 'warn', write: () => undefined });
  let server: WebServer | undefined = await startWebServer({ config: fx.config, runs: fx.store, alerts: fx.alerts, logger, host: '127.0.0.1', port: 0, now: () => NOW });
  t.teardown(() => server?.close());
  const base = `http://127.0.0.1:${server.port}`;
  let browser: Browser | undefined = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  t.teardown(() => browser?.close());

  async function login(t: { match(found: unknown, wanted: unknown, message: string): unknown }, page: Page, token: string): Promise<void> {
    await page.goto(`${base}/`);
    t.match(new URL(page.url()).pathname, '/login', 'an anonymous visit lands on the login page');
    await page.fill('#token', token);
    await Promise.all([page.waitForURL(`${base}/`), page.click('button[type=submit]')]);
  }
  /** The computed background colour of the first element matching `selector` (evaluated in the page). */
  const color = (page: Page, selector: string): Promise<string> =>
    page.$eval(selector, (el) => (globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string } }).getComputedStyle(el).backgroundColor);

  t.test('admin: board, a failed run, the PDF of the month', async (t) => {
    const context = await browser!.newContext({ acceptDownloads: true, viewport: { width: 1440, height: 900 } });
    t.teardown(() => context.close());
    const page = await context.newPage();
    await login(t, page, admin.token);

    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'backproof_session');
    t.match(session, { httpOnly: true, sameSite: 'Strict', secure: false }, 'the session cookie is HttpOnly and SameSite=Strict');
    t.match(session?.value, /^bps_[A-Za-z0-9_-]{43}$/, 'it holds a session id');
    t.notOk(JSON.stringify(cookies).includes(admin.token.slice(4)), 'no cookie holds the token');
    t.notOk((await page.content()).includes(admin.token.slice(4)), 'nor does the page');
    t.equal(await page.evaluate(() => (globalThis as unknown as { document: { cookie: string } }).document.cookie), '', 'scripts cannot read it');

    // The board: green and red policies.
    t.equal(await page.getAttribute('tr[data-policy="acme-db"]', 'data-health'), 'ok');
    t.equal(await page.getAttribute('tr[data-policy="acme-files"]', 'data-health'), 'fail');
    t.equal(await page.getAttribute('tr[data-policy="globex-db"]', 'data-health'), 'error');
    t.equal(await color(page, 'tr[data-policy="acme-db"] .badge'), 'rgb(26, 127, 55)', 'a passing policy is green');
    t.equal(await color(page, 'tr[data-policy="acme-files"] .badge'), 'rgb(207, 34, 46)', 'a failing policy is red');
    const order = await page.$$eval('tr[data-policy]', (rows) => rows.map((r) => r.getAttribute('data-policy')));
    t.strictSame(order.slice(0, 2).sort(), ['acme-files', 'globex-db'], 'problems first');
    t.ok(await page.isVisible('tr[data-policy="acme-db"] svg.spark polyline'), 'a restore-time sparkline');
    await page.screenshot({ path: path.join(shots, 'board.png'), fullPage: true });

    // The failed run: reasons and probe results.
    await Promise.all([page.waitForURL(`${base}/runs/${fx.runs.acmeFilesFailed.id}`), page.click('tr[data-policy="acme-files"] a.last-run')]);
    const reasons = await page.textContent('.reasons');
    t.match(reasons, /probe_failed/, 'the reason code');
    t.match(reasons, /expected docs\/\*\* to match at least 1 file; found 0 <none>/, 'the reason as recorded, escaped text shown as text');
    const probes = await page.locator('table.probes tbody tr').allInnerTexts();
    t.match(probes[0], /FAIL[\s\S]*files: docs\/\*\*[\s\S]*0 files/, 'the failed probe with what it found');
    t.match(probes[1], /PASS[\s\S]*encryptedLooking/, 'the probe that held');
    t.match(await page.textContent('pre.log'), /<script>alert\("x"\)<\/script> is a file name/, 'the log tail, as text');
    t.equal(await page.$$eval('script', (s) => s.length), 0, 'no script ever runs');
    await page.screenshot({ path: path.join(shots, 'run-failed.png'), fullPage: true });

    await page.goto(`${base}/policies/acme-db`);
    t.ok(await page.isVisible('svg[aria-label^="restore times"]'), 'the restore-time chart of the policy');
    await page.screenshot({ path: path.join(shots, 'policy.png'), fullPage: true });

    // The month's PDF, downloaded through the page.
    await page.click('nav a[href="/reports"]');
    const link = page.locator('tr[data-client="acme"] a[data-format="pdf"]').first();
    t.equal(await link.getAttribute('href'), '/api/reports/acme/2026-11.pdf', 'the current month first');
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    t.equal(download.suggestedFilename(), 'backproof-acme-2026-11.pdf');
    const file = await download.path();
    const bytes = await fs.readFile(file);
    t.equal(bytes.subarray(0, 5).toString('latin1'), '%PDF-', 'a PDF');
    t.ok(bytes.length > 1000, `${bytes.length} bytes`);
    await page.screenshot({ path: path.join(shots, 'reports.png'), fullPage: true });

    await Promise.all([page.waitForURL(/\/login$/), page.click('.who button')]);
    t.notOk((await context.cookies()).some((c) => c.name === 'backproof_session'), 'logging out drops the cookie');
    await page.goto(`${base}/runs`);
    t.match(new URL(page.url()).pathname, '/login', 'and the pages ask for a token again');
    await context.addCookies([{ ...session!, expires: -1 }]);
    await page.goto(`${base}/runs`);
    t.match(new URL(page.url()).pathname, '/login', 'a kept copy of the old cookie opens nothing: the session ended');
  });

  t.test("a client token's session shows only its client", async (t) => {
    const context = await browser!.newContext({ viewport: { width: 1440, height: 900 } });
    t.teardown(() => context.close());
    const page = await context.newPage();
    await page.goto(`${base}/login`);
    await page.fill('#token', 'bpt_' + 'x'.repeat(43));
    await page.click('button[type=submit]');
    t.match(await page.textContent('[role=alert]'), /not valid/, 'a wrong token is told so');
    await login(t, page, acme.token);
    const policies = await page.$$eval('tr[data-policy]', (rows) => rows.map((r) => r.getAttribute('data-policy')));
    t.strictSame(policies.sort(), ['acme-db', 'acme-files'], 'only acme on the board');
    for (const path of ['/', '/runs', '/reports']) {
      await page.goto(base + path);
      t.notMatch(await page.textContent('body'), /globex/i, `${path} never names the other client`);
    }
    const res = await page.goto(`${base}/runs/${fx.runs.globexDbError.id}`);
    t.equal(res?.status(), 404, "the other client's run is not found");
    await page.goto(`${base}/`);
    await page.screenshot({ path: path.join(shots, 'board-client.png'), fullPage: true });
  });

  t.test('everything started is stopped', async (t) => {
    await browser!.close();
    browser = undefined;
    await server!.close();
    server = undefined;
    t.pass('browser and server closed');
  });
}
