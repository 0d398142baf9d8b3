import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser } from 'playwright-core';
import { PNG } from 'pngjs';
import t from 'tap';
import { parseConfigText } from '../orchestrator/config/load.js';
import type { ResolvedConfig } from '../orchestrator/core/config-types.js';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { AlertStore } from '../orchestrator/evidence/alert-store.js';
import { EvidenceChain, verifyBundle, type EvidenceBundle } from '../orchestrator/evidence/chain.js';
import { quoteSchema } from '../orchestrator/evidence/migrate.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { Logger } from '../orchestrator/core/logger.js';
import { startWebServer, type WebServer } from '../orchestrator/web/server.js';
import { TokenStore } from '../orchestrator/web/token-store.js';
import { CSV_COLUMNS } from '../reports/monthly/render-csv.js';
import { buildMonthlyReport, renderMonthlyReport, type MonthlyReport } from '../reports/monthly/index.js';
import { debianMilestones, makeScreen, recordRun, SCREEN_H, SCREEN_W, sha256, vmRun } from './helpers/boot-fixtures.js';
import { tempDir } from './helpers/harness.js';
import { startPgCluster } from './helpers/pg-cluster.js';
import { buildRun } from './helpers/report-fixtures.js';

// The boot evidence of kind vm as the people who read it see it: vm runs with a boot record and a
// real PNG screenshot (pngjs) recorded through a real RunStore (embedded PGlite; one round trip on
// a real PostgreSQL too), then read back through the dashboard and API over HTTP on loopback, the
// monthly report in every format (the PDF's images pulled out with poppler's pdfimages), the
// compiled CLI (`runs show --screenshot`; `npm run build` first) and Debian's chromium.

const run = promisify(execFile);
const BIN = path.resolve('bin/backproof.js');
const CHROMIUM = '/usr/bin/chromium';
const NOW = new Date('2026-11-19T12:00:00.000Z');
const REPORT_NOW = new Date('2026-12-02T06:00:00.000Z');
const SERIAL_NASTY = '<b>not bold</b> & "quoted"';

const CONFIG = `version: 1
clients:
  - name: acme
    displayName: ACME Corp
    policies:
      - name: acme-db
        kind: postgres
        source: { driver: local, path: ./acme/db }
        targets: { rpo: 26h, rto: 30m }
      - name: acme-web-vm
        kind: vm
        source: { driver: local, path: ./acme/vm }
        targets: { rpo: 26h, rto: 20m }
        schedule: "daily at 04:00"
  - name: globex
    displayName: Globex Corporation
    policies:
      - name: globex-vm
        kind: vm
        source: { driver: local, path: ./globex/vm }
        targets: { rpo: 26h }
`;

const dir = await tempDir('boot-display');
const dataDir = path.join(dir, 'data');
const config: ResolvedConfig = parseConfigText(CONFIG, path.join(dir, 'backproof.yaml'), {});
let store: RunStore | undefined = await RunStore.open({ dataDir, schema: 'backproof' });
t.teardown(async () => {
  await store?.close();
  await fs.rm(dir, { recursive: true, force: true });
});
const alerts = new AlertStore(store.executor, store.schema);

// acme-web-vm booted on the 10th and the 15th; on the 18th (its latest run) the kernel panicked.
const screens = { first: makeScreen(1), booted: makeScreen(2), panic: makeScreen(3, [207, 34, 46]), globex: makeScreen(4) };
const vmFirst = await recordRun(
  store,
  vmRun({ client: 'acme', policy: 'acme-web-vm', startedAt: '2026-11-10T04:00:05.000Z', bootVerdict: 'booted', bootMs: 38_900, screen: screens.first, milestones: debianMilestones('login') }),
);
const vmBooted = await recordRun(
  store,
  vmRun({
    client: 'acme',
    policy: 'acme-web-vm',
    startedAt: '2026-11-15T04:00:05.000Z',
    bootVerdict: 'booted',
    bootMs: 41_700,
    screen: screens.booted,
    milestones: debianMilestones('login', 1.09),
    screenText: 'Debian GNU/Linux 12 debian tty1\n\ndebian login: ',
  }),
);
const vmPanic = await recordRun(
  store,
  vmRun({
    client: 'acme',
    policy: 'acme-web-vm',
    startedAt: '2026-11-18T04:00:05.000Z',
    bootVerdict: 'not_booted',
    bootMs: 47_300,
    failure: 'kernel_panic',
    screen: screens.panic,
    milestones: debianMilestones('kernel'),
    screenText: '[    6.912345] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n[    6.913001] ---[ end Kernel panic ]---',
    serialTail: `[    6.800000] Run /init as init process\n[    6.912345] Kernel panic - not syncing: VFS: Unable to mount root fs\n${SERIAL_NASTY}\n`,
  }),
);
const globexVm = await recordRun(
  store,
  vmRun({ client: 'globex', policy: 'globex-vm', startedAt: '2026-11-18T05:00:00.000Z', bootVerdict: 'booted', bootMs: 29_000, screen: screens.globex, milestones: debianMilestones('login', 0.8) }),
);
const dbRun = await recordRun(store, {
  run: buildRun({ policy: 'acme-db', kind: 'postgres', startedAt: '2026-11-18T02:00:07.000Z', verdict: 'pass', size: 1_000_000_000, ageMs: 3_600_000, restoreMs: 90_000 }),
  artifacts: [],
});

const tokens = new TokenStore(store.executor, store.schema);
const admin = await tokens.create({ scope: { kind: 'admin' }, name: 'ops' });
const acme = await tokens.create({ scope: { kind: 'client', client: 'acme' }, name: 'acme-portal' });
const globex = await tokens.create({ scope: { kind: 'client', client: 'globex' }, name: 'globex-portal' });
const logger = new Logger({ json: true, level: 'warn', write: () => undefined });
let server: WebServer | undefined = await startWebServer({ config, runs: store, alerts, logger, host: '127.0.0.1', port: 0, now: () => NOW });
t.teardown(() => server?.close());
const base = `http://127.0.0.1:${server.port}`;
const get = (p: string, token?: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Response> =>
  fetch(base + p, { method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers }, redirect: 'manual' });
const shotPath = (r: RunRecord): string => `/runs/${r.id}/artifacts/screenshot.png`;

t.test('the artifact route serves the exact bytes, as an image that runs nothing', async (t) => {
  for (const p of [shotPath(vmPanic), `/api${shotPath(vmPanic)}`]) {
    const res = await get(p, admin.token);
    t.equal(res.status, 200, p);
    const body = Buffer.from(await res.arrayBuffer());
    t.equal(sha256(body), vmPanic.boot!.screenshot!.sha256, 'the bytes hash to the sha256 sealed in the record');
    t.ok(body.equals(screens.panic), 'byte for byte the PNG recorded');
    t.equal(res.headers.get('content-type'), 'image/png');
    t.equal(res.headers.get('content-length'), String(screens.panic.length));
    t.equal(res.headers.get('x-content-type-options'), 'nosniff');
    const csp = res.headers.get('content-security-policy') ?? '';
    t.match(csp, /default-src 'none'/, 'nothing loads');
    t.match(csp, /sandbox/, 'the document is sandboxed');
    t.match(res.headers.get('cache-control'), /private/, 'not kept by shared caches');
    t.match(res.headers.get('cache-control'), /no-cache/, 'revalidated: a revoked token stops reading it');
    t.equal(res.headers.get('etag'), `"${vmPanic.boot!.screenshot!.sha256}"`);
    t.match(res.headers.get('content-disposition'), /^inline; filename="[0-9a-f]{8}-screenshot\.png"$/);
  }
  const again = await get(shotPath(vmPanic), admin.token, { 'if-none-match': `"${vmPanic.boot!.screenshot!.sha256}"` });
  t.equal(again.status, 304, 'an unchanged screenshot is not sent again');
  t.equal((await again.arrayBuffer()).byteLength, 0);
  const head = await get(shotPath(vmPanic), admin.token, {}, 'HEAD');
  t.equal(head.status, 200, 'HEAD');
  t.equal(head.headers.get('content-length'), String(screens.panic.length));
});

t.test('artifacts are scoped like their runs; names are checked', async (t) => {
  t.equal((await get(shotPath(vmPanic), acme.token)).status, 200, 'a client token reads its own');
  const other = await get(shotPath(vmPanic), globex.token);
  const missing = await get(`/runs/${randomUUID()}/artifacts/screenshot.png`, globex.token);
  t.equal(other.status, 404, "another client's screenshot: 404");
  t.equal(await other.text(), await missing.text(), 'the same answer as a run that does not exist');
  t.equal((await get(`/api${shotPath(globexVm)}`, acme.token)).status, 404, 'and through the API');
  t.equal((await get(`/api${shotPath(globexVm)}`, globex.token)).status, 200);
  const anonymous = await get(shotPath(vmPanic));
  t.equal(anonymous.status, 303, 'no token: to the login');
  t.equal((await get(`/api${shotPath(vmPanic)}`)).status, 401, 'no token on the API: 401');
  for (const name of ['screenshot.jpg', '.screenshot.png', '..%2F..%2Fetc%2Fpasswd', 'a%2Fb.png', '%2e%2e', 'x'.repeat(101), '%00.png']) {
    const res = await get(`/runs/${vmPanic.id}/artifacts/${name}`, admin.token);
    t.equal(res.status, 404, `name ${name}: 404`);
    t.notMatch(res.headers.get('content-type'), /image/);
  }
  t.equal((await get(`/runs/${dbRun.id}/artifacts/screenshot.png`, admin.token)).status, 404, 'a postgres run keeps no screenshot');
  t.equal((await get(`/runs/${vmPanic.id.slice(0, 8)}/artifacts/screenshot.png`, admin.token)).status, 404, 'whole run ids only');
});

t.test('the run page shows the boot: facts, milestones, the screenshot with its sha256, the screen and serial text', async (t) => {
  const res = await get(`/runs/${vmPanic.id}`, admin.token);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-security-policy'), /img-src 'self'/, "the page's CSP lets the screenshot load from this origin");
  const html = await res.text();
  const boot = /<section class="boot" id="boot">([\s\S]*?)<\/section>\n?<div class="grid2"><section><h2>Phases/.exec(html)?.[1] ?? '';
  t.ok(boot.length > 0, 'a boot section before the phases');
  for (const text of [
    'NOT BOOTED',
    'NOT BOOTED after 47.3s',
    'kernel_panic on the screen',
    '<code>kernel_panic</code>',
    'tcg (software emulation, no KVM: slower)',
    'uefi (a GPT disk with an EFI system partition)',
    '<dd>q35</dd>',
    '<dd>virtio</dd>',
    'qcow2, 20.00 GiB virtual, gpt partition table',
    '<dd>QEMU 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1)</dd>',
    'Disk image unchanged after boot',
    'yes: its sha256 read again after the boot equals the one streamed from storage',
  ]) {
    t.ok(boot.includes(text), `shows ${text}`);
  }
  const rows = [...boot.matchAll(/<tr data-milestone="(\w+)"><td>\w+<\/td><td class="num">([^<]+)<\/td><td>(\w+)<\/td>/g)].map((m) => [m[1], m[2], m[3]]);
  t.strictSame(rows, [['firmware', '0.9s', 'screen'], ['bootloader', '3.2s', 'screen'], ['kernel', '6.8s', 'serial']], 'the milestones table: name, time since start, where seen');
  const svg = /<svg class="timeline"[\s\S]*?<\/svg>/.exec(boot)?.[0] ?? '';
  t.equal((svg.match(/<circle /g) ?? []).length, 3, 'one dot per milestone on the time line');
  t.match(svg, /aria-label="boot milestones: firmware at 0\.9s, bootloader at 3\.2s, kernel at 6\.8s; NOT BOOTED after 47\.3s"/);
  t.match(boot, new RegExp(`<img src="/runs/${vmPanic.id}/artifacts/screenshot\\.png" width="${SCREEN_W}" height="${SCREEN_H}" alt="[^"]+">`), 'the screenshot from the artifact route');
  t.ok(boot.includes(`<code class="sha">${vmPanic.boot!.screenshot!.sha256}</code>`), 'its sealed sha256 beneath');
  t.match(boot, /backproof runs show [0-9a-f]{8} --screenshot FILE\.png/, 'and how to save it from a terminal');
  t.match(boot, /<pre class="log screen">\[ {4}6\.912345\] Kernel panic - not syncing/, 'the final screen text');
  t.ok(boot.includes('&lt;b&gt;not bold&lt;/b&gt; &amp; &quot;quoted&quot;'), 'the serial tail, escaped');
  t.notOk(boot.includes(SERIAL_NASTY), 'never as markup');

  const booted = await (await get(`/runs/${vmBooted.id}`, admin.token)).text();
  t.match(booted, /<span class="badge booted">BOOTED<\/span>/, 'a booted run says so');
  t.match(booted, /booted in 41\.7s/);
  t.equal((/<svg class="timeline"[\s\S]*?<\/svg>/.exec(booted)?.[0].match(/<circle /g) ?? []).length, 5, 'five milestones up to the login');
  const db = await (await get(`/runs/${dbRun.id}`, admin.token)).text();
  t.notMatch(db, /id="boot"/, 'a postgres run has no boot section');
});

t.test('the board, the policy page and the runs list show boot time and verdict for vm policies', async (t) => {
  const board = await (await get('/', admin.token)).text();
  const row = /<tr class="[^"]*" data-policy="acme-web-vm"[\s\S]*?<\/tr>/.exec(board)?.[0] ?? '';
  t.match(row, /last boot: NOT BOOTED after 47\.3s/, 'the board row of the vm policy');
  t.notMatch(/<tr class="[^"]*" data-policy="acme-db"[\s\S]*?<\/tr>/.exec(board)?.[0] ?? '', /last boot/, 'not for a postgres policy');
  const policy = await (await get('/policies/acme-web-vm', admin.token)).text();
  t.match(policy, new RegExp(`<dt>Last boot</dt><dd><span class="badge not_booted">NOT BOOTED</span> <a href="/runs/${vmPanic.id}#boot">NOT BOOTED after 47\\.3s</a>`));
  t.match(policy, /<th class="num">Restore \/ boot<\/th>/);
  t.match(policy, /data-boot="booted">booted in 41\.7s</, 'each run with its boot');
  const runs = await (await get('/runs?policy=acme-web-vm', acme.token)).text();
  t.equal((runs.match(/data-boot="/g) ?? []).length, 3, 'the runs list too');
});

let report: MonthlyReport;
t.test('the monthly report: the latest screen of each vm policy, and the last booted one when the latest did not boot', async (t) => {
  report = await buildMonthlyReport({ runs: store!, alerts, chain: new EvidenceChain(store!.executor, store!.schema), config }, { client: 'acme', month: '2026-11', now: REPORT_NOW });
  const vm = report.policies.find((p) => p.policy === 'acme-web-vm')!;
  t.match(vm, { kind: 'vm', boot: { runs: 3, booted: 2, notBooted: 1, inconclusive: 0, medianMs: 40_300, worstMs: 41_700 } });
  t.strictSame(
    vm.screenshots.map((s) => [s.role, s.runId, s.bootVerdict, s.bootMs, s.image?.sha256, s.problem]),
    [
      ['latest', vmPanic.id, 'not_booted', 47_300, sha256(screens.panic), null],
      ['last_booted', vmBooted.id, 'booted', 41_700, sha256(screens.booted), null],
    ],
  );
  t.equal(report.policies.find((p) => p.policy === 'acme-db')!.boot, null, 'no boot figures for postgres');
  t.strictSame(report.policies.find((p) => p.policy === 'acme-db')!.screenshots, []);
  t.match(report.runs.find((r) => r.runId === vmFirst.id), { bootVerdict: 'booted', bootMs: 38_900, screenshotSha256: sha256(screens.first) });

  const html = (await renderMonthlyReport(report, 'html')).toString('utf8');
  const figures = [...html.matchAll(/<figure class="screen (latest|last_booted)" data-run="([0-9a-f-]+)">([\s\S]*?)<\/figure>/g)];
  t.strictSame(figures.map((f) => [f[1], f[2]]), [['latest', vmPanic.id], ['last_booted', vmBooted.id]], 'two screens, latest first');
  for (const [, , runId, body] of figures) {
    const uri = /src="data:image\/png;base64,([A-Za-z0-9+/=]+)"/.exec(body!)?.[1];
    const recorded = runId === vmPanic.id ? vmPanic : vmBooted;
    t.equal(sha256(Buffer.from(uri ?? '', 'base64')), recorded.boot!.screenshot!.sha256, `the data URI of ${runId!.slice(0, 8)} holds the sealed bytes`);
    t.ok(body!.includes(`sha256 ${recorded.boot!.screenshot!.sha256}`), 'the sha256 in the caption');
    t.ok(body!.includes(`Run ${runId}`), 'the run id in the caption');
  }
  t.match(figures[0]![3], /Latest boot: NOT BOOTED after 47\.3s/);
  t.match(figures[0]![3], /run verdict FAIL; boot NOT BOOTED after 47\.3s/);
  t.match(figures[1]![3], /Last successful boot of the period: booted in 41\.7s/);
  t.notOk(html.includes(screens.globex.toString('base64')), "no screen of the other client's");
  t.match(html, /<th>Boot<\/th>/, 'a boot column in the vm policy table');
  t.match(html, /Boot: 2 of 3 runs booted \(1 not booted\); boot time median 40\.3s, worst 41\.7s/, 'boot figures beside the restore times');

  const json = JSON.parse((await renderMonthlyReport(report, 'json')).toString('utf8')) as { policies: { policy: string; screenshots: Record<string, unknown>[] }[] };
  const shots = json.policies.find((p) => p.policy === 'acme-web-vm')!.screenshots;
  t.match(shots[0], { role: 'latest', runId: vmPanic.id, image: { name: 'screenshot.png', mediaType: 'image/png', sha256: sha256(screens.panic), bytes: screens.panic.length, width: SCREEN_W } });
  t.notOk(shots.some((s) => 'base64' in s), 'the JSON names the images; it does not carry them');

  const csv = (await renderMonthlyReport(report, 'csv')).toString('utf8').split('\r\n').map((l) => l.split(','));
  const col = (name: (typeof CSV_COLUMNS)[number]): number => CSV_COLUMNS.indexOf(name);
  const panicRow = csv.find((r) => r[col('run_id')] === vmPanic.id)!;
  t.strictSame([panicRow[col('boot_verdict')], panicRow[col('boot_ms')], panicRow[col('screenshot_sha256')]], ['not_booted', '47300', sha256(screens.panic)], 'per-run boot columns');
  t.equal(csv.find((r) => r[col('run_id')] === dbRun.id)![col('boot_verdict')], '', 'empty for postgres');
  t.equal(csv.find((r) => r[0] === 'policy' && r[col('policy')] === 'acme-web-vm')![col('boot_median_ms')], '40300');
});

t.test('the PDF holds both screens, pixel for pixel, with their captions', async (t) => {
  const out = path.join(dir, 'pdf');
  await fs.mkdir(out);
  const file = path.join(out, 'report.pdf');
  await fs.writeFile(file, await renderMonthlyReport(report, 'pdf'));
  const list = (await run('pdfimages', ['-list', file])).stdout.split('\n').slice(2).filter((l) => l.trim() !== '');
  const images = list.map((l) => l.trim().split(/\s+/)).map((c) => ({ type: c[2], width: Number(c[3]), height: Number(c[4]), color: c[5] }));
  t.strictSame(images, [
    { type: 'image', width: SCREEN_W, height: SCREEN_H, color: 'rgb' },
    { type: 'image', width: SCREEN_W, height: SCREEN_H, color: 'rgb' },
  ], 'two screenshot-sized images (no logo configured)');
  await run('pdfimages', ['-png', file, path.join(out, 'img')]);
  for (const [i, original] of [screens.panic, screens.booted].entries()) {
    const drawn = PNG.sync.read(await fs.readFile(path.join(out, `img-00${i}.png`)));
    const want = PNG.sync.read(original);
    t.equal(drawn.width, SCREEN_W);
    let differing = 0;
    for (let p = 0; p < want.data.length; p += 4) if (drawn.data[p] !== want.data[p] || drawn.data[p + 1] !== want.data[p + 1] || drawn.data[p + 2] !== want.data[p + 2]) differing++;
    t.equal(differing, 0, `image ${i + 1}: every pixel as recorded`);
  }
  const text = (await run('pdftotext', [file, '-'])).stdout.replace(/\s+/g, '');
  for (const s of [`Latestboot:NOTBOOTEDafter47.3s`, 'Lastsuccessfulbootoftheperiod:bootedin41.7s', `Run${vmPanic.id}`, `sha256${sha256(screens.panic)}`, `sha256${sha256(screens.booted)}`, 'Boot:2of3runsbooted']) {
    t.ok(text.includes(s), `the PDF says ${s}`);
  }
});

t.test('in a browser, the run page shows the screenshot', { skip: await fs.access(CHROMIUM).then(() => false, () => `${CHROMIUM} is missing`) }, async (t) => {
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const violations: string[] = [];
  page.on('console', (m) => {
    if (/Content Security Policy|Refused/i.test(m.text())) violations.push(m.text());
  });
  await page.goto(`${base}/login?next=${encodeURIComponent(`/runs/${vmPanic.id}`)}`);
  await page.fill('#token', acme.token);
  await Promise.all([page.waitForURL(`${base}/runs/${vmPanic.id}`), page.click('button[type=submit]')]);
  const img = page.locator('figure.shot img');
  await img.scrollIntoViewIfNeeded();
  await page.waitForFunction(() => (globalThis as unknown as { document: { querySelector(s: string): { complete: boolean } | null } }).document.querySelector('figure.shot img')?.complete === true);
  t.equal(await img.evaluate((el) => (el as unknown as { naturalWidth: number }).naturalWidth), SCREEN_W, 'the image loaded: naturalWidth 320');
  t.equal(await img.evaluate((el) => (el as unknown as { naturalHeight: number }).naturalHeight), SCREEN_H);
  t.ok(await page.isVisible('svg.timeline'), 'the milestone time line');
  await fs.mkdir(path.resolve('.scratch/web-shots'), { recursive: true });
  await page.screenshot({ path: path.resolve('.scratch/web-shots/run-vm.png'), fullPage: true });
  // Opened alone, under its own CSP and sandbox, the image still shows.
  const res = await page.goto(`${base}${shotPath(vmPanic)}`);
  t.equal(res?.status(), 200);
  t.equal(await page.evaluate(() => (globalThis as unknown as { document: { images: { naturalWidth: number }[] } }).document.images[0]?.naturalWidth), SCREEN_W, 'the image document displays it');
  const denied = await page.goto(`${base}${shotPath(globexVm)}`);
  t.equal(denied?.status(), 404, "the acme session cannot load globex's screen");
  t.strictSame(violations, [], 'no CSP violation');
  await context.close();
});

t.test('PostgreSQL: the screenshot survives the round trip byte for byte', async (t) => {
  const cluster = await startPgCluster();
  t.teardown(() => cluster.stop());
  const pgStore = await RunStore.open({ url: cluster.url, dataDir: path.join(dir, 'pg-key'), schema: 'boot_display' });
  t.teardown(() => pgStore.close());
  const recorded = await recordRun(
    pgStore,
    vmRun({ client: 'acme', policy: 'acme-web-vm', startedAt: '2026-11-18T04:00:05.000Z', bootVerdict: 'booted', bootMs: 30_000, screen: screens.booted, milestones: debianMilestones('login') }),
  );
  const stored = await pgStore.artifact(recorded.id, 'screenshot.png');
  t.ok(stored?.bytes.equals(screens.booted), 'RunStore.artifact reads back the bytes');
  t.strictSame(await pgStore.get(recorded.id), recorded, 'and the record with its boot');
  const pgTokens = new TokenStore(pgStore.executor, pgStore.schema);
  const token = await pgTokens.create({ scope: { kind: 'client', client: 'acme' } });
  const web = await startWebServer({ config, runs: pgStore, alerts: new AlertStore(pgStore.executor, pgStore.schema), logger, host: '127.0.0.1', port: 0, now: () => NOW });
  t.teardown(() => web.close());
  const res = await fetch(`http://127.0.0.1:${web.port}${shotPath(recorded)}`, { headers: { authorization: `Bearer ${token.token}` } });
  t.equal(res.status, 200);
  t.equal(sha256(Buffer.from(await res.arrayBuffer())), sha256(screens.booted), 'served as stored');
});

let bundleFile = '';
t.test("an evidence bundle carries the client's screenshots, each checked against its sealed record", async (t) => {
  const period = { client: 'acme', from: '2026-11-01T00:00:00.000Z', to: '2026-12-01T00:00:00.000Z' };
  const bundle = await store!.evidenceChain().exportBundle(period);
  t.strictSame(
    bundle.artifacts?.map((a) => [a.runId, a.name, a.mediaType, a.sha256]),
    [vmFirst, vmBooted, vmPanic].map((r) => [r.id, 'screenshot.png', 'image/png', r.boot!.screenshot!.sha256]),
    "acme's three screenshots, in chain order; not globex's",
  );
  t.ok(Buffer.from(bundle.artifacts![2]!.base64, 'base64').equals(screens.panic), 'the bytes, base64');
  const text = JSON.stringify(bundle, null, 2);
  t.notOk(text.includes(screens.globex.toString('base64').slice(0, 200)), 'nothing of the other client');
  t.strictSame(verifyBundle(JSON.parse(text)), { ok: true, checked: 4, from: period.from, to: period.to, head: verifyBundle(JSON.parse(text)).head }, 'it verifies offline');
  bundleFile = path.join(dir, 'bundle.json');
  await fs.writeFile(bundleFile, text);

  const clone = (): EvidenceBundle => JSON.parse(text) as EvidenceBundle;
  const problem = (b: EvidenceBundle): string => verifyBundle(b).firstBad?.problem ?? 'ok';
  let b = clone();
  const flipped = b.artifacts![1]!.base64;
  b.artifacts![1]!.base64 = flipped.slice(0, 100) + (flipped[100] === 'A' ? 'B' : 'A') + flipped.slice(101);
  t.equal(problem(b), "the bytes of screenshot.png do not hash to the sha256 sealed in the run's record (the file was changed)", 'one changed byte of a screenshot');
  t.equal(verifyBundle(b).firstBad?.runId, vmBooted.id, 'naming its run');
  b = clone();
  b.artifacts![1]!.base64 = screens.globex.toString('base64');
  b.artifacts![1]!.sha256 = sha256(screens.globex);
  t.match(problem(b), /does not carry the sha256 and media type its sealed record names/, 'another image with its own sha256');
  b = clone();
  delete b.artifacts;
  t.match(problem(b), /^the record names screenshot\.png \(sha256 [0-9a-f]{64}\), which the bundle does not carry$/, 'the screenshots removed');
  b = clone();
  b.artifacts!.push({ ...b.artifacts![0]!, runId: dbRun.id });
  t.match(problem(b), /is not named by any of the client's records/, 'a file no record names');
  b = clone();
  b.artifacts![0]!.base64 += '=';
  t.match(problem(b), /not canonical base64/, 'base64 padded differently');

  // Single-byte changes across the first screenshot's entry in the file: each one is caught (or is no longer JSON).
  const at = text.indexOf('"artifacts"');
  let changed = 0;
  for (let i = at; i < at + 3_000; i += 6) {
    if (/\s/.test(text[i]!)) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text.slice(0, i) + (text[i] === 'a' ? 'b' : 'a') + text.slice(i + 1));
    } catch {
      continue;
    }
    changed += 1;
    if (verifyBundle(parsed).ok) t.fail(`changing byte ${i} (${JSON.stringify(text.slice(i - 10, i + 10))}) went unnoticed`);
  }
  t.ok(changed > 250, `${changed} changes that still parse, each caught`);

  // Step 5 of the bundle recipe in docs/evidence.md (jq, base64, sha256sum): the same checks by hand.
  const script = path.join(dir, 'check-files.sh');
  await fs.writeFile(script, `set -euo pipefail\nB=$(realpath "$1")\n${await readmeScreenshotStep()}`);
  const good = await run('bash', [script, bundleFile]);
  t.equal(good.stderr, '', 'the recipe passes the bundle');
  const badFile = path.join(dir, 'bad-bundle.json');
  for (const [what, change] of [
    ['a changed screenshot', (x: EvidenceBundle) => void (x.artifacts![0]!.base64 = makeScreen(7).toString('base64'))],
    ['the screenshots removed', (x: EvidenceBundle) => void delete x.artifacts],
  ] as const) {
    const x = clone();
    change(x);
    await fs.writeFile(badFile, JSON.stringify(x));
    await t.rejects(run('bash', [script, badFile]), `the recipe fails: ${what}`);
  }
});

/** The bundle recipe of docs/evidence.md, whose step 5 checks the screenshots. */
async function readmeScreenshotStep(): Promise<string> {
  const text = await fs.readFile('docs/evidence.md', 'utf8');
  const block = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes('# 5. Each file the records name'));
  if (block) return block;
  throw new Error('no screenshot step in the bundle recipe of docs/evidence.md');
}

t.test('a screenshot altered in the store is never shown as the evidence', async (t) => {
  // Another PNG put in place of the last booted screen, behind the seal (as a tamperer with SQL access would).
  await store!.executor.query(`UPDATE ${quoteSchema(store!.schema)}.run_artifacts SET bytes = $2::bytea WHERE run_id = $1::uuid`, [vmBooted.id, makeScreen(9)]);
  const res = await get(shotPath(vmBooted), admin.token);
  t.equal(res.status, 409, 'the dashboard refuses it');
  t.match(await res.text(), /does not match the sha256 sealed in the run&#39;s record/);
  const altered = await buildMonthlyReport({ runs: store!, alerts, chain: new EvidenceChain(store!.executor, store!.schema), config }, { client: 'acme', month: '2026-11', now: REPORT_NOW });
  const [latest, lastBooted] = altered.policies.find((p) => p.policy === 'acme-web-vm')!.screenshots;
  t.ok(latest!.base64, 'the untouched screen is shown');
  t.equal(lastBooted!.base64, null, 'the altered one is not');
  t.equal(lastBooted!.problem, "the stored screenshot.png does not match the sha256 sealed in the run's record");
  const html = (await renderMonthlyReport(altered, 'html')).toString('utf8');
  const figure = /<figure class="screen last_booted"[\s\S]*?<\/figure>/.exec(html)?.[0] ?? '';
  t.notMatch(figure, /<img/);
  t.match(figure, /No image shown: the stored screenshot\.png does not match the sha256 sealed in the run&#39;s record\./);
  await t.rejects(store!.evidenceChain().exportBundle({ client: 'acme', from: '2026-11-01', to: '2026-12-01' }), { code: 'evidence_tampered', message: /the stored screenshot\.png of run .* has sha256 [0-9a-f]{64}, not the [0-9a-f]{64} sealed in its record/ }, 'no bundle is exported from it');
});

t.test('runs show --screenshot saves the sealed bytes, and refuses altered ones', async (t) => {
  await server!.close();
  server = undefined;
  await store!.close();
  store = undefined;

  const out = path.join(dir, 'saved.png');
  const saved = await cli(['runs', 'show', vmPanic.id.slice(0, 8), '--screenshot', out, '--data-dir', dataDir]);
  t.equal(saved.code, 0, saved.stderr);
  t.equal(sha256(await fs.readFile(out)), vmPanic.boot!.screenshot!.sha256, 'the file holds the sealed bytes');
  t.match(saved.stderr, `wrote ${out} (screenshot.png, `);
  t.match(saved.stdout, /^FAIL {2}acme\/acme-web-vm/);
  t.match(saved.stdout, /\n {2}boot {5}NOT BOOTED after 47\.3s: kernel_panic on the screen\n {11}failure: kernel_panic\n/);
  t.match(saved.stdout, /tcg \(software emulation, no KVM: slower\); firmware uefi \(a GPT disk with an EFI system partition\)/);
  t.match(saved.stdout, /machine q35, virtio disk: qcow2, 20\.00 GiB virtual, gpt partition table; QEMU 8\.2\.2/);
  t.match(saved.stdout, /\n {2}milestones\n {8}0\.9s {2}firmware {3}screen BdsDxe[^\n]*\n {8}3\.2s {2}bootloader screen GNU GRUB[^\n]*\n {8}6\.8s {2}kernel {5}serial \[/);
  t.match(saved.stdout, new RegExp(`sha256 ${vmPanic.boot!.screenshot!.sha256}\\n {11}save it: backproof runs show ${vmPanic.id.slice(0, 8)} --screenshot FILE\\.png`));
  t.match(saved.stdout, /serial console \(tail\)\n[\s\S]*<b>not bold<\/b>/, 'the serial tail of a machine that did not boot');

  const tampered = await cli(['runs', 'show', vmBooted.id, '--screenshot', path.join(dir, 'tampered.png'), '--data-dir', dataDir]);
  t.equal(tampered.code, 2);
  t.match(tampered.stderr, /the stored screenshot\.png of run .* has sha256 [0-9a-f]{64}, not the [0-9a-f]{64} sealed in its record: the evidence store was altered/);
  await t.rejects(fs.access(path.join(dir, 'tampered.png')), 'nothing written');

  const offline = await cli(['evidence', 'verify', '--bundle', bundleFile]);
  t.equal(offline.code, 0, offline.stderr);
  t.match(offline.stdout, /^ok: bundle of acme, 4 records .*, 3 files matching the sha256 their records seal\n$/, 'evidence verify --bundle checks the screenshots offline');
});

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // Without tap's process-info hook (NODE_OPTIONS), which slows each start by seconds.
  const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, env: { ...process.env, BACKPROOF_CONFIG: '', DATABASE_URL: '', NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}
