/**
 * Faster text measuring for pdfkit's built-in (AFM) fonts, the same numbers. pdfkit measures a
 * string glyph by glyph, looking each pair's kerning up by a string key made on the spot
 * (`"A\0V"`), and does it several times per string drawn (the width for the layout, again for
 * the drawing, again to move past it). A report of a month of runs draws tens of thousands of
 * table cells: most of its PDF time was there.
 *
 * `fastStandardFonts` gives each named font of the document its own `widthOfString` and `encode`
 * that ask pdfkit's font the same questions once per character and per pair of characters and
 * keep the answers (and a string's width, for strings that come back: "pass", a policy's name),
 * then add the advances in the same order: the widths, positions and so the PDF are as before.
 * A font that is not pdfkit's AFM kind (an embedded font, another pdfkit) is left as it is.
 */

type Doc = PDFKit.PDFDocument;

interface AfmFont {
  characterToGlyph(charCode: number): string;
  widthOfGlyph(glyph: string): number;
  getKernPair(left: string, right: string | undefined): number;
  encodeText(text: string): string[];
}

interface GlyphPosition {
  xAdvance: number;
  yAdvance: number;
  xOffset: number;
  yOffset: number;
  advanceWidth: number;
}

interface StandardFont {
  font: AfmFont;
  widthOfString(text: string, size: number, features?: unknown): number;
  encode(text: string, features?: unknown): [string[], GlyphPosition[]];
}

function isStandardFont(font: unknown): font is StandardFont {
  const f = font as Partial<StandardFont> | null;
  const afm = f?.font as Partial<AfmFont> | undefined;
  return (
    typeof f?.widthOfString === 'function' &&
    typeof f.encode === 'function' &&
    typeof afm?.characterToGlyph === 'function' &&
    typeof afm.widthOfGlyph === 'function' &&
    typeof afm.getKernPair === 'function' &&
    typeof afm.encodeText === 'function'
  );
}

/** Strings up to this long have their width kept; at most this many of them per font. */
const KEEP_MAX_LENGTH = 64;
const KEEP_MAX_COUNT = 50_000;

export function fastStandardFonts(doc: Doc, names: readonly string[]): void {
  const internal = doc as unknown as { _font: unknown; _fontSource: unknown };
  const before = internal._fontSource;
  for (const name of names) {
    doc.font(name);
    if (isStandardFont(internal._font)) measureOnce(internal._font);
  }
  if (typeof before === 'string') doc.font(before);
}

function measureOnce(font: StandardFont): void {
  const afm = font.font;
  // Glyphs numbered as met; per character code its glyph's number (0: not yet asked).
  const glyphOfCode = new Map<number, number>();
  const lowCodes = new Int32Array(256);
  const names: string[] = [''];
  const widths: number[] = [0];
  const hexes: string[] = [''];
  const lastKern: number[] = [0];
  const kerns = new Map<number, number>();
  const kept = new Map<string, number>();

  const glyph = (code: number): number => {
    const known = code < 256 ? lowCodes[code]! : (glyphOfCode.get(code) ?? 0);
    if (known !== 0) return known;
    const name = afm.characterToGlyph(code);
    const id = names.length;
    names.push(name);
    widths.push(afm.widthOfGlyph(name));
    hexes.push(afm.encodeText(String.fromCharCode(code))[0]!);
    // The last glyph of a string is kerned with nothing (pdfkit asks all the same).
    lastKern.push(afm.getKernPair(name, undefined));
    if (code < 256) lowCodes[code] = id;
    else glyphOfCode.set(code, id);
    return id;
  };
  const kern = (left: number, right: number): number => {
    const key = left * 65536 + right;
    let k = kerns.get(key);
    if (k === undefined) {
      k = afm.getKernPair(names[left]!, names[right]!);
      kerns.set(key, k);
    }
    return k;
  };
  /** The string's advances added up, in 1/1000 of the font size, as pdfkit adds them. */
  const units = (text: string): number => {
    const n = text.length;
    let width = 0;
    let left = n > 0 ? glyph(text.charCodeAt(0)) : 0;
    for (let i = 0; i < n; i++) {
      const right = i + 1 < n ? glyph(text.charCodeAt(i + 1)) : 0;
      width += widths[left]! + (right === 0 ? lastKern[left]! : kern(left, right));
      left = right;
    }
    return width;
  };

  font.widthOfString = (string: string, size: number): number => {
    const text = `${string}`;
    let width: number | undefined;
    if (text.length <= KEEP_MAX_LENGTH) {
      width = kept.get(text);
      if (width === undefined) {
        width = units(text);
        if (kept.size < KEEP_MAX_COUNT) kept.set(text, width);
      }
    } else {
      width = units(text);
    }
    const scale = size / 1000;
    return width * scale;
  };

  font.encode = (string: string): [string[], GlyphPosition[]] => {
    const text = `${string}`;
    const n = text.length;
    const encoded: string[] = new Array<string>(n);
    const positions: GlyphPosition[] = new Array<GlyphPosition>(n);
    let left = n > 0 ? glyph(text.charCodeAt(0)) : 0;
    for (let i = 0; i < n; i++) {
      const right = i + 1 < n ? glyph(text.charCodeAt(i + 1)) : 0;
      encoded[i] = hexes[left]!;
      positions[i] = { xAdvance: widths[left]! + (right === 0 ? lastKern[left]! : kern(left, right)), yAdvance: 0, xOffset: 0, yOffset: 0, advanceWidth: widths[left]! };
      left = right;
    }
    return [encoded, positions];
  };
}
