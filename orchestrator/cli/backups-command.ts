import type { Command } from 'commander';
import { selectNewest, type JudgedEntry } from '../../drivers/selection.js';
import { loadConfig } from '../config/load.js';
import { BackproofError, VerificationError } from '../core/errors.js';
import { formatAge, formatBytes } from '../core/format.js';
import { renderTable } from '../../reports/text-table.js';
import { configPath, findPolicy, type GlobalOptions } from './context.js';
import { driverFor } from './plugins.js';

const STATUS_TEXT: Record<JudgedEntry['status'], string> = {
  candidate: 'candidate',
  settling: 'still being written (younger than settle)',
  'no-timestamp': 'no timestamp in the name',
  'no-match': 'does not match the selector',
  auxiliary: 'checksum/partial/hidden file: never a backup',
};

export function registerBackups(program: Command, setExit: (code: number) => void): void {
  const backups = program.command('backups').description('what is in storage, as a policy sees it');
  backups
    .command('list')
    .description("what the policy's selector sees: each backup's size, time and age, its checksums, and which one a run would pick and why (exit 1 when none)")
    .requiredOption('-p, --policy <name>', 'the policy')
    .option('--all', 'also list files the selector ignores')
    .option('-n, --limit <n>', 'at most this many rows, newest first', (v) => Number.parseInt(v, 10), 50)
    .option('--json', 'JSON on stdout')
    .action(async (opts: { policy: string; all?: boolean; limit: number; json?: boolean }, cmd: Command) => {
      const config = await loadConfig(configPath(cmd.optsWithGlobals<GlobalOptions>()));
      const policy = findPolicy(config, opts.policy);
      const driver = driverFor(policy);
      const now = new Date();
      const rows: JudgedEntry[] = [];
      // Only the newest `limit` rows are kept, whatever the size of the listing.
      const keep = (j: JudgedEntry): void => {
        if (!opts.all && (j.status === 'no-match' || j.status === 'auxiliary')) return;
        rows.push(j);
        rows.sort((a, b) => timeOf(b) - timeOf(a));
        if (rows.length > opts.limit) rows.pop();
      };
      try {
        const result = await selectNewest(driver.list(), policy.source.select, now, keep, driver.takenAt?.bind(driver));
        const listed = [];
        for (const j of rows) {
          let checksum = '-';
          try {
            const { checksums } = j.entry.unsafe ? { checksums: [] } : await driver.details(j.entry);
            if (checksums.length > 0) checksum = checksums.map((c) => c.source).join(', ');
          } catch (err) {
            if (err instanceof VerificationError) checksum = `invalid: ${err.message}`;
            else throw err;
          }
          listed.push({
            key: j.entry.key,
            size: j.entry.size,
            modifiedAt: j.entry.modifiedAt.toISOString(),
            backupTime: j.backupTime?.toISOString(),
            ageMs: j.backupTime ? now.getTime() - j.backupTime.getTime() : undefined,
            checksum,
            status: j.status,
            ...(j.entry.unsafe ? { unsafe: j.entry.unsafe } : {}),
            picked: result.picked?.entry.key === j.entry.key,
          });
        }
        if (opts.json) {
          process.stdout.write(JSON.stringify({ policy: policy.name, location: driver.location, picked: result.picked?.entry.key ?? null, explanation: result.explanation, backups: listed }, null, 2) + '\n');
        } else {
          const table = listed.map((b) => [
            b.picked ? '*' : ' ',
            b.key,
            formatBytes(b.size),
            b.backupTime ? `${b.backupTime.replace('T', ' ').slice(0, 19)} (${policy.source.select.timestamp.from})` : '-',
            b.ageMs !== undefined ? formatAge(b.ageMs) : '-',
            b.checksum,
            b.unsafe ? `UNSAFE, never read: ${b.unsafe}` : STATUS_TEXT[b.status],
          ]);
          const head = [' ', 'BACKUP', 'SIZE', 'TAKEN (UTC)', 'AGE', 'CHECKSUM', 'STATUS'];
          process.stdout.write(`${policy.name}: ${driver.location}\n${renderTable(head, table)}\n${result.explanation}\n`);
        }
        setExit(result.picked ? 0 : 1);
      } catch (err) {
        if (err instanceof VerificationError) throw new BackproofError(err.reason, err.message, { cause: err });
        throw err;
      } finally {
        await driver.close();
      }
    });
}

function timeOf(j: JudgedEntry): number {
  return (j.backupTime ?? j.entry.modifiedAt).getTime();
}
