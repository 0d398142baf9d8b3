/**
 * pdfkit writes every operator (a colour, a line, a text's position) to the page as a byte array
 * of its own: a report of ~100 pages writes some 200,000 of them. `batchContent` keeps a page's
 * operators as strings and writes them to the page at once (on a switch to another page and
 * before the pages are flushed), joined as pdfkit would have written them one by one: the page's
 * bytes are the same. Only `addContent` is held back: pdfkit writes to a page directly only to
 * close marked content (a tagged PDF), which the report does not make.
 */

type Doc = PDFKit.PDFDocument;

interface Page {
  write(chunk: string | Uint8Array): void;
}

interface Internals {
  page: Page;
  addContent(data: string): Doc;
  flushPages(): void;
}

export function batchContent(doc: Doc): void {
  const internal = doc as unknown as Internals;
  if (typeof internal.addContent !== 'function' || typeof internal.flushPages !== 'function') return;
  const flushPages = internal.flushPages.bind(doc);
  let page: Page | null = null;
  // The page's operators so far, each with its newline (a string grown in place: quicker to make
  // and to turn into bytes than an array joined).
  let pending = '';
  const flush = (): void => {
    // pdfkit keeps the low byte of each character (its operators are ASCII; a text's characters
    // go out as hex).
    if (page !== null && pending.length > 0) page.write(Buffer.from(pending, 'latin1'));
    pending = '';
  };
  internal.addContent = (data: string): Doc => {
    if (internal.page !== page) {
      flush();
      page = internal.page;
    }
    pending += `${data}\n`;
    return doc;
  };
  internal.flushPages = (): void => {
    flush();
    page = null;
    flushPages();
  };
}
