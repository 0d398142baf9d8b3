import { randomUUID } from 'node:crypto';
import type { RunRecord } from '../../orchestrator/core/domain.js';
import { RunStore } from '../../orchestrator/evidence/run-store.js';
import type { PgCluster } from './pg-cluster.js';

/**
 * What the store suites share: both backends of the executor seam (a real PostgreSQL server and
 * embedded PGlite), a register of every store a file opens so its leak check can tell none was
 * left open, and a run record to vary.
 */
export class OpenStores {
  readonly open = new Set<RunStore>();

  async track(opening: Promise<RunStore>): Promise<RunStore> {
    const store = await opening;
    this.open.add(store);
    return store;
  }

  async release(store: RunStore): Promise<void> {
    await store.close();
    this.open.delete(store);
  }
}

export interface Backend {
  /** `pglite-shared`: the embedded store held by another process, used through its socket. */
  name: 'postgres' | 'pglite' | 'pglite-shared';
  engine: 'postgres' | 'pglite';
  open(): Promise<RunStore>;
}

/**
 * PostgreSQL at `pgUrl` in `pgSchema`, and PGlite in `liteDir`; with `sharedDir` (held by a
 * StoreHolder the caller started there), the embedded store through its holder too. All tracked.
 */
export function bothBackends(stores: OpenStores, o: { pgUrl: string; pgSchema: string; dataDir: string; liteDir: string; sharedDir?: string }): Backend[] {
  const backends: Backend[] = [
    { name: 'postgres', engine: 'postgres', open: () => stores.track(RunStore.open({ url: o.pgUrl, dataDir: o.dataDir, schema: o.pgSchema })) },
    { name: 'pglite', engine: 'pglite', open: () => stores.track(RunStore.open({ dataDir: o.liteDir, schema: 'backproof' })) },
  ];
  const shared = o.sharedDir;
  if (shared) backends.push({ name: 'pglite-shared', engine: 'pglite', open: () => stores.track(RunStore.open({ dataDir: shared, schema: 'backproof' })) });
  return backends;
}

/** backproof's connections still open on the server, after waiting up to 5 s for them to close. */
export async function backproofConnections(cluster: PgCluster): Promise<number> {
  let left = -1;
  for (let i = 0; i < 50 && left !== 0; i++) {
    left = Number((await cluster.psql(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'backproof'`)).trim());
    if (left) await new Promise((r) => setTimeout(r, 100));
  }
  return left;
}

/** A run as recordStart sees it (running, no verdict), started at `startedAt`; `over` changes any field. */
export function sampleRun(startedAt: string, over: Partial<RunRecord> = {}): RunRecord {
  return {
    id: randomUUID(),
    client: 'acme',
    policy: 'acme-nightly-pg',
    kind: 'postgres',
    status: 'running',
    verdict: null,
    reasons: [],
    startedAt,
    finishedAt: null,
    durationMs: null,
    host: 'test-host',
    pid: 4242,
    backproofVersion: '0.1.0',
    backup: null,
    phases: [],
    probes: [],
    metrics: {},
    sandbox: null,
    restored: null,
    ...over,
  };
}
