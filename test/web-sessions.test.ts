import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { parseConfigText } from '../orchestrator/config/load.js';
import { Logger } from '../orchestrator/core/logger.js';
import { AlertStore } from '../orchestrator/evidence/alert-store.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { startWebServer, type WebServer } from '../orchestrator/web/server.js';
import { hashSessionId, SessionStore } from '../orchestrator/web/session-store.js';
import { TokenStore } from '../orchestrator/web/token-store.js';
import { seededBytes } from './helpers/bytes.js';
import { REPO, runCommand } from './helpers/command.js';
import { startPgCluster } from './helpers/pg-cluster.js';
import { CONFIG_TEXT, NOW } from './helpers/web-fixtures.js';

/**
 * Dashboard browser sessions (migration 0011, orchestrator/web/session-store.ts) over real HTTP on
 * loopback, on both backends of the evidence store (a PostgreSQL 15 server and embedded PGlite):
 * the cookie holds a session id, never the token; logout, token revocation and expiry end a
 * session; forged ids are refused; a session has exactly its token's scope; bearer tokens work as
 * before. The server's clock is a variable the test moves; every timestamp compared comes from it.
 */
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-web-sessions-'));
t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
const config = parseConfigText(CONFIG_TEXT, path.join(dir, 'backproof.yaml'), {});
const cluster = await startPgCluster();
t.teardown(() => cluster.stop());
const logger = new Logger({ json: true, level: 'warn', write: () => undefined });
const LIFETIME_MS = 10 * 60_000;
const COOKIE = /^backproof_session=(bps_[A-Za-z0-9_-]{43}); Path=\/; HttpOnly; SameSite=Strict; Max-Age=600$/;

const backends: Array<{ name: string; open: () => Promise<RunStore> }> = [
  { name: 'pglite', open: () => RunStore.open({ dataDir: path.join(dir, 'lite'), schema: 'backproof' }) },
  { name: 'postgres', open: () => RunStore.open({ url: cluster.url, dataDir: path.join(dir, 'pg-key'), schema: 'web_sessions' }) },
];

for (const backend of backends) {
  t.test(backend.name, async (t) => {
    const store = await backend.open();
    t.teardown(() => store.close());
    const tokens = new TokenStore(store.executor, store.schema);
    const sessions = new SessionStore(store.executor, store.schema);
    const admin = await tokens.create({ scope: { kind: 'admin' }, name: 'ops', now: NOW });
    const acme = await tokens.create({ scope: { kind: 'client', client: 'acme' }, name: 'acme-portal', now: NOW });
    const allTokens = [admin.token, acme.token];
    let clock = NOW;
    let server: WebServer | undefined = await startWebServer({
      config,
      runs: store,
      alerts: new AlertStore(store.executor, store.schema),
      logger,
      host: '127.0.0.1',
      port: 0,
      now: () => clock,
      sessionLifetimeMs: LIFETIME_MS,
    });
    t.teardown(() => server?.close());
    const base = `http://127.0.0.1:${server.port}`;
    const at = (offsetMs: number): Date => new Date(NOW.getTime() + offsetMs);
    const get = (p: string, headers: Record<string, string> = {}): Promise<Response> => fetch(base + p, { headers, redirect: 'manual' });
    const withCookie = (id: string, p = '/api/policies'): Promise<Response> => get(p, { cookie: `backproof_session=${id}` });
    const sessionRows = async (): Promise<Array<Record<string, unknown>>> => (await store.executor.query(`SELECT * FROM ${store.schema}.sessions ORDER BY created_at`)).rows;

    /** Logs in through the form; returns the session id from the cookie after checking no token is in any Set-Cookie or the page. */
    async function login(tt: Test, token: string): Promise<string> {
      const res = await fetch(`${base}/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base },
        body: new URLSearchParams({ token, next: '/' }).toString(),
        redirect: 'manual',
      });
      tt.equal(res.status, 303, 'login redirects');
      const setCookies = res.headers.getSetCookie();
      tt.equal(setCookies.length, 1, 'one Set-Cookie');
      for (const c of setCookies) for (const tok of allTokens) tt.notOk(c.includes(tok.slice(4)), 'no token in a Set-Cookie');
      const m = COOKIE.exec(setCookies[0] ?? '');
      tt.ok(m, `the cookie holds a session id, HttpOnly, SameSite=Strict, Max-Age of the lifetime: ${setCookies[0]}`);
      const id = m?.[1] ?? '';
      const board = await withCookie(id, '/');
      tt.equal(board.status, 200, 'the session opens the board');
      const page = await board.text();
      for (const tok of allTokens) tt.notOk(page.includes(tok.slice(4)), 'no token on the page');
      tt.notOk(page.includes(id.slice(4)), 'nor the session id');
      return id;
    }

    await t.test('login makes a session: the cookie holds its id, the store its sha256 beside the token', async (t) => {
      const id = await login(t, acme.token);
      const rows = await sessionRows();
      t.equal(rows.length, 1, 'one session row');
      const row = rows[0]!;
      t.equal(row.id_hash, hashSessionId(id), 'stored as its sha256');
      const dump = JSON.stringify(rows);
      t.notOk(dump.includes(id.slice(4)), 'the id itself is not stored');
      for (const tok of allTokens) t.notOk(dump.includes(tok.slice(4)), 'nor any token');
      t.equal(row.token_id, acme.info.id, "with its token's id");
      t.equal(new Date(String(row.created_at)).toISOString(), NOW.toISOString(), 'created now');
      t.equal(new Date(String(row.expires_at)).toISOString(), at(LIFETIME_MS).toISOString(), 'expires a lifetime later');
      t.equal(new Date(String(row.last_seen_at)).toISOString(), NOW.toISOString(), 'last seen at login');
      clock = at(2 * 60_000);
      t.equal((await withCookie(id)).status, 200);
      t.equal((await sessions.listOf(acme.info.id, clock))[0]?.lastSeenAt, clock.toISOString(), 'last seen moves on with use');
      t.ok(await sessions.end(id), 'cleaned up');
      clock = NOW;
    });

    await t.test("a session has exactly its token's scope", async (t) => {
      const acmeId = await login(t, acme.token);
      const adminId = await login(t, admin.token);
      const seen = async (id: string): Promise<string[]> =>
        ((await (await withCookie(id)).json()) as { policies: Array<{ policy: string }> }).policies.map((p) => p.policy).sort();
      t.strictSame(await seen(acmeId), ['acme-db', 'acme-files'], "a client token's session sees only its client");
      t.strictSame(await seen(adminId), ['acme-db', 'acme-files', 'globex-db', 'globex-notes'], "an admin token's session sees all");
      t.equal((await withCookie(acmeId, '/policies/globex-db')).status, 404, "the other client's policy page is not found");
      t.notMatch(await (await withCookie(acmeId, '/')).text(), /globex/i, 'its board never names the other client');
      t.equal((await withCookie(acmeId, '/metrics')).status, 200);
      t.notMatch(await (await withCookie(acmeId, '/metrics')).text(), /globex/, 'nor do its metrics');
      t.equal((await get('/api/policies', { authorization: `Bearer ${acme.token}` })).status, 200, 'the bearer header works as before');
      t.equal((await get('/api/policies', { authorization: `Bearer ${acmeId}` })).status, 401, 'a session id is no bearer token');
      await sessions.end(acmeId);
      await sessions.end(adminId);
    });

    await t.test('logout ends the session; the old cookie is refused afterwards', async (t) => {
      const id = await login(t, admin.token);
      const other = await login(t, admin.token);
      t.not(id, other, 'each login makes its own session');
      const out = await fetch(`${base}/logout`, { method: 'POST', headers: { cookie: `backproof_session=${id}`, origin: base }, redirect: 'manual' });
      t.equal(out.status, 303);
      t.equal(out.headers.get('location'), '/login');
      t.match(out.headers.get('set-cookie') ?? '', /^backproof_session=; Path=\/; HttpOnly; SameSite=Strict; Max-Age=0$/, 'the cookie is cleared');
      t.equal((await withCookie(id)).status, 401, 'the API refuses the old cookie');
      const page = await withCookie(id, '/runs');
      t.equal(page.status, 303, 'a page sends it to the login');
      t.equal(page.headers.get('location'), '/login?next=%2Fruns');
      t.strictSame((await sessionRows()).map((r) => r.id_hash), [hashSessionId(other)], 'its row is gone; the other session stays');
      t.equal((await withCookie(other)).status, 200, 'and still works');
      const cross = await fetch(`${base}/logout`, { method: 'POST', headers: { cookie: `backproof_session=${other}`, origin: 'http://evil.example' }, redirect: 'manual' });
      t.equal(cross.status, 403, 'a cross-site logout post is refused');
      t.equal((await withCookie(other)).status, 200, 'and ends nothing');
      await sessions.end(other);
    });

    await t.test("revoking a token ends all its sessions at once, and only its", async (t) => {
      const temp = await tokens.create({ scope: { kind: 'client', client: 'acme' }, name: 'temp', now: NOW });
      allTokens.push(temp.token);
      const first = await login(t, temp.token);
      const second = await login(t, temp.token);
      const bystander = await login(t, acme.token);
      t.equal((await sessions.listOf(temp.info.id, clock)).length, 2, 'two sessions of the token');
      await tokens.revoke('temp', clock); // what `backproof tokens revoke` calls
      for (const id of [first, second]) {
        t.equal((await withCookie(id)).status, 401, 'a session of the revoked token is refused');
        const page = await withCookie(id, '/');
        t.equal(page.status, 303, 'its pages go to the login');
        t.match(page.headers.get('set-cookie') ?? '', /backproof_session=;.*Max-Age=0/, 'and its cookie is cleared');
      }
      t.equal((await sessions.listOf(temp.info.id, clock)).length, 0, 'its rows are gone');
      t.equal((await withCookie(bystander)).status, 200, "another token's session lives on");
      await t.rejects(sessions.create({ tokenId: temp.info.id, lifetimeMs: LIFETIME_MS, now: clock }), { code: 'token_not_found' }, 'a revoked token gets no new session');
      await sessions.end(bystander);
    });

    if (backend.name === 'postgres') {
      await t.test('`backproof tokens revoke` (the CLI, another process on the same PostgreSQL) ends the sessions too', async (t) => {
        const cliTok = await tokens.create({ scope: { kind: 'admin' }, name: 'cli-temp', now: NOW });
        allTokens.push(cliTok.token);
        const id = await login(t, cliTok.token);
        const file = path.join(dir, 'cli.yaml');
        await fs.writeFile(file, CONFIG_TEXT.replace('version: 1\n', `version: 1\ndatabase: { url: "${cluster.url}", schema: ${store.schema} }\n`));
        const res = await runCommand(process.execPath, [path.join(REPO, 'bin/backproof.js'), 'tokens', 'revoke', 'cli-temp', '--config', file, '--data-dir', path.join(dir, 'pg-key')], { timeoutMs: 60_000 });
        t.equal(res.code, 0, `the CLI revokes it: ${res.stderr.trim()}`);
        t.equal((await withCookie(id)).status, 401, 'its session is refused at once');
        t.equal((await sessions.listOf(cliTok.info.id, clock)).length, 0, 'and gone from the store');
      });
    }

    await t.test('a session expires after its lifetime, and expired rows are pruned at the next login', async (t) => {
      const id = await login(t, acme.token);
      clock = at(LIFETIME_MS - 1);
      t.equal((await withCookie(id)).status, 200, 'a millisecond before its expiry it works');
      clock = at(LIFETIME_MS);
      t.equal((await withCookie(id)).status, 401, 'at its expiry the API refuses it');
      t.equal((await withCookie(id, '/')).status, 303, 'and pages send it to the login');
      t.equal((await sessionRows()).length, 1, 'the expired row is still there');
      const fresh = await login(t, acme.token);
      const rows = await sessionRows();
      t.strictSame(
        rows.map((r) => r.id_hash),
        [hashSessionId(fresh)],
        'the next login pruned it',
      );
      t.equal(new Date(String(rows[0]!.expires_at)).toISOString(), at(2 * LIFETIME_MS).toISOString(), "the new one's lifetime counts from its login");
      await sessions.end(fresh);
      clock = NOW;
      const short = await sessions.create({ tokenId: acme.info.id, lifetimeMs: 1000, now: NOW });
      t.equal(short.info.expiresAt, at(1000).toISOString(), 'a lifetime is a parameter of the session');
      t.equal((await withCookie(short.id)).status, 200);
      clock = at(1000);
      t.equal((await withCookie(short.id)).status, 401, 'a short-lived session ends when its lifetime does');
      await t.rejects(sessions.create({ tokenId: acme.info.id, lifetimeMs: 0, now: NOW }), { code: 'session_lifetime_invalid' }, 'a lifetime under a second is refused');
      t.equal(await sessions.prune(clock), 1, 'prune deletes it');
      clock = NOW;
    });

    await t.test('forged, random and malformed session ids are refused', async (t) => {
      const real = await login(t, acme.token);
      const forged = [
        'bps_' + seededBytes(32, `forged-${backend.name}`).toString('base64url'),
        real.slice(0, -1) + (real.endsWith('A') ? 'B' : 'A'),
        hashSessionId(real),
        'bps_' + hashSessionId(real).slice(0, 43),
        acme.token,
        'not-a-session',
        "bps_' OR '1'='1",
        '',
      ];
      for (const id of forged) {
        const api = await withCookie(encodeURIComponent(id));
        t.equal(api.status, 401, `${JSON.stringify(id.slice(0, 12))}...: 401 on the API`);
        const page = await withCookie(encodeURIComponent(id), '/');
        t.equal(page.status, 303, 'a redirect to the login for a page');
        t.match(page.headers.get('location') ?? '', /^\/login/);
      }
      t.equal((await withCookie(real)).status, 200, 'the real one still works');
      await sessions.end(real);
      t.equal((await sessionRows()).length, 0, 'no session left');
    });

    await server.close();
    server = undefined;
  });
}
