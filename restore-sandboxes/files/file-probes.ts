import path from 'node:path';
import picomatch from 'picomatch';
import { parseChecksumLines } from '../../orchestrator/core/checksum-lines.js';
import type { FileProbeConfig, ProbeConfig } from '../../orchestrator/core/config-types.js';
import type { ProbeResult } from '../../orchestrator/core/domain.js';
import { formatBytes } from '../../orchestrator/core/format.js';
import type { ArchiveEntry, ArchiveIndex } from './archive-guard.js';

/**
 * Probes on a restored file tree, judged from the archive guard's index of what was extracted
 * (every file's size, sha256 and whether its start looks random), so they cost no second read.
 */
export function isFileProbe(probe: ProbeConfig): probe is FileProbeConfig {
  return probe.type === 'files' || probe.type === 'manifest' || probe.type === 'encryptedLooking';
}

export function runFileProbes(probes: readonly ProbeConfig[], index: ArchiveIndex): ProbeResult[] {
  return probes.filter(isFileProbe).map((probe) => {
    const started = performance.now();
    const result = probe.type === 'files' ? filesProbe(probe, index) : probe.type === 'manifest' ? manifestProbe(probe, index) : encryptedProbe(probe, index);
    return { name: probe.name, type: probe.type, ...result, durationMs: Math.round(performance.now() - started) };
  });
}

type Outcome = Pick<ProbeResult, 'expected' | 'actual' | 'pass'>;

/** Regular files, and hard links (which are files too). */
function files(index: ArchiveIndex): ArchiveEntry[] {
  return [...index.entries.values()].filter((e) => e.type === 'file' || e.type === 'hardlink');
}

function filesProbe(probe: Extract<FileProbeConfig, { type: 'files' }>, index: ArchiveIndex): Outcome {
  const all = files(index);
  const expected = [
    probe.exist.length ? `${probe.exist.join(', ')} exist` : '',
    probe.minCount !== undefined ? `at least ${probe.minCount} files` : '',
    probe.minTotalBytes !== undefined ? `at least ${formatBytes(probe.minTotalBytes)}` : '',
    probe.nonEmpty ? 'no zero-byte file' : '',
  ]
    .filter(Boolean)
    .join(', ');
  const problems: string[] = [];
  let matched = all;
  if (probe.exist.length > 0) {
    const every = [...index.entries.values()];
    const hits = new Set<ArchiveEntry>();
    for (const pattern of probe.exist) {
      const match = picomatch(pattern.replace(/^\.?\//, ''), { dot: true });
      const found = every.filter((e) => match(e.path) || (e.type === 'directory' && match(`${e.path}/`)));
      if (found.length === 0) problems.push(`nothing matches ${pattern}`);
      for (const e of found) {
        if (e.type === 'file' || e.type === 'hardlink') hits.add(e);
        if (e.type === 'directory') for (const f of all) if (f.path.startsWith(`${e.path}/`)) hits.add(f);
      }
    }
    matched = [...hits];
  }
  const bytes = matched.reduce((sum, e) => sum + e.size, 0);
  if (probe.minCount !== undefined && matched.length < probe.minCount) problems.push(`only ${matched.length} files`);
  if (probe.minTotalBytes !== undefined && bytes < probe.minTotalBytes) problems.push(`only ${formatBytes(bytes)}`);
  if (probe.nonEmpty) {
    const empty = matched.filter((e) => e.size === 0).map((e) => e.path);
    if (empty.length > 0) problems.push(`zero-byte: ${listed(empty)}`);
  }
  const actual = problems.length ? problems.join('; ') : `${matched.length} files, ${formatBytes(bytes)}`;
  return { expected, actual, pass: problems.length === 0 };
}

function manifestProbe(probe: Extract<FileProbeConfig, { type: 'manifest' }>, index: ArchiveIndex): Outcome {
  const expected = `every file listed in ${probe.path} present with that sha256`;
  const manifests = [...index.kept.keys()].sort();
  if (manifests.length === 0) return { expected, actual: `no manifest matching ${probe.path} in the archive (or it is over 16 MiB)`, pass: false };
  const problems: string[] = [];
  let checked = 0;
  for (const manifest of manifests) {
    const lines = parseChecksumLines(index.kept.get(manifest)!.toString('utf8'));
    const dir = path.posix.dirname(manifest);
    const bad = lines.filter((l) => l === undefined || l.file === undefined).length;
    if (bad > 0) problems.push(`${manifest}: ${bad} line(s) are not "SHA256  name"`);
    for (const line of lines) {
      if (!line?.file) continue;
      checked++;
      const listedPath = path.posix.normalize(path.posix.join(dir === '.' ? '' : dir, line.file.replace(/^\.\//, '')));
      const entry = listedPath.startsWith('../') ? undefined : index.entries.get(listedPath);
      if (!entry || (entry.type !== 'file' && entry.type !== 'hardlink')) problems.push(`missing: ${line.file}`);
      else if (entry.sha256 !== line.hex) problems.push(`sha256 differs: ${line.file}`);
    }
  }
  if (checked === 0 && problems.length === 0) problems.push(`${manifests.join(', ')} list no files`);
  const actual = problems.length ? `${problems.length} problem(s) in ${checked} listed files: ${listed(problems)}` : `${checked} files match ${manifests.join(', ')}`;
  return { expected, actual, pass: problems.length === 0 };
}

function encryptedProbe(probe: Extract<FileProbeConfig, { type: 'encryptedLooking' }>, index: ArchiveIndex): Outcome {
  const percent = (share: number): string => `${(Math.round(share * 1000) / 10).toString()}%`;
  const expected = `at most ${percent(probe.maxShare)} of files look random`;
  const judged = files(index).filter((e) => e.looksRandom !== undefined);
  if (judged.length === 0) return { expected, actual: 'no file of 256 bytes or more to judge', pass: true };
  const random = judged.filter((e) => e.looksRandom).map((e) => e.path);
  const share = random.length / judged.length;
  const actual = `${random.length} of ${judged.length} files (${percent(share)}) look random${random.length ? `: ${listed(random)}` : ''}`;
  return { expected, actual, pass: share <= probe.maxShare };
}

function listed(items: string[], max = 5): string {
  return items.length > max ? `${items.slice(0, max).join(', ')} and ${items.length - max} more` : items.join(', ');
}
