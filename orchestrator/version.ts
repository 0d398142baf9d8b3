import { readFileSync } from 'node:fs';
import path from 'node:path';
import { packageInfo } from './package-root.js';

/** The package version, read once from backproof's package.json. */
export const BACKPROOF_VERSION = packageInfo()?.version ?? '0.0.0';

/**
 * What `--version` prints: the version and, when `npm run build` ran in a git checkout, the
 * commit it was built from (dist/build-info.json, scripts/write-build-info.mjs), marked when the
 * tree had uncommitted changes.
 */
export function versionText(): string {
  const root = packageInfo()?.root;
  if (!root) return BACKPROOF_VERSION;
  try {
    const info = JSON.parse(readFileSync(path.join(root, 'dist', 'build-info.json'), 'utf8')) as { commit?: unknown; dirty?: unknown };
    if (typeof info.commit !== 'string' || !/^[0-9a-f]{40}$/.test(info.commit)) return BACKPROOF_VERSION;
    return `${BACKPROOF_VERSION} (commit ${info.commit.slice(0, 12)}${info.dirty === true ? ', with uncommitted changes' : ''})`;
  } catch {
    return BACKPROOF_VERSION;
  }
}
