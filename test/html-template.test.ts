import t from 'tap';
import { escapeHtml, html, joinHtml, raw, SafeHtml } from '../orchestrator/core/html.js';

// core/html.ts: the one way markup is built (dashboard, monthly report and its charts, alert mails).

t.test('every interpolated value is escaped, in text and in attributes', async (t) => {
  const hostile = `<script>alert('x')</script> & "q"`;
  const escaped = '&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;';
  t.equal(html`<p>${hostile}</p>`.toString(), `<p>${escaped}</p>`, 'element text');
  t.equal(html`<a title="${hostile}" data-x='${hostile}'>x</a>`.toString(), `<a title="${escaped}" data-x='${escaped}'>x</a>`, 'double- and single-quoted attributes');
  t.equal(html`<a title="${'"><img src=x onerror=alert(1)>'}">`.toString(), '<a title="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;">', 'an attribute cannot be closed');
  t.equal(escapeHtml(`<>&"'`), '&lt;&gt;&amp;&quot;&#39;', 'the one table');
  t.equal(html`${12}/${0}/${-1.5}`.toString(), '12/0/-1.5', 'numbers as written');
  t.equal(html`<b>${'plain text, no change'}</b>`.toString(), '<b>plain text, no change</b>');
});

t.test('fragments nest without being escaped twice', async (t) => {
  const inner = html`<i>${'a & b'}</i>`;
  t.ok(inner instanceof SafeHtml);
  const outer = html`<p>${inner} ${'<x>'}</p>`;
  t.equal(outer.toString(), '<p><i>a &amp; b</i> &lt;x&gt;</p>');
  t.equal(html`<div>${outer}</div>`.toString(), '<div><p><i>a &amp; b</i> &lt;x&gt;</p></div>', 'three levels, escaped once');
  t.equal(html`${'&amp;'}`.toString(), '&amp;amp;', 'a string that looks escaped is still a string');
});

t.test('arrays, null, undefined and false', async (t) => {
  t.equal(html`<ul>${['<a>', html`<li>b</li>`, 3, null, ['c&', html`<br>`]]}</ul>`.toString(), '<ul>&lt;a&gt;<li>b</li>3c&amp;<br></ul>', 'joined with nothing; strings escaped, fragments kept, nested arrays flattened');
  t.equal(html`[${null}][${undefined}][${false}][${''}]`.toString(), '[][][][]', 'nothing rendered');
  const cond = (ok: boolean) => html`<td${ok && html` class="ok"`}>`;
  t.equal(cond(true).toString(), '<td class="ok">');
  t.equal(cond(false).toString(), '<td>');
  t.equal(joinHtml(['a<', html`<b>b</b>`], html`<br>`).toString(), 'a&lt;<br><b>b</b>', 'joinHtml with a markup separator');
  t.equal(joinHtml(['x', 'y'], ', ').toString(), 'x, y', 'and a text separator (escaped)');
});

t.test('raw() trusts only what it is given', async (t) => {
  const css = raw('body{font-family:"Segoe UI"}');
  t.equal(html`<style>${css}</style>`.toString(), '<style>body{font-family:"Segoe UI"}</style>', 'kept as it is');
  t.equal(html`${raw('<b>')}${'<b>'}`.toString(), '<b>&lt;b&gt;', 'the next value is escaped again');
  t.equal(String(html`<x>`), '<x>', 'toString gives the markup');
});
