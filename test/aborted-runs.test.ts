import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { cleanEnv, REPO, runCommand } from './helpers/command.js';
import { ageFile, goodArchive } from './helpers/daemon-harness.js';
import { leftoversOf, tempDir } from './helpers/harness.js';
import { startPgCluster, type PgCluster } from './helpers/pg-cluster.js';

// A real `backproof run` SIGKILLed while its restore is under way (a kind custom policy whose
// restore command sleeps, so the phase is known): the next start records the run `aborted` with
// what it had done (phases so far, fetch_restore `unfinished`, the backup), finishedAt = its last
// progress (not when it was found), and the evidence chain still verifies. On PGlite and on a
// real PostgreSQL server. Then: with database.url and no --data-dir, the data dir (signing key,
// journal) is $XDG_DATA_HOME/backproof or ~/.local/share/backproof, never the working directory.
// Needs `npm run build` (the built CLI).

const CLI = path.join(REPO, 'bin', 'backproof.js');

let pg: PgCluster;
t.before(async () => {
  pg = await startPgCluster();
});
t.teardown(async () => {
  await pg?.stop();
});

function configYaml(folder: string, database: string): string {
  const policy = (name: string, restore: string): string => `      - name: ${name}
        kind: custom
        source: { driver: local, path: ${JSON.stringify(folder)}, select: { glob: "*.tar.gz", settle: 0s } }
        targets: { rpo: 1h, rto: 10m }
        sizeAnomaly: false
        sandbox: { memory: 256m, timeout: 5m }
        custom:
          image: backproof/files
          restore: [sh, -c, ${JSON.stringify(restore)}]
        probes: []
`;
  return `${database}clients:
  - name: acme
    displayName: ACME Corp
    policies:
${policy('acme-slow', 'cat > /dev/null; sleep 300')}${policy('acme-quick', 'cat > /dev/null')}`;
}

async function backupFolder(): Promise<string> {
  const folder = await tempDir('aborted-backups');
  await ageFile(await goodArchive(folder, 'share-1.tar.gz'), 60_000);
  return folder;
}

/** The container of the run under way, once its restore command sleeps (every byte streamed in). */
async function sleepingSandbox(child: ChildProcess, timeoutMs = 90_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the run ended (${child.exitCode}) before its restore slept`);
    const ps = await runCommand('docker', ['ps', '-q', '--filter', `label=backproof.pid=${child.pid}`]);
    for (const id of ps.stdout.split('\n').filter(Boolean)) {
      const top = await runCommand('docker', ['top', id]);
      if (/sleep 300/.test(top.stdout)) return id;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error('the restore never reached its sleep');
}

async function killMidRestore(t: Test, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<{ killedAt: number }> {
  const child = spawn(process.execPath, [CLI, ...args, 'run', '--policy', 'acme-slow', '--json'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout!.resume();
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    await sleepingSandbox(child);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    t.fail(`${(err as Error).message}\n${stderr}`);
    throw err;
  }
  const killedAt = Date.now();
  child.kill('SIGKILL');
  await exited;
  return { killedAt };
}

function checkAborted(t: Test, run: RunRecord, killedAt: number): void {
  t.equal(run.status, 'aborted');
  t.equal(run.verdict, 'error');
  t.same(
    run.phases.map((p) => [p.name, p.outcome]),
    [
      ['select', 'ok'],
      ['storage_check', 'skipped'],
      ['sandbox', 'ok'],
      ['fetch_restore', 'unfinished'],
      ['readiness', 'skipped'],
      ['probes', 'skipped'],
      ['teardown', 'skipped'],
    ],
    'the phases it had done, the one under way unfinished, the rest never reached',
  );
  t.match(run.backup, { driver: 'local', key: 'share-1.tar.gz' }, 'the backup it had picked');
  const restore = run.phases.find((p) => p.name === 'fetch_restore')!;
  // The last progress stored was the start of fetch_restore; the run was killed after it and
  // found later still: finishedAt is that progress, not either of those.
  t.equal(run.finishedAt, restore.startedAt, 'finishedAt = the last progress (fetch_restore started)');
  t.ok(Date.parse(run.finishedAt!) < killedAt, 'before the kill');
  t.equal(run.durationMs, Date.parse(run.finishedAt!) - Date.parse(run.startedAt));
  t.match(run.reasons, [{ code: 'aborted', message: /ended without finishing this run.*\(found at \S+; last progress at \S+\)/ }]);
  const found = /found at (\S+);/.exec(run.reasons[0]!.message)![1]!;
  t.ok(Date.parse(found) >= killedAt, 'the reason says when it was found (after the kill)');
}

t.test('pglite: a run SIGKILLed mid-restore is recorded aborted with what it did', async (t) => {
  const dir = await tempDir('aborted-lite');
  const dataDir = path.join(dir, 'data');
  const config = path.join(dir, 'backproof.yaml');
  await fs.writeFile(config, configYaml(await backupFolder(), ''));
  const args = ['--config', config, '--data-dir', dataDir];
  const { killedAt } = await killMidRestore(t, args, dir, cleanEnv());

  // The next start: marks the dead run aborted, reaps its sandbox, runs the quick policy.
  const next = await runCommand(process.execPath, [CLI, ...args, 'run', '--policy', 'acme-quick', '--json'], { cwd: dir, timeoutMs: 120_000 });
  t.equal(next.code, 0, next.stderr);
  t.match(next.stderr, /was interrupted \(pid \d+ is gone\); recorded as aborted/);

  const store = await RunStore.open({ dataDir, schema: 'backproof' });
  t.teardown(() => store.close());
  const slow = (await store.list({ policy: 'acme-slow' }))[0]!;
  checkAborted(t, slow, killedAt);
  t.equal(await leftoversOf(slow.id), 0, 'its sandbox was reaped');
  t.equal((await store.list({ policy: 'acme-quick' }))[0]?.verdict, 'pass');
  const chain = await store.evidenceChain().verify();
  t.equal(chain.ok, true, `the chain verifies: ${JSON.stringify(chain.firstBad)}`);
  t.equal(chain.checked, 2);
});

t.test('postgres: the same, and the row held the progress while the run was alive', async (t) => {
  const dir = await tempDir('aborted-pg');
  const dataDir = path.join(dir, 'data');
  const config = path.join(dir, 'backproof.yaml');
  await fs.writeFile(config, configYaml(await backupFolder(), `database: { url: ${JSON.stringify(pg.url)}, schema: aborted_pg }\n`));
  const args = ['--config', config, '--data-dir', dataDir];
  const { killedAt } = await killMidRestore(t, args, dir, cleanEnv());

  // Before anyone finds it: the row is still running, with its phases so far and last progress.
  const row = JSON.parse(
    (await pg.psql(`SELECT json_build_object('status', status, 'phases', phases, 'backup', backup, 'progress_at', progress_at) FROM aborted_pg.runs`)).trim(),
  ) as { status: string; phases: Array<{ name: string; outcome: string; startedAt: string }>; backup: { key: string }; progress_at: string };
  t.equal(row.status, 'running');
  t.same(
    row.phases.map((p) => [p.name, p.outcome]),
    [
      ['select', 'ok'],
      ['storage_check', 'skipped'],
      ['sandbox', 'ok'],
      ['fetch_restore', 'unfinished'],
    ],
  );
  t.equal(row.backup.key, 'share-1.tar.gz');
  t.equal(Date.parse(row.progress_at), Date.parse(row.phases[3]!.startedAt), 'progress_at: when fetch_restore started');

  const next = await runCommand(process.execPath, [CLI, ...args, 'run', '--policy', 'acme-quick', '--json'], { cwd: dir, timeoutMs: 120_000 });
  t.equal(next.code, 0, next.stderr);
  const store = await RunStore.open({ url: pg.url, dataDir, schema: 'aborted_pg' });
  t.teardown(() => store.close());
  const slow = (await store.list({ policy: 'acme-slow' }))[0]!;
  checkAborted(t, slow, killedAt);
  t.equal(slow.finishedAt, new Date(row.progress_at).toISOString());
  t.equal(await leftoversOf(slow.id), 0, 'its sandbox was reaped');
  const chain = await store.evidenceChain().verify();
  t.equal(chain.ok, true, `the chain verifies: ${JSON.stringify(chain.firstBad)}`);
  t.equal(chain.checked, 2);
});

t.test('with database.url and no --data-dir, nothing is written into the working directory', async (t) => {
  const dir = await tempDir('datadir-config');
  const cwd = await tempDir('datadir-cwd');
  const home = await tempDir('datadir-home');
  const xdg = await tempDir('datadir-xdg');
  const config = path.join(dir, 'backproof.yaml');
  await fs.writeFile(config, configYaml(await backupFolder(), `database: { url: ${JSON.stringify(pg.url)}, schema: datadir_pg }\n`));
  const env = cleanEnv({ HOME: home, XDG_DATA_HOME: xdg, BACKPROOF_DATA_DIR: '' });

  const first = await runCommand(process.execPath, [CLI, '--config', config, 'run', '--policy', 'acme-quick', '--json'], { cwd, env, timeoutMs: 120_000 });
  t.equal(first.code, 0, first.stderr);
  t.same(await fs.readdir(cwd), [], 'the working directory stays empty');
  t.ok(existsSync(path.join(xdg, 'backproof', 'evidence-key.pem')), 'the signing key is in $XDG_DATA_HOME/backproof');
  t.equal((await fs.stat(path.join(xdg, 'backproof'))).mode & 0o777, 0o700);

  // Without XDG_DATA_HOME: ~/.local/share/backproof. `evidence verify` finds the same key there.
  const envHome = cleanEnv({ HOME: home, BACKPROOF_DATA_DIR: '' });
  delete envHome.XDG_DATA_HOME;
  await fs.rename(path.join(xdg, 'backproof'), path.join(home, 'moved'));
  await fs.mkdir(path.join(home, '.local', 'share'), { recursive: true });
  await fs.rename(path.join(home, 'moved'), path.join(home, '.local', 'share', 'backproof'));
  const second = await runCommand(process.execPath, [CLI, '--config', config, 'run', '--policy', 'acme-quick', '--json'], { cwd, env: envHome, timeoutMs: 120_000 });
  t.equal(second.code, 0, second.stderr);
  t.same(await fs.readdir(cwd), [], 'still empty');
  t.same(await fs.readdir(path.join(xdg)), [], 'no new key under the old XDG dir');
  const verify = await runCommand(process.execPath, [CLI, '--config', config, 'evidence', 'verify'], { cwd, env: envHome, timeoutMs: 60_000 });
  t.equal(verify.code, 0, verify.stdout + verify.stderr);
  t.same(await fs.readdir(cwd), []);

  // The embedded store keeps ./.backproof in the working directory (README command 1, the demo).
  const embedded = path.join(dir, 'embedded.yaml');
  await fs.writeFile(embedded, configYaml(dir, ''));
  const list = await runCommand(process.execPath, [CLI, '--config', embedded, 'runs', 'list'], { cwd, env, timeoutMs: 60_000 });
  t.equal(list.code, 0, list.stderr);
  t.same(await fs.readdir(cwd), ['.backproof'], 'embedded: ./.backproof as before');
});
