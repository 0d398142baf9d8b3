#!/usr/bin/env node
// Entry point installed as `backproof`. `npm run build` compiles the TypeScript sources to dist/
// and bundles the CLI into dist/cli/ (scripts/bundle-cli.mjs).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
await import('../dist/cli/backproof.js');
