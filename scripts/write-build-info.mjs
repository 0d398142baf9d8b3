#!/usr/bin/env node
// Part of `npm run build`: records which commit dist/ was built from in dist/build-info.json, so
// `backproof --version` names it (orchestrator/version.ts). Outside a git checkout (an unpacked
// npm package) the commit is unknown and nothing is claimed.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const git = (...args) => {
  try {
    return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
};
// Only this project's own checkout: a folder without .git inside some other repository says nothing.
const top = git('rev-parse', '--show-toplevel');
const commit = top && path.resolve(top) === root ? git('rev-parse', 'HEAD') : undefined;
const dirty = commit ? git('status', '--porcelain', '--untracked-files=no') !== '' : undefined;
const info = commit ? { commit, dirty } : {};
writeFileSync(path.join(root, 'dist', 'build-info.json'), JSON.stringify(info) + '\n');
process.stderr.write(`build info: ${commit ? `commit ${commit.slice(0, 12)}${dirty ? ' (with uncommitted changes)' : ''}` : 'no git checkout: commit unknown'}\n`);
