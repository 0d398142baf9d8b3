import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import t from 'tap';
import { entropy } from '../restore-sandboxes/bytes.js';
import { judgeContent, looksRandom, SNIFF_BYTES } from '../restore-sandboxes/files/content-sniff.js';

// Whether a restored file looks encrypted is judged from its content, whatever its name: real
// files made by real tools (compressors, zip, pdftoppm, qemu-img, openssl) in a temp dir.

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backproof-sniff-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = (name: string): string => path.join(dir, name);
const read = (name: string): Buffer => fs.readFileSync(file(name));
const run = (cmd: string, args: string[], cwd = dir): Buffer => execFileSync(cmd, args, { cwd, maxBuffer: 64 << 20 });
/** The judgement of a whole file, the way the restorer keeps it: its first SNIFF_BYTES and its size. */
const judge = (data: Buffer): ReturnType<typeof judgeContent> => judgeContent(data.subarray(0, SNIFF_BYTES), data.length);
const dense = (data: Buffer): boolean => {
  const head = data.subarray(0, SNIFF_BYTES);
  return entropy(head) >= Math.min(7.0, Math.log2(head.length) - 1.2);
};

/** Random-looking bytes that are the same on every run (SHA-256 in counter mode), so broken-structure cases cannot flake. */
function seeded(n: number, seed: string): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; out.length * 32 < n; i++) out.push(createHash('sha256').update(`${seed}:${i}`).digest());
  return Buffer.concat(out).subarray(0, n);
}

/** English-like text of made-up words from a seeded generator: varied enough to compress about 3:1. */
function prose(bytes: number, seed = 1): string {
  let s = seed;
  const next = (n: number): number => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) | 0;
    return (s >>> 0) % n;
  };
  const syllables = ['ba', 'con', 'tre', 'lo', 'mis', 'ar', 'pen', 'du', 'ska', 'vel', 'or', 'thi', 'qua', 'rin', 'sto', 'gle', 'im', 'fa', 'net', 'ur'];
  const common = ['the', 'of', 'and', 'a', 'to', 'in', 'is', 'that', 'for', 'it', 'with', 'as', 'was', 'on'];
  const parts: string[] = [];
  let length = 0;
  while (length < bytes) {
    const words: string[] = [];
    for (let w = 0, n = 6 + next(14); w < n; w++) {
      if (next(3) === 0) words.push(common[next(common.length)]!);
      else words.push(Array.from({ length: 1 + next(4) }, () => syllables[next(syllables.length)]).join('') + (next(9) === 0 ? String(next(2000)) : ''));
    }
    const sentence = words.join(' ').replace(/^./, (c) => c.toUpperCase()) + (next(5) === 0 ? '.\n\n' : '. ');
    parts.push(sentence);
    length += sentence.length;
  }
  return parts.join('');
}

const text = prose(8 * 1024);
const bigText = prose(1200 * 1024, 2); // compresses to 300 KiB or more with every compressor below
fs.writeFileSync(file('text.txt'), text);
fs.writeFileSync(file('big.txt'), bigText);

t.test('text, CSV and JSON are not random', async (t) => {
  const csv = ['id,name,amount,date', ...Array.from({ length: 300 }, (_, i) => `${i},${text.slice(i * 7, i * 7 + 12).trim()},${(i * 37.31) % 1000},2024-0${1 + (i % 9)}-1${i % 10}`)].join('\n');
  const json = JSON.stringify(Array.from({ length: 100 }, (_, i) => ({ id: i, title: text.slice(i * 11, i * 11 + 30), tags: ['a', 'b'], score: i / 7 })));
  for (const [name, data] of [['text', text], ['csv', csv], ['json', json]] as const) {
    t.same(judgeContent(Buffer.from(data), data.length), { looksRandom: false }, name);
  }
});

t.test('compressed streams and zips are named, intact and not random, also from the first 64 KiB alone', async (t) => {
  const made: [string, string, Buffer, Buffer][] = [
    ['gzip', 'gzip', run('gzip', ['-c', 'text.txt']), run('gzip', ['-c', 'big.txt'])],
    ['zstd', 'zstd', run('zstd', ['-q', '-c', 'text.txt']), run('zstd', ['-q', '-c', 'big.txt'])],
    ['xz', 'xz', run('xz', ['-c', 'text.txt']), run('xz', ['-c', 'big.txt'])],
    ['bzip2', 'bzip2', run('bzip2', ['-c', 'text.txt']), run('bzip2', ['-c', 'big.txt'])],
  ];
  run('zip', ['-q', 'text.zip', 'text.txt']);
  run('zip', ['-q', 'big.zip', 'big.txt']);
  made.push(['zip', 'zip', read('text.zip'), read('big.zip')]);
  // Streamed to a pipe: zip writes data descriptors (flag bit 3) instead of sizes in the headers.
  made.push(['zip', 'zip (streamed)', run('sh', ['-c', 'cat text.txt | zip -q - -']), run('sh', ['-c', 'cat big.txt | zip -q - -'])]);
  // Git loose objects: zlib streams, "blob <size>\0" then the content, at git's usual levels.
  for (const level of [1, 6, 9]) {
    const object = (s: string): Buffer => zlib.deflateSync(Buffer.concat([Buffer.from(`blob ${s.length}\0`), Buffer.from(s)]), { level });
    made.push(['zlib', `git object, level ${level}`, object(text), object(bigText)]);
  }
  for (const [format, label, small, big] of made) {
    t.ok(dense(small) && dense(big), `${label}: as dense as random data`);
    t.same(judge(small), { format, intact: true, looksRandom: false }, `${label}: whole file`);
    t.ok(big.length >= 300 * 1024, `${label}: ${big.length} bytes compressed`);
    t.same(judge(big), { format, intact: true, looksRandom: false }, `${label}: first 64 KiB of a ${Math.round(big.length / 1024)} KiB file`);
  }
});

/** A .docx-like zip: several small deflated XML members. */
function docx(): Buffer {
  const root = fs.mkdtempSync(path.join(dir, 'docx-'));
  const members: Record<string, string> = {
    '[Content_Types].xml': `<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`,
    '_rels/.rels': `<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>`,
    'word/document.xml': `<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>${text.split('\n\n').map((p) => `<w:p><w:r><w:t>${p}</w:t></w:r></w:p>`).join('')}</w:body></w:document>`,
    'word/styles.xml': `<?xml version="1.0"?><w:styles xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">${Array.from({ length: 40 }, (_, i) => `<w:style w:styleId="S${i}"><w:name w:val="Style ${i}"/></w:style>`).join('')}</w:styles>`,
    'docProps/core.xml': `<?xml version="1.0"?><cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties"><dc:title xmlns:dc="http://purl.org/dc/elements/1.1/">${text.slice(0, 60)}</dc:title></cp:coreProperties>`,
  };
  for (const [name, content] of Object.entries(members)) {
    fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    fs.writeFileSync(path.join(root, name), content);
  }
  run('zip', ['-q', '-X', path.join(root, 'doc.docx'), ...Object.keys(members)], root);
  return fs.readFileSync(path.join(root, 'doc.docx'));
}

t.test('a .docx-like zip of several deflated members is an intact zip', async (t) => {
  const zip = docx();
  t.equal(zip.readUInt16LE(8), 8, 'the first member is deflated');
  t.same(judge(zip), { format: 'zip', intact: true, looksRandom: false });
  t.equal(looksRandom('report.docx', zip), false);
});

/** A one-page PDF drawing a 160x160 image of noise (deflated) and a square, with a correct xref. */
function pdf(): Buffer {
  const side = 160;
  const pixels = zlib.deflateSync(randomBytes(side * side * 3));
  const content = zlib.deflateSync(Buffer.from(`q ${side} 0 0 ${side} 0 0 cm /Im1 Do Q\n0 0 1 rg 20 20 40 40 re f\n`));
  const stream = (dict: string, data: Buffer): Buffer => Buffer.concat([Buffer.from(`<< ${dict} /Filter /FlateDecode /Length ${data.length} >>\nstream\n`), data, Buffer.from('\nendstream')]);
  const objects: Buffer[] = [
    Buffer.from('<< /Type /Catalog /Pages 2 0 R >>'),
    Buffer.from('<< /Type /Pages /Kids [3 0 R] /Count 1 >>'),
    Buffer.from(`<< /Type /Page /Parent 2 0 R /MediaBox [0 0 ${side} ${side}] /Resources << /XObject << /Im1 5 0 R >> >> /Contents 4 0 R >>`),
    stream('', content),
    stream(`/Type /XObject /Subtype /Image /Width ${side} /Height ${side} /ColorSpace /DeviceRGB /BitsPerComponent 8`, pixels),
  ];
  const parts: Buffer[] = [Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1')];
  const offsets: number[] = [];
  let offset = parts[0]!.length;
  objects.forEach((body, i) => {
    const object = Buffer.concat([Buffer.from(`${i + 1} 0 obj\n`), body, Buffer.from('\nendobj\n')]);
    offsets.push(offset);
    parts.push(object);
    offset += object.length;
  });
  const xref = `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  parts.push(Buffer.from(`${xref}trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${offset}\n%%EOF\n`));
  return Buffer.concat(parts);
}

t.test('PDF, the PNG and JPEG pdftoppm renders from it, qcow2 and SQLite are known and not random', async (t) => {
  fs.writeFileSync(file('page.pdf'), pdf());
  run('pdftoppm', ['-png', '-r', '72', '-singlefile', 'page.pdf', 'page']);
  run('pdftoppm', ['-jpeg', '-r', '72', '-singlefile', 'page.pdf', 'page']);
  run('qemu-img', ['create', '-q', '-f', 'qcow2', 'disk.qcow2', '1M']);
  const sqlite = Buffer.concat([Buffer.from('SQLite format 3\0', 'latin1'), Buffer.from([0x10, 0x00, 1, 1, 0, 64, 32, 32]), Buffer.alloc(76), randomBytes(4096 - 100)]);
  const cases: [string, Buffer, boolean][] = [
    ['pdf', read('page.pdf'), true],
    ['png', read('page.png'), true],
    ['jpeg', read('page.jpg'), true],
    ['qcow2', read('disk.qcow2'), false],
    ['sqlite', sqlite, true],
  ];
  for (const [format, data, isDense] of cases) {
    if (isDense) t.ok(dense(data), `${format}: as dense as random data (${data.length} bytes)`);
    t.same(judge(data), { format, intact: true, looksRandom: false }, format);
  }
  // Broken headers of the same formats: the structure check fails, the entropy decides.
  const badPage = Buffer.from(sqlite);
  badPage.writeUInt16BE(1000, 16);
  t.same(judge(badPage), { format: 'sqlite', intact: false, looksRandom: true }, 'sqlite: a page size of 1000');
  const pdfWithoutObjects = Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(8192)]);
  t.same(judge(pdfWithoutObjects), { format: 'pdf', intact: false, looksRandom: true }, 'pdf: a header over random bytes');
});

t.test('video and virtual disks kept in file shares are known formats, not random', async (t) => {
  // Virtual disks as qemu-img writes them: VMware, Hyper-V, VirtualBox.
  for (const [format, ext] of [['vmdk', 'vmdk'], ['vhdx', 'vhdx'], ['vdi', 'vdi']] as const) {
    run('qemu-img', ['create', '-q', '-f', format, `disk.${ext}`, '4M']);
    t.same(judge(read(`disk.${ext}`))?.format, format, `${format} from qemu-img`);
    t.equal(judge(read(`disk.${ext}`))?.looksRandom, false);
  }
  // An MPEG transport stream (camera .mts, broadcast .ts): 188-byte packets, a sync byte each, dense payload.
  const payload = seeded(188 * 400, 'ts');
  const ts = Buffer.from(payload);
  for (let i = 0; i < ts.length; i += 188) ts[i] = 0x47;
  t.ok(dense(ts));
  t.same(judge(ts), { format: 'mpeg-ts', intact: true, looksRandom: false }, 'a transport stream');
  const m2ts = Buffer.concat(Array.from({ length: 300 }, (_, i) => Buffer.concat([seeded(4, `tc${i}`), Buffer.from([0x47]), seeded(187, `p${i}`)])));
  t.same(judge(m2ts)?.format, 'mpeg-ts', 'with a 4-byte timecode before each packet (.m2ts)');
  const unsynced = Buffer.from(ts);
  unsynced[188] = 0x00;
  t.same(judge(unsynced), { looksRandom: true }, 'one packet out of sync: not a transport stream, and random');
  // QuickTime without ftyp: top-level atoms from the first byte.
  const atom = (type: string, body: Buffer): Buffer => Buffer.concat([Buffer.from([0, 0, (body.length + 8) >> 8, (body.length + 8) & 0xff]), Buffer.from(type, 'latin1'), body]);
  const mov = Buffer.concat([atom('wide', Buffer.alloc(0)), atom('mdat', seeded(40_000, 'mdat')), atom('moov', seeded(2_000, 'moov'))]);
  t.same(judge(mov), { format: 'quicktime', intact: true, looksRandom: false }, 'a QuickTime movie that starts with wide/mdat');
});

t.test('encrypted and random bytes are random, whatever the name', async (t) => {
  run('openssl', ['enc', '-aes-256-cbc', '-pbkdf2', '-pass', 'pass:secret', '-in', 'text.txt', '-out', 'text.txt.enc']);
  run('openssl', ['enc', '-aes-256-cbc', '-pbkdf2', '-pass', 'pass:secret', '-in', 'big.txt', '-out', 'big.txt.enc']);
  run('gzip', ['-k', 'big.txt']);
  run('openssl', ['enc', '-aes-256-cbc', '-pbkdf2', '-pass', 'pass:secret', '-in', 'big.txt.gz', '-out', 'big.txt.gz.enc']);
  run('openssl', ['rand', '-out', 'rand4k', '4096']);
  run('openssl', ['rand', '-out', 'rand64k', String(64 * 1024)]);
  const age = Buffer.concat([Buffer.from(`age-encryption.org/v1\n-> X25519 ${randomBytes(32).toString('base64').replace(/=+$/, '')}\n${randomBytes(32).toString('base64').replace(/=+$/, '')}\n--- ${randomBytes(32).toString('base64').replace(/=+$/, '')}\n`), randomBytes(8192)]);
  const openpgp = Buffer.concat([Buffer.from([0xc1, 0x4c, 0x03]), randomBytes(8192)]); // a public-key encrypted session key packet, then data
  const cases: [string, Buffer][] = [
    ['openssl enc of text', read('text.txt.enc')],
    ['openssl enc of 1.2 MiB of text', read('big.txt.enc')],
    ['openssl enc of a gzip file', read('big.txt.gz.enc')],
    ['openssl rand 4 KiB', read('rand4k')],
    ['openssl rand 64 KiB', read('rand64k')],
    ['age', age],
    ['binary OpenPGP', openpgp],
  ];
  for (const [label, data] of cases) {
    t.same(judge(data), { looksRandom: true }, label);
    t.equal(looksRandom('report.txt', data.subarray(0, SNIFF_BYTES)), true, `${label}, named report.txt`);
    t.equal(looksRandom('x.locked', data.subarray(0, SNIFF_BYTES)), true, `${label}, named x.locked`);
    t.equal(looksRandom('photo.jpg', data.subarray(0, SNIFF_BYTES)), true, `${label}, named photo.jpg`);
  }
  t.equal(read('text.txt.enc').subarray(0, 8).toString('latin1'), 'Salted__', 'openssl enc output starts with Salted__');
});

t.test('a signature over broken structure is judged by the entropy', async (t) => {
  // Deterministic random-looking bytes: a lucky random run cannot make these pass.
  const png = read('page.png');
  const brokenPng = Buffer.concat([png.subarray(0, 100), seeded(png.length - 100, 'png')]);
  t.same(judge(brokenPng), { format: 'png', intact: false, looksRandom: true }, 'png after its first 100 bytes');

  const zip = docx();
  const firstEntry = 30 + zip.readUInt16LE(26) + zip.readUInt16LE(28);
  const brokenZip = Buffer.concat([zip.subarray(0, firstEntry), seeded(Math.max(zip.length, 8192) - firstEntry, 'zip')]);
  t.same(judge(brokenZip), { format: 'zip', intact: false, looksRandom: true }, 'docx after its first local header');

  const big = read('big.zip');
  const bigEntry = 30 + big.readUInt16LE(26) + big.readUInt16LE(28);
  t.ok(big.readUInt32LE(18) > SNIFF_BYTES, 'the first member of the big zip ends past the head');
  const brokenBig = Buffer.concat([big.subarray(0, bigEntry), seeded(big.length - bigEntry, 'big')]);
  t.same(judge(brokenBig), { format: 'zip', intact: false, looksRandom: true }, 'big zip after its first local header: the deflate data does not decode');

  const gz = read('big.txt.gz');
  t.same(judge(Buffer.concat([gz.subarray(0, 20), seeded(gz.length - 20, 'gz')])), { format: 'gzip', intact: false, looksRandom: true }, 'gzip after its header');

  for (let i = 0; i < 20; i++) {
    t.same(judge(Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), randomBytes(16 * 1024)])), { format: 'zip', intact: false, looksRandom: true }, `PK\\x03\\x04 then random bytes (${i + 1})`);
  }
});

t.test('other signed formats: a size field that matches, or not', async (t) => {
  const pixels = seeded(30_000, 'bmp');
  const bmp = Buffer.concat([Buffer.from('BM', 'latin1'), Buffer.alloc(4), pixels]);
  bmp.writeUInt32LE(bmp.length, 2);
  t.same(judge(bmp), { format: 'bmp', intact: true, looksRandom: false }, 'bmp with its size');
  bmp.writeUInt32LE(bmp.length + 1, 2);
  t.same(judge(bmp), { looksRandom: true }, '"BM" with another size is no bmp');
  const wav = Buffer.concat([Buffer.from('RIFF\0\0\0\0WAVEfmt ', 'latin1'), seeded(100_000, 'wav')]);
  wav.writeUInt32LE(wav.length - 8, 4);
  t.same(judge(wav), { format: 'riff', intact: true, looksRandom: false }, 'wav with its size');
  wav.writeUInt32LE(wav.length * 3, 4);
  t.same(judge(wav), { format: 'riff', intact: false, looksRandom: true }, 'RIFF with a size past the end of the file');
  const kdbx = Buffer.concat([Buffer.from('03d9a29a67fb4bb5', 'hex'), seeded(5000, 'kdbx')]);
  t.same(judge(kdbx), { format: 'keepass', intact: true, looksRandom: false }, 'a KeePass database is kept encrypted on purpose');
  // Keys and certificates are dense but not encrypted; OpenPGP encrypted data stays random.
  const key = Buffer.concat([Buffer.from('990200046553f10016', 'hex'), seeded(3000, 'key')]);
  t.same(judge(key), { format: 'openpgp-key', intact: true, looksRandom: false }, 'an OpenPGP keyring: a public-key packet first');
  const sessionKey = Buffer.concat([Buffer.from('85010c03', 'hex'), seeded(3000, 'key')]);
  t.same(judge(sessionKey), { looksRandom: true }, 'OpenPGP encrypted data (an old-format session-key packet first)');
  const keybox = Buffer.concat([Buffer.from('00000020010200004b42586600000000', 'hex'), seeded(3000, 'kbx')]);
  t.same(judge(keybox), { format: 'gnupg-keybox', intact: true, looksRandom: false }, 'a GnuPG keybox');
  const der = Buffer.concat([Buffer.from('30820000', 'hex'), seeded(2000, 'der')]);
  der.writeUInt16BE(der.length - 4, 2);
  t.same(judge(der), { format: 'der', intact: true, looksRandom: false }, 'a DER certificate: a SEQUENCE as long as the file');
  t.same(judge(der.subarray(0, der.length - 1)), { looksRandom: true }, 'a SEQUENCE of another length is no DER file');
  t.same(judge(Buffer.concat([Buffer.from('feedfeed00000002', 'hex'), seeded(5000, 'jks')])), { format: 'java-keystore', intact: true, looksRandom: false }, 'a Java keystore');
});

t.test('files under 256 bytes are not judged', async (t) => {
  t.equal(judgeContent(randomBytes(255), 255), undefined);
  t.equal(judgeContent(Buffer.from(text.slice(0, 100)), 100), undefined);
  t.equal(judgeContent(randomBytes(255), 1_000_000), undefined, 'the head decides, not the size');
  t.equal(looksRandom('x.locked', randomBytes(255)), undefined);
  t.equal(judgeContent(randomBytes(256), 256)?.looksRandom, true, '256 random bytes are judged');
});

t.test('base64 of random bytes is not random', async (t) => {
  for (const n of [300, 4096, 48 * 1024]) {
    const b64 = Buffer.from(randomBytes(n).toString('base64'));
    t.same(judge(b64), { looksRandom: false }, `${b64.length} bytes of base64`);
  }
});

t.test('archives that wrap a file: an encrypted zip, a 7z; a plain zip is none', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backproof-wrap-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'report.txt');
  // Varied lines, so even the archives hold more than the 256 bytes a judgement needs.
  fs.writeFileSync(file, Array.from({ length: 2000 }, (_, i) => `line ${i}: ${(i * 7919) % 10007} units at ${((i * 104729) % 997) / 10} each`).join('\n'));
  execFileSync('zip', ['-q', '-j', '-P', 'secret', `${file}.enc.zip`, file]);
  execFileSync('zip', ['-q', '-j', `${file}.zip`, file]);
  execFileSync('7z', ['a', '-bso0', '-bsp0', '-psecret', `${file}.7z`, file]);
  const judgeFile = (p: string) => judgeContent(fs.readFileSync(p), fs.statSync(p).size);
  t.match(judgeFile(`${file}.enc.zip`), { format: 'zip', intact: true, looksRandom: false, container: 'encrypted' }, 'zip -P: its first entry is encrypted');
  t.notOk((judgeFile(`${file}.zip`))?.container, 'a plain zip is no container (office files are zips too)');
  t.match(judgeFile(`${file}.7z`), { format: '7z', intact: true, container: 'archive' });
});
