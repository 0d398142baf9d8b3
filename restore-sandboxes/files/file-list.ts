import { gunzipSync, gzipSync } from 'node:zlib';
import type { FilesKindConfig } from '../../orchestrator/core/config-types.js';
import type { ArchiveIndex } from './archive-guard.js';

/**
 * The file list a passing run of kind files keeps (artifact `files.json.gz`, the policy's newest
 * passing one only), and the comparison of a restore with it: what ransomware that encrypts in
 * place leaves behind shows there, whatever the files are called. Each entry is
 * [path, size, the first 16 hex digits of its sha256, 1 when its content looks random / 0 when
 * not / null when too short to judge]; gzip'd JSON costs ~30 bytes a file.
 */
export const FILE_LIST_ARTIFACT = 'files.json.gz';

type Entry = [path: string, size: number, sha: string, random: 0 | 1 | null];

export interface FileList {
  version: 1;
  files: Entry[];
}

export function fileListOf(index: ArchiveIndex): Buffer {
  const files: Entry[] = [];
  for (const e of index.entries.values()) {
    if (e.type !== 'file' && e.type !== 'hardlink') continue;
    files.push([e.path, e.size, (e.sha256 ?? '').slice(0, 16), e.looksRandom === undefined ? null : e.looksRandom ? 1 : 0]);
  }
  return gzipSync(JSON.stringify({ version: 1, files } satisfies FileList));
}

/** A stored list, or undefined when it cannot be read (then nothing is compared). */
export function readFileList(bytes: Buffer): FileList | undefined {
  try {
    const parsed = JSON.parse(gunzipSync(bytes).toString('utf8')) as FileList;
    if (parsed?.version !== 1 || !Array.isArray(parsed.files)) return undefined;
    return parsed;
  } catch {
    return undefined;
  }
}

export type RansomwareConfig = Exclude<FilesKindConfig['ransomware'], false>;

export interface Changes {
  /** Files in the last passing run. */
  before: number;
  now: number;
  /** Paths of the last passing run still there. */
  kept: number;
  /** Gone, and not found again under a new extension (whatever its content). */
  disappeared: string[];
  /**
   * Gone (or kept beside it), back under a new extension, and now random-looking, or wrapped on
   * its own in an encrypted zip, a 7z or a RAR archive (report.docx → report.docx.7z, as Qlocker
   * leaves files): [old path, new path].
   */
  renamed: Array<[string, string]>;
  /** Same path and size, other content, and random-looking now but not then. */
  rewritten: string[];
  randomBefore: number;
  randomNow: number;
}

/** The extension-less form of a path: `dir/report.docx` → `dir/report`. */
function stem(p: string): string {
  const slash = p.lastIndexOf('/');
  const dot = p.lastIndexOf('.');
  return dot > slash + 1 ? p.slice(0, dot) : p;
}

/**
 * What changed since the last passing run. A rename or a rewrite counts only when the file's
 * content now looks random (judged from its bytes, archive-guard.ts): a folder whose files were
 * recompressed, converted or renamed in a reorganisation holds known formats, not noise.
 */
export function compareLists(before: FileList, index: ArchiveIndex): Changes {
  const now = new Map<string, { size: number; sha: string; random: boolean | undefined; container?: 'encrypted' | 'archive' }>();
  for (const e of index.entries.values()) {
    if (e.type === 'file' || e.type === 'hardlink') now.set(e.path, { size: e.size, sha: (e.sha256 ?? '').slice(0, 16), random: e.looksRandom, ...(e.container ? { container: e.container } : {}) });
  }
  const old = new Set(before.files.map((f) => f[0]));
  const gone: string[] = [];
  const rewritten: string[] = [];
  const goneByStem = new Map<string, string>();
  for (const [path, size, sha, random] of before.files) {
    const current = now.get(path);
    if (!current) {
      gone.push(path);
      goneByStem.set(stem(path), path);
    } else if (current.size === size && current.sha !== sha && current.random && random !== 1) rewritten.push(path);
  }
  const renamed: Array<[string, string]> = [];
  // Gone under one name and back under another (recompressed, converted, encrypted): not lost.
  const movedFrom = new Set<string>();
  for (const [path, file] of now) {
    if (old.has(path)) continue;
    // report.docx → report.docx.locked (a suffix added), report.csv.gz → report.csv (one taken
    // off), or report.docx → report.xyz (replaced).
    const from = stem(path) !== path && old.has(stem(path)) ? stem(path) : (goneByStem.get(path) ?? goneByStem.get(stem(path)));
    if (from === undefined) continue;
    movedFrom.add(from);
    // Wrapped one by one: an encrypted zip under any new name, or a 7z/RAR archive named after the file it replaced.
    const wrapped = file.container === 'encrypted' || (file.container === 'archive' && from === stem(path));
    if (file.random || wrapped) renamed.push([from, path]);
  }
  const judgedBefore = before.files.filter((f) => f[3] !== null);
  const judgedNow = [...now.values()].filter((f) => f.random !== undefined);
  return {
    before: before.files.length,
    now: now.size,
    kept: before.files.length - gone.length,
    disappeared: gone.filter((p) => !movedFrom.has(p)),
    renamed,
    rewritten,
    randomBefore: judgedBefore.length ? judgedBefore.filter((f) => f[3] === 1).length / judgedBefore.length : 0,
    randomNow: judgedNow.length ? judgedNow.filter((f) => f.random).length / judgedNow.length : 0,
  };
}

const pct = (share: number): string => `${(Math.round(share * 1000) / 10).toString()}%`;

function examples(items: string[], max = 3): string {
  return items.length > max ? `${items.slice(0, max).join(', ')} and ${items.length - max} more` : items.join(', ');
}

/** One line of what changed, for the evidence. */
export function describeChanges(c: Changes): string {
  return `${c.before} files then, ${c.now} now: ${c.disappeared.length} gone, ${c.renamed.length} back under a new extension (random-looking or wrapped in an archive) and ${c.rewritten.length} rewritten at the same size, random-looking; random-looking ${pct(c.randomBefore)} then, ${pct(c.randomNow)} now`;
}

/** What goes beyond the thresholds, each naming examples; empty when nothing does. */
export function suspicions(c: Changes, cfg: RansomwareConfig): string[] {
  if (c.before < cfg.minFiles) return [];
  const found: string[] = [];
  const share = (n: number): number => n / c.before;
  if (share(c.renamed.length) > cfg.maxRenamed) {
    found.push(`${c.renamed.length} of ${c.before} files (${pct(share(c.renamed.length))}, at most ${pct(cfg.maxRenamed)}) reappeared under a new extension with random-looking content or wrapped on their own in an archive: ${examples(c.renamed.map(([a, b]) => `${a} → ${b}`))}`);
  }
  if (share(c.rewritten.length) > cfg.maxRewritten) {
    found.push(`${c.rewritten.length} of ${c.before} files (${pct(share(c.rewritten.length))}, at most ${pct(cfg.maxRewritten)}) were rewritten at the same size into random-looking content: ${examples(c.rewritten)}`);
  }
  // A tree with nothing in common with the last one is another data set, not a damaged one.
  const related = c.kept > 0 || c.disappeared.length < c.before;
  if (related && share(c.disappeared.length) > cfg.maxDisappeared) {
    found.push(`${c.disappeared.length} of ${c.before} files (${pct(share(c.disappeared.length))}, at most ${pct(cfg.maxDisappeared)}) disappeared: ${examples(c.disappeared)}`);
  }
  if (c.randomNow - c.randomBefore > cfg.maxRandomRise) {
    found.push(`the share of random-looking files rose from ${pct(c.randomBefore)} to ${pct(c.randomNow)} (a rise of at most ${pct(cfg.maxRandomRise)})`);
  }
  return found;
}
