import { loadConfig, parseConfigText } from '../../orchestrator/config/load.js';
import { ConfigError, formatConfigProblem, type ConfigProblem } from '../../orchestrator/core/errors.js';

/** The problems a config text is rejected with; throws if it is accepted. */
export function problemsOf(text: string, env: NodeJS.ProcessEnv = {}, file = '/etc/backproof/backproof.yaml'): ConfigProblem[] {
  try {
    parseConfigText(text, file, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected the config to be rejected');
}

/** The problems a config file or folder is rejected with by loadConfig; throws if it is accepted. */
export async function problemsOfPath(file: string): Promise<ConfigProblem[]> {
  try {
    await loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected the config to be rejected');
}

/** The problem at a key path (as printed, e.g. `clients[0].policies[0].source.bucket`). */
export function problemAt(problems: ConfigProblem[], keyPath: string): ConfigProblem {
  const found = problems.find((p) => p.path === keyPath);
  if (!found) throw new Error(`no problem at ${keyPath}; got:\n${problems.map(formatConfigProblem).join('\n')}`);
  return found;
}
