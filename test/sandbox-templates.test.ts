import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { POSTGRES_LIB, templateName } from '../restore-sandboxes/postgres/cluster.js';
import type { Sandbox, SandboxSpec } from '../restore-sandboxes/sandbox-runtime.js';
import { age, createShopDatabase, dumpDatabase } from './helpers/fixtures.js';
import { leftoversOf, policyFromYaml, tempDir, useRestoreEnv, verify } from './helpers/harness.js';
import { createMysqlShop, startMysqlFixtureServer } from './helpers/mysql-fixtures.js';

// backproof/postgres:<major> carries the empty cluster initdb made when the image was built (a
// tar the restorer unpacks into the run's new data volume); backproof/mariadb an initialised data
// directory that Docker seeds each run's new volume with. A run on them skips initdb
// (mariadb-install-db). Images without (official images, backproof images built before, a
// policy's own sandbox.image) still get one made per run. Real images and runs; the images
// without a template are the real ones with it removed (docker commit).

const env = useRestoreEnv(t);
const PG15 = 'backproof/postgres:15';
const MARIADB = 'backproof/mariadb';

/** The real Docker runtime, keeping every argv run in its sandboxes. */
class RecordingRuntime extends DockerRuntime {
  readonly execs: string[][] = [];
  readonly stdouts: string[] = [];

  override async create(spec: SandboxSpec, signal?: AbortSignal): Promise<Sandbox> {
    const sandbox = await super.create(spec, signal);
    const exec = sandbox.exec.bind(sandbox);
    sandbox.exec = async (argv, opts) => {
      this.execs.push(argv);
      const result = await exec(argv, opts);
      this.stdouts.push(result.stdout);
      return result;
    };
    return sandbox;
  }

  /** How the PostgreSQL cluster was made, as the branch its script took said (postgres-restorer.ts startCluster). */
  clusterMadeBy(): string | undefined {
    for (const out of this.stdouts) {
      const m = /^backproof-cluster \d+ (template|initdb)$/m.exec(out);
      if (m) return m[1];
    }
    return undefined;
  }

  /** Whether `program` ran: as an exec's program, or a command of its `sh -c` script, or one that script execs from its arguments. */
  ran(program: string): boolean {
    const words = (argv: string[]): string[] => (argv[0] === 'sh' && argv[1] === '-c' ? [...(argv[2] ?? '').split(/[\s;|&]+/), ...argv.slice(4)] : [argv[0] ?? '']);
    return this.execs.some((argv) => words(argv).some((w) => path.posix.basename(w.replace(/["']/g, '')) === program));
  }
}

const madeImages: string[] = [];
t.teardown(async () => {
  const docker = new DockerRuntime().docker;
  for (const tag of madeImages) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
});

/** `base` changed by `script` run as root (sh -c), committed as a new image for this test file. */
async function derivedImage(base: string, name: string, script: string): Promise<string> {
  const docker = new DockerRuntime().docker;
  const tag = `backproof-test/${name}:${process.pid}`;
  const container = await docker.createContainer({ Image: base, Cmd: ['sh', '-c', script], User: 'root', NetworkDisabled: true, HostConfig: { NetworkMode: 'none' } });
  try {
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    if (StatusCode !== 0) throw new Error(`${script} exited ${StatusCode} in ${base}`);
    const [repo, version] = tag.split(':') as [string, string];
    await container.commit({ repo, tag: version });
    madeImages.push(tag);
    return tag;
  } finally {
    await container.remove({ force: true });
  }
}

let folder: string;
let ordersTotal: string;
t.before(async () => {
  folder = await tempDir('templates');
  const db = await createShopDatabase(env.cluster);
  ordersTotal = (await env.cluster.psql('SELECT sum(total_cents) FROM orders', db)).trim();
  const file = path.join(folder, 'shop.dump');
  await dumpDatabase(env.cluster, db, file, 'custom');
  await age(file, 60_000);
});
t.teardown(() => fs.rm(folder, { recursive: true, force: true }));

/** The shop dump restored in `image`, its data checked to the cent. */
async function restoreIn(image: string, runtime: RecordingRuntime): Promise<RunRecord> {
  const probes = `          - tablesExist: [customers, orders]
          - rowCount: { table: orders, atLeast: 5000 }
          - sql: SELECT sum(total_cents) FROM orders
            equals: ${ordersTotal}`;
  return verify(policyFromYaml({ folder, probes, sandbox: `image: ${JSON.stringify(image)}, memory: 1g, timeout: 5m` }), env.store, runtime);
}

const sandboxDetail = (run: RunRecord): string | undefined => run.phases.find((p) => p.name === 'sandbox')?.detail;

t.test('backproof/postgres:15 carries the cluster: runs skip initdb, restore the data, and start from a fresh copy', async (t) => {
  for (const attempt of [1, 2]) {
    // The second run restores into the template's empty database again: had the first run's
    // data reached the image or a shared volume, pg_restore would find its tables there and fail.
    const runtime = new RecordingRuntime();
    const run = await restoreIn(PG15, runtime);
    t.equal(run.verdict, 'pass', `run ${attempt}: ${JSON.stringify(run.reasons)}`);
    t.equal(run.probes.length, 3);
    t.ok(run.probes.every((p) => p.pass), `run ${attempt}: the data is the dump's, to the cent`);
    t.match(run.restored, { tables: 2 });
    t.equal(sandboxDetail(run), "the image's PostgreSQL 15 cluster template, unpacked (no initdb)", `run ${attempt}: the evidence says which way`);
    t.equal(runtime.clusterMadeBy(), 'template', `run ${attempt}: the template was unpacked, no initdb in the sandbox`);
    t.ok(runtime.ran('tar') && runtime.ran('pg_ctl'), `run ${attempt}: the template was unpacked and the server started`);
    t.equal(await leftoversOf(run.id), 0, `run ${attempt}: its volume is gone`);
    t.notOk(runtime.execs.some((argv) => argv.some((a) => a.startsWith('CREATE DATABASE'))), `run ${attempt}: no CREATE DATABASE, the template's empty database is used`);
  }
});

t.test("a policy's own database name: the template's empty database is renamed to it, the probes run there", async (t) => {
  const runtime = new RecordingRuntime();
  const probes = `          - sql: SELECT current_database()
            equals: shop_books
          - sql: SELECT count(*) FROM pg_database WHERE datname LIKE '%restore%'
            equals: 0
            name: the empty database was renamed, not left beside a new one
          - rowCount: { table: orders, atLeast: 5000 }`;
  const policy = policyFromYaml({ folder, probes, sandbox: `image: ${JSON.stringify(PG15)}, memory: 1g, timeout: 5m`, extra: '        postgres: { database: shop_books }' });
  const run = await verify(policy, env.store, runtime);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.match(run.restored, { database: 'shop_books', tables: 2 });
  t.ok(run.probes.every((p) => p.pass), JSON.stringify(run.probes));
  t.notOk(runtime.execs.some((argv) => argv.some((a) => a.startsWith('CREATE DATABASE'))), 'renamed, not created');
  t.equal(await leftoversOf(run.id), 0);
});

t.test("an image without the template (an official or older image, a policy's own) still gets initdb and passes", async (t) => {
  const image = await derivedImage(PG15, 'postgres-no-template', `rm ${POSTGRES_LIB}/${templateName(15)}`);
  const runtime = new RecordingRuntime();
  const run = await restoreIn(image, runtime);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.ok(run.probes.every((p) => p.pass));
  t.equal(run.sandbox?.image, image);
  t.equal(sandboxDetail(run), 'initdb: the image has no PostgreSQL 15 cluster template');
  t.equal(runtime.clusterMadeBy(), 'initdb', 'initdb ran in the sandbox');
  t.ok(
    runtime.execs.some((argv) => argv.some((a) => a.startsWith('CREATE DATABASE'))),
    "initdb's cluster has no empty database of the template's: the restore's is created",
  );
  t.equal(await leftoversOf(run.id), 0);
});

t.test('a damaged cluster template is an error that says so, not a server that fails to start', async (t) => {
  const tar = `${POSTGRES_LIB}/${templateName(15)}`;
  const image = await derivedImage(PG15, 'postgres-damaged-template', `head -c 100000 ${tar} > /tmp/t && mv /tmp/t ${tar}`);
  const run = await restoreIn(image, new RecordingRuntime());
  t.equal(run.verdict, 'error', 'the sandbox, not the backup, failed');
  t.equal(run.reasons[0]?.code, 'sandbox_failed');
  t.match(run.reasons[0]?.message, /unpacking the image's cluster template failed in the sandbox \(exit 2\): .*tar/, run.reasons[0]?.message ?? 'no reason');
  t.equal(await leftoversOf(run.id), 0);
});

t.test('an image with no PostgreSQL server is an error that says so', async (t) => {
  const image = await derivedImage(PG15, 'postgres-no-server', `rm -rf ${POSTGRES_LIB}/15`);
  const run = await restoreIn(image, new RecordingRuntime());
  t.equal(run.verdict, 'error');
  t.equal(run.reasons[0]?.code, 'sandbox_failed');
  t.match(run.reasons[0]?.message, `has no ${POSTGRES_LIB}/<major>/bin; use a PostgreSQL image`);
  t.equal(await leftoversOf(run.id), 0);
});

t.test("a template of another major is not the server's: initdb", async (t) => {
  const image = await derivedImage(PG15, 'postgres-other-major', `mv ${POSTGRES_LIB}/${templateName(15)} ${POSTGRES_LIB}/${templateName(14)}`);
  const runtime = new RecordingRuntime();
  const run = await restoreIn(image, runtime);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  t.equal(sandboxDetail(run), 'initdb: the image has no PostgreSQL 15 cluster template');
  t.equal(runtime.clusterMadeBy(), 'initdb');
});

t.test('MariaDB: backproof/mariadb skips mariadb-install-db; an image without a data directory still gets one', async (t) => {
  const mysqlFolder = await tempDir('templates-mysql');
  t.teardown(() => fs.rm(mysqlFolder, { recursive: true, force: true }));
  const server = await startMysqlFixtureServer();
  t.teardown(() => server.stop());
  await createMysqlShop(server, 'shop');
  const total = (await server.sql('SELECT SUM(total_cents) FROM orders', 'shop')).trim();
  const file = path.join(mysqlFolder, 'shop.sql');
  await server.dump(file, ['shop']);
  await age(file, 60_000);
  const probes = `          - rowCount: { table: orders, atLeast: 5000 }
          - sql: SELECT SUM(total_cents) FROM orders
            equals: ${total}`;
  const bare = await derivedImage(MARIADB, 'mariadb-no-datadir', 'rm -rf /var/lib/mysql/*');
  for (const [image, detail, installs] of [
    [MARIADB, "the image's initialised data directory (no mariadb-install-db)", false],
    [bare, 'mariadb-install-db: the image has no initialised data directory', true],
  ] as const) {
    const runtime = new RecordingRuntime();
    const policy = policyFromYaml({ folder: mysqlFolder, kind: 'mysql', probes, extra: '        mysql: { database: shop }', sandbox: `image: ${image}, memory: 1g, timeout: 5m` });
    const run = await verify(policy, env.store, runtime);
    t.equal(run.verdict, 'pass', `${image}: ${JSON.stringify(run.reasons)}`);
    t.ok(run.probes.every((p) => p.pass), `${image}: the data is the dump's`);
    t.equal(sandboxDetail(run), detail);
    t.equal(runtime.ran('mariadb-install-db'), installs, `${image}: mariadb-install-db ${installs ? 'ran' : 'did not run'}`);
    t.equal(await leftoversOf(run.id), 0);
  }
});
