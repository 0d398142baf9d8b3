/**
 * PDF text in pdfkit's built-in fonts (Helvetica, Courier) can only hold WinAnsi (Windows-1252)
 * characters; anything else would print as garbage. `toWinAnsi` keeps WinAnsi characters,
 * transliterates Latin letters with marks outside it (ł -> l, ő -> o), Greek and Cyrillic, and
 * puts `?` for the rest (CJK, emoji). HTML, CSV and JSON keep the original text.
 */

/** Windows-1252's characters in 0x80-0x9F. */
const CP1252_EXTRA = new Set('€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ');

const LATIN: Record<string, string> = {
  Ł: 'L', ł: 'l', Đ: 'D', đ: 'd', Ħ: 'H', ħ: 'h', ı: 'i', Ŀ: 'L', ŀ: 'l', Ŋ: 'NG', ŋ: 'ng', ſ: 's', Ŧ: 'T', ŧ: 't', ĸ: 'k',
  Ə: 'E', ə: 'e', Ɛ: 'E', ɛ: 'e', 'ǈ': 'Lj', 'ǉ': 'lj', 'ǋ': 'Nj', 'ǌ': 'nj', Ǆ: 'DZ', ǆ: 'dz', Ĳ: 'IJ', ĳ: 'ij',
  '\u2010': '-', '\u2011': '-', '\u2012': '-', '\u2212': '-', '\u2032': "'", '\u2033': '"', '\u00a0': ' ', '\u2009': ' ', '\u202f': ' ',
};

const CYRILLIC = 'а:a б:b в:v г:g д:d е:e ё:e ж:zh з:z и:i й:y к:k л:l м:m н:n о:o п:p р:r с:s т:t у:u ф:f х:kh ц:ts ч:ch ш:sh щ:shch ъ: ы:y ь: э:e ю:yu я:ya і:i ї:yi є:ye ґ:g ђ:dj ј:j љ:lj њ:nj ћ:c џ:dz ў:u';
const GREEK = 'α:a β:v γ:g δ:d ε:e ζ:z η:i θ:th ι:i κ:k λ:l μ:m ν:n ξ:x ο:o π:p ρ:r σ:s ς:s τ:t υ:y φ:f χ:ch ψ:ps ω:o';

const SCRIPTS: Record<string, string> = {};
for (const pair of `${CYRILLIC} ${GREEK}`.split(' ')) {
  const [from, to] = pair.split(':') as [string, string];
  SCRIPTS[from] = to;
  const upper = from.toUpperCase();
  if (upper !== from) SCRIPTS[upper] = to.charAt(0).toUpperCase() + to.slice(1);
}

function isWinAnsi(ch: string): boolean {
  const c = ch.codePointAt(0)!;
  return (c >= 0x20 && c <= 0x7e) || (c >= 0xa0 && c <= 0xff) || CP1252_EXTRA.has(ch);
}

function one(ch: string): string {
  if (ch === '\n') return ch;
  if (ch === '\t' || ch === '\r') return ' ';
  if (isWinAnsi(ch)) return ch;
  const known = LATIN[ch] ?? SCRIPTS[ch];
  if (known !== undefined) return known;
  // Letters with marks: the base letter (ő -> o, ά -> α -> a) when that is printable.
  const base = ch.normalize('NFD').replace(/\p{M}+/gu, '');
  if (base !== ch && base !== '') {
    const mapped = [...base].map((b) => (isWinAnsi(b) ? b : (LATIN[b] ?? SCRIPTS[b] ?? ''))).join('');
    if (mapped !== '') return mapped;
  }
  if (/\p{M}/u.test(ch)) return ''; // a lone combining mark
  if (/[\p{Cc}\p{Cf}]/u.test(ch)) return '';
  return '?';
}

/** `text` in characters pdfkit's built-in fonts can show. */
export function toWinAnsi(text: string): string {
  // NFC first, so that "e" + combining acute becomes "é", which WinAnsi has.
  let out = '';
  for (const ch of text.normalize('NFC')) out += one(ch);
  return out;
}
