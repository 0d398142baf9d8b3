import type http from 'node:http';
import type { ChainReader } from '../../reports/monthly/model.js';
import type { ResolvedConfig } from '../core/config-types.js';
import type { AlertStore } from '../evidence/alert-store.js';
import type { RunStore } from '../evidence/run-store.js';
import type { Logger } from '../core/logger.js';
import type { Principal } from './auth.js';
import type { SessionStore } from './session-store.js';
import type { TokenStore } from './token-store.js';
import type { SafeHtml } from '../core/html.js';

/** What every handler of the web server reads: the stores, the config, the clock. */
export interface WebDeps {
  /** The current config (a function, so that a daemon's reload is seen without a restart). */
  config(): ResolvedConfig;
  runs: RunStore;
  alerts: AlertStore;
  tokens: TokenStore;
  /** Browser sessions: the login cookie holds a session's id, never a token. */
  sessions: SessionStore;
  /** How long a browser session lasts after login. */
  sessionLifetimeMs: number;
  /** The evidence chain the monthly reports read. */
  chain: ChainReader;
  logger: Logger;
  /** Above this many policies the board folds the healthy ones into a line per client. */
  boardRowsInFull: number;
  now(): Date;
}

/** One authenticated request. */
export interface RequestContext {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  url: URL;
  /** Capture groups of the route's pattern, URL-decoded. */
  params: string[];
  principal: Principal;
  deps: WebDeps;
}

/**
 * Headers every response carries: nothing external may load, nothing is cached, no framing.
 * Images load from this origin only (a run's screenshot, artifacts.ts) or inline data.
 */
export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on form posts,
  // and the login's cross-site check needs the real origin.
  'referrer-policy': 'same-origin',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

export function send(res: http.ServerResponse, status: number, contentType: string, body: string | Buffer, headers: Record<string, string> = {}): void {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': contentType, 'content-length': String(bytes.length), ...headers });
  res.end(bytes);
}

export function sendJson(res: http.ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value, null, 2) + '\n', headers);
}

/** A page: only markup made through core/html.ts's template (every value escaped) is sent. */
export function sendHtml(res: http.ServerResponse, status: number, html: SafeHtml, headers: Record<string, string> = {}): void {
  send(res, status, 'text/html; charset=utf-8', html.toString(), headers);
}

export function redirect(res: http.ServerResponse, location: string, headers: Record<string, string> = {}): void {
  res.writeHead(303, { ...SECURITY_HEADERS, location, 'content-length': '0', ...headers });
  res.end();
}

/** A client error with a status, a stable code and a message safe to show. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The one 404 of things a principal may not see and things that do not exist: the same words. */
export function notFound(what = 'not found'): HttpError {
  return new HttpError(404, 'not_found', what);
}
