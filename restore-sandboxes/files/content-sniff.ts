import { entropy } from '../bytes.js';
/**
 * Does a document's content look like what its name says? Ransomware leaves files whose names
 * are unchanged (report.docx, ledger.csv) and whose bytes are random. Text should have low
 * entropy; office, PDF and image formats must start with their own signature (their content is
 * compressed, so entropy alone says nothing there).
 */
export type DocumentFamily = 'text' | 'signed';

const TEXT = new Set(['txt', 'csv', 'tsv', 'md', 'log', 'json', 'xml', 'html', 'htm', 'sql', 'yaml', 'yml', 'ini', 'conf', 'cfg', 'rtf', 'svg', 'tex', 'eml']);

const ZIP = [Buffer.from('PK\x03\x04', 'latin1'), Buffer.from('PK\x05\x06', 'latin1')];
const OLE = [Buffer.from('d0cf11e0a1b11ae1', 'hex')];
/** Signatures of formats whose content is compressed: the file must start with one. */
const SIGNATURES: Record<string, Buffer[]> = {
  docx: ZIP, xlsx: ZIP, pptx: ZIP, odt: ZIP, ods: ZIP, odp: ZIP, docm: ZIP, xlsm: ZIP,
  doc: OLE, xls: OLE, ppt: OLE, msg: OLE,
  pdf: [Buffer.from('%PDF-', 'latin1')],
  png: [Buffer.from('89504e470d0a1a0a', 'hex')],
  jpg: [Buffer.from('ffd8ff', 'hex')],
  jpeg: [Buffer.from('ffd8ff', 'hex')],
  gif: [Buffer.from('GIF8', 'latin1')],
};

/** Bytes of each file's start that are kept for the judgement. */
export const SNIFF_BYTES = 64 * 1024;
/** Shorter files are not judged: too few bytes to tell random from not. */
export const SNIFF_MIN_BYTES = 256;

export function documentFamily(name: string): DocumentFamily | undefined {
  const ext = /\.([A-Za-z0-9]{1,5})$/.exec(name)?.[1]?.toLowerCase();
  if (!ext) return undefined;
  if (TEXT.has(ext)) return 'text';
  return SIGNATURES[ext] ? 'signed' : undefined;
}

/**
 * Whether the start of a document looks random for its type: a signed format without its
 * signature and with high entropy, or text with the entropy of random bytes. Random data of n
 * bytes has an entropy close to min(8, log2 n); text stays below ~5.5 bits.
 */
export function looksRandom(name: string, head: Buffer): boolean | undefined {
  const family = documentFamily(name);
  if (!family || head.length < SNIFF_MIN_BYTES) return undefined;
  const threshold = Math.min(7.0, Math.log2(head.length) - 1.2);
  const high = entropy(head) >= threshold;
  if (family === 'text') return high;
  const ext = /\.([A-Za-z0-9]{1,5})$/.exec(name)![1]!.toLowerCase();
  const signed = SIGNATURES[ext]!.some((sig) => head.subarray(0, sig.length).equals(sig) || (ext === 'pdf' && head.subarray(0, 1024).includes(sig)));
  return !signed && high;
}
