import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { loadConfig } from '../orchestrator/config/load.js';
import { CONFIG_MAX_BYTES, REFERENCE_MAX_BYTES } from '../orchestrator/config/references.js';
import { problemsOfPath } from './helpers/config-problems.js';
import { tempDir } from './helpers/harness.js';

// Config input is bounded: a FIFO or device named by --config or ${file:} neither hangs nor fills
// memory; an oversized file is refused before it is parsed; thousands of problems are reported
// in linear time, the first hundred located and the rest counted.

const POLICY = `clients:
  - name: acme
    policies:
      - name: acme-db
        kind: postgres
        source: { driver: local, path: /srv/backups, select: { glob: "*.dump" } }
`;


t.test('--config naming a FIFO, a device or a huge file: a clear problem, at once', async (t) => {
  const dir = await tempDir('bounds');
  const fifo = path.join(dir, 'backproof.yaml');
  await promisify(execFile)('mkfifo', [fifo]);
  t.match((await problemsOfPath(fifo))[0], { file: fifo, problem: /is not a regular file/ });
  t.match((await problemsOfPath('/dev/zero'))[0], { problem: /is not a regular file/ });
  const huge = path.join(dir, 'huge.yaml');
  await fs.writeFile(huge, `${POLICY}# ${'x'.repeat(CONFIG_MAX_BYTES)}\n`);
  t.match((await problemsOfPath(huge))[0], { problem: /more than the \d+ allowed/, fix: /at most 16 MiB, or a folder/ });
});

t.test('${file:} of a FIFO, /dev/zero or a large file: a problem at its key, never a hang or a crash', async (t) => {
  const dir = await tempDir('bounds');
  await promisify(execFile)('mkfifo', [path.join(dir, 'pipe')]);
  await fs.writeFile(path.join(dir, 'big'), 'k'.repeat(REFERENCE_MAX_BYTES + 1));
  await fs.writeFile(path.join(dir, 'ok'), 'a-secret\n');
  const file = path.join(dir, 'backproof.yaml');
  const refs = (a: string, b: string, c: string) => `database: { url: "postgres://u:\${file:${a}}@h/db" }
alerts:
  channels:
    - { name: hook, type: webhook, url: "https://hooks.example/\${file:${b}}" }
    - { name: hook2, type: webhook, url: "https://hooks.example/\${file:${c}}" }
${POLICY}`;
  await fs.writeFile(file, refs('pipe', '/dev/zero', 'big'));
  const started = Date.now();
  const problems = await problemsOfPath(file);
  t.ok(Date.now() - started < 5_000, 'answered at once');
  t.match(problems, [
    { path: 'database.url', problem: /pipe is not a regular file/ },
    { path: 'alerts.channels[0].url', problem: /\/dev\/zero is not a regular file/ },
    { path: 'alerts.channels[1].url', problem: /big is 65537 bytes, more than the 65536 allowed/ },
  ]);
  await fs.writeFile(file, refs('ok', 'ok', 'ok'));
  t.equal((await loadConfig(file)).database.url, 'postgres://u:a-secret@h/db', 'a regular file is read as before');
});

t.test('80,000 unknown keys: the first 100 problems located, the rest counted, in linear time', async (t) => {
  const dir = await tempDir('bounds');
  const file = path.join(dir, 'backproof.yaml');
  const keys = Array.from({ length: 80_000 }, (_, i) => `  k${i}: ${i}`).join('\n');
  await fs.writeFile(file, `${POLICY}daemon:\n${keys}\n`);
  const started = Date.now();
  const problems = await problemsOfPath(file);
  const ms = Date.now() - started;
  t.equal(problems.length, 101);
  t.match(problems[0], { path: 'daemon.k0', line: 8, problem: 'unknown key "k0"' });
  t.match(problems[100], { problem: 'and 79900 more problem(s) not shown' });
  t.ok(ms < 20_000, `took ${ms} ms (was 121 s)`);
  t.comment(`80,000 unknown keys: ${ms} ms`);
});

t.test('a config in Latin-1 or UTF-16: a clear problem instead of mangled names in every report', async (t) => {
  const dir = await tempDir('bounds');
  const text = POLICY.replace('name: acme\n', 'name: acme\n    displayName: Müller GmbH\n');
  const latin1 = path.join(dir, 'latin1.yaml');
  await fs.writeFile(latin1, Buffer.from(text, 'latin1'));
  t.match((await problemsOfPath(latin1))[0], { problem: /is not UTF-8 text \(line 3 holds a byte/, fix: /save it as UTF-8/ });
  const utf16 = path.join(dir, 'utf16.yaml');
  await fs.writeFile(utf16, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]));
  t.match((await problemsOfPath(utf16))[0], { problem: 'is UTF-16 text, not UTF-8', fix: /PowerShell/ });
  const utf8 = path.join(dir, 'utf8.yaml');
  await fs.writeFile(utf8, `\uFEFF${text}`);
  t.equal((await loadConfig(utf8)).clients[0]?.displayName, 'Müller GmbH', 'UTF-8, with or without a BOM, reads as written');
});
