#!/usr/bin/env node
// Part of `npm run build`: packs a pre-built embedded evidence store (initdb + every migration)
// into dist/store-template.tar.gz, so a new data dir does not run initdb (store-template.ts).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { buildStoreTemplate } = await import(path.join(root, 'dist/orchestrator/evidence/store-template.js'));
const { createPgliteExecutor } = await import(path.join(root, 'dist/orchestrator/evidence/pglite-executor.js'));
const t0 = performance.now();
const { tarball, bytes } = await buildStoreTemplate(path.join(root, 'dist'), createPgliteExecutor);
process.stderr.write(`store template: ${path.relative(root, tarball)} (${(bytes / 1024 ** 2).toFixed(1)} MiB) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
