import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

/**
 * The `yaml` package, loaded the first time it is needed: only to locate a problem in a config
 * file, or to read a file js-yaml declined (config-sources.ts). A well-formed config is read by
 * js-yaml alone, so `validate`, `run` and the daemon no longer load `yaml`'s ~170 KB of code at
 * start. Required at run time (not bundled into the CLI's chunks: scripts/bundle-cli.mjs sees no
 * import of it); `yaml` is a production dependency.
 */
let loaded: typeof Yaml | undefined;

export function yamlLib(): typeof Yaml {
  return (loaded ??= createRequire(import.meta.url)('yaml') as typeof Yaml);
}
