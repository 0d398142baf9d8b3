/**
 * HTML (and SVG) built only through the `html` tagged template: every interpolated value is
 * escaped (text and quoted attribute values alike) unless it is already a `SafeHtml` fragment
 * made by `html` itself, so fragments nest without double escaping. `raw()` trusts a string as
 * markup: for the rare constant (a style sheet), each use commented. The dashboard, the monthly
 * report, its charts and the alert mails all use this one escape table.
 */

/** The one escape table: enough for element text and for attribute values in double or single quotes. */
const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Markup that is safe to insert as it is. Made only by `html`, `raw` and `joinHtml`. */
export class SafeHtml {
  readonly #markup: string;
  private constructor(markup: string) {
    this.#markup = markup;
  }
  toString(): string {
    return this.#markup;
  }
  /** Not for callers: `html`, `raw` and `joinHtml` below are the ways in. */
  static fromTrusted(markup: string): SafeHtml {
    return new SafeHtml(markup);
  }
}

/** What may be interpolated: null, undefined and false render as nothing; arrays are joined with nothing between. */
export type HtmlValue = string | number | SafeHtml | null | undefined | false | readonly HtmlValue[];

const SPECIAL = /[&<>"']/;
const SPECIALS = /[&<>"']/g;

/** `text` escaped for element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  // Most values (names, times, numbers) have nothing to escape: test before replacing.
  return SPECIAL.test(text) ? text.replace(SPECIALS, (c) => ESCAPES[c]!) : text;
}

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof SafeHtml) return value.toString();
  if (Array.isArray(value)) return (value as readonly HtmlValue[]).map(render).join('');
  return escapeHtml(String(value));
}

/** html`<td title="${name}">${name}</td>`: the literal parts are markup, every value is escaped. */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!;
  return SafeHtml.fromTrusted(out);
}

/** Trusts `markup` as it is. Only for constants of our own (a style sheet): never for a value from evidence or config. */
export function raw(markup: string): SafeHtml {
  return SafeHtml.fromTrusted(markup);
}

/** The values escaped (fragments kept) and joined by `separator` (markup, e.g. html`<br>`). */
export function joinHtml(values: readonly HtmlValue[], separator: SafeHtml | string = ''): SafeHtml {
  return SafeHtml.fromTrusted(values.map(render).join(render(separator)));
}
