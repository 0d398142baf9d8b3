import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { loadConfig } from '../orchestrator/config/load.js';
import { problemsOfPath } from './helpers/config-problems.js';
import { tempDir } from './helpers/harness.js';

// --config may name a folder: one file per client, plus one with the shared keys and defaults:.
// Every node of a cluster reads the same folder; a problem names the file it is in.

const BIN = path.resolve('bin/backproof.js');

const SHARED = `database: { schema: backproof }
daemon: { concurrency: 8, perClient: 2 }
defaults:
  targets: { rpo: 26h, rto: 30m }
  sandbox: { memory: 1g, timeout: 20m }
  sizeAnomaly: { minPercent: 60, lastRuns: 5 }
  schedule: daily at 02:30
`;

function clientFile(i: number, extra = ''): string {
  return `clients:
  - name: client-${i}
    displayName: Client ${i}
    policies:
      - name: client-${i}-db
        kind: postgres
        source: { driver: local, path: /srv/backups/client-${i}, select: { glob: "*.dump" } }
${extra}`;
}

async function folder(files: Record<string, string>): Promise<string> {
  const dir = await tempDir('config-dir');
  for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(dir, name), text);
  return dir;
}


t.test('500 client files and shared defaults validate; policies inherit what they do not set', async (t) => {
  const files: Record<string, string> = { '00-shared.yaml': SHARED };
  for (let i = 0; i < 500; i++) files[`client-${String(i).padStart(3, '0')}.yaml`] = clientFile(i, i === 7 ? '        sandbox: { memory: 4g }\n        targets: { rpo: 2h }\n' : '');
  const dir = await folder(files);
  const started = Date.now();
  const config = await loadConfig(dir);
  const ms = Date.now() - started;
  t.equal(config.clients.length, 500);
  t.equal(config.policies.length, 500);
  t.equal(config.file, dir);
  t.equal(config.daemon.concurrency, 8);
  const plain = config.policies.find((p) => p.name === 'client-0-db')!;
  t.equal(plain.targets.rpoMs, 26 * 3_600_000, 'inherited');
  t.equal(plain.sandbox.memoryBytes, 1024 ** 3);
  t.equal(plain.schedule?.cron, '30 2 * * *');
  t.match(plain.sizeAnomaly, { minPercent: 60, lastRuns: 5 });
  const own = config.policies.find((p) => p.name === 'client-7-db')!;
  t.equal(own.sandbox.memoryBytes, 4 * 1024 ** 3, "a policy's own value wins");
  t.equal(own.sandbox.timeoutMs, 20 * 60_000, 'and the rest of the mapping is still inherited');
  t.equal(own.targets.rpoMs, 2 * 3_600_000);
  t.equal(own.targets.rtoMs, 30 * 60_000);
  t.comment(`loaded 501 files in ${ms} ms`);

  const { stdout } = await promisify(execFile)(process.execPath, [BIN, 'validate', '--config', dir]);
  t.match(stdout, /ok: 500 clients, 500 policies/);
});

t.test("a problem in one client's file names that file, its line and its own key path", async (t) => {
  const dir = await folder({
    '00-shared.yaml': SHARED,
    'acme.yaml': clientFile(1),
    'globex.yaml': `${clientFile(2)}        targets: { rpo: 26x }\n`,
  });
  const problems = await problemsOfPath(dir);
  t.equal(problems.length, 1, JSON.stringify(problems));
  t.match(problems[0], { file: path.join(dir, 'globex.yaml'), path: 'clients[0].policies[0].targets.rpo', line: 8 });
  t.match(problems[0]!.problem, /26x/);
});

t.test('a bad default is reported once, in the defaults file; a key set in two files is refused', async (t) => {
  const bad = await folder({ '00-shared.yaml': SHARED.replace('memory: 1g', 'memory: lots'), 'a.yaml': clientFile(1), 'b.yaml': clientFile(2) });
  const problems = await problemsOfPath(bad);
  t.equal(problems.length, 1, JSON.stringify(problems));
  t.match(problems[0], { file: path.join(bad, '00-shared.yaml'), path: 'defaults.sandbox.memory', line: 5 });

  const twice = await folder({ '00-shared.yaml': SHARED, 'a.yaml': `${clientFile(1)}daemon: { concurrency: 2 }\n` });
  const [conflict] = await problemsOfPath(twice);
  t.match(conflict, { file: path.join(twice, 'a.yaml'), path: 'daemon', problem: `daemon is also set in ${path.join(twice, '00-shared.yaml')}` });

  const syntax = await folder({ '00-shared.yaml': SHARED, 'a.yaml': 'clients: [\n', 'b.yaml': 'clients: {\n' });
  const broken = await problemsOfPath(syntax);
  t.same(broken.map((p) => path.basename(p.file)), ['a.yaml', 'b.yaml'], 'every broken file at once');

  t.match((await problemsOfPath(await folder({ 'notes.txt': 'x' })))[0]?.problem, /holds no .yaml files/);
});

t.test('duplicate names across files name both places', async (t) => {
  const dir = await folder({ 'a.yaml': clientFile(1), 'b.yaml': clientFile(1) });
  const problems = await problemsOfPath(dir);
  t.ok(problems.some((p) => p.file === path.join(dir, 'b.yaml') && /client name "client-1" is already used/.test(p.problem)), JSON.stringify(problems));
});
