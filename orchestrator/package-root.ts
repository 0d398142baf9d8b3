import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let found: { root: string; version: string } | null | undefined;

/**
 * The installed package: the nearest folder above this module whose package.json is
 * backproof's, and its version. Works from the sources (tsx), from dist/ and from a bundle;
 * undefined if the package.json is gone.
 */
export function packageInfo(): { root: string; version: string } | undefined {
  if (found !== undefined) return found ?? undefined;
  found = null;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'backproof' && pkg.version) {
        found = { root: dir, version: pkg.version };
        break;
      }
    } catch {
      // not here: one folder up
    }
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return found ?? undefined;
}
