import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadMigrations } from '../../orchestrator/evidence/migrate.js';
import { templateKey } from '../../orchestrator/evidence/store-template.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Is dist/'s store template built from these migrations (npm run build)? */
export async function templateIsCurrent(): Promise<boolean> {
  const recorded = await fs
    .readFile(path.join(repoRoot, 'dist', 'store-template.json'), 'utf8')
    .then((text) => (JSON.parse(text) as { key: string }).key, () => '');
  return recorded === templateKey();
}

/**
 * The migrations the first open of a new store applies: every one on PostgreSQL; none on the
 * embedded store when a current template seeds it (initdb and the migrations were run at build).
 */
export async function appliedOnFirstOpen(backend: 'postgres' | 'pglite'): Promise<number[]> {
  return backend === 'pglite' && (await templateIsCurrent()) ? [] : loadMigrations().map((m) => m.version);
}
