import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { renderRunSummary, renderRunsTable } from '../../reports/run-summary.js';
import type { RunRecord } from '../core/domain.js';
import { BackproofError } from '../core/errors.js';
import type { RunStore } from '../evidence/run-store.js';
import { formatBytes } from '../core/format.js';
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
    .description('one run in detail: phases with timings, probes, reasons, a vm run\'s boot (an id prefix of 8+ characters is enough)')
    .argument('<id>', 'run id')
    .option('--json', 'JSON on stdout')
    .option('--screenshot <file>', "kind vm: save the run's last screenshot (PNG) to this file, checked against the sha256 sealed in its record")
    .action(async (id: string, opts: { json?: boolean; screenshot?: string }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const store = await openStore(await storeSettings(global), global);
      try {
        const run = await store.get(id);
        if (!run) throw new BackproofError('unknown_run', `no run ${id} in the evidence store`);
        if (opts.screenshot !== undefined) await saveScreenshot(store, run, opts.screenshot);
        process.stdout.write((opts.json ? JSON.stringify(run, null, 2) : renderRunSummary(run)) + '\n');
        setExit(0);
      } finally {
        await store.close();
      }
    });
}

/**
 * Writes the run's screenshot to `file`, only if its bytes still hash to the sha256 its sealed
 * record names (an altered store is refused, not copied out). Says what it wrote on stderr.
 */
async function saveScreenshot(store: RunStore, run: RunRecord, file: string): Promise<void> {
  const ref = run.boot?.screenshot;
  if (!ref) {
    const why = run.boot ? 'its boot kept no screenshot (QEMU showed no screen)' : `it is a ${run.kind} run; only kind vm runs keep a screenshot`;
    throw new BackproofError('no_screenshot', `run ${run.id} has no screenshot: ${why}`);
  }
  const stored = await store.artifact(run.id, ref.name);
  if (!stored) throw new BackproofError('artifact_missing', `run ${run.id} names ${ref.name} (sha256 ${ref.sha256}) but the evidence store does not hold it`);
  const sha256 = createHash('sha256').update(stored.bytes).digest('hex');
  if (sha256 !== ref.sha256) {
    throw new BackproofError(
      'artifact_mismatch',
      `the stored ${ref.name} of run ${run.id} has sha256 ${sha256}, not the ${ref.sha256} sealed in its record: the evidence store was altered; run backproof evidence verify`,
    );
  }
  const target = path.resolve(file);
  await fs.writeFile(target, stored.bytes);
  process.stderr.write(`wrote ${target} (${ref.name}, ${formatBytes(stored.bytes.length)}, sha256 ${sha256})\n`);
}
