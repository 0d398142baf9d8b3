import { drawChart } from './chart-pdf.js';
import type { Chart } from './charts.js';
import type { ReportRun } from './model.js';
import { verdictText } from './text.js';
import { toWinAnsi } from './win-ansi.js';

/**
 * The PDF report's building blocks (render-pdf.ts and coverage-pdf.ts): A4 page measures, colours,
 * headings, paragraphs, bullets, tables with a repeated header, and the charts (charts.ts's
 * shapes, drawn by chart-pdf.ts). Every string goes through `toWinAnsi` (the built-in Helvetica and Courier).
 */
export const MARGIN = 50;
export const PAGE_W = 595.28;
export const PAGE_H = 841.89;
export const CONTENT_W = PAGE_W - 2 * MARGIN;
export const BLUE = '#1565c0';
export const TEXT = '#222222';
export const MUTED = '#666666';
export const COLORS = { pass: '#2e7d32', fail: '#c62828', error: '#ef6c00' } as const;

export interface Col {
  header: string;
  width: number;
  align?: 'left' | 'right';
  mono?: boolean;
}

export interface Cell {
  text: string;
  color?: string;
  bold?: boolean;
}

export type Doc = PDFKit.PDFDocument;

export const bottom = (doc: Doc): number => doc.page.height - doc.page.margins.bottom;

export function ensureSpace(doc: Doc, height: number): void {
  if (doc.y + height > bottom(doc)) doc.addPage();
}

export function heading(doc: Doc, text: string, level: 1 | 2 = 1): void {
  ensureSpace(doc, level === 1 ? 90 : 60);
  doc.x = MARGIN;
  if (level === 1) {
    doc.moveDown(0.6);
    doc.font('Helvetica-Bold').fontSize(14).fillColor(TEXT).text(toWinAnsi(text), MARGIN, doc.y, { width: CONTENT_W });
    const y = doc.y + 2;
    doc.moveTo(MARGIN, y).lineTo(MARGIN + CONTENT_W, y).lineWidth(1.5).strokeColor(BLUE).stroke();
    doc.y = y + 8;
  } else {
    doc.moveDown(0.4);
    doc.font('Helvetica-Bold').fontSize(10.5).fillColor(TEXT).text(toWinAnsi(text), MARGIN, doc.y, { width: CONTENT_W });
    doc.moveDown(0.2);
  }
}

export function para(doc: Doc, text: string, opts: { size?: number; color?: string; bold?: boolean; indent?: number; gap?: number } = {}): void {
  const size = opts.size ?? 9;
  doc.font(opts.bold ? 'Helvetica-Bold' : 'Helvetica').fontSize(size).fillColor(opts.color ?? TEXT);
  const indent = opts.indent ?? 0;
  ensureSpace(doc, Math.min(doc.heightOfString(toWinAnsi(text), { width: CONTENT_W - indent }), 120));
  doc.text(toWinAnsi(text), MARGIN + indent, doc.y, { width: CONTENT_W - indent });
  doc.y += opts.gap ?? 3;
}

export function bullets(doc: Doc, items: string[], opts: { size?: number; color?: string } = {}): void {
  for (const item of items) {
    const size = opts.size ?? 8.5;
    doc.font('Helvetica').fontSize(size).fillColor(opts.color ?? TEXT);
    const text = toWinAnsi(item);
    ensureSpace(doc, Math.min(doc.heightOfString(text, { width: CONTENT_W - 14 }), 100));
    const y = doc.y;
    doc.text('•', MARGIN + 4, y, { width: 10, lineBreak: false });
    doc.text(text, MARGIN + 14, y, { width: CONTENT_W - 14 });
    doc.y += 1.5;
  }
}

/** A table with a repeated header, rows kept whole on a page. */
export function table(doc: Doc, cols: Col[], rows: Array<Array<string | Cell>>, size = 7.5): void {
  const pad = 3;
  const cellFont = (col: Col, cell: Cell): string => (col.mono ? 'Courier' : cell.bold ? 'Helvetica-Bold' : 'Helvetica');
  // Most cells fit on one line: measured once (the width kept for the drawing), drawn without
  // pdfkit's line wrapper (which lays the text out word by word, for the height and again for the
  // drawing). A long table (a month of runs) spent most of its time there. A left-aligned cell of
  // several lines that each fit (a run id over its hash) is drawn line by line, where the wrapper
  // would have put each line (the next line one line height lower).
  interface Laid {
    cell: Cell;
    /** The text's width when it fits on one line, else null. */
    oneLine: number | null;
    /** Its lines when each fits on a line of its own (a left-aligned cell), else null (wrapped by pdfkit). */
    lines: string[] | null;
    height: number;
  }
  const lay = (col: Col, cell: Cell, fontSize: number): Laid => {
    doc.font(cellFont(col, cell)).fontSize(fontSize);
    const text = cell.text || ' ';
    const fits = col.width - 2 * pad - 0.5;
    if (!text.includes('\n')) {
      const w = doc.widthOfString(text);
      if (w <= fits) return { cell, oneLine: w, lines: null, height: doc.currentLineHeight(true) };
    } else if (col.align !== 'right') {
      const lines = text.split('\n');
      if (lines.every((line) => line.length > 0 && doc.widthOfString(line) <= fits)) {
        // As pdfkit's heightOfString adds it up.
        const lineHeight = doc.currentLineHeight(true);
        let y = doc.y;
        for (let i = 0; i < lines.length; i++) y += lineHeight;
        return { cell, oneLine: null, lines, height: y - doc.y };
      }
    }
    return { cell, oneLine: null, lines: null, height: doc.heightOfString(text, { width: col.width - 2 * pad }) };
  };
  const draw = (col: Col, laid: Laid, x: number, y: number): void => {
    const width = col.width - 2 * pad;
    const { text } = laid.cell;
    if (laid.lines !== null) {
      const lineHeight = doc.currentLineHeight(true);
      let lineY = y + pad;
      for (const line of laid.lines) {
        doc.text(line, x + pad, lineY, { lineBreak: false });
        lineY += lineHeight;
      }
      return;
    }
    if (laid.oneLine === null) {
      doc.text(text, x + pad, y + pad, { width, align: col.align ?? 'left' });
      return;
    }
    const dx = col.align === 'right' ? width - laid.oneLine : 0;
    doc.text(text, x + pad + dx, y + pad, { lineBreak: false });
  };
  const header = (): void => {
    const laid = cols.map((c) => lay({ ...c, mono: false }, { text: toWinAnsi(c.header), bold: true }, size));
    const h = Math.max(...laid.map((l) => l.height)) + 2 * pad;
    const y = doc.y;
    doc.rect(MARGIN, y, CONTENT_W, h).fill('#eef2f8');
    let x = MARGIN;
    cols.forEach((c, i) => {
      doc.font('Helvetica-Bold').fontSize(size).fillColor(TEXT);
      draw(c, laid[i]!, x, y);
      x += c.width;
    });
    doc.y = y + h;
  };
  ensureSpace(doc, 40);
  header();
  rows.forEach((raw, r) => {
    const laid = cols.map((c, i): Laid => {
      const given = raw[i];
      const cell: Cell = given === undefined ? { text: '' } : typeof given === 'string' ? { text: toWinAnsi(given) } : { ...given, text: toWinAnsi(given.text) };
      return lay(c, cell, size);
    });
    const h = Math.max(...laid.map((l) => l.height)) + 2 * pad;
    if (doc.y + h > bottom(doc)) {
      doc.addPage();
      header();
    }
    const y = doc.y;
    if (r % 2 === 1) doc.rect(MARGIN, y, CONTENT_W, h).fill('#f8f8f8');
    let x = MARGIN;
    cols.forEach((c, i) => {
      const { cell } = laid[i]!;
      doc.font(cellFont(c, cell)).fontSize(size).fillColor(cell.color ?? TEXT);
      draw(c, laid[i]!, x, y);
      x += c.width;
    });
    doc.moveTo(MARGIN, y + h).lineTo(MARGIN + CONTENT_W, y + h).lineWidth(0.4).strokeColor('#d0d0d0').stroke();
    doc.y = y + h;
  });
  doc.x = MARGIN;
  doc.y += 6;
}

/** Column widths from proportions, filling the content width. */
export function widths(...parts: number[]): number[] {
  const total = parts.reduce((a, b) => a + b, 0);
  return parts.map((p) => (p / total) * CONTENT_W);
}

export function verdictCell(v: ReportRun['verdict'], status?: string): Cell {
  const text = verdictText(v, status);
  if (status === 'running' || status === 'cancelled' || v === null) return { text, color: MUTED };
  return { text, color: COLORS[v], bold: v !== 'pass' };
}

export function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

/** A chart under its title, the page's content width wide (its height scaled with it), framed. */
export function chart(doc: Doc, c: Chart, title: string): void {
  const height = (c.height * CONTENT_W) / c.width;
  ensureSpace(doc, height + 24);
  doc.font('Helvetica-Bold').fontSize(9.5).fillColor(TEXT).text(toWinAnsi(title), MARGIN, doc.y, { width: CONTENT_W });
  doc.y += 3;
  const y = doc.y;
  drawChart(doc, c, MARGIN, y, CONTENT_W);
  doc.rect(MARGIN, y, CONTENT_W, height).lineWidth(0.5).strokeColor('#d0d0d0').stroke();
  doc.x = MARGIN;
  doc.y = y + height + 10;
}
