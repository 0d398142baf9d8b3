#!/usr/bin/env node
// Entry point installed as `backproof`. The TypeScript sources are compiled to dist/ by `npm run build`.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
await import('../dist/orchestrator/cli/entry.js');
