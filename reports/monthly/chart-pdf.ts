import { type Chart, type ChartShape, MARKER, round } from './charts.js';
import { toWinAnsi } from './win-ansi.js';

/**
 * A chart's shapes (charts.ts) drawn with pdfkit's own path and text operators, in the chart's
 * units scaled to `width`: what the SVG shows, in the same order, without parsing the SVG back
 * (a month's chart has some 1,500 run markers; drawn through an SVG renderer they cost most of
 * the PDF's time). Markers of one kind and colour in a row share their colour and line settings;
 * each is still painted on its own, in the SVG's order.
 */
type Doc = PDFKit.PDFDocument;

export function drawChart(doc: Doc, chart: Chart, x: number, y: number, width: number): void {
  const k = width / chart.width;
  doc.save();
  doc.translate(x, y).scale(k);
  doc.rect(0, 0, chart.width, chart.height).clip();
  // SVG's stroke defaults (butt caps, miter joins up to 4).
  doc.lineCap('butt').lineJoin('miter').miterLimit(4);
  let markerStyle: string | null = null;
  for (const item of chart.items) {
    for (const s of item) {
      if (s.kind === 'marker') {
        markerStyle = marker(doc, s, markerStyle);
      } else {
        markerStyle = null;
        shape(doc, s);
      }
    }
  }
  doc.restore();
}

/** An SVG dash array ("8 3 2 3"): pdfkit takes an array, its typings only a number. */
function dash(doc: Doc, spec: string): void {
  const lengths = spec.split(/[\s,]+/).map(Number);
  (doc.dash as unknown as (this: Doc, length: number[], options: object) => Doc).call(doc, lengths, {});
}

function shape(doc: Doc, s: Exclude<ChartShape, { kind: 'marker' }>): void {
  switch (s.kind) {
    case 'rect':
      doc.rect(s.x, s.y, s.width, s.height).fill(s.fill);
      return;
    case 'line':
    case 'polyline': {
      const special = s.dash !== undefined || (s.kind === 'line' && s.opacity !== undefined);
      if (special) doc.save();
      if (s.dash !== undefined) dash(doc, s.dash);
      if (s.kind === 'line') {
        if (s.opacity !== undefined) doc.strokeOpacity(s.opacity);
        doc.moveTo(s.x1, s.y1).lineTo(s.x2, s.y2);
      } else {
        s.points.forEach(([px, py], i) => (i === 0 ? doc.moveTo(px, py) : doc.lineTo(px, py)));
      }
      doc.lineWidth(s.width).stroke(s.stroke);
      if (special) doc.restore();
      return;
    }
    case 'text': {
      const text = toWinAnsi(s.text);
      doc.font('Helvetica').fontSize(s.size).fillColor(s.fill);
      const w = s.anchor === undefined ? 0 : doc.widthOfString(text);
      const dx = s.anchor === 'end' ? -w : s.anchor === 'middle' ? -w / 2 : 0;
      if (s.vertical) {
        doc.save();
        doc.translate(s.x, s.y).rotate(-90);
        doc.text(text, dx, 0, { lineBreak: false, baseline: 'alphabetic' });
        doc.restore();
      } else {
        doc.text(text, s.x + dx, s.y, { lineBreak: false, baseline: 'alphabetic' });
      }
      return;
    }
  }
}

/** One run's marker, as charts.ts's SVG has it (coordinates to a tenth); returns the style now set. */
function marker(doc: Doc, s: Extract<ChartShape, { kind: 'marker' }>, current: string | null): string {
  const cx = s.x;
  const cy = s.y;
  if (s.verdict === 'fail') {
    const { d, stroke, width } = MARKER.fail;
    if (current !== 'fail') doc.lineWidth(width).strokeColor(stroke);
    doc
      .moveTo(round(cx - d), round(cy - d))
      .lineTo(round(cx + d), round(cy + d))
      .moveTo(round(cx - d), round(cy + d))
      .lineTo(round(cx + d), round(cy - d))
      .stroke();
    return 'fail';
  }
  if (s.verdict === 'error') {
    const { d, stroke, width, fill } = MARKER.error;
    if (current !== 'error') doc.lineWidth(width).strokeColor(stroke).fillColor(fill);
    const X = round(cx);
    const Y = round(cy);
    doc
      .moveTo(X, round(cy - d))
      .lineTo(round(cx + d), Y)
      .lineTo(X, round(cy + d))
      .lineTo(round(cx - d), Y)
      .closePath()
      .fillAndStroke();
    return 'error';
  }
  const { r, stroke, width } = MARKER.pass;
  const style = `pass ${s.color}`;
  if (current !== style) doc.lineWidth(width).strokeColor(stroke).fillColor(s.color);
  doc.circle(round(cx), round(cy), r).fillAndStroke();
  return style;
}
