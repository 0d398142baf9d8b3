#!/usr/bin/env node
// Part of `npm run build`: bundles the CLI (dist/orchestrator/cli/entry.js, compiled by tsc) into
// dist/cli/ with esbuild, one chunk per command plus shared chunks. Node then reads a few files
// instead of resolving and compiling ~1,500 modules (zod alone is ~100 files, yaml ~140), which
// halves the start-up of every command (bench/process-cost.ts). Packages that read their own files
// at run time (PGlite's WASM, pdfkit's fonts) or carry optional native code (ssh2) stay in
// node_modules and are imported from there.
//
// dockerode is bundled, but two of its modules are loaded only when used (see `lazyModules`):
// BuildKit sessions (@grpc/grpc-js and protobufjs, for `docker build` with BuildKit, which backproof
// never asks for) and docker-modem's SSH agent (ssh2, only for an engine at ssh://). Loading them
// up front cost every command that talks to Docker ~150 ms and ~15 MB (bench/process-cost.ts).
import { createRequire } from 'node:module';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, 'dist', 'cli');
await rm(outdir, { recursive: true, force: true });
/**
 * `require('./session')` in dockerode and `require('./ssh')` in docker-modem become a function that
 * requires the real module (from node_modules, beside the bundle) the first time it is called. Both
 * modules export a single function, and both are only called, never read at load time. A release
 * that changes that fails the build here rather than at run time.
 */
const lazyModules = [
  { importer: /[\\/]dockerode[\\/]lib[\\/]docker\.js$/, request: './session', real: 'dockerode/lib/session.js' },
  { importer: /[\\/]docker-modem[\\/]lib[\\/]modem\.js$/, request: './ssh', real: 'docker-modem/lib/ssh.js' },
];
const lazyPlugin = {
  name: 'lazy-modules',
  setup(b) {
    const seen = new Set();
    b.onResolve({ filter: /^\.\/(session|ssh)$/ }, (args) => {
      const lazy = lazyModules.find((m) => m.request === args.path && m.importer.test(args.importer));
      if (!lazy) return undefined;
      seen.add(lazy.real);
      return { path: lazy.real, namespace: 'lazy-module' };
    });
    b.onLoad({ filter: /.*/, namespace: 'lazy-module' }, (args) => ({
      contents: `let real;\nmodule.exports = function lazy(...args) {\n  real ??= require(${JSON.stringify(args.path)});\n  if (typeof real !== 'function') throw new Error(${JSON.stringify(`${args.path} no longer exports a function: update scripts/bundle-cli.mjs`)});\n  return real.apply(this, args);\n};\n`,
      loader: 'js',
    }));
    b.onEnd(() => {
      const requireHere = createRequire(import.meta.url);
      for (const m of lazyModules) {
        if (!seen.has(m.real)) throw new Error(`bundle-cli: ${m.real} was not found behind ${m.request}: the lazy-module list is out of date`);
        if (typeof requireHere(m.real) !== 'function') throw new Error(`bundle-cli: ${m.real} no longer exports a function: it cannot be loaded lazily`);
      }
    });
  },
};

/**
 * zod's error messages in English only. `import { z } from 'zod'` is a namespace whose `locales`
 * names every language zod has (~50 modules, ~300 KB of the bundle that every command reading the
 * config parsed and ran at start); backproof never switches zod's language, and zod itself
 * configures `en`. The locales index is replaced with one that exports `en` alone.
 */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    let seen = false;
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) => {
      if (!/[\\/]node_modules[\\/]zod[\\/]v4[\\/]/.test(args.importer)) return undefined;
      seen = true;
      return { path: path.join(path.dirname(args.importer), '..', 'locales', 'index.js'), namespace: 'zod-locales' };
    });
    b.onLoad({ filter: /.*/, namespace: 'zod-locales' }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(path.join(path.dirname(args.path), 'en.js'))};\n`,
      loader: 'js',
      resolveDir: path.dirname(args.path),
    }));
    b.onEnd(() => {
      if (!seen) throw new Error("bundle-cli: zod no longer imports ../locales/index.js: update the zod-english-only plugin");
    });
  },
};

const t0 = performance.now();
const result = await build({
  entryPoints: { backproof: path.join(root, 'dist/orchestrator/cli/entry.js') },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['@electric-sql/pglite', 'pdfkit', 'ssh2', 'cpu-features', 'pg-native', 'playwright-core', '@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs', ...lazyModules.map((m) => m.real)],
  plugins: [lazyPlugin, zodEnglishOnly],
  // CommonJS packages inside an ES module bundle call require() for Node's own modules.
  banner: { js: "import { createRequire as __backproofRequire } from 'node:module'; const require = __backproofRequire(import.meta.url);" },
  // No whitespace or comments: a process keeps every chunk's source text in its heap (a chunk with
  // one character beyond Latin-1, even in a comment, is held as two bytes a character).
  minifyWhitespace: true,
  charset: 'ascii',
  logLevel: 'warning',
  metafile: true,
});
const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0);
const files = Object.keys(result.metafile.outputs).length;
process.stderr.write(`cli bundle: dist/cli (${files} files, ${(bytes / 1024 ** 2).toFixed(1)} MiB) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
