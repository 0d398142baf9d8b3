import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { buildStatus, renderStatus, type StatusReport } from '../../reports/status-report.js';
import { loadConfig } from '../config/load.js';
import type { DaemonSnapshot } from '../daemon/daemon.js';
import type { LivenessStatus } from '../daemon/liveness.js';
import { AlertStore } from '../evidence/alert-store.js';
import { isPidAlive } from '../evidence/pglite-executor.js';
import { BackproofError } from '../core/errors.js';
import { formatAge } from '../core/format.js';
import { clusterStatus, renderClusterStatus, type ClusterStatus } from '../cluster/cluster-status.js';
import { configPath, dataDir, openStore, type GlobalOptions } from './context.js';

/** The daemon's status snapshot in the data directory (see Daemon's `snapshotFile`). */
export function snapshotPath(opts: GlobalOptions, database?: { url?: string | undefined }): string {
  return path.join(dataDir(opts, database), 'daemon-status.json');
}

export function registerStatus(program: Command, setExit: (code: number) => void): void {
  program
    .command('status')
    .description("every policy's last verdict, last success, newest backup age against its RPO, next scheduled run, open alerts and failed deliveries")
    .option('--json', 'JSON on stdout')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const config = await loadConfig(configPath(global));
      const snapshot = await readSnapshot(snapshotPath(global, config.database));
      const daemon = snapshot && isPidAlive(snapshot.daemon.pid) ? snapshot.daemon : undefined;
      let report: StatusReport;
      let cluster: ClusterStatus | undefined;
      let source = 'evidence store';
      try {
        const store = await openStore(config, global);
        try {
          report = await buildStatus(config, store, new AlertStore(store.executor, store.schema));
          if (store.kind === 'postgres') cluster = await clusterStatus(store.executor, store.schema, config);
        } finally {
          await store.close();
        }
      } catch (err) {
        // A daemon that holds the embedded store without sharing it (an older backproof, or a
        // socket it could not make): read what it last wrote.
        if (!(err instanceof BackproofError && err.code === 'store_locked' && snapshot && daemon)) throw err;
        report = snapshot.report;
        source = `the daemon's snapshot of ${snapshot.report.generatedAt} (the daemon holds the embedded store)`;
      }
      if (opts.json) {
        process.stdout.write(JSON.stringify({ daemon: daemon ?? null, ...report, ...(cluster ? { cluster } : {}) }, null, 2) + '\n');
      } else {
        process.stdout.write(renderStatus(report, [daemonLine(daemon), `from ${source}`, '']) + '\n');
        if (cluster) process.stdout.write(`\n${renderClusterStatus(cluster)}\n`);
      }
      setExit(0);
    });
}

async function readSnapshot(file: string): Promise<DaemonSnapshot | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as DaemonSnapshot;
  } catch {
    return undefined;
  }
}

function daemonLine(d: LivenessStatus | undefined): string {
  if (!d) return 'daemon: not running (start it with backproof daemon)';
  const beat = formatAge(Math.max(0, Date.now() - Date.parse(d.beatAt)));
  const running = d.running.length ? `; running: ${d.running.map((r) => r.policy).join(', ')}` : '';
  return `daemon: ${d.status}, pid ${d.pid}, last beat ${beat} ago${running}${d.queued ? `; ${d.queued} queued` : ''}`;
}
