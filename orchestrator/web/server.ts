import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ResolvedConfig } from '../core/config-types.js';
import { coerceError } from '../core/errors.js';
import type { AlertStore } from '../evidence/alert-store.js';
import type { RunStore } from '../evidence/run-store.js';
import type { Logger } from '../core/logger.js';
import { apiPolicies, apiReport, apiRun, apiRuns } from './api.js';
import { artifactHandler } from './artifacts.js';
import { clearedSessionCookie, isHttps, parseCookies, presentedCredential, principalOf, principalOfSession, safeNext, SESSION_COOKIE, SESSION_MAX_AGE_S, sessionCookie, type Principal } from './auth.js';
import { HttpError, redirect, send, sendHtml, sendJson, SECURITY_HEADERS, type RequestContext, type WebDeps } from './context.js';
import { html, type SafeHtml } from '../core/html.js';
import { page } from './html.js';
import { loginPage } from './login-page.js';
import { METRICS_CONTENT_TYPE, renderMetrics } from './metrics.js';
import { BOARD_ROWS_IN_FULL, boardPage, policyPage, reportsPage, runsPage, who } from './pages.js';
import { chainFor, type ReportChain } from './reports.js';
import { runPage } from './run-page.js';
import { SessionStore } from './session-store.js';
import { TokenStore } from './token-store.js';

/**
 * `backproof serve`: the read-only dashboard, the JSON API and /metrics on node:http, with a
 * tiny router. A function over an open evidence store, so the daemon can run it in its own
 * process (the embedded PGlite store admits one process). Every route but the login, logout and
 * /healthz needs a token (auth.ts); requests are logged without their headers, so neither a token
 * nor a cookie ever reaches the log.
 */
export interface WebServerDeps {
  /** The config, or a function returning the current one (a daemon's reload is then seen). */
  config: ResolvedConfig | (() => ResolvedConfig);
  runs: RunStore;
  alerts: AlertStore;
  logger: Logger;
  /** Address to listen on. The dashboard speaks plain http: keep it on loopback or behind a TLS proxy. */
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** The evidence chain reports read; default: the store's own (orchestrator/evidence/chain.ts). */
  chain?: ReportChain;
  /** Default: the `tokens` table of the runs' store. */
  tokens?: TokenStore;
  /** Default: the `sessions` table of the runs' store. */
  sessions?: SessionStore;
  /** How long a browser session lasts after login; default SESSION_MAX_AGE_S (12 h). At least 1000. */
  sessionLifetimeMs?: number;
  /** Above this many policies the board folds the healthy ones per client; default BOARD_ROWS_IN_FULL (200). */
  boardRowsInFull?: number;
  /** The clock (tests). */
  now?: () => Date;
}

export interface WebServer {
  port: number;
  /** Stops listening, lets requests in flight finish (up to 5 s), then closes every connection. Safe to call twice. */
  close(): Promise<void>;
}

type Kind = 'page' | 'api' | 'metrics';
interface Route {
  method: 'GET' | 'POST';
  pattern: RegExp;
  kind: Kind;
  handler: (ctx: RequestContext) => Promise<void>;
}

const htmlPage = (render: (ctx: RequestContext) => Promise<SafeHtml>) => async (ctx: RequestContext) => sendHtml(ctx.res, 200, await render(ctx));

const ROUTES: Route[] = [
  { method: 'GET', pattern: /^\/$/, kind: 'page', handler: htmlPage(boardPage) },
  { method: 'GET', pattern: /^\/policies\/([^/]+)$/, kind: 'page', handler: htmlPage(policyPage) },
  { method: 'GET', pattern: /^\/runs$/, kind: 'page', handler: htmlPage(runsPage) },
  { method: 'GET', pattern: /^\/runs\/([^/]+)$/, kind: 'page', handler: htmlPage(runPage) },
  { method: 'GET', pattern: /^\/runs\/([^/]+)\/artifacts\/([^/]+)$/, kind: 'page', handler: artifactHandler },
  { method: 'GET', pattern: /^\/reports$/, kind: 'page', handler: htmlPage(reportsPage) },
  { method: 'GET', pattern: /^\/api\/policies$/, kind: 'api', handler: apiPolicies },
  { method: 'GET', pattern: /^\/api\/runs$/, kind: 'api', handler: apiRuns },
  { method: 'GET', pattern: /^\/api\/runs\/([^/]+)$/, kind: 'api', handler: apiRun },
  { method: 'GET', pattern: /^\/api\/runs\/([^/]+)\/artifacts\/([^/]+)$/, kind: 'api', handler: artifactHandler },
  { method: 'GET', pattern: /^\/api\/reports\/([^/]+)\/([^/]+)\.([a-z]+)$/, kind: 'api', handler: apiReport },
  { method: 'GET', pattern: /^\/metrics$/, kind: 'metrics', handler: async (ctx) => send(ctx.res, 200, METRICS_CONTENT_TYPE, await renderMetrics(ctx.deps, ctx.principal)) },
];

const MAX_FORM_BYTES = 8 * 1024;
const CLOSE_GRACE_MS = 5_000;

export async function startWebServer(opts: WebServerDeps): Promise<WebServer> {
  const config = opts.config;
  const deps: WebDeps = {
    config: typeof config === 'function' ? config : () => config,
    runs: opts.runs,
    alerts: opts.alerts,
    tokens: opts.tokens ?? new TokenStore(opts.runs.executor, opts.runs.schema),
    sessions: opts.sessions ?? new SessionStore(opts.runs.executor, opts.runs.schema),
    sessionLifetimeMs: opts.sessionLifetimeMs ?? SESSION_MAX_AGE_S * 1000,
    chain: opts.chain ?? chainFor(opts.runs),
    logger: opts.logger,
    boardRowsInFull: opts.boardRowsInFull ?? BOARD_ROWS_IN_FULL,
    now: opts.now ?? (() => new Date()),
  };
  const logger = opts.logger;
  const server = http.createServer({ requestTimeout: 60_000, headersTimeout: 20_000, keepAliveTimeout: 5_000 }, (req, res) => {
    const started = performance.now();
    let principal: Principal | undefined;
    res.on('finish', () => {
      const path = (req.url ?? '/').split('?')[0];
      const fields = { method: req.method, path, status: res.statusCode, ms: Math.round(performance.now() - started), token: principal?.tokenName };
      const quiet = res.statusCode < 400 && (path === '/metrics' || path === '/healthz');
      if (quiet) logger.debug('http request', fields);
      else logger.info(`${req.method} ${path} ${res.statusCode}`, fields);
    });
    handle(deps, req, res, (p) => (principal = p)).catch((err: unknown) => {
      logger.error(`web request failed: ${coerceError(err).message}`, { method: req.method, path: (req.url ?? '/').split('?')[0] });
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    port,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      })),
  };
}

async function handle(deps: WebDeps, req: http.IncomingMessage, res: http.ServerResponse, seen: (p: Principal) => void): Promise<void> {
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://backproof.invalid');
  } catch {
    return send(res, 400, 'text/plain; charset=utf-8', 'bad request\n');
  }
  const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
  const path = url.pathname;

  // Public routes.
  if (path === '/healthz' && method === 'GET') return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
  if (path === '/favicon.ico') return send(res, 404, 'text/plain; charset=utf-8', '');
  if (path === '/login') {
    if (method === 'GET') return sendHtml(res, 200, loginPage({ next: safeNext(url.searchParams.get('next')) }));
    if (method === 'POST') return login(deps, req, res);
    return methodNotAllowed(res, 'GET, POST');
  }
  if (path === '/logout') {
    if (method !== 'POST') return methodNotAllowed(res, 'POST');
    if (!sameOrigin(req)) return send(res, 403, 'text/plain; charset=utf-8', 'cross-site request refused\n');
    const sessionId = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    if (sessionId && (await deps.sessions.end(sessionId))) deps.logger.info('web logout');
    return redirect(res, '/login', { 'set-cookie': clearedSessionCookie(isHttps(req)) });
  }

  const matches = ROUTES.map((r) => ({ r, m: r.pattern.exec(path) })).filter((x) => x.m !== null);
  if (matches.length === 0) return notFoundResponse(res, path.startsWith('/api/') ? 'api' : 'page');
  const match = matches.find((x) => x.r.method === method);
  if (!match) return methodNotAllowed(res, [...new Set(matches.map((x) => x.r.method))].join(', '));
  const { r: route, m } = match;

  const presented = presentedCredential(req);
  let principal: Principal | undefined;
  if (presented?.via === 'bearer') {
    const info = await deps.tokens.authenticate(presented.token, deps.now());
    principal = info ? principalOf(info) : undefined;
  } else if (presented?.via === 'cookie') {
    const info = await deps.sessions.authenticate(presented.sessionId, deps.now());
    principal = info ? principalOfSession(info) : undefined;
  }
  if (!principal) return unauthenticated(req, res, route.kind, url, presented?.via === 'cookie');
  seen(principal);

  let params: string[];
  try {
    params = m!.slice(1).map((p) => decodeURIComponent(p ?? ''));
  } catch {
    return notFoundResponse(res, route.kind);
  }
  const ctx: RequestContext = { req, res, url, params, principal, deps };
  try {
    await route.handler(ctx);
  } catch (err) {
    if (!(err instanceof HttpError)) throw err;
    if (route.kind === 'page') {
      sendHtml(res, err.status, page({ title: String(err.status), who: who(ctx), body: html`<h1>${err.status === 404 ? 'Not found' : 'Cannot show this'}</h1><p>${err.message}</p><p><a href="/">Back to the board</a></p>` }));
    } else {
      sendJson(res, err.status, { error: { code: err.code, message: err.message } });
    }
  }
}

async function login(deps: WebDeps, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  if (!sameOrigin(req)) return send(res, 403, 'text/plain; charset=utf-8', 'cross-site request refused\n');
  let form: URLSearchParams;
  try {
    form = new URLSearchParams(await readBody(req, MAX_FORM_BYTES));
  } catch {
    return send(res, 413, 'text/plain; charset=utf-8', 'form too large\n', { connection: 'close' });
  }
  const next = safeNext(form.get('next'));
  const token = (form.get('token') ?? '').trim();
  const info = token ? await deps.tokens.authenticate(token, deps.now()) : null;
  if (!info) {
    return sendHtml(res, 401, loginPage({ next, error: 'That token is not valid: it is mistyped, unknown or revoked.' }));
  }
  // The cookie holds a new session's random id, never the token (session-store.ts).
  const session = await deps.sessions.create({ tokenId: info.id, lifetimeMs: deps.sessionLifetimeMs, now: deps.now() });
  deps.logger.info('web login', { token: info.name, expires: session.info.expiresAt });
  redirect(res, next, { 'set-cookie': sessionCookie(session.id, isHttps(req), Math.ceil(deps.sessionLifetimeMs / 1000)) });
}

function unauthenticated(req: http.IncomingMessage, res: http.ServerResponse, kind: Kind, url: URL, hadCookie: boolean): void {
  const clear: Record<string, string> = hadCookie ? { 'set-cookie': clearedSessionCookie(isHttps(req)) } : {};
  if (kind === 'page') return redirect(res, `/login?next=${encodeURIComponent(url.pathname + url.search)}`, clear);
  sendJson(res, 401, { error: { code: 'unauthorized', message: 'a valid token is required: Authorization: Bearer <token>' } }, { 'www-authenticate': 'Bearer realm="backproof"', ...clear });
}

function notFoundResponse(res: http.ServerResponse, kind: Kind): void {
  if (kind === 'page') return sendHtml(res, 404, page({ title: 'Not found', body: html`<h1>Not found</h1><p><a href="/">Back to the board</a></p>` }));
  sendJson(res, 404, { error: { code: 'not_found', message: 'not found' } });
}

function methodNotAllowed(res: http.ServerResponse, allow: string): void {
  res.writeHead(405, { ...SECURITY_HEADERS, allow, 'content-type': 'text/plain; charset=utf-8' });
  res.end('method not allowed\n');
}

/**
 * A form post from another site is refused (login CSRF): browsers say where a request comes from
 * in Sec-Fetch-Site, or else in Origin. Requests without either (curl, scripts) are not a
 * browser's, so no cross-site forgery.
 */
function sameOrigin(req: http.IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string') return site === 'same-origin' || site === 'none';
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

function readBody(req: http.IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
