import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { AlertEngine } from '../orchestrator/alerts/alert-engine.js';
import { driverFor, restorerFor } from '../orchestrator/cli/plugins.js';
import type { PolicyConfig } from '../orchestrator/core/config-types.js';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { AlertStore } from '../orchestrator/evidence/alert-store.js';
import type { RunStore } from '../orchestrator/evidence/run-store.js';
import { runWithCoverage } from '../orchestrator/runner/coverage-runs.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { archive, makeShareTree } from './helpers/archive-fixtures.js';
import { REPO, runCommand } from './helpers/command.js';
import { age, stampedName, truncateFile } from './helpers/fixtures.js';
import { codes, leftoversOf, openEmbeddedStore, policyFromYaml, quietLogger, tempDir } from './helpers/harness.js';
import { startS3Server, type S3Server } from './helpers/s3-server.js';

// Retention coverage (issue 19, part 1) on real parts: archives made by the real tar, kept in a
// folder, in S3 (s3rver) and as restic snapshots; each older restore point restored in the real
// sandbox as a coverage run, a damaged one failing on its own without touching the newest's
// standing. Backup times are set relative to the real clock, so this passes on any date.

const exec = promisify(execFile);
/** The built CLI (npm run build), as a user runs it. */
const runCli = (args: string[]) => runCommand(process.execPath, [path.join(REPO, 'bin', 'backproof.js'), ...args]);
const HOUR = 3_600_000;
let store: RunStore;
let tree: string;
t.before(async () => {
  ({ store } = await openEmbeddedStore());
  tree = await tempDir('cov-tree');
  await makeShareTree(tree);
});
t.teardown(() => store.close());

const deps = () => ({ store, runtime: new DockerRuntime(), driverFor, restorerFor, logger: quietLogger() });

async function archiveTo(file: string): Promise<void> {
  await archive(tree, file, 'tar.gz');
}

function coveragePolicy(name: string, source: string, coverage: string, env: NodeJS.ProcessEnv = {}): PolicyConfig {
  const p = policyFromYaml({ folder: tree, kind: 'files', source, probes: '          []', extra: `        coverage: ${coverage}\n`, env });
  return { ...p, name };
}

t.test('local folder: the newest, then the never-verified older points oldest first; a damaged one fails alone', async (t) => {
  const folder = await tempDir('cov-local');
  // share-1 is the oldest (4 days), share-2 is damaged, share-5 the newest.
  for (let i = 1; i <= 5; i++) {
    const file = path.join(folder, `share-${i}.tar.gz`);
    await archiveTo(file);
    if (i === 2) await truncateFile(file, 0.5);
    await age(file, (5 - i) * 24 * HOUR + 60_000);
  }
  const source = `          driver: local\n          path: ${JSON.stringify(folder)}\n          select: { glob: "share-*", timestamp: mtime, settle: 5s }`;
  const policy = coveragePolicy('cov-local', source, '{ every: 30d, points: 2, target: "90%" }');
  const first = await runWithCoverage(policy, deps());
  t.equal(first.length, 3, 'the newest and two coverage runs');
  const [newest, oldest, damaged] = first as [RunRecord, RunRecord, RunRecord];
  t.equal(newest.verdict, 'pass', JSON.stringify(newest.reasons));
  t.equal(newest.backup?.key, 'share-5.tar.gz');
  t.same(newest.coverage?.plan?.planned, [{ key: 'share-1.tar.gz', why: 'never' }, { key: 'share-2.tar.gz', why: 'never' }]);
  t.equal(newest.coverage?.plan?.points, 5);
  t.equal(newest.coverage?.plan?.proven, 1, 'the newest, proven by this run');
  t.equal(newest.coverage?.plan?.target, 0.9);

  t.equal(oldest.backup?.key, 'share-1.tar.gz');
  t.equal(oldest.verdict, 'pass', `a 4-day-old point is no stale backup: ${JSON.stringify(oldest.reasons)}`);
  t.same(oldest.coverage, { point: { key: 'share-1.tar.gz', why: 'never', everyMs: 30 * 24 * HOUR, planRunId: newest.id } });
  t.equal(oldest.metrics.rpoMeasuredMs, undefined, 'no rpo figure for an older point');
  t.ok((oldest.restored?.files as number) > 10, 'restored for real');

  t.equal(damaged.backup?.key, 'share-2.tar.gz');
  t.equal(damaged.verdict, 'fail');
  t.ok(codes(damaged).some((c) => c === 'corrupt_compression' || c === 'truncated_dump' || c === 'restore_failed'), JSON.stringify(damaged.reasons));
  for (const r of first) t.equal(await leftoversOf(r.id), 0, `nothing of run ${r.id.slice(0, 8)} is left`);

  const latest = await store.latestSummaryPerPolicy();
  t.equal(latest.get('cov-local')?.id, newest.id, "status and the board still show the newest backup's run");
  t.equal((await store.get(damaged.id))?.coverage?.point?.key, 'share-2.tar.gz', 'the coverage record reads back');

  // Alerts: the damaged point opens its own incident; the share (2 of 5 < 90%) opens another.
  const alerts = new AlertStore(store.executor, store.schema);
  const engine = new AlertEngine({ alerts, runs: store, logger: quietLogger() });
  engine.configure({ clients: [{ name: 'acme', displayName: 'ACME', policies: [] } as never], policies: [policy], alerts: { channels: [] } as never, secrets: [] }, new Map());
  for (const r of first) await engine.afterRun(policy, r);
  const open = (await alerts.openIncidents()).filter((i) => i.policy === 'cov-local');
  t.same(open.map((i) => [i.condition, i.key]).sort(), [['coverage', ''], ['coverage', 'share-2.tar.gz']]);
  t.notOk(open.some((i) => i.condition === 'fail' || i.condition === 'stale'), 'the newest backup is not alerted on');

  // The next run: the remaining never-verified points; the damaged one, failed within every, waits.
  const second = await runWithCoverage(policy, deps());
  t.same(second[0]!.coverage?.plan?.planned, [{ key: 'share-3.tar.gz', why: 'never' }, { key: 'share-4.tar.gz', why: 'never' }]);
  t.equal(second[0]!.coverage?.plan?.proven, 2, 'share-5 and share-1');
  t.same(second.slice(1).map((r) => r.verdict), ['pass', 'pass']);
  const third = await runWithCoverage(policy, deps());
  t.same(third[0]!.coverage?.plan?.planned, [], 'every point verified within every: nothing due');
  t.equal(third[0]!.coverage?.plan?.proven, 4);

  // A point pruned between the plan and its run is an error of the listing, not a bad backup.
  let listed = 0;
  const pruned = await runWithCoverage({ ...policy, coverage: { ...policy.coverage!, sample: 1 } }, {
    ...deps(),
    driverFor: (p) => {
      const d = driverFor(p);
      return Object.assign(Object.create(d) as typeof d, {
        // The second listing (the coverage run's) no longer holds the sampled point.
        async *list(signal?: AbortSignal) {
          const round = ++listed;
          for await (const e of d.list(signal)) if (round === 1 || e.key === 'share-5.tar.gz') yield e;
        },
        close: () => d.close(),
      });
    },
  });
  t.equal(pruned.length, 2, 'the newest and the sampled point');
  t.equal(pruned[1]!.verdict, 'error');
  t.same(codes(pruned[1]!), ['source_changed']);
  t.match(pruned[1]!.reasons[0]!.message, /is no longer among the backups .* \(pruned since\?\)/);
});

t.test('the CLI: run prints every run (--json an array), --no-coverage restores only the newest, coverage shows each point', async (t) => {
  const folder = await tempDir('cov-cli');
  for (let i = 1; i <= 3; i++) {
    const file = path.join(folder, `share-${i}.tar.gz`);
    await archiveTo(file);
    await age(file, (3 - i) * 24 * HOUR + 60_000);
  }
  const data = await tempDir('cov-cli-data');
  const config = path.join(folder, 'backproof.yaml');
  await fs.writeFile(
    config,
    `clients:
  - name: acme
    policies:
      - name: shop-files
        kind: files
        source: { driver: local, path: ${JSON.stringify(folder)}, select: { glob: "share-*", timestamp: mtime, settle: 5s } }
        files: { ransomware: false }
        coverage: { every: 7d, points: 1 }
`,
  );
  const base = ['--config', config, '--data-dir', data];
  const only = await runCli([...base, 'run', '--policy', 'shop-files', '--json', '--no-coverage']);
  t.equal(only.code, 0, only.stderr);
  const single = JSON.parse(only.stdout) as RunRecord;
  t.equal(single.backup?.key, 'share-3.tar.gz', 'one run: printed as one record');
  t.same(single.coverage?.plan?.planned, [{ key: 'share-1.tar.gz', why: 'never' }], 'the plan is recorded even so');

  const both = await runCli([...base, 'run', '--policy', 'shop-files', '--json']);
  t.equal(both.code, 0, both.stderr);
  const runs = JSON.parse(both.stdout) as RunRecord[];
  t.same(runs.map((r) => [r.backup?.key, r.verdict, r.coverage?.point?.why ?? null]), [['share-3.tar.gz', 'pass', null], ['share-1.tar.gz', 'pass', 'never']]);

  const text = await runCli([...base, 'run', '--policy', 'shop-files']);
  t.match(text.stdout, /coverage 2 of 3 restore points proven within 7\.0d; next: share-2\.tar\.gz \(never verified before\)/);
  t.match(text.stdout, /coverage older restore point share-2\.tar\.gz \(never verified before\), planned by run [0-9a-f-]{36}/);

  const list = await runCli([...base, 'runs', 'list', '--policy', 'shop-files']);
  t.match(list.stdout, /share-1\.tar\.gz \(coverage\)/, 'runs list marks coverage runs');
  t.notMatch(list.stdout, /share-3\.tar\.gz \(coverage\)/, 'and not the runs of the newest');
  const cov = await runCli([...base, 'coverage', '--json']);
  t.equal(cov.code, 0, cov.stderr);
  const [c] = JSON.parse(cov.stdout) as Array<{ policy: string; points: number; proven: number; rows: Array<{ key: string; state: string; newest: boolean }> }>;
  t.equal(c?.policy, 'shop-files');
  t.same(c?.rows.map((r) => [r.key, r.state, r.newest]), [['share-3.tar.gz', 'proven', true], ['share-2.tar.gz', 'proven', false], ['share-1.tar.gz', 'proven', false]]);
  const table = await runCli([...base, 'coverage', '--client', 'acme']);
  t.match(table.stdout, /shop-files \(acme\): .*\n3 of 3 restore points proven within 7\.0d \(100%\)/);
  const none = await runCli([...base, 'coverage', '--client', 'nobody']);
  t.equal(none.code, 2);
  t.match(none.stderr, /no client "nobody"/);
});

t.test('S3 keys, restic snapshots and borg archives are restore points too', async (t) => {
  const s3: S3Server = await startS3Server();
  t.teardown(() => s3.stop());
  await s3.createBucket('cov');
  const file = path.join(await tempDir('cov-s3'), 'share.tar.gz');
  await archiveTo(file);
  const now = Date.now();
  for (const h of [1, 25, 49]) await s3.put('cov', `daily/${stampedName('share', new Date(now - h * HOUR), '.tar.gz')}`, await fs.readFile(file));
  const s3Source = `          driver: s3
          bucket: cov
          prefix: daily/
          endpoint: ${s3.endpoint}
          credentials: { accessKeyId: "\${env:K}", secretAccessKey: "\${env:K}" }
          select: { glob: "share-*", timestamp: name, settle: 0s }`;
  const fromS3 = await runWithCoverage(coveragePolicy('cov-s3', s3Source, '{ points: 5 }', { K: 'S3RVER' }), deps());
  t.same(
    fromS3.map((r) => [r.backup?.key, r.verdict]),
    [1, 49, 25].map((h) => [`daily/${stampedName('share', new Date(now - h * HOUR), '.tar.gz')}`, 'pass']),
    JSON.stringify(fromS3.map((r) => r.reasons)),
  );

  const dir = await tempDir('cov-restic');
  const repo = path.join(dir, 'repo');
  const src = path.join(dir, 'srv');
  await fs.mkdir(src);
  const env = { ...process.env, RESTIC_REPOSITORY: repo, RESTIC_PASSWORD: 'cov-pw', TZ: 'UTC' };
  await exec('restic', ['init'], { env });
  const at = (h: number): string => new Date(now - h * HOUR).toISOString().replace('T', ' ').slice(0, 19);
  for (const h of [50, 26, 2]) {
    await archiveTo(path.join(src, 'share.tar.gz'));
    if (h === 26) await truncateFile(path.join(src, 'share.tar.gz'), 0.4);
    await exec('restic', ['backup', '--no-cache', '--quiet', '--host', 'fs1', '--time', at(h), src], { env });
  }
  const resticSource = `          driver: restic
          repository: ${JSON.stringify(repo)}
          password: \${env:PW}
          file: ${JSON.stringify(path.join(src, 'share.tar.gz'))}
          select: { timestamp: metadata, settle: 0s }`;
  const fromRestic = await runWithCoverage(coveragePolicy('cov-restic', resticSource, '{ points: 5 }', { PW: 'cov-pw' }), deps());
  t.equal(fromRestic.length, 3);
  t.same(fromRestic.map((r) => r.verdict), ['pass', 'pass', 'fail'], 'the oldest snapshot passes, the damaged one fails');
  t.same(fromRestic.slice(1).map((r) => r.coverage?.point?.why), ['never', 'never']);
  t.ok(fromRestic.slice(1).every((r) => /^[0-9a-f]{8}\//.test(r.backup?.key ?? '')), 'keys are snapshot ids with the file');

  const borgRepo = path.join(dir, 'borg');
  const borgEnv = { ...process.env, BORG_PASSPHRASE: 'cov-pw', BORG_BASE_DIR: path.join(dir, 'borg-home'), TZ: 'UTC' };
  await exec('borg', ['init', '--encryption', 'repokey-blake2', borgRepo], { env: borgEnv });
  for (const [name, h] of [['fs1-old', 30], ['fs1-new', 3]] as const) {
    await archiveTo(path.join(src, 'share.tar.gz'));
    await exec('borg', ['create', '--timestamp', new Date(now - h * HOUR).toISOString().slice(0, 19), `${borgRepo}::${name}`, 'srv'], { env: borgEnv, cwd: dir });
  }
  const borgSource = `          driver: borg
          repository: ${JSON.stringify(borgRepo)}
          passphrase: \${env:PW}
          file: srv/share.tar.gz
          select: { timestamp: metadata, settle: 0s }`;
  const fromBorg = await runWithCoverage(coveragePolicy('cov-borg', borgSource, '{ points: 5 }', { PW: 'cov-pw' }), deps());
  t.same(fromBorg.map((r) => [r.backup?.key, r.verdict, r.coverage?.point?.why ?? null]), [['fs1-new/srv/share.tar.gz', 'pass', null], ['fs1-old/srv/share.tar.gz', 'pass', 'never']], JSON.stringify(fromBorg.map((r) => r.reasons)));
});
