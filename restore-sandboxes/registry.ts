import type { PolicyConfig, ResolvedConfig } from '../orchestrator/core/config-types.js';
import { CustomRestorer } from './custom/custom-restorer.js';
import { DockerRuntime } from './docker/docker-runtime.js';
import { FilesRestorer } from './files/files-restorer.js';
import { MysqlRestorer } from './mysql/mysql-restorer.js';
import { PostgresRestorer } from './postgres/postgres-restorer.js';
import type { Restorer } from './restorer.js';
import type { SandboxRuntime } from './sandbox-runtime.js';
import { SqliteRestorer } from './sqlite/sqlite-restorer.js';
import { VmRestorer } from './vm/vm-restorer.js';

/** The restorer of a policy's kind; a new one per run (restorers keep what prepare() found). */
export function restorerFor(policy: PolicyConfig): Restorer {
  switch (policy.kind) {
    case 'postgres':
      return new PostgresRestorer();
    case 'mysql':
      return new MysqlRestorer();
    case 'files':
      return new FilesRestorer();
    case 'sqlite':
      return new SqliteRestorer();
    case 'custom':
      return new CustomRestorer();
    case 'vm':
      return new VmRestorer();
  }
}

/** The sandbox runtime of a config: Docker, local or remote. */
export function runtimeFor(config: Pick<ResolvedConfig, 'docker'>): SandboxRuntime {
  return new DockerRuntime(config.docker);
}
