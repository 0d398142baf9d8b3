import { html, type SafeHtml } from '../core/html.js';
import { page } from './html.js';

/** GET /login: the form a token is pasted into; POST /login sets the session cookie. */
export function loginPage(opts: { next: string; error?: string }): SafeHtml {
  const body = html`<form class="login" method="post" action="/login">
<h1>Sign in</h1>
<p class="muted">Paste an access token. An administrator makes one with <code>backproof tokens create --admin</code> or <code>--client NAME</code>.</p>
${opts.error && html`<p class="err" role="alert">${opts.error}</p>`}
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="off" spellcheck="false" placeholder="bpt_..." required autofocus>
<input type="hidden" name="next" value="${opts.next}">
<button type="submit">Sign in</button>
<p class="muted small">The token is kept in an HttpOnly cookie of this site for 12 hours, or until you log out.</p>
</form>`;
  return page({ title: 'Sign in', body });
}
