import { html, type SafeHtml } from '../core/html.js';
import { page } from './html.js';

/** GET /login: the form a token is pasted into; POST /login starts a session and sets its cookie. */
export function loginPage(opts: { next: string; error?: string }): SafeHtml {
  const body = html`<form class="login" method="post" action="/login">
<h1>Sign in</h1>
<p class="muted">Paste an access token. An administrator makes one with <code>backproof tokens create --admin</code> or <code>--client NAME</code>.</p>
${opts.error && html`<p class="err" role="alert">${opts.error}</p>`}
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="off" spellcheck="false" placeholder="bpt_..." required autofocus>
<input type="hidden" name="next" value="${opts.next}">
<button type="submit">Sign in</button>
<p class="muted small">This starts a session of 12 hours, or until you log out; the browser keeps only the session's id, never the token.</p>
</form>`;
  return page({ title: 'Sign in', body });
}
