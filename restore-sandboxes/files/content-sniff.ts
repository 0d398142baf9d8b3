import zlib from 'node:zlib';
import { entropy } from '../bytes.js';
/**
 * Does a restored file look random, as ransomware leaves the files it encrypts? Judged from the
 * CONTENT of the file's first bytes, whatever its name: ransomware may keep names unchanged
 * (report.docx) or rename at will (x.locked), so the name says nothing.
 *
 * - Bytes with the entropy of random data and no known format signature: random.
 * - A known format (zip-based office files, PDF, images, archives, media, databases) is dense by
 *   nature, so it is judged by its own structure instead: a signature followed by a structure
 *   that holds in the head is not random, whatever the entropy; a signature followed by broken
 *   structure (say, a PNG header over encrypted bytes) falls back to the entropy.
 * - Encrypted containers (OpenSSL `enc` output starting with "Salted__", age, binary OpenPGP)
 *   are deliberately NOT known formats: encrypted bytes are exactly what this probe exists to
 *   spot, and ransomware writes such containers. KeePass databases are the one exception: an
 *   encrypted file a user keeps on purpose. OpenPGP public keys are known: not encrypted.
 *
 * The structure checks are liberal: a real file made by a real tool must pass, including when
 * the head is cut mid-structure at SNIFF_BYTES; only a clear contradiction fails one.
 */

/** Bytes of each file's start that are kept for the judgement. */
export const SNIFF_BYTES = 64 * 1024;
/** Shorter files are not judged: too few bytes to tell random from not. */
export const SNIFF_MIN_BYTES = 256;
/** Bytes of the head whose entropy is measured. */
const ENTROPY_BYTES = 16 * 1024;

export interface ContentJudgement {
  /** A known format recognised by its signature, e.g. 'zip', 'gzip', 'png', 'pdf', 'sqlite' (undefined: none). */
  format?: string;
  /** For a known format: whether the structure visible in the head holds (false: signature present but what follows is broken). */
  intact?: boolean;
  /** Whether the content looks random (encrypted). */
  looksRandom: boolean;
  /**
   * An archive that wraps what it holds, as ransomware such as Qlocker leaves each file
   * (report.docx → report.docx.7z): `encrypted` for a zip whose first entry is encrypted
   * (traditional PKWARE or AES), `archive` for a 7z or RAR archive, whose encryption the head
   * does not show. Absent for anything else, a plain zip included (office files are zips).
   */
  container?: 'encrypted' | 'archive';
}

/**
 * The judgement of a file from its first bytes: undefined when head.length < SNIFF_MIN_BYTES.
 * `size` is the file's whole size; `head` its first bytes, at most SNIFF_BYTES.
 */
export function judgeContent(head: Buffer, size: number): ContentJudgement | undefined {
  return judge(head, Math.max(size, head.length));
}

/** Kept for compatibility: the judgement of the head alone; the name is ignored. */
export function looksRandom(_name: string, head: Buffer): boolean | undefined {
  // A head of SNIFF_BYTES was probably cut: the file's size is then unknown, not head.length.
  return judge(head, head.length < SNIFF_BYTES ? head.length : undefined)?.looksRandom;
}

function judge(head: Buffer, size: number | undefined): ContentJudgement | undefined {
  if (head.length < SNIFF_MIN_BYTES) return undefined;
  // Random data of n bytes has an entropy close to min(8, log2 n); text stays below ~5.5 bits,
  // base64 ~6. The first 16 KiB tell as well as 64 and cost a quarter.
  const sample = head.subarray(0, ENTROPY_BYTES);
  const high = (): boolean => entropy(sample) >= Math.min(7.0, Math.log2(sample.length) - 1.2);
  const known = FORMATS.find((f) => f.match(head, size));
  if (!known) return { looksRandom: high() };
  const intact = known.intact?.(head, size) ?? true;
  // Only a structure that holds is a container: noise after a signature is judged as noise.
  const container = !intact ? undefined : known.name === '7z' || known.name === 'rar' ? 'archive' : known.name === 'zip' && zipEncrypted(head) ? 'encrypted' : undefined;
  return { format: known.name, intact, looksRandom: !intact && high(), ...(container ? { container } : {}) };
}

interface Format {
  name: string;
  /** The signature (with `size` undefined when the file's size is unknown). */
  match: (h: Buffer, size: number | undefined) => boolean;
  /** The structure visible in the head; absent: the signature alone is the check. */
  intact?: (h: Buffer, size: number | undefined) => boolean;
}

/** Any of the signatures at `offset` (latin1 strings: '\x89PNG' is the byte 0x89 then "PNG"). */
function at(offset: number, ...signatures: string[]): (h: Buffer) => boolean {
  const sigs = signatures.map((s) => Buffer.from(s, 'latin1'));
  return (h) => sigs.some((sig) => h.length >= offset + sig.length && h.subarray(offset, offset + sig.length).equals(sig));
}
const sig = (...signatures: string[]): ((h: Buffer) => boolean) => at(0, ...signatures);

const FORMATS: Format[] = [
  // Archives and compressed streams.
  { name: 'zip', match: sig('PK\x03\x04', 'PK\x05\x06', 'PK\x07\x08'), intact: zipIntact },
  { name: 'gzip', match: sig('\x1f\x8b\x08'), intact: gzipIntact },
  // zlib without a preset dictionary (git loose objects): the header check bits (b0*256+b1) % 31 == 0.
  { name: 'zlib', match: sig('\x78\x01', '\x78\x5e', '\x78\x9c', '\x78\xda'), intact: (h) => inflates(h.subarray(2)) },
  { name: 'bzip2', match: (h) => sig('BZh')(h) && h[3]! >= 0x31 && h[3]! <= 0x39 && at(4, '\x31\x41\x59\x26\x53\x59', '\x17\x72\x45\x38\x50\x90')(h) },
  { name: 'xz', match: sig('\xfd7zXZ\x00') },
  { name: 'zstd', match: sig('\x28\xb5\x2f\xfd') },
  { name: 'lz4', match: sig('\x04\x22\x4d\x18') },
  { name: '7z', match: sig("7z\xbc\xaf'\x1c") },
  { name: 'rar', match: sig('Rar!\x1a\x07') },
  { name: 'cab', match: sig('MSCF') },
  { name: 'ar', match: sig('!<arch>\n') },
  { name: 'rpm', match: sig('\xed\xab\xee\xdb') },
  { name: 'squashfs', match: sig('hsqs') },
  { name: 'git-pack', match: sig('PACK') },
  { name: 'qcow2', match: sig('QFI\xfb') },
  // Documents, images, media.
  { name: 'pdf', match: (h) => h.subarray(0, 1024).includes('%PDF-', 0, 'latin1'), intact: (h) => h.length < 4096 || PDF_OBJECT.test(h.toString('latin1')) },
  { name: 'png', match: sig('\x89PNG\r\n\x1a\n'), intact: pngIntact },
  { name: 'jpeg', match: sig('\xff\xd8\xff'), intact: jpegIntact },
  { name: 'gif', match: sig('GIF87a', 'GIF89a') },
  // "BM" alone is too short a signature: the size field must say the file's size too.
  { name: 'bmp', match: (h, size) => sig('BM')(h) && (size === undefined ? h.readUInt32LE(2) >= h.length : h.readUInt32LE(2) === size) },
  // The first IFD lies inside the file.
  { name: 'tiff', match: sig('II*\x00', 'MM\x00*'), intact: (h, size) => tiffIfd(h) >= 8 && (size === undefined || tiffIfd(h) < size) },
  // webp, wav, avi: the RIFF size is the file's size - 8 (smaller allowed; the top values stand for "unknown" in streamed files).
  { name: 'riff', match: sig('RIFF'), intact: (h, size) => size === undefined || h.readUInt32LE(4) + 8 <= size || h.readUInt32LE(4) >= 0x7fff0000 },
  { name: 'iso-bmff', match: at(4, 'ftyp'), intact: bmffIntact },
  { name: 'matroska', match: sig('\x1a\x45\xdf\xa3') },
  // Camera and broadcast video (.ts, .mts, .m2ts): 188-byte packets (192 with a 4-byte timecode), each starting 0x47.
  { name: 'mpeg-ts', match: (h) => mpegTsStride(h) !== undefined },
  // MPEG program stream (.mpg, .vob): a pack header.
  { name: 'mpeg-ps', match: sig('\x00\x00\x01\xba') },
  // ASF (.wma, .wmv): the header object's GUID.
  { name: 'asf', match: sig('\x30\x26\xb2\x75\x8e\x66\xcf\x11') },
  // Older QuickTime files start with a moov, mdat, wide, free or skip atom rather than ftyp.
  { name: 'quicktime', match: at(4, 'moov', 'mdat', 'wide', 'free', 'skip', 'pnot'), intact: bmffIntact },
  // Virtual disks kept in file shares: VMware, Hyper-V, VirtualBox.
  { name: 'vmdk', match: sig('KDMV', '# Disk DescriptorFile') },
  { name: 'vhdx', match: sig('vhdxfile') },
  { name: 'vdi', match: at(0x40, '\x7f\x10\xda\xbe') },
  { name: 'psd', match: sig('8BPS') },
  { name: 'ogg', match: sig('OggS'), intact: (h) => h[4] === 0 && (h[5]! & 0xf8) === 0 },
  // The first metadata block is STREAMINFO, 34 bytes long.
  { name: 'flac', match: sig('fLaC'), intact: (h) => (h[4]! & 0x7f) === 0 && h.readUIntBE(5, 3) === 34 },
  // An ID3v2 tag: version 2..4, size in four 7-bit bytes.
  { name: 'mp3', match: sig('ID3'), intact: (h) => h[3]! >= 2 && h[3]! <= 4 && h[4] !== 0xff && [6, 7, 8, 9].every((i) => h[i]! < 0x80) },
  { name: 'mp3', match: (h) => mpegFrameLength(h, 0) !== undefined, intact: mpegFramesIntact },
  // Byte order mark fe ff at 28, sector shift 9 (512-byte sectors) or 12 (4096) at 30.
  { name: 'ole', match: sig('\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1'), intact: (h) => h[28] === 0xfe && h[29] === 0xff && [9, 12].includes(h.readUInt16LE(30)) },
  // Page size a power of two 512..32768, or 1 for 65536; payload fractions 64, 32, 32.
  { name: 'sqlite', match: sig('SQLite format 3\x00'), intact: (h) => { const p = h.readUInt16BE(16); return (p === 1 || (p >= 512 && (p & (p - 1)) === 0)) && h[21] === 64 && h[22] === 32 && h[23] === 32; } },
  { name: 'woff', match: sig('wOFF', 'wOF2') },
  { name: 'elf', match: sig('\x7fELF') },
  { name: 'java-class', match: sig('\xca\xfe\xba\xbe') },
  { name: 'keepass', match: sig('\x03\xd9\xa2\x9a') },
  // Public keys are not encrypted: keyrings (a public-key packet first) and GnuPG keyboxes.
  { name: 'openpgp-key', match: openpgpPublicKey },
  { name: 'gnupg-keybox', match: at(8, 'KBXf') },
  { name: 'java-keystore', match: sig('\xfe\xed\xfe\xed', '\xce\xce\xce\xce') },
  // DER (certificates, PKCS#12): one ASN.1 SEQUENCE whose length spans exactly the file.
  { name: 'der', match: (h, size) => h[0] === 0x30 && ((h[1] === 0x82 && h.readUInt16BE(2) + 4 === size) || (h[1] === 0x83 && h.readUIntBE(2, 3) + 5 === size)) },
  { name: 'iso9660', match: at(0x8001, 'CD001') },
];

/** Public-key algorithms of OpenPGP (RFC 4880, RFC 9580). */
const PGP_ALGORITHMS = new Set([1, 2, 3, 16, 17, 18, 19, 22, 25, 26, 27, 28]);

/** A public-key packet (tag 6, old or new format) of version 4..6 with a known algorithm: a keyring. */
function openpgpPublicKey(h: Buffer): boolean {
  const b1 = h[1]!;
  const header = h[0] === 0xc6 ? (b1 < 192 ? 2 : b1 < 224 ? 3 : b1 === 255 ? 6 : 0) : ({ 0x98: 2, 0x99: 3, 0x9a: 5 } as Record<number, number>)[h[0]!] ?? 0;
  return header > 0 && h[header]! >= 4 && h[header]! <= 6 && PGP_ALGORITHMS.has(h[header + 5]!);
}

const PDF_OBJECT = /\d[\0\t\n\f\r ]+\d+[\0\t\n\f\r ]+obj\b/;

/**
 * Whether a deflate stream (raw; cut anywhere, trailing bytes ignored) decodes without a data
 * error. Its first 16 KiB are tried: random bytes break deflate's rules within a few hundred.
 */
function inflates(data: Buffer): boolean {
  try {
    zlib.inflateRawSync(data.subarray(0, 16 * 1024), { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: 256 * 1024 });
    return true;
  } catch (err) {
    return (err as { code?: string }).code !== 'Z_DATA_ERROR'; // too much output to check: not a contradiction
  }
}

const ZIP_SIGNATURES = ['PK\x03\x04', 'PK\x01\x02', 'PK\x05\x06', 'PK\x07\x08', 'PK\x06\x06', 'PK\x06\x07'].map((s) => Buffer.from(s, 'latin1'));
/** Compression methods of the zip application note (stored, deflate, bzip2, lzma, zstd, xz, AES...). */
const ZIP_METHODS = new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 19, 20, 93, 94, 95, 96, 97, 98, 99]);

/**
 * Walks the local file headers in the head: a name of 1..4096 bytes, a known method; when an
 * entry's sizes are in its header and its data ends inside the head, another zip record follows.
 * The first deflated entry's data must decode.
 */
/** The first local entry of a zip is encrypted: general purpose flag bit 0, or method 99 (WinZip AES). */
function zipEncrypted(h: Buffer): boolean {
  const pos = h.subarray(0, 4).equals(ZIP_SIGNATURES[3]!) ? 4 : 0;
  if (pos + 30 > h.length || !h.subarray(pos, pos + 4).equals(ZIP_SIGNATURES[0]!)) return false;
  return (h.readUInt16LE(pos + 6) & 0x01) === 1 || h.readUInt16LE(pos + 8) === 99;
}

function zipIntact(h: Buffer): boolean {
  let pos = h.subarray(0, 4).equals(ZIP_SIGNATURES[3]!) ? 4 : 0; // a spanned archive's marker
  let checkedData = false;
  while (pos + 30 <= h.length && h.subarray(pos, pos + 4).equals(ZIP_SIGNATURES[0]!)) {
    const flags = h.readUInt16LE(pos + 6);
    const method = h.readUInt16LE(pos + 8);
    const compressed = h.readUInt32LE(pos + 18);
    const nameLength = h.readUInt16LE(pos + 26);
    if (nameLength < 1 || nameLength > 4096 || !ZIP_METHODS.has(method)) return false;
    const start = pos + 30 + nameLength + h.readUInt16LE(pos + 28);
    const sized = (flags & 0x08) === 0 && compressed !== 0xffffffff; // not streamed, not zip64
    if (method === 8 && (flags & 0x01) === 0 && !checkedData && start < h.length) {
      if (!inflates(h.subarray(start, sized ? start + compressed : h.length))) return false;
      checkedData = true;
    }
    if (!sized) return true;
    pos = start + compressed;
    if (pos + 4 > h.length) return true;
    if (!ZIP_SIGNATURES.some((s) => h.subarray(pos, pos + 4).equals(s))) return false;
  }
  return true;
}

/** The member header's flags have no reserved bit; its deflate data decodes. */
function gzipIntact(h: Buffer): boolean {
  const flags = h[3]!;
  if (flags & 0xe0) return false;
  let pos = 10;
  if (flags & 0x04) pos += 2 + (pos + 2 <= h.length ? h.readUInt16LE(pos) : 0); // FEXTRA
  for (const bit of [0x08, 0x10]) if (flags & bit) pos = h.indexOf(0, pos) + 1 || h.length; // FNAME, FCOMMENT
  if (flags & 0x02) pos += 2; // FHCRC
  return pos >= h.length || inflates(h.subarray(pos));
}

/** Chunks: IHDR of 13 bytes first (after Apple's CgBI), 4-letter types, CRCs that match. */
function pngIntact(h: Buffer): boolean {
  let pos = 8;
  let first = true;
  while (pos + 8 <= h.length) {
    const length = h.readUInt32BE(pos);
    const type = h.toString('latin1', pos + 4, pos + 8);
    if (length > 0x7fffffff || !/^[A-Za-z]{4}$/.test(type)) return false;
    if (first && type !== 'CgBI' && (type !== 'IHDR' || length !== 13)) return false;
    if (type !== 'CgBI') first = false;
    const end = pos + 12 + length;
    if (end > h.length) return true;
    if (zlib.crc32(h.subarray(pos + 4, end - 4)) !== h.readUInt32BE(end - 4)) return false;
    if (type === 'IEND') return true;
    pos = end;
  }
  return true;
}

/** Marker segments up to the first scan: 0xFF (fill bytes allowed), a marker 0xC0..0xFE, a length >= 2. */
function jpegIntact(h: Buffer): boolean {
  let pos = 2;
  while (pos + 2 <= h.length) {
    if (h[pos] !== 0xff) return false;
    while (h[pos + 1] === 0xff) pos++;
    const marker = h[pos + 1];
    if (marker === undefined || marker === 0xda) return true; // start of scan: compressed data follows
    if (marker < 0xc0) return false;
    if (marker >= 0xd0 && marker <= 0xd9) { pos += 2; continue; } // standalone markers
    if (pos + 4 > h.length) return true;
    const length = h.readUInt16BE(pos + 2);
    if (length < 2) return false;
    pos += 2 + length;
  }
  return true;
}

const tiffIfd = (h: Buffer): number => (h[0] === 0x49 ? h.readUInt32LE(4) : h.readUInt32BE(4));

/** Top-level boxes: a size >= 8 (1: a 64-bit size follows; 0: to the end), a type of 4 printable bytes. */
/** The packet size of an MPEG transport stream (188, or 192 with a timecode first), when its first packets all sync. */
function mpegTsStride(h: Buffer): number | undefined {
  for (const [stride, first] of [[188, 0], [192, 4]] as const) {
    const packets = Math.min(8, Math.floor((h.length - first) / stride));
    if (packets < 2) continue;
    let synced = true;
    for (let i = 0; i < packets && synced; i++) synced = h[first + i * stride] === 0x47;
    if (synced) return stride;
  }
  return undefined;
}

function bmffIntact(h: Buffer): boolean {
  let pos = 0;
  while (pos + 8 <= h.length) {
    let size = h.readUInt32BE(pos);
    if (!h.subarray(pos + 4, pos + 8).every((b) => (b >= 0x20 && b <= 0x7e) || b === 0xa9)) return false;
    if (size === 0) return true;
    if (size === 1) {
      if (pos + 16 > h.length) return true;
      size = Number(h.readBigUInt64BE(pos + 8));
      if (size < 16) return false;
    } else if (size < 8) return false;
    pos += size;
  }
  return true;
}

// MPEG audio frame header: bit rates in kbit/s by [MPEG-1?][layer: 1 = III, 2 = II, 3 = I][index].
const KBPS: Record<string, number[]> = {
  '1,3': [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
  '1,2': [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
  '1,1': [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  '0,3': [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
  '0,2': [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
  '0,1': [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
};

/** The length of the MPEG audio frame at `pos`; undefined when no valid frame header is there (free format included: too rare to count). */
function mpegFrameLength(h: Buffer, pos: number): number | undefined {
  if (pos + 4 > h.length || h[pos] !== 0xff || (h[pos + 1]! & 0xe0) !== 0xe0) return undefined;
  const version = (h[pos + 1]! >> 3) & 3; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5, 1: reserved
  const layer = (h[pos + 1]! >> 1) & 3; // 3: I, 2: II, 1: III, 0: reserved
  const rateIndex = h[pos + 2]! >> 4;
  const srIndex = (h[pos + 2]! >> 2) & 3;
  if (version === 1 || layer === 0 || rateIndex === 0 || rateIndex === 15 || srIndex === 3) return undefined;
  const mpeg1 = version === 3 ? 1 : 0;
  const kbps = KBPS[`${mpeg1},${layer}`]![rateIndex]!;
  const sampleRate = [44100, 48000, 32000][srIndex]! / (version === 3 ? 1 : version === 2 ? 2 : 4);
  const padding = (h[pos + 2]! >> 1) & 1;
  if (layer === 3) return (Math.floor((12 * kbps * 1000) / sampleRate) + padding) * 4;
  return Math.floor(((layer === 1 && !mpeg1 ? 72 : 144) * kbps * 1000) / sampleRate) + padding;
}

/** Another frame follows the first one, when the head reaches it. */
function mpegFramesIntact(h: Buffer): boolean {
  const length = mpegFrameLength(h, 0)!;
  return length + 4 > h.length || mpegFrameLength(h, length) !== undefined;
}
