import { PNG } from 'pngjs';

/**
 * The guest's screen as QEMU's `screendump` gives it (PNG), compared frame to frame, and its
 * text: read from VGA text memory when the guest is in text mode, by OCR otherwise.
 */

export interface Frame {
  png: Buffer;
  width: number;
  height: number;
  /** RGBA pixels. */
  data: Buffer;
}

export function decodeFrame(png: Buffer): Frame {
  const image = PNG.sync.read(png);
  return { png, width: image.width, height: image.height, data: image.data };
}

/** Changes within a box this small are a blinking cursor (one character cell, large fonts included). */
const CURSOR_BOX = { width: 32, height: 48 };

/**
 * Whether the screen changed between two frames: any change outside one cursor-sized box. A
 * blinking cursor changes one cell; a new prompt line changes a few hundred pixels spread over a
 * line (0.2% of an 800x600 screen), so a share threshold alone would miss it.
 */
export function screenChanged(a: Frame | undefined, b: Frame): boolean {
  if (!a || a.width !== b.width || a.height !== b.height) return true;
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -1;
  let maxY = -1;
  for (let i = 0, p = 0; i < a.data.length; i += 4, p++) {
    if (a.data[i] === b.data[i] && a.data[i + 1] === b.data[i + 1] && a.data[i + 2] === b.data[i + 2]) continue;
    const x = p % b.width;
    const y = (p - x) / b.width;
    if (x < minX) minX = x;
    if (x > maxX) maxX = x;
    if (y < minY) minY = y;
    if (y > maxY) maxY = y;
  }
  if (maxX < 0) return false;
  return maxX - minX >= CURSOR_BOX.width || maxY - minY >= CURSOR_BOX.height;
}

/** Whether the whole frame is one colour (a blank screen: nothing to read). */
export function isBlank(f: Frame): boolean {
  const d = f.data;
  for (let i = 4; i < d.length; i += 4) {
    if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2]) return false;
  }
  return true;
}

/**
 * VGA text modes render 80 columns at 720 or 640 pixels and 25 or 50 rows at 400 pixels; the
 * graphics modes a guest's kernel or Windows sets are 640x480 and larger.
 */
export function textModeGeometry(f: Pick<Frame, 'width' | 'height'>): { cols: number; rows: number } | undefined {
  if (f.height !== 400 || (f.width !== 720 && f.width !== 640)) return undefined;
  return { cols: 80, rows: 25 };
}

/** The address and size of the text buffer to read for a geometry. */
export const VGA_TEXT_BASE = 0xb8000;

/**
 * Text from the output of HMP `xp /Nxb 0xb8000` (lines like `00000000000b8000: 0x44 0x07 ...`):
 * every other byte is a character (code page 437), the ones between are colours.
 */
export function textFromXp(output: string, cols: number, rows: number): string {
  const bytes: number[] = [];
  for (const line of output.split('\n')) {
    const colon = line.indexOf(':');
    if (colon === -1) continue;
    for (const hex of line.slice(colon + 1).trim().split(/\s+/)) {
      if (/^0x[0-9a-f]{1,2}$/i.test(hex)) bytes.push(parseInt(hex, 16));
    }
  }
  const lines: string[] = [];
  for (let r = 0; r < rows; r++) {
    let text = '';
    for (let c = 0; c < cols; c++) {
      const ch = bytes[(r * cols + c) * 2];
      text += ch === undefined ? ' ' : cp437(ch);
    }
    lines.push(text.trimEnd());
  }
  return trimBlankLines(lines.join('\n'));
}

/** Printable ASCII as is; box drawing and blocks as plain marks; the rest a space. */
function cp437(b: number): string {
  if (b >= 0x20 && b < 0x7f) return String.fromCharCode(b);
  if (b >= 0xb3 && b <= 0xda) return '+';
  if (b >= 0xb0 && b <= 0xb2) return '#';
  if (b >= 0xdb && b <= 0xdf) return '#';
  return ' ';
}

export function trimBlankLines(text: string): string {
  return text.replace(/^(\s*\n)+/, '').replace(/(\n\s*)+$/, '');
}
