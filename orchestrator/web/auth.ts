import type http from 'node:http';
import type { SessionInfo } from './session-store.js';
import type { TokenInfo, TokenScope } from './token-store.js';

/**
 * Who is asking, and what they may see. A request carries either its token as
 * `Authorization: Bearer <token>` (API, metrics, scripts) or the id of a browser session in the
 * HttpOnly cookie the login sets (session-store.ts): the cookie never holds the token. An admin
 * token (or a session logged in with one) sees every client; a client token only its own client,
 * and everything else answers as if it did not exist (404, absent from lists and metrics).
 */
export interface Principal {
  tokenId: string;
  tokenName: string;
  scope: TokenScope;
}

export const SESSION_COOKIE = 'backproof_session';
/** Browser sessions end after this long even if the token lives on (the session's expiry and the cookie's Max-Age). */
export const SESSION_MAX_AGE_S = 12 * 3600;

export function principalOf(info: TokenInfo): Principal {
  return { tokenId: info.id, tokenName: info.name, scope: info.scope };
}

export function principalOfSession(info: SessionInfo): Principal {
  return { tokenId: info.tokenId, tokenName: info.tokenName, scope: info.scope };
}

/** Whether `principal` may see `client`'s policies, runs, reports and metrics. */
export function canSee(principal: Principal, client: string): boolean {
  return principal.scope.kind === 'admin' || principal.scope.client === client;
}

/** What a request presents: the bearer header first, then the session cookie (a session id). */
export function presentedCredential(req: http.IncomingMessage): { via: 'bearer'; token: string } | { via: 'cookie'; sessionId: string } | undefined {
  const header = req.headers.authorization;
  if (header) {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    return m?.[1] ? { via: 'bearer', token: m[1] } : undefined;
  }
  const cookie = parseCookies(req.headers.cookie)[SESSION_COOKIE];
  return cookie ? { via: 'cookie', sessionId: cookie } : undefined;
}

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    const raw = part.slice(eq + 1).trim();
    if (!name || name in out) continue;
    try {
      out[name] = decodeURIComponent(raw);
    } catch {
      out[name] = raw;
    }
  }
  return out;
}

/** Whether the client reached us over https (directly, or through a proxy that says so). */
export function isHttps(req: http.IncomingMessage): boolean {
  return Boolean((req.socket as { encrypted?: boolean }).encrypted) || req.headers['x-forwarded-proto'] === 'https';
}

/** Set-Cookie holding a browser session's id (never the token): HttpOnly, SameSite=Strict, Secure over https. */
export function sessionCookie(sessionId: string, secure: boolean, maxAgeS: number = SESSION_MAX_AGE_S): string {
  return [`${SESSION_COOKIE}=${encodeURIComponent(sessionId)}`, 'Path=/', 'HttpOnly', 'SameSite=Strict', `Max-Age=${maxAgeS}`, ...(secure ? ['Secure'] : [])].join('; ');
}

/** Set-Cookie that ends the browser session. */
export function clearedSessionCookie(secure: boolean): string {
  return [`${SESSION_COOKIE}=`, 'Path=/', 'HttpOnly', 'SameSite=Strict', 'Max-Age=0', ...(secure ? ['Secure'] : [])].join('; ');
}

/** A same-site path to return to after login; anything else (other hosts, //x, /\x) becomes /. */
export function safeNext(next: string | null | undefined): string {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\') || /[\r\n]/.test(next)) return '/';
  return next;
}
