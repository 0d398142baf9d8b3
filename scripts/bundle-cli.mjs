#!/usr/bin/env node
// Part of `npm run build`: bundles the CLI (dist/orchestrator/cli/entry.js, compiled by tsc) into
// dist/cli/ with esbuild, one chunk per command plus shared chunks. Node then reads a few files
// instead of resolving and compiling ~1,500 modules (zod alone is ~100 files, yaml ~140), which
// halves the start-up of every command (bench/process-cost.ts). Packages that read their own files
// at run time (PGlite's WASM, pdfkit's fonts) or carry optional native code (dockerode's ssh2) stay
// in node_modules and are imported from there.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, 'dist', 'cli');
await rm(outdir, { recursive: true, force: true });
const t0 = performance.now();
const result = await build({
  entryPoints: { backproof: path.join(root, 'dist/orchestrator/cli/entry.js') },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['@electric-sql/pglite', 'pdfkit', 'dockerode', 'ssh2', 'cpu-features', 'pg-native', 'playwright-core'],
  // CommonJS packages inside an ES module bundle call require() for Node's own modules.
  banner: { js: "import { createRequire as __backproofRequire } from 'node:module'; const require = __backproofRequire(import.meta.url);" },
  logLevel: 'warning',
  metafile: true,
});
const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0);
const files = Object.keys(result.metafile.outputs).length;
process.stderr.write(`cli bundle: dist/cli (${files} files, ${(bytes / 1024 ** 2).toFixed(1)} MiB) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
