import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { buildMonthlyReport, findClient, parseMonth, previousMonth, renderMonthlyReport, reportFileName, type MonthlyReport } from '../../reports/monthly/index.js';
import { REPORT_FORMATS } from '../config/reports-schema.js';
import { loadConfig } from '../config/load.js';
import type { ReportFormat } from '../core/config-types.js';
import { AlertStore } from '../evidence/alert-store.js';
import { EvidenceChain } from '../evidence/chain.js';
import { formatBytes } from '../core/format.js';
import { configPath, openStore, type GlobalOptions } from './context.js';

interface ReportOptions {
  client: string;
  month?: string;
  format?: ReportFormat;
  out?: string;
}

/**
 * `backproof report --client C --month YYYY-MM --format pdf|html|csv|json [--out FILE]`: the
 * client's monthly report from the evidence store. Progress goes to stderr; the report to FILE
 * (default: its own name in the current folder), or to stdout with `--out -`. Exit 2 when the
 * evidence chain does not verify (the report is still written, and says so).
 */
export function registerReport(program: Command, setExit: (code: number) => void): void {
  program
    .command('report')
    .description("a client's monthly report: summary, per-policy runs, failures and what was done, trend charts, evidence appendix")
    .requiredOption('--client <name>', 'the client (its name in the config)')
    .option('--month <YYYY-MM>', 'the month, counted in reports.timezone (default: the previous month)')
    .addOption(new Option('--format <format>', 'pdf, html, csv or json (default: reports.format, else pdf)').choices([...REPORT_FORMATS]))
    .option('-o, --out <file>', 'where to write it; "-" for stdout (default: backproof-<client>-<month>.<format> here)')
    .action(async (opts: ReportOptions, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const config = await loadConfig(configPath(global));
      const zone = config.reports?.timezone ?? 'UTC';
      const month = opts.month ?? previousMonth(new Date(), zone);
      const format: ReportFormat = opts.format ?? config.reports?.format ?? 'pdf';
      const say = (line: string): void => void process.stderr.write(`${line}\n`);
      // Usage errors before the store is opened (that takes seconds).
      parseMonth(month);
      findClient(config, opts.client);

      say(`reading the evidence of ${opts.client} for ${month} (${zone})...`);
      const store = await openStore(config, global);
      let report: MonthlyReport;
      try {
        report = await buildMonthlyReport(
          { runs: store, alerts: new AlertStore(store.executor, store.schema), chain: new EvidenceChain(store.executor, store.schema), config },
          { client: opts.client, month },
        );
      } finally {
        await store.close();
      }
      say(`rendering ${format}: ${report.summary.runs} runs of ${report.policies.length} policies, ${report.failures.length} failures, ${report.incidents.length} incidents...`);
      const bytes = await renderMonthlyReport(report, format);
      if (opts.out === '-') {
        process.stdout.write(bytes);
      } else {
        const file = path.resolve(opts.out ?? reportFileName(report, format));
        await fs.writeFile(file, bytes);
        say(`wrote ${file} (${formatBytes(bytes.length)})`);
      }
      const chain = report.evidence.verification;
      if (!chain.ok) {
        const why = 'error' in chain ? chain.error : (chain.firstBad?.problem ?? 'see the evidence appendix');
        say(`warning: the evidence chain does not verify (${why}); the report says so. Run backproof evidence verify`);
        setExit(2);
      } else {
        setExit(0);
      }
    });
}
