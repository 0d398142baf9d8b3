/**
 * Benchmark: the content judgement of kind files (content-sniff.ts judgeContent: a format's
 * structure, or the entropy) on each file's first 64 KiB, against the sha256 of the same bytes,
 * which the archive guard computes for every file anyway: the ratio is what the judgement adds to
 * the per-file work that was already there. Files of several kinds (text, CSV, gzip, zip with a
 * deflated member, random bytes), made in the process; alternating rounds, medians.
 *
 *   node --import tsx bench/content-sniff.ts [--files 2000] [--kib 64] [--repeat 5]
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { judgeContent, SNIFF_BYTES } from '../restore-sandboxes/files/content-sniff.js';

const { values } = parseArgs({ options: { files: { type: 'string', default: '2000' }, kib: { type: 'string', default: '64' }, repeat: { type: 'string', default: '5' } } });
const count = Number(values.files);
const bytes = Number(values.kib) * 1024;
const repeat = Number(values.repeat);

const WORDS = 'invoice customer order amount delivered pending paid total tax net gross quarter account ledger balance'.split(' ');
function text(seed: number): Buffer {
  const out: string[] = [];
  for (let i = 0; out.length * 7 < bytes; i++) out.push(WORDS[(i * 7 + seed * 13 + ((i * i) % 11)) % WORDS.length]!);
  return Buffer.from(out.join(' ')).subarray(0, bytes);
}
function zipOf(content: Buffer): Buffer {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'backproof-bench-sniff-'));
  try {
    writeFileSync(path.join(dir, 'document.xml'), content);
    execFileSync('zip', ['-q', 'x.zip', 'document.xml'], { cwd: dir });
    return readFileSync(path.join(dir, 'x.zip'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const base = text(1);
const kinds: Record<string, Buffer> = {
  text: base,
  csv: Buffer.from(Array.from({ length: bytes / 20 }, (_, r) => `${r},${r % 7},${(r * 17.5).toFixed(2)},EUR`).join('\n')).subarray(0, bytes),
  gzip: gzipSync(Buffer.concat([randomBytes(bytes / 2), base])).subarray(0, SNIFF_BYTES),
  zip: zipOf(Buffer.concat([randomBytes(bytes / 2), base])).subarray(0, SNIFF_BYTES),
  random: randomBytes(bytes),
};
const heads = Array.from({ length: count }, (_, i) => Object.values(kinds)[i % Object.keys(kinds).length]!);

function time(fn: (h: Buffer) => unknown): number {
  const start = performance.now();
  for (const h of heads) fn(h);
  return performance.now() - start;
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const hashMs: number[] = [];
const sniffMs: number[] = [];
time((h) => judgeContent(h, h.length)); // warm-up
for (let r = 0; r < repeat; r++) {
  hashMs.push(time((h) => createHash('sha256').update(h).digest()));
  sniffMs.push(time((h) => judgeContent(h, h.length)));
  process.stderr.write(`[bench] round ${r + 1}/${repeat}\n`);
}
const perKind = Object.entries(kinds).map(([name, h]) => {
  const n = 200;
  const start = performance.now();
  for (let i = 0; i < n; i++) judgeContent(h, h.length);
  return `${name} ${(((performance.now() - start) / n) * 1000).toFixed(0)} µs (${JSON.stringify(judgeContent(h, h.length))})`;
});
console.log(`content judgement of ${count} files of ${values.kib} KiB (text, csv, gzip, zip, random), ${repeat} rounds, medians:`);
console.log(`  sha256 (baseline, done for every file anyway): ${median(hashMs).toFixed(1)} ms`);
console.log(`  judgeContent:                                  ${median(sniffMs).toFixed(1)} ms`);
console.log(`  ratio judgeContent / sha256: ${(median(sniffMs) / median(hashMs)).toFixed(2)}`);
console.log(`  per file, by kind: ${perKind.join('; ')}`);
