import { randomUUID } from 'node:crypto';
import t from 'tap';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { Logger } from '../orchestrator/core/logger.js';
import path from 'node:path';
import { parseConfigText } from '../orchestrator/config/load.js';
import { escapeLabelValue } from '../orchestrator/web/metrics.js';
import { BOARD_ROWS_IN_FULL } from '../orchestrator/web/pages.js';
import { startWebServer, type WebServer } from '../orchestrator/web/server.js';
import { hashToken, TokenStore } from '../orchestrator/web/token-store.js';
import { ACME_DISPLAY, buildWebFixture, CONFIG_TEXT, NOW } from './helpers/web-fixtures.js';

/**
 * The JSON API, /metrics and the login over real HTTP on loopback, against evidence recorded in
 * an embedded PGlite store (no Docker): who sees what, with which token.
 */
const fx = await buildWebFixture();
t.teardown(() => fx.close());
const logLines: string[] = [];
const logger = new Logger({ json: true, level: 'debug', write: (line) => logLines.push(line) });
const tokens = new TokenStore(fx.store.executor, fx.store.schema);
const admin = await tokens.create({ scope: { kind: 'admin' }, name: 'ops' });
const acme = await tokens.create({ scope: { kind: 'client', client: 'acme' }, name: 'acme-portal' });
const globex = await tokens.create({ scope: { kind: 'client', client: 'globex' } });

let server: WebServer | undefined = await startWebServer({ config: fx.config, runs: fx.store, alerts: fx.alerts, logger, host: '127.0.0.1', port: 0, now: () => NOW });
t.teardown(async () => {
  await server?.close();
  server = undefined;
});
const base = `http://127.0.0.1:${server.port}`;

async function get(path: string, token?: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(base + path, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers }, redirect: 'manual' });
}
async function json<T = unknown>(path: string, token: string): Promise<{ status: number; body: T }> {
  const res = await get(path, token);
  return { status: res.status, body: (await res.json()) as T };
}
const { acmeFilesFailed, globexDbError, acmeDbLatest, acmeDbFailed } = fx.runs;
const month = '2026-11';

t.test('no token, no data: 401 on the API and /metrics, a redirect to the login for pages', async (t) => {
  for (const path of ['/api/policies', '/api/runs', `/api/runs/${acmeFilesFailed.id}`, `/api/reports/acme/${month}.pdf`, '/metrics']) {
    const res = await get(path);
    t.equal(res.status, 401, `${path} without a token`);
    t.equal(res.headers.get('www-authenticate'), 'Bearer realm="backproof"');
    const body = await res.text();
    t.notMatch(body, /acme-files|globex/, 'the answer holds no data');
  }
  for (const bad of ['bpt_' + 'A'.repeat(43), 'not-a-token', acme.token.slice(0, -1)]) {
    t.equal((await get('/api/runs', bad)).status, 401, `a wrong token (${bad.slice(0, 8)}...) is refused`);
  }
  t.equal((await get('/api/runs', undefined, { authorization: `Basic ${Buffer.from('x:y').toString('base64')}` })).status, 401, 'basic auth is not a token');
  for (const path of ['/', `/runs/${acmeFilesFailed.id}`, '/reports']) {
    const res = await get(path);
    t.equal(res.status, 303, `${path} redirects`);
    t.equal(res.headers.get('location'), `/login?next=${encodeURIComponent(path)}`);
  }
  t.equal((await get('/healthz')).status, 200, '/healthz is public');
});

t.test('an admin token sees every client', async (t) => {
  const policies = await json<{ policies: { policy: string; client: string; health: string }[] }>('/api/policies', admin.token);
  t.equal(policies.status, 200);
  t.strictSame(
    Object.fromEntries(policies.body.policies.map((p) => [p.policy, p.health])),
    { 'acme-db': 'ok', 'acme-files': 'fail', 'globex-db': 'error', 'globex-notes': 'ok' },
    'health per policy: pass, fail, error',
  );
  const runs = await json<{ runs: RunRecord[] }>('/api/runs?limit=1000', admin.token);
  t.equal(runs.body.runs.length, fx.all.length, 'every run');
  t.equal(runs.body.runs[0]!.id, fx.all.map((r) => r).sort((a, b) => b.startedAt.localeCompare(a.startedAt))[0]!.id, 'newest first');
  const one = await json<RunRecord>(`/api/runs/${globexDbError.id}`, admin.token);
  t.equal(one.status, 200);
  t.strictSame(one.body, globexDbError, 'the run as recorded');
  const filtered = await json<{ runs: RunRecord[] }>(`/api/runs?policy=acme-db&since=2026-11-15T00:00:00Z&limit=3`, admin.token);
  t.strictSame(
    filtered.body.runs.map((r) => r.id),
    fx.all.filter((r) => r.policy === 'acme-db' && r.startedAt >= '2026-11-15').reverse().slice(0, 3).map((r) => r.id),
    'policy, since and limit filter',
  );
  const globexRuns = await json<{ runs: RunRecord[] }>('/api/runs?client=globex&limit=1000', admin.token);
  t.equal(globexRuns.body.runs.length, fx.all.filter((r) => r.client === 'globex').length, 'client filter');
  t.equal((await get('/api/runs?limit=0', admin.token)).status, 400, 'limit 0 is refused');
  t.equal((await get('/api/runs?limit=abc', admin.token)).status, 400);
  t.equal((await get('/api/runs?since=yesterday', admin.token)).status, 400, 'since must be a time');
  t.equal((await get(`/api/runs/${acmeFilesFailed.id.slice(0, 8)}`, admin.token)).status, 404, 'the API takes whole ids only');
  t.equal((await get(`/api/reports/globex/${month}.pdf`, admin.token)).status, 200, "an admin downloads any client's report");
});

t.test("a client token sees only its own client: everything else answers as if it did not exist", async (t) => {
  const policies = await json<{ policies: { policy: string }[]; openIncidents: { policy: string }[] }>('/api/policies', acme.token);
  t.strictSame(policies.body.policies.map((p) => p.policy).sort(), ['acme-db', 'acme-files'], 'only acme policies');
  t.strictSame(policies.body.openIncidents.map((i) => i.policy), ['acme-files'], 'only acme incidents');

  const runs = await json<{ runs: RunRecord[] }>('/api/runs?limit=1000', acme.token);
  t.ok(runs.body.runs.length > 0);
  t.ok(runs.body.runs.every((r) => r.client === 'acme'), 'only acme runs listed');
  t.strictSame((await json<{ runs: unknown[] }>('/api/runs?client=globex', acme.token)).body.runs, [], '?client=globex: empty');
  t.strictSame((await json<{ runs: unknown[] }>('/api/runs?policy=globex-db', acme.token)).body.runs, [], '?policy=globex-db: empty');

  const other = await get(`/api/runs/${globexDbError.id}`, acme.token);
  const missing = await get(`/api/runs/${randomUUID()}`, acme.token);
  t.equal(other.status, 404, "another client's run: 404");
  t.strictSame(await other.text(), await missing.text(), 'the same answer as a run that does not exist');
  t.equal((await get(`/api/runs/${acmeFilesFailed.id}`, acme.token)).status, 200, 'its own run');
  t.equal((await get(`/api/runs/${acmeFilesFailed.id}`, globex.token)).status, 404, 'and the other way round');

  const report = await get(`/api/reports/globex/${month}.pdf`, acme.token);
  const noClient = await get(`/api/reports/nobody/${month}.pdf`, acme.token);
  t.equal(report.status, 404, "another client's report: 404");
  t.strictSame(await report.text(), await noClient.text(), 'the same answer as a client that does not exist');
  for (const f of ['html', 'csv', 'json']) t.equal((await get(`/api/reports/globex/${month}.${f}`, acme.token)).status, 404, `globex ${f}: 404`);

  const metrics = await (await get('/metrics', acme.token)).text();
  t.match(metrics, /policy="acme-files"/);
  t.notMatch(metrics, /globex/i, "no series, label or display name of the other client in /metrics");

  for (const path of [`/runs/${globexDbError.id}`, '/policies/globex-db']) {
    const page = await get(path, acme.token);
    t.equal(page.status, 404, `page ${path}: 404`);
    t.notMatch(await page.text(), /globex/i);
  }
  const board = await (await get('/', acme.token)).text();
  t.notMatch(board, /globex/i, 'the board does not list the other client');
  t.notMatch(await (await get('/reports', acme.token)).text(), /globex/i, 'nor do the reports');
  t.notMatch(await (await get('/runs?client=globex', acme.token)).text(), /globex/i, 'nor the runs page');
});

/** A strict reader of the Prometheus text format 0.0.4: HELP and TYPE before samples, escapes undone. */
function parseExposition(text: string): { help: Map<string, string>; type: Map<string, string>; samples: { name: string; labels: Record<string, string>; value: number }[] } {
  const help = new Map<string, string>();
  const type = new Map<string, string>();
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a line feed');
  for (const line of text.slice(0, -1).split('\n')) {
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) {
      help.set(m[1]!, m[2]!);
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m) {
      if (!help.has(m[1]!)) throw new Error(`TYPE before HELP: ${line}`);
      type.set(m[1]!, m[2]!);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const family = m[1]!;
    if (!type.has(family)) throw new Error(`sample before its TYPE: ${line}`);
    const labels: Record<string, string> = {};
    let rest = m[2] ?? '';
    while (rest.length > 0) {
      const lm = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)/.exec(rest);
      if (!lm) throw new Error(`bad labels in ${line}`);
      labels[lm[1]!] = lm[2]!.replace(/\\(\\|"|n)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      rest = rest.slice(lm[0].length);
    }
    const value = Number(m[3]);
    if (Number.isNaN(value) && m[3] !== 'NaN') throw new Error(`bad value in ${line}`);
    samples.push({ name: family, labels, value });
  }
  return { help, type, samples };
}

t.test('/metrics is Prometheus text with the numbers of the evidence', async (t) => {
  const res = await get('/metrics', admin.token);
  t.equal(res.status, 200);
  t.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const { help, type, samples } = parseExposition(await res.text());
  for (const name of ['backproof_last_verdict', 'backproof_backup_age_seconds', 'backproof_restore_seconds', 'backproof_last_run_timestamp_seconds', 'backproof_open_alerts', 'backproof_runs_total']) {
    t.ok(help.has(name), `HELP ${name}`);
    t.ok(type.has(name), `TYPE ${name}`);
  }
  t.equal(type.get('backproof_runs_total'), 'counter');
  const value = (name: string, labels: Record<string, string>): number | undefined =>
    samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
  const acmeFiles = { client: 'acme', policy: 'acme-files' };
  const acmeDb = { client: 'acme', policy: 'acme-db' };
  t.equal(value('backproof_last_verdict', { ...acmeFiles, verdict: 'fail' }), 1, 'acme-files last failed');
  t.equal(value('backproof_last_verdict', { ...acmeFiles, verdict: 'pass' }), 0);
  t.equal(value('backproof_last_verdict', { client: 'globex', policy: 'globex-db', verdict: 'error' }), 1, 'globex-db last errored');
  t.equal(value('backproof_last_verdict', { ...acmeDb, verdict: 'pass' }), 1);
  t.equal(value('backproof_restore_seconds', acmeDb), acmeDbLatest.metrics.rtoMeasuredMs! / 1000, 'the last measured restore time');
  t.equal(value('backproof_restore_seconds', { client: 'globex', policy: 'globex-db' }), 95, "globex-db's last measured restore time is its passing run's (the error measured none)");
  t.equal(value('backproof_backup_age_seconds', acmeDb), (NOW.getTime() - Date.parse(acmeDbLatest.backup!.backupTime)) / 1000, 'the newest backup age at the server clock');
  t.equal(value('backproof_last_run_timestamp_seconds', acmeFiles), Date.parse(acmeFilesFailed.finishedAt!) / 1000);
  t.equal(value('backproof_open_alerts', acmeFiles), 1, 'one open alert');
  t.equal(value('backproof_open_alerts', acmeDb), 0, "acme-db's failure alert was resolved");
  t.equal(value('backproof_runs_total', { ...acmeDb, verdict: 'pass' }), fx.all.filter((r) => r.policy === 'acme-db' && r.verdict === 'pass').length);
  t.equal(value('backproof_runs_total', { ...acmeDb, verdict: 'fail' }), 1);
  t.equal(value('backproof_rto_target_seconds', acmeDb), 600);
  t.equal(value('backproof_rpo_target_seconds', acmeDb), 26 * 3600);
  t.equal(samples.find((s) => s.name === 'backproof_client_info' && s.labels.client === 'acme')?.labels.display_name, ACME_DISPLAY, 'quotes and backslashes in a label survive escaping');
  t.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd', 'label escaping: backslash, quote, line feed');
  t.equal(samples.filter((s) => s.name === 'backproof_last_verdict').length, 4 * 3, 'three verdict series per policy');
});

t.test('a revoked token stops working at once', async (t) => {
  const temp = await tokens.create({ scope: { kind: 'client', client: 'acme' }, name: 'temp' });
  t.equal((await get('/api/runs', temp.token)).status, 200);
  const login = await fetch(`${base}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: temp.token }).toString(), redirect: 'manual' });
  const session = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
  t.equal((await get('/', undefined, { cookie: session })).status, 200, 'a browser session logged in with it works');
  await tokens.revoke('temp');
  t.equal((await get('/api/runs', temp.token)).status, 401, 'the API refuses it');
  t.equal((await get('/metrics', temp.token)).status, 401, '/metrics too');
  const page = await get('/', undefined, { cookie: session });
  t.equal(page.status, 303, 'a browser session with it goes back to the login');
  t.equal((await get('/', undefined, { cookie: `backproof_session=${temp.token}` })).status, 303, 'a cookie holding the token itself (the old format) is no session');
  t.match(page.headers.get('set-cookie') ?? '', /backproof_session=;.*Max-Age=0/, 'and its cookie is cleared');
  const listed = await tokens.list({ includeRevoked: true });
  t.ok(listed.find((x) => x.name === 'temp')?.revokedAt, 'listed as revoked');
  t.notOk((await tokens.list()).some((x) => x.name === 'temp'), 'not among the live tokens');
});

t.test('tokens are stored hashed', async (t) => {
  const { rows } = await fx.store.executor.query<Record<string, unknown>>('SELECT * FROM backproof.tokens');
  t.ok(rows.length >= 3);
  const dump = JSON.stringify(rows);
  for (const tok of [admin.token, acme.token, globex.token]) {
    t.notOk(dump.includes(tok), 'the plaintext token is nowhere in the table');
    t.notOk(dump.includes(tok.slice(4)), 'nor its random part');
    t.ok(rows.some((r) => r.token_hash === hashToken(tok)), 'its sha256 is');
  }
  t.match(admin.token, /^bpt_[A-Za-z0-9_-]{43}$/, 'bpt_ and 32 random bytes in base64url');
  const used = (await tokens.list()).find((x) => x.name === 'ops');
  t.ok(used?.lastUsedAt, 'last use recorded');
});

t.test('report download: a PDF with its content type and file name', async (t) => {
  const res = await get(`/api/reports/acme/${month}.pdf`, acme.token);
  t.equal(res.status, 200);
  t.equal(res.headers.get('content-type'), 'application/pdf');
  const disposition = res.headers.get('content-disposition') ?? '';
  t.match(disposition, /^attachment; filename="[^"/\\]+\.pdf"; filename\*=UTF-8''/, 'an attachment named .pdf');
  t.match(disposition, /acme/, 'named after the client');
  t.match(disposition, /2026-11/, 'and the month');
  const bytes = Buffer.from(await res.arrayBuffer());
  t.equal(bytes.subarray(0, 5).toString('latin1'), '%PDF-', 'PDF magic');
  const asJson = await get(`/api/reports/acme/${month}.json`, acme.token);
  t.equal(asJson.headers.get('content-type'), 'application/json; charset=utf-8');
  t.match(JSON.stringify(await asJson.json()), /acme-files/, 'the JSON report holds the policy');
  const csv = await get(`/api/reports/acme/${month}.csv`, acme.token);
  t.equal(csv.headers.get('content-type'), 'text/csv; charset=utf-8');
  t.equal((await get(`/api/reports/acme/${month}.docx`, acme.token)).status, 404, 'unknown format');
  t.equal((await get('/api/reports/acme/2026-13.pdf', acme.token)).status, 400, 'not a month');
});

t.test('login, cookie, logout; escaping; headers; logs never hold a token', async (t) => {
  const form = (token: string, next = '/runs', origin = base): RequestInit => ({
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin },
    body: new URLSearchParams({ token, next }).toString(),
    redirect: 'manual',
  });
  const ok = await fetch(`${base}/login`, form(acme.token));
  t.equal(ok.status, 303);
  t.equal(ok.headers.get('location'), '/runs', 'back where the user was going');
  const cookie = ok.headers.get('set-cookie') ?? '';
  t.match(cookie, /^backproof_session=bps_[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/, 'a session id, HttpOnly, SameSite=Strict, 12 hours, not Secure over plain http');
  t.notOk(cookie.includes(acme.token.slice(4)), 'the cookie does not hold the token');
  const session = cookie.split(';')[0]!;
  t.equal((await get('/', undefined, { cookie: session })).status, 200, 'the cookie opens the board');
  t.equal((await get('/api/runs', undefined, { cookie: session })).status, 200, 'and the API');
  const secure = await fetch(`${base}/login`, { ...form(acme.token), headers: { ...(form(acme.token).headers as Record<string, string>), 'x-forwarded-proto': 'https' } });
  t.match(secure.headers.get('set-cookie') ?? '', /; Secure$/, 'Secure behind an https proxy');
  const bad = await fetch(`${base}/login`, form('bpt_' + 'x'.repeat(43)));
  t.equal(bad.status, 401);
  t.notOk(bad.headers.get('set-cookie'), 'no cookie for a bad token');
  t.match(await bad.text(), /not valid/);
  t.equal((await fetch(`${base}/login`, form(acme.token, '/', 'http://evil.example'))).status, 403, 'a cross-site login post is refused');
  t.equal((await fetch(`${base}/login`, form(acme.token, '//evil.example/x'))).headers.get('location'), '/', 'next never leaves the site');
  const out = await fetch(`${base}/logout`, { method: 'POST', headers: { cookie: session, origin: base }, redirect: 'manual' });
  t.equal(out.status, 303);
  t.match(out.headers.get('set-cookie') ?? '', /backproof_session=;.*Max-Age=0/, 'logout clears the cookie');
  t.equal((await get('/api/runs', undefined, { cookie: session })).status, 401, 'and ends the session: the old cookie is refused');

  const reports = await (await get('/reports', admin.token)).text();
  t.ok(reports.includes('ACME &quot;Shop&quot; &lt;b&gt;&amp;&lt;/b&gt; \\ GmbH'), 'the display name is escaped');
  t.notOk(reports.includes('<b>&</b>'), 'never raw');
  const run = await get(`/runs/${acmeFilesFailed.id}`, admin.token);
  const html = await run.text();
  t.ok(html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'), 'the log tail is escaped');
  t.notOk(html.includes('<script>'), 'no script element on the page');
  t.match(run.headers.get('content-security-policy') ?? '', /default-src 'none'/, 'a CSP that loads nothing external');
  t.equal(run.headers.get('x-content-type-options'), 'nosniff');
  t.match(html, /probe_failed/);
  t.match(html, /docs\/\*\* matches at least 1 file/, 'probe results on the run page');
  t.equal((await get(`/runs/${acmeDbFailed.id}`, admin.token)).status, 200);

  const allLogs = logLines.join('\n');
  t.ok(logLines.some((l) => l.includes('"path":"/api/runs"')), 'requests are logged');
  for (const tok of [admin.token, acme.token, globex.token]) t.notOk(allLogs.includes(tok.slice(4)), 'no token in the log');
  t.notMatch(allLogs, /backproof_session|authorization/i, 'no cookie or header in the log');
});

t.test(`a board of more than ${BOARD_ROWS_IN_FULL} policies folds the healthy ones into a line per client; a client's board shows them all`, async (t) => {
  const rowsOf = (html: string): Map<string, string> => new Map([...html.matchAll(/<tr class="[^"]*" data-policy="([^"]+)" data-health="([^"]+)"/g)].map((m) => [m[1]!, m[2]!]));
  const small = rowsOf(await (await get('/', admin.token)).text());
  const healthy = [...small].filter(([, h]) => h === 'ok').map(([p]) => p);
  const needing = [...small].filter(([, h]) => h !== 'ok').map(([p]) => p);
  t.ok(healthy.length > 0 && needing.length > 0, `the fixture's board has healthy (${healthy.join(', ')}) and other policies (${needing.join(', ')})`);

  // The same evidence under a config with a client of BOARD_ROWS_IN_FULL more policies that never ran.
  const bulk = Array.from(
    { length: BOARD_ROWS_IN_FULL },
    (_, i) => `      - name: bulk-db${i}\n        kind: postgres\n        source: { driver: local, path: ./bulk }\n        targets: { rpo: 26h }\n        schedule: "daily at 04:00"\n`,
  ).join('');
  const config = parseConfigText(`${CONFIG_TEXT}  - name: bulk\n    policies:\n${bulk}`, path.join(fx.dir, 'big.yaml'), {});
  const big = await startWebServer({ config, runs: fx.store, alerts: fx.alerts, logger, host: '127.0.0.1', port: 0, now: () => NOW });
  t.teardown(() => big.close());
  const at = (p: string): Promise<Response> => fetch(`http://127.0.0.1:${big.port}${p}`, { headers: { authorization: `Bearer ${admin.token}` } });
  const board = await (await at('/')).text();
  const rows = rowsOf(board);
  for (const p of needing) t.equal(rows.get(p), small.get(p), `${p} (${small.get(p)}) keeps its row`);
  t.equal([...rows.keys()].filter((p) => p.startsWith('bulk-')).length, BOARD_ROWS_IN_FULL, 'policies that never ran keep their rows');
  for (const p of healthy) t.notOk(rows.has(p), `healthy ${p} is folded`);
  const clientOf = new Map(config.policies.map((p) => [p.name, p.client]));
  for (const client of new Set(healthy.map((p) => clientOf.get(p)!))) {
    const n = healthy.filter((p) => clientOf.get(p) === client).length;
    t.match(board, new RegExp(`data-client="${client}" data-folded="${n}"[^]*?href="/\\?client=${client}">${n} polic`), `${client}: one line for its ${n} healthy policies, linking to its board`);
  }
  t.match(board, /healthy ones are folded into a line per client/, 'the board says it folded');
  t.ok(board.indexOf('data-folded') > board.lastIndexOf('data-health="never"'), 'the folded lines come after every policy that needs a look');

  const client = clientOf.get(healthy[0]!)!;
  const own = rowsOf(await (await at(`/?client=${client}`)).text());
  t.strictSame([...own.keys()].sort(), config.policies.filter((p) => p.client === client).map((p) => p.name).sort(), `the ${client} board lists every policy of ${client}`);
  t.equal(own.get(healthy[0]!), 'ok');
});

t.test('the server closes', async (t) => {
  await server!.close();
  server = undefined;
  await t.rejects(fetch(`${base}/healthz`), 'nothing listens any more');
});
