import type { Command } from 'commander';
import { selectNewest, type JudgedEntry } from '../../drivers/selection.js';
import { policyCoverage, renderCoverage, type PolicyCoverage } from '../../reports/coverage-status.js';
import { loadConfig } from '../config/load.js';
import { DEFAULTS } from '../core/defaults.js';
import { BackproofError, VerificationError } from '../core/errors.js';
import type { RestorePoint } from '../runner/coverage-plan.js';
import { configPath, findPolicy, openStore, type GlobalOptions } from './context.js';
import { driverFor } from './plugins.js';

export function registerCoverage(program: Command, setExit: (code: number) => void): void {
  program
    .command('coverage')
    .description(
      "retention coverage: each restore point in storage with its last verification and the age of that proof, and the share proven within coverage.every (policies with coverage:, or the one named); exit 1 when an older point's last verification failed or a policy is below its target",
    )
    .option('-p, --policy <name>', 'only this policy (with coverage.every 30d when it sets no coverage)')
    .option('-c, --client <name>', "only this client's policies")
    .option('--json', 'JSON on stdout')
    .action(async (opts: { policy?: string; client?: string; json?: boolean }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const config = await loadConfig(configPath(global));
      if (opts.client && !config.clients.some((c) => c.name === opts.client)) {
        throw new BackproofError('unknown_client', `no client "${opts.client}" in ${config.file}; clients: ${config.clients.map((c) => c.name).join(', ')}`);
      }
      const policies = opts.policy ? [findPolicy(config, opts.policy)] : config.policies.filter((p) => p.coverage && (!opts.client || p.client === opts.client));
      if (policies.length === 0) {
        process.stderr.write(`no policy${opts.client ? ` of ${opts.client}` : ''} sets coverage: in ${config.file}; add coverage: { every: 30d, points: 1 } to a policy, or name one with --policy\n`);
        if (opts.json) process.stdout.write('[]\n');
        return;
      }
      const store = await openStore(config, global);
      const now = new Date();
      const results: PolicyCoverage[] = [];
      try {
        for (const policy of policies) {
          const driver = driverFor(policy);
          try {
            const points: RestorePoint[] = [];
            const collect = (j: JudgedEntry): void => void (j.status === 'candidate' && j.backupTime && points.push({ key: j.entry.key, backupTime: j.backupTime }));
            await selectNewest(driver.list(), policy.source.select, now, collect, driver.takenAt?.bind(driver));
            const proofs = await store.pointProofs(policy.name);
            const settings = policy.coverage ?? { everyMs: DEFAULTS.coverageEveryMs };
            results.push(policyCoverage(policy, driver.location, settings, points, proofs, now));
          } catch (err) {
            if (err instanceof VerificationError) throw new BackproofError(err.reason, `${policy.name}: ${err.message}`, { cause: err });
            throw err;
          } finally {
            await driver.close();
          }
        }
      } finally {
        await store.close();
      }
      if (opts.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
      else process.stdout.write(results.map(renderCoverage).join('\n\n') + '\n');
      setExit(results.some((r) => r.attention) ? 1 : 0);
    });
}
