#!/usr/bin/env node
// Entry point installed as `backproof`. `npm run build` compiles the TypeScript sources to dist/
// and bundles the CLI into dist/cli/ (scripts/bundle-cli.mjs).
import v8 from 'node:v8';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
// V8's young generation starts at 1 MB per semi-space and doubles up to 16 MB when objects survive;
// for a command that reads and exits, or a daemon that idles between checks, the larger nursery
// is ~20-30 MB of RSS for no measurable speed (bench/process-cost.ts: `status` 184 -> 166 MB, the
// daemon with 1,000 policies 232 -> 199 MB; `evidence verify --full` and a monthly report take the
// same time). Set here because `--max-semi-space-size` cannot be changed once the heap exists,
// while the growth factor is read at each growth.
v8.setFlagsFromString('--semi-space-growth-factor=1');
await import('../dist/cli/backproof.js');
