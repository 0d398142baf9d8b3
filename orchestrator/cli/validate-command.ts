import type { Command } from 'commander';
import { configJsonSchema } from '../config/schema.js';
import { loadConfig } from '../config/load.js';
import { configPath, type GlobalOptions } from './paths.js';

export function registerValidate(program: Command, _setExit: (code: number) => void): void {
  program
    .command('validate')
    .description('check the configuration file; prints each problem as file:line: key path: problem; fix')
    .action(async (_opts: unknown, cmd: Command) => {
      const config = await loadConfig(configPath(cmd.optsWithGlobals<GlobalOptions>()));
      const c = config.clients.length;
      const p = config.policies.length;
      const scheduled = config.policies.filter((policy) => policy.schedule !== undefined).length;
      const channels = config.alerts.channels.length;
      // The daemon's parts are mentioned only when the file has them.
      const extra = [scheduled > 0 ? `${scheduled} scheduled` : '', channels > 0 ? `${channels} alert ${channels === 1 ? 'channel' : 'channels'}` : ''].filter(Boolean);
      process.stdout.write(`ok: ${c} ${c === 1 ? 'client' : 'clients'}, ${p} ${p === 1 ? 'policy' : 'policies'}${extra.map((e) => `, ${e}`).join('')}\n`);
    });

  program
    .command('schema')
    .description('print the JSON Schema of the configuration file, for editor completion')
    .action(() => {
      process.stdout.write(JSON.stringify(configJsonSchema(), null, 2) + '\n');
    });
}
