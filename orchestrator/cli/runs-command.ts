import type { Command } from 'commander';
import { renderRunSummary, renderRunsTable } from '../../reports/run-summary.js';
import { BackproofError } from '../errors.js';
import { openStore, storeSettings, type GlobalOptions } from './context.js';

export function registerRuns(program: Command, setExit: (code: number) => void): void {
  const runs = program.command('runs').description('read run evidence back');
  runs
    .command('list')
    .description('recent runs, newest first')
    .option('-p, --policy <name>', 'only this policy')
    .option('--client <name>', 'only this client')
    .option('-n, --limit <n>', 'how many', (v) => Number.parseInt(v, 10), 20)
    .option('--json', 'JSON on stdout')
    .action(async (opts: { policy?: string; client?: string; limit: number; json?: boolean }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const store = await openStore(await storeSettings(global), global);
      try {
        const list = await store.list({ policy: opts.policy, client: opts.client, limit: opts.limit });
        process.stdout.write((opts.json ? JSON.stringify(list, null, 2) : renderRunsTable(list)) + '\n');
      } finally {
        await store.close();
      }
    });
  runs
    .command('show')
    .description('one run in detail: phases with timings, probes, reasons (an id prefix of 8+ characters is enough)')
    .argument('<id>', 'run id')
    .option('--json', 'JSON on stdout')
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const store = await openStore(await storeSettings(global), global);
      try {
        const run = await store.get(id);
        if (!run) throw new BackproofError('unknown_run', `no run ${id} in the evidence store`);
        process.stdout.write((opts.json ? JSON.stringify(run, null, 2) : renderRunSummary(run)) + '\n');
        setExit(0);
      } finally {
        await store.close();
      }
    });
}
