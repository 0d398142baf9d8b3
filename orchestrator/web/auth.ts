import type http from 'node:http';
import type { TokenInfo, TokenScope } from './token-store.js';

/**
 * Who is asking, and what they may see. A request carries its token either as
 * `Authorization: Bearer <token>` (API, metrics, scripts) or in the HttpOnly cookie the login page
 * sets (browsers). An admin token sees every client; a client token only its own client, and
 * everything else answers as if it did not exist (404, absent from lists and metrics).
 */
export interface Principal {
  tokenId: string;
  tokenName: string;
  scope: TokenScope;
}

export const SESSION_COOKIE = 'backproof_session';
/** Browser sessions end after this long even if the token lives on (the cookie's Max-Age). */
export const SESSION_MAX_AGE_S = 12 * 3600;

export function principalOf(info: TokenInfo): Principal {
  return { tokenId: info.id, tokenName: info.name, scope: info.scope };
}

/** Whether `principal` may see `client`'s policies, runs, reports and metrics. */
export function canSee(principal: Principal, client: string): boolean {
  return principal.scope.kind === 'admin' || principal.scope.client === client;
}

/** The token a request presents: the bearer header first, then the session cookie. */
export function presentedToken(req: http.IncomingMessage): { token: string; via: 'bearer' | 'cookie' } | undefined {
  const header = req.headers.authorization;
  if (header) {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    return m?.[1] ? { token: m[1], via: 'bearer' } : undefined;
  }
  const cookie = parseCookies(req.headers.cookie)[SESSION_COOKIE];
  return cookie ? { token: cookie, via: 'cookie' } : undefined;
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

/** Set-Cookie for a browser session holding `token`: HttpOnly, SameSite=Strict, Secure over https. */
export function sessionCookie(token: string, secure: boolean): string {
  return [`${SESSION_COOKIE}=${encodeURIComponent(token)}`, 'Path=/', 'HttpOnly', 'SameSite=Strict', `Max-Age=${SESSION_MAX_AGE_S}`, ...(secure ? ['Secure'] : [])].join('; ');
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
