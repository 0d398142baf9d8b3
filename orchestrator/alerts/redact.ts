/**
 * Scrubbing secrets out of what the alert channels return and log. A channel builds one
 * redactor from the secret values the config loader collected plus the ones it knows itself
 * (SMTP password, webhook header values and URL query), and runs every error message and log
 * line through it.
 */
export { combineRedactors, createRedactor, type Redactor } from '../core/secrets.js';

/**
 * A URL fit for messages: scheme, host and path, no user info, query shown as `?…`, fragment
 * dropped. Path segments longer than 20 characters are shown as `…` too: Slack, Teams and
 * Discord webhook URLs carry their token in the path.
 */
export function describeUrl(url: string | URL): string {
  let u: URL;
  try {
    u = typeof url === 'string' ? new URL(url) : url;
  } catch {
    return '(invalid URL)';
  }
  const path = u.pathname
    .split('/')
    .map((seg) => (seg.length > 20 ? '…' : seg))
    .join('/');
  return `${u.protocol}//${u.host}${path}${u.search ? '?…' : ''}`;
}

/** Every secret-looking part of a URL: its password, query, query values, long path segments, the URL. */
export function urlSecrets(url: string): string[] {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return [url];
  }
  const out = [url, u.search.slice(1), decodeURIComponent(u.password)];
  for (const [, v] of u.searchParams) out.push(v);
  for (const seg of u.pathname.split('/')) if (seg.length > 20) out.push(seg, decodeURIComponent(seg));
  return out.filter((s) => s.length > 0);
}

/** Header values are credentials more often than not: the value and each word of it. */
export function headerSecrets(headers: Record<string, string> | undefined): string[] {
  const out: string[] = [];
  for (const value of Object.values(headers ?? {})) {
    out.push(value);
    for (const word of value.split(/\s+/)) if (word.length >= 8) out.push(word);
  }
  return out;
}

/** One line, at most `max` characters. */
export function oneLine(text: string, max = 300): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? flat.slice(0, max - 1) + '…' : flat;
}
