import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { archive, makeShareTree } from './helpers/archive-fixtures.js';
import { age } from './helpers/fixtures.js';
import { codes, leftoversOf, openEmbeddedStore, policyFromYaml, tempDir, verify } from './helpers/harness.js';
import type { RunStore } from '../orchestrator/evidence/run-store.js';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { FILE_LIST_ARTIFACT, readFileList } from '../restore-sandboxes/files/file-list.js';

// Ransomware signals that follow the bytes (issue 19): each restore of kind files is compared with
// the last passing run's file list. Trees made here, archived by the real tar, encrypted in place
// by the real openssl (renamed, not renamed, rewritten at the same size), restored in the real
// sandbox; a normal day's changes and legitimately compressed files raise nothing.

const run = promisify(execFile);
let store: RunStore;
t.before(async () => {
  store = (await openEmbeddedStore()).store;
});
t.teardown(() => store.close());

/** A share of 40 documents, 10 ledgers, a PDF-like file, a docx, random data, and some compressed files. */
async function shareTree(): Promise<string> {
  const tree = await tempDir('ransom-tree');
  await makeShareTree(tree);
  await fs.mkdir(path.join(tree, 'archive'));
  for (let i = 0; i < 6; i++) {
    const text = path.join(tree, 'archive', `old-${i}.log`);
    const lines = Array.from({ length: 3000 }, (_, j) => `${1_700_000_000 + j * 37} host-${(j * 7919) % 97} job ${(j * 104_729) % 10_007} ok ${((j * 31) % 1000) / 10}ms`);
    await fs.writeFile(text, `${lines.join('\n')}\n`);
    await run(i % 2 ? 'xz' : 'gzip', [text]);
  }
  return tree;
}

async function filesOf(tree: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(tree, { recursive: true, withFileTypes: true })) if (e.isFile()) out.push(path.join(e.parentPath, e.name));
  return out;
}

/** openssl enc of every file, as ransomware leaves them: `rename` adds `.locked`; `ctr` keeps the size. */
async function encryptInPlace(tree: string, opts: { rename?: boolean; ctr?: boolean; share?: number } = {}): Promise<void> {
  const all = await filesOf(tree);
  const hit = all.slice(0, Math.ceil(all.length * (opts.share ?? 1)));
  for (const file of hit) {
    const out = `${file}.enc-tmp`;
    const cipher = opts.ctr
      ? ['enc', '-aes-256-ctr', '-nosalt', '-K', 'aa'.repeat(32), '-iv', 'bb'.repeat(16), '-in', file, '-out', out]
      : ['enc', '-aes-256-cbc', '-pbkdf2', '-pass', 'pass:pay-us', '-in', file, '-out', out];
    await run('openssl', cipher);
    await fs.rm(file);
    await fs.rename(out, opts.rename ? `${file}.locked` : file);
  }
}

let day = 0;
/** The tree archived as today's backup (a new folder each time) and verified. */
async function backupAndVerify(tree: string, ransomware = 'ransomware: true'): Promise<RunRecord> {
  const folder = await tempDir('ransom-backups');
  const file = path.join(folder, `share-${++day}.tar.gz`);
  await archive(tree, file, 'tar.gz');
  await age(file, 60_000);
  return verify(policyFromYaml({ folder, kind: 'files', glob: 'share*', probes: '          []', files: ransomware }), store);
}

async function baseline(t: Test): Promise<{ tree: string; run: RunRecord }> {
  const tree = await shareTree();
  const first = await backupAndVerify(tree);
  t.equal(first.verdict, 'pass', `the untouched share passes: ${JSON.stringify(first.reasons)}`);
  return { tree, run: first };
}

async function copyTree(tree: string): Promise<string> {
  const copy = await tempDir('ransom-copy');
  await fs.cp(tree, copy, { recursive: true });
  return copy;
}

function ransomReason(r: RunRecord): string {
  return r.reasons.find((x) => x.code === 'ransomware_suspected')?.message ?? '';
}

t.test('the first run has nothing to compare with; its file list is kept with its evidence', async (t) => {
  const { run: first } = await baseline(t);
  t.match(first.restored?.sinceLastPass, /^not compared: no earlier passing run kept a file list/);
  const stored = await store.artifact(first.id, FILE_LIST_ARTIFACT);
  t.ok(stored, 'the list is stored with the run');
  const list = readFileList(stored!.bytes)!;
  t.equal(list.files.length, first.restored?.files, 'one entry per file');
  const blob = list.files.find((f) => f[0] === 'data/blob.bin');
  t.equal(blob?.[3], 1, 'random data is marked random');
  t.equal(list.files.find((f) => f[0] === 'docs/report-0.txt')?.[3], 0, 'a document is not');
  t.equal(list.files.find((f) => f[0] === 'archive/old-0.log.gz')?.[3], 0, 'nor a gzip file');
  t.equal(await leftoversOf(first.id), 0);
});

t.test("a normal day's changes raise nothing", async (t) => {
  const { tree, run: before } = await baseline(t);
  const today = await copyTree(tree);
  for (let i = 0; i < 3; i++) await fs.appendFile(path.join(today, 'docs', `report-${i}.txt`), 'amended after the audit\n');
  for (let i = 0; i < 2; i++) await fs.rm(path.join(today, 'docs', `report-${30 + i}.txt`));
  for (let i = 0; i < 4; i++) await fs.writeFile(path.join(today, 'docs', `memo-${i}.txt`), `memo ${i}: the customer paid the invoice in full\n`.repeat(40));
  await fs.writeFile(path.join(today, 'finance', 'ledger-0.csv'), (await fs.readFile(path.join(today, 'finance', 'ledger-1.csv'), 'utf8')).replaceAll('EUR', 'USD'));
  const r = await backupAndVerify(today);
  t.equal(r.verdict, 'pass', JSON.stringify(r.reasons));
  t.ok(await store.artifact(r.id, FILE_LIST_ARTIFACT), "today's list is kept");
  t.equal(await store.artifact(before.id, FILE_LIST_ARTIFACT), null, "and replaces yesterday's: one list per policy");
  t.match(r.restored?.sinceLastPass, /^since run [0-9a-f]{8} of \d{4}-\d\d-\d\d: 59 files then, 61 now: 2 gone, 0 back under a new extension \(random-looking or wrapped in an archive\) and 0 rewritten at the same size, random-looking; random-looking [\d.]+% then, [\d.]+% now/);
});

t.test('encrypted in place and renamed (.locked): ransomware_suspected, naming examples', async (t) => {
  const { tree, run: good } = await baseline(t);
  const hit = await copyTree(tree);
  await encryptInPlace(hit, { rename: true });
  const r = await backupAndVerify(hit);
  t.equal(r.verdict, 'fail');
  t.same(codes(r), ['ransomware_suspected']);
  const why = ransomReason(r);
  t.match(why, `since run ${good.id.slice(0, 8)}`, 'names the run it compares with');
  t.match(why, /\d+ of 59 files \([\d.]+%, at most 20%\) reappeared under a new extension with random-looking content or wrapped on their own in an archive: [^;]+ → [^;]+\.locked/);
  t.match(why, /the share of random-looking files rose from [\d.]+% to (9\d|100)(\.\d)?%/);
  t.notMatch(why, /disappeared/, 'renamed files are not counted as gone');

  t.equal(await store.artifact(r.id, FILE_LIST_ARTIFACT), null, 'a failed run keeps no list');
  // A failed run is not the new normal: the same tree fails again against the last passing run.
  const again = await backupAndVerify(hit);
  t.same(codes(again), ['ransomware_suspected'], 'compared with the last passing run, not the failed one');
  t.equal(await leftoversOf(r.id), 0);
});

t.test('encrypted in place without renaming: the jump in random-looking content', async (t) => {
  const { tree } = await baseline(t);
  const hit = await copyTree(tree);
  await encryptInPlace(hit);
  const r = await backupAndVerify(hit);
  t.same(codes(r), ['ransomware_suspected']);
  t.match(ransomReason(r), /the share of random-looking files rose from [\d.]+% to/);
  t.notMatch(ransomReason(r), /new extension/);
});

t.test('rewritten at the same size (a stream cipher): named as rewritten', async (t) => {
  const { tree } = await baseline(t);
  const hit = await copyTree(tree);
  await encryptInPlace(hit, { ctr: true });
  const r = await backupAndVerify(hit);
  t.same(codes(r), ['ransomware_suspected']);
  t.match(ransomReason(r), /\d+ of 59 files \([\d.]+%, at most 50%\) were rewritten at the same size into random-looking content: (docs|finance|scans|data|office|archive)\//);
});

t.test('a part of the share encrypted: judged by the thresholds', async (t) => {
  const { tree } = await baseline(t);
  const few = await copyTree(tree);
  await encryptInPlace(few, { rename: true, share: 0.05 });
  const small = await backupAndVerify(few);
  t.equal(small.verdict, 'pass', `3 of 59 files is under every threshold: ${JSON.stringify(small.reasons)}`);
  t.match(small.restored?.sinceLastPass, / 3 back under a new extension/);

  const many = await copyTree(tree);
  await encryptInPlace(many, { rename: true, share: 0.3 });
  const r = await backupAndVerify(many);
  t.same(codes(r), ['ransomware_suspected'], '30% renamed into noise is over 20%');
});

t.test('each file wrapped in its own password-protected archive (Qlocker: 7z -p; zip -P): ransomware_suspected', async (t) => {
  const { tree } = await baseline(t);
  for (const [tool, ext] of [['7z', '.7z'], ['zip', '.zip']] as const) {
    const hit = await copyTree(tree);
    for (const file of await filesOf(hit)) {
      const args = tool === '7z' ? ['a', '-bso0', '-bsp0', '-mx=5', '-pqlocker-key', `${file}${ext}`, file] : ['-q', '-j', '-P', 'qlocker-key', `${file}${ext}`, file];
      await run(tool, args);
      await fs.rm(file);
    }
    const r = await backupAndVerify(hit);
    t.same(codes(r), ['ransomware_suspected'], `${tool}: ${JSON.stringify(r.reasons)}`);
    t.match(ransomReason(r), new RegExp(`reappeared under a new extension with random-looking content or wrapped on their own in an archive: [^;]+ → [^;]+\\${ext}`), tool);
  }
});

t.test('a few files archived on purpose (plain zip, one 7z of a folder) raise nothing', async (t) => {
  const { tree } = await baseline(t);
  const tidy = await copyTree(tree);
  const docs = (await filesOf(tidy)).filter((f) => f.includes('/docs/')).slice(0, 20);
  for (const file of docs) {
    await run('zip', ['-q', '-j', `${file}.zip`, file]);
    await fs.rm(file);
  }
  await run('7z', ['a', '-bso0', '-bsp0', path.join(tidy, 'finance.7z'), path.join(tidy, 'finance')]);
  await fs.rm(path.join(tidy, 'finance'), { recursive: true });
  const r = await backupAndVerify(tidy, 'ransomware: { maxDisappeared: 100% }');
  t.equal(r.verdict, 'pass', `unencrypted zips of single files and one archive of a folder are housekeeping: ${JSON.stringify(r.reasons)}`);
});

t.test('legitimately compressed files raise nothing: every file gzip-ed and renamed .gz', async (t) => {
  const { tree } = await baseline(t);
  const packed = await copyTree(tree);
  for (const file of await filesOf(packed)) if (!/\.(gz|xz)$/.test(file)) await run('gzip', ['-f', file]);
  const r = await backupAndVerify(packed);
  t.equal(r.verdict, 'pass', JSON.stringify(r.reasons));
  t.match(r.restored?.sinceLastPass, /: 0 gone, /, 'a file back as .gz is not gone');

  // Compressed formats of every kind added beside the documents: not random-looking.
  const more = await copyTree(packed);
  for (const [i, tool] of ['zstd', 'xz', 'bzip2', 'gzip'].entries()) {
    for (let j = 0; j < 10; j++) {
      const f = path.join(more, 'archive', `extra-${i}-${j}.txt`);
      await fs.writeFile(f, `extra file ${i} ${j}: delivered pending paid\n`.repeat(100 + j));
      await run(tool, tool === 'zstd' ? ['-q', '--rm', f] : [f]);
    }
  }
  const r2 = await backupAndVerify(more);
  t.equal(r2.verdict, 'pass', JSON.stringify(r2.reasons));
});

t.test('another data set under the same policy is not mass deletion; a wiped share is', async (t) => {
  await baseline(t);
  const other = await tempDir('ransom-other');
  for (let i = 0; i < 30; i++) await fs.writeFile(path.join(other, `note-${i}.md`), `# note ${i}\nplain words about the quarter\n`.repeat(20));
  const r = await backupAndVerify(other);
  t.equal(r.verdict, 'pass', `nothing in common: ${JSON.stringify(r.reasons)}`);

  const wiped = await copyTree(other);
  for (let i = 0; i < 25; i++) await fs.rm(path.join(wiped, `note-${i}.md`));
  const w = await backupAndVerify(wiped);
  t.same(codes(w), ['ransomware_suspected']);
  t.match(ransomReason(w), /25 of 30 files \(83\.3%, at most 50%\) disappeared: note-/);
});

t.test('ransomware: false turns the comparison off', async (t) => {
  const { tree } = await baseline(t);
  const hit = await copyTree(tree);
  await encryptInPlace(hit, { rename: true });
  const r = await backupAndVerify(hit, 'ransomware: false');
  t.equal(r.verdict, 'pass', JSON.stringify(r.reasons));
  t.equal(r.restored?.sinceLastPass, undefined);
});
