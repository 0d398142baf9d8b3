import type { PolicyConfig, ResolvedConfig, RestoreKind } from '../orchestrator/core/config-types.js';
import { CustomRestorer } from './custom/custom-restorer.js';
import { DockerRuntime } from './docker/docker-runtime.js';
import { FilesRestorer } from './files/files-restorer.js';
import { MysqlRestorer } from './mysql/mysql-restorer.js';
import { PostgresRestorer } from './postgres/postgres-restorer.js';
import type { Restorer } from './restorer.js';
import type { SandboxRuntime } from './sandbox-runtime.js';
import { SqliteRestorer } from './sqlite/sqlite-restorer.js';
import { VmRestorer } from './vm/vm-restorer.js';

/** One restorer per kind (RESTORE_KINDS); the type makes a kind without one a compile error. */
export const RESTORERS: { readonly [K in RestoreKind]: () => Restorer<K> } = {
  postgres: () => new PostgresRestorer(),
  mysql: () => new MysqlRestorer(),
  files: () => new FilesRestorer(),
  sqlite: () => new SqliteRestorer(),
  custom: () => new CustomRestorer(),
  vm: () => new VmRestorer(),
};

/** The restorer of a policy's kind; a new one per run (restorers keep what prepare() found). */
export function restorerFor(policy: PolicyConfig): Restorer {
  // The runner hands the restorer only this policy, whose kind is the restorer's own.
  return RESTORERS[policy.kind]() as Restorer;
}

/** The sandbox runtime of a config: Docker, local or remote. */
export function runtimeFor(config: Pick<ResolvedConfig, 'docker'>): SandboxRuntime {
  return new DockerRuntime(config.docker);
}
