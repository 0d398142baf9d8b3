import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { parseConfigText } from '../orchestrator/config/load.js';
import { configSchema } from '../orchestrator/config/schema.js';
import { fieldsOf } from '../orchestrator/config/secret-schema.js';
import { canaryToken, fillSecrets, Needles, placeCanary, walkFiles, type CanarySink, type Hit } from './helpers/canary-config.js';
import { cleanEnv, runCommand, type CommandResult } from './helpers/command.js';
import { goodArchive, waitFor } from './helpers/daemon-harness.js';
import { startEchoingStore } from './helpers/echoing-store.js';
import { tempDir } from './helpers/harness.js';
import { startHttpReceiver } from './helpers/http-receiver.js';
import { startPgCluster } from './helpers/pg-cluster.js';
import { startSmtpReceiver } from './helpers/smtp-receiver.js';

// Canary secrets: every field the config schema declares secret (SECRET_FIELDS) gets a distinct
// canary through a ${env:} or ${file:} reference, derived from the schema (a new secret field is
// filled without editing this test). Then the built CLI runs as an operator would: validate, a
// passing run and one whose storage echoes the request's headers, runs/status/evidence/report
// in every format, the daemon with its dashboard, /metrics, alerts to a real SMTP server and a
// real webhook receiver. No canary, in any common encoding, may appear in any byte written.

const BIN = path.resolve('bin/backproof.js');
const FAKE_CERT = '-----BEGIN CERTIFICATE-----\nbm90LWEtcmVhbC1jZXJ0aWZpY2F0ZQ==\n-----END CERTIFICATE-----';

const root = await tempDir('canary');
// backup.info as an encrypted repository has it (OpenSSL's salt header, then ciphertext).
const pgbackrestRepo = path.join(root, 'pgbackrest-repo');
await fs.mkdir(path.join(pgbackrestRepo, 'backup', 'main'), { recursive: true });
await fs.writeFile(path.join(pgbackrestRepo, 'backup', 'main', 'backup.info'), Buffer.concat([Buffer.from('Salted__'), randomBytes(248)]));
const dataDir = path.join(root, 'data');
const secretsDir = path.join(root, 'secrets');
const outDir = path.join(root, 'out');
const backups = path.join(root, 'backups');
await fs.mkdir(outDir, { recursive: true });
await fs.mkdir(backups, { recursive: true });
await goodArchive(backups, 'share-1.tar.gz');

const sink: CanarySink = { env: {}, dir: secretsDir, canaries: [] };
const smtpToken = canaryToken('alerts.channels[].password');
const smtp = await startSmtpReceiver({ user: 'alerts', pass: smtpToken });
const hook = await startHttpReceiver();
const echo = await startEchoingStore(403);
const pg = await startPgCluster();
t.teardown(async () => {
  if (!process.env.BACKPROOF_TEST_KEEP) await fs.rm(root, { recursive: true, force: true });
  await smtp.close();
  await hook.close();
  await echo.close();
  await pg.stop();
});

// Fields exercised for real on loopback: placed with working values, each holding its canary.
const dbToken = canaryToken('database.url');
const hookToken = canaryToken('alerts.channels[].url');
const headerToken = canaryToken('alerts.channels[].headers');
const hbToken = canaryToken('clients[].policies[].heartbeat.url');
const hbFailToken = canaryToken('clients[].policies[].heartbeat.failUrl');
const signingPem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString().trim();
const signingBody = signingPem.split('\n').filter((l) => !l.startsWith('-----')).join('');

const skeleton = {
  database: { url: await placeCanary(sink, 'database.url', 'url', dbToken, `postgres://postgres:${dbToken}@127.0.0.1:${pg.port}/postgres`), schema: 'canary' },
  evidence: {
    signingKey: await placeCanary(sink, 'evidence.signingKey', 'value', signingBody, signingPem),
    // The witness is the echoing store too: publishing fails with the request's headers in the answer.
    witness: { s3: { bucket: 'witness', endpoint: echo.endpoint, objectLock: 'none', maxRetries: 0, credentials: {} } },
  },
  daemon: { checkEvery: '1s', shutdownGrace: '2s', web: { port: 0 } },
  reports: { mspName: 'Canary MSP', timezone: 'UTC', schedule: false },
  alerts: {
    maxAttempts: 1,
    reminderAfter: '0s',
    channels: [
      {
        name: 'mail',
        type: 'email',
        host: '127.0.0.1',
        port: smtp.port,
        startTls: 'never',
        user: 'alerts',
        password: await placeCanary(sink, 'alerts.channels[].password', 'value', smtpToken, smtpToken),
        from: 'backproof <alerts@msp.example>',
        to: ['ops@msp.example'],
      },
      {
        name: 'hook',
        type: 'webhook',
        url: await placeCanary(sink, 'alerts.channels[].url', 'url', hookToken, hook.url(`/hook/${hookToken}?token=${hookToken}`)),
        headers: await placeCanary(sink, 'alerts.channels[].headers', 'headers', headerToken, { Authorization: `Bearer ${headerToken}`, 'X-Api-Key': headerToken }),
      },
    ],
  },
  clients: [
    {
      name: 'acme',
      policies: [
        {
          name: 'share',
          kind: 'files',
          source: { driver: 'local', path: backups, select: { glob: '*.tar.gz', settle: '0s' } },
          targets: { rpo: '1h', rto: '10m' },
          sizeAnomaly: false,
          sandbox: { memory: '256m', timeout: '2m' },
          schedule: 'every 2s',
          probes: [{ files: { exist: ['docs/*.txt'], nonEmpty: true } }],
          heartbeat: {
            url: await placeCanary(sink, 'clients[].policies[].heartbeat.url', 'heartbeat', hbToken, hook.url(`/hb/${hbToken}`)),
            failUrl: await placeCanary(sink, 'clients[].policies[].heartbeat.failUrl', 'heartbeat', hbFailToken, hook.url(`/hb/${hbFailToken}/fail`)),
          },
        },
        // Its storage echoes every request header back: the credentials the filler gives it come back in errors.
        {
          name: 'shop',
          kind: 'postgres',
          source: { driver: 's3', bucket: 'acme', endpoint: echo.endpoint, maxRetries: 1, credentials: {}, select: { glob: '*.dump', timestamp: 'mtime', settle: '0s' } },
          schedule: 'every 2s',
        },
        // A restic repository that is not there: the password reaches restic, the error comes back.
        { name: 'vault', kind: 'files', source: { driver: 'restic', repository: path.join(root, 'no-repo'), file: '/data/share.tar.gz', check: false }, schedule: 'every 2s' },
        // Likewise a borg repository that is not there: the passphrase reaches borg, the error comes back.
        { name: 'attic', kind: 'files', source: { driver: 'borg', repository: path.join(root, 'no-borg-repo'), file: 'data/share.tar.gz', check: false }, schedule: 'every 2s' },
        // An encrypted pgBackRest repository whose info will not decrypt: the cipher pass reaches pgbackrest, its error comes back.
        { name: 'pgvault', kind: 'postgres', source: { driver: 'pgbackrest', repository: pgbackrestRepo, stanza: 'main', check: false }, schedule: 'every 2s' },
        // A pgBackRest repository in a bucket of the echoing store: its keys come back in errors too.
        { name: 'pgbucket', kind: 'postgres', source: { driver: 'pgbackrest', repository: '/pgbackrest', stanza: 'main', check: false, s3: { bucket: 'acme', endpoint: echo.endpoint, maxRetries: 1, credentials: {} } }, schedule: 'every 2s' },
      ],
    },
  ],
};
const unfilled = await fillSecrets(configSchema, skeleton, sink);
// What cannot run here (a TLS or SSH engine) is only loaded: the full config, for the commands that need no engine.
const full = { ...structuredClone(skeleton), docker: { host: 'tcp://127.0.0.1:1', tls: { ca: FAKE_CERT, cert: FAKE_CERT } } };
unfilled.push(...(await fillSecrets(configSchema, full, sink)));

const runFile = path.join(root, 'backproof.yaml');
const fullFile = path.join(root, 'full.yaml');
await fs.writeFile(runFile, stringify(skeleton));
await fs.writeFile(fullFile, stringify(full));

// Each canary's token and the whole value its reference resolves to (a URL, a PEM, a header).
const secrets = new Needles(sink.canaries.flatMap((c) => [c.token, ...(typeof c.value === 'string' ? [c.value] : Object.values(c.value))]).filter((v) => v.length >= 12));
const env = cleanEnv({ ...sink.env, BACKPROOF_LOG_LEVEL: 'debug' });
const outputs: { where: string; text: string }[] = [];
let dashboardToken = '';
const timings: string[] = [];
t.teardown(() => t.comment(timings.join('; ')));

async function cli(config: string, ...args: string[]): Promise<CommandResult> {
  const r = await runCommand(process.execPath, [BIN, ...args, '--config', config, '--data-dir', dataDir], { env, timeoutMs: 120_000 });
  timings.push(`${args.slice(0, 2).join(' ')}: ${r.ms} ms`);
  outputs.push({ where: `backproof ${args.join(' ')} (stdout)`, text: r.stdout }, { where: `backproof ${args.join(' ')} (stderr)`, text: r.stderr });
  return r;
}

t.test('every secret field the schema declares carries a canary, given by reference', async (t) => {
  t.same(unfilled, [], 'the filler found a valid value for every secret field it met');
  const declared = fieldsOf(configSchema).filter((f) => f.secret).map((f) => f.path);
  t.ok(declared.length >= 10, `the schema declares ${declared.length} secret fields`);
  for (const p of declared) t.ok(sink.canaries.some((c) => c.path === p || c.path.startsWith(`${p}.`)), `${p} carries a canary`);
  for (const file of [runFile, fullFile]) {
    t.doesNotThrow(() => parseConfigText(readFileSync(file, 'utf8'), file, { ...process.env, ...sink.env }), `${path.basename(file)} is a valid config`);
  }
  const written = (await fs.readFile(runFile, 'utf8')) + (await fs.readFile(fullFile, 'utf8'));
  t.same(secrets.grep('the config files', written), [], 'the config files hold references only');
});

t.test('validate, run, runs, status, evidence, reports: no canary in any output', async (t) => {
  // The machine is shared: commands that only read run side by side.
  const [validated, created] = await Promise.all([
    cli(fullFile, 'validate'),
    runCommand(process.execPath, [BIN, 'tokens', 'create', '--admin', '--name', 'ops', '--json', '--config', runFile, '--data-dir', dataDir], { env }),
  ]);
  t.equal(validated.code, 0, 'validate accepts the full config', { stderr: validated.stderr.slice(-2000) });
  const token = (JSON.parse(created.stdout) as { token: string }).token;
  dashboardToken = token;
  secrets.add(token);

  const ran = await cli(runFile, 'run');
  t.match(ran.stdout + ran.stderr, /PASS +acme\/share/, 'the files backup passes', { out: (ran.stdout + ran.stderr).slice(-3000) });
  const json = await cli(runFile, 'run', '--json', '-p', 'shop');
  const shop = JSON.parse(json.stdout) as { verdict: string; reasons: { code: string; message: string }[] };
  t.equal(shop.verdict, 'error', 'the echoing store is an error');
  t.match(shop.reasons[0]?.message, /request was: .*\*\*\*/, 'its message still shows what the store said, redacted');

  const bundle = path.join(outDir, 'bundle.json');
  const month = new Date().toISOString().slice(0, 7);
  const formats = ['html', 'pdf', 'csv', 'json'];
  const [listed, verified, exported, ...rest] = await Promise.all([
    cli(fullFile, 'runs', 'list', '--json'),
    cli(fullFile, 'evidence', 'verify', '--full'),
    cli(fullFile, 'evidence', 'export', '--client', 'acme', '--from', '2000-01-01', '--to', '2100-01-01', '-o', bundle, '--json'),
    ...formats.map((format) => cli(runFile, 'report', '--client', 'acme', '--month', month, '--format', format, '-o', path.join(outDir, `report.${format}`))),
    cli(fullFile, 'runs', 'list'),
    cli(fullFile, 'status'),
    cli(fullFile, 'status', '--json'),
    cli(fullFile, 'evidence', 'verify', '--json'),
    cli(fullFile, 'evidence', 'publish'),
    cli(fullFile, 'evidence', 'verify', '--witness', '--json'),
  ]);
  t.equal(verified.code, 0, 'the chain verifies', { out: verified.stdout + verified.stderr });
  const [published, witnessed] = rest.slice(-2);
  t.equal(published!.code, 2, 'publishing to the echoing witness fails', { out: published!.stdout + published!.stderr, w: witnessed!.stdout + witnessed!.stderr });
  t.match(published!.stderr, /writing s3:\/\/witness\/.* failed: AccessDenied 403/, 'and says what the store answered', { err: published!.stderr });
  t.equal(witnessed!.code, 2, 'verify --witness cannot read the echoing witness');
  t.equal(exported.code, 0, 'a bundle is exported', { out: exported.stderr });
  for (const [i, format] of formats.entries()) {
    t.ok(rest[i]!.code === 0 || rest[i]!.code === 2, `the ${format} report is written (exit ${rest[i]!.code})`);
    t.ok((await fs.stat(path.join(outDir, `report.${format}`))).size > 0);
  }
  const list = JSON.parse(listed.stdout) as { id: string; policy: string }[];
  t.ok(list.length >= 4, `${list.length} runs recorded`);
  // The newest run of each policy, in text and JSON; the bundle checked offline.
  const newest = list.filter((x, i) => list.findIndex((y) => y.policy === x.policy) === i);
  const checks = await Promise.all([cli(fullFile, 'evidence', 'verify', '--bundle', bundle), ...newest.flatMap((r) => [cli(fullFile, 'runs', 'show', r.id), cli(fullFile, 'runs', 'show', r.id, '--json')])]);
  t.equal(checks[0]!.code, 0, 'the bundle verifies');
  const pdfText = await runCommand('pdftotext', [path.join(outDir, 'report.pdf'), '-']);
  t.match(pdfText.stdout, /acme/, 'pdftotext reads the report');
  outputs.push({ where: 'report.pdf (pdftotext)', text: pdfText.stdout });
});

t.test('the daemon with its dashboard, /metrics, alerts and heartbeats: no canary', async (t) => {
  const child = spawn(process.execPath, [BIN, 'daemon', '--config', runFile, '--data-dir', dataDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) t.comment(stderr.slice(-3000));
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await waitFor('the dashboard', () => /dashboard on http:\/\/127\.0\.0\.1:\d+\//.test(stderr), 30_000);
  const port = Number(/dashboard on http:\/\/127\.0\.0\.1:(\d+)\//.exec(stderr)![1]);
  await waitFor('a pass, an alert mail and a webhook', () => /share: pass/.test(stderr) && smtp.messages.length > 0 && hook.requests.some((r) => r.url.startsWith('/hook/')), 60_000);
  await waitFor('the status snapshot', async () => (await fs.stat(path.join(dataDir, 'daemon-status.json')).catch(() => undefined)) !== undefined, 10_000);

  const auth = { authorization: `Bearer ${dashboardToken}` };
  const runs = (await (await fetch(`http://127.0.0.1:${port}/api/runs`, { headers: auth })).json()) as { runs?: { id: string }[] } | { id: string }[];
  const ids = (Array.isArray(runs) ? runs : (runs.runs ?? [])).map((r) => r.id).slice(0, 6);
  t.ok(ids.length > 0, 'the API lists runs');
  const month = new Date().toISOString().slice(0, 7);
  const pages = ['/', '/runs', '/reports', '/policies/share', '/policies/shop', '/policies/vault', '/policies/attic', '/policies/pgvault', '/api/policies', '/api/runs', '/metrics', `/api/reports/acme/${month}.json`, `/api/reports/acme/${month}.csv`, `/api/reports/acme/${month}.html`];
  for (const id of ids) pages.push(`/runs/${id}`, `/api/runs/${id}`);
  for (const p of pages) {
    const res = await fetch(`http://127.0.0.1:${port}${p}`, { headers: auth });
    t.ok(res.status < 500, `${p}: ${res.status}`);
    outputs.push({ where: `GET ${p}`, text: `${JSON.stringify([...res.headers])}\n${await res.text()}` });
  }
  const anon = await fetch(`http://127.0.0.1:${port}/api/runs`);
  outputs.push({ where: 'GET /api/runs without a token', text: await anon.text() });

  child.kill('SIGTERM');
  t.equal(await exited, 0, 'the daemon stops cleanly');
  outputs.push({ where: 'daemon stdout', text: stdout }, { where: 'daemon stderr', text: stderr });
  await cli(fullFile, 'status', '--json');

  for (const m of smtp.messages) outputs.push({ where: `mail "${m.parsed.subject ?? ''}" (raw, headers included)`, text: m.raw });
  const configured = new Set(['authorization', 'x-api-key']);
  for (const r of hook.requests.filter((q) => q.url.startsWith('/hook/'))) {
    const headers = Object.entries(r.headers).filter(([k]) => !configured.has(k));
    outputs.push({ where: `webhook ${r.method} (body and unconfigured headers)`, text: `${JSON.stringify(headers)}\n${r.body}` });
  }
  t.ok(hook.requests.some((r) => r.url.startsWith(`/hb/${hbToken}`)), 'the heartbeat was pinged');
});

t.test('zero hits in every output, the evidence rows and every file written', async (t) => {
  const hits: Hit[] = [];
  for (const o of outputs) hits.push(...secrets.grep(o.where, o.text));
  // Evidence rows in PostgreSQL, every table of the schema, as text.
  const tables = (await pg.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'canary'")).split('\n').filter(Boolean);
  t.ok(tables.includes('runs'), `the store's tables: ${tables.join(', ')}`);
  for (const table of tables) hits.push(...secrets.grep(`table canary.${table}`, await pg.psql(`SELECT row_to_json(t)::text FROM canary."${table}" t`)));
  await pg.psql('CHECKPOINT');
  // Every file: the data dir, reports, bundles, the configs; the PostgreSQL cluster's own files.
  const skip = (p: string): boolean => p === secretsDir || p === backups;
  const scanFiles = async (): Promise<{ files: string[]; hits: Hit[] }> => {
    const files = [...(await walkFiles(root, skip)), ...(await walkFiles(pg.dataDir))];
    const found: Hit[] = [];
    for (const f of files) {
      // The running cluster removes files of its own between the walk and the read (a relation
      // cache's pg_internal.init): what is gone holds nothing.
      const bytes = await fs.readFile(f).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      });
      if (bytes) found.push(...secrets.grep(f, bytes));
    }
    return { files, hits: found };
  };
  const { files, hits: fileHits } = await scanFiles();
  hits.push(...fileHits);
  t.ok(files.some((f) => f.endsWith('daemon-status.json')), 'daemon-status.json is among them');
  t.ok(files.some((f) => f.endsWith('report.pdf')), 'and the reports');
  t.same(hits, [], `${secrets.size} secrets, ${outputs.length} outputs, ${tables.length} tables and ${files.length} files: zero hits`);

  // Self-check: the same scan finds a canary written on purpose into a scratch file, in each form.
  const scratch = path.join(outDir, 'scratch');
  const s = sink.canaries.find((c) => c.path.endsWith('secretAccessKey'))!.token;
  for (const form of [s, Buffer.from(`user:${s}`).toString('base64'), encodeURIComponent(`x ${s}`), Buffer.from(s).toString('hex')]) {
    await fs.writeFile(scratch, `noise ${form} noise`);
    const again = await scanFiles();
    t.same(again.hits.map((h) => [h.where, h.secret]), [[scratch, s]], `the scan finds ${form.slice(0, 24)}... and only there`);
  }
  await fs.rm(scratch);
});
