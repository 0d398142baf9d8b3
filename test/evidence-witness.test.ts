import { createHash, generateKeyPairSync } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import t from 'tap';
import { parseConfigText } from '../orchestrator/config/load.js';
import type { WitnessConfig } from '../orchestrator/core/config-types.js';
import { DEFAULTS } from '../orchestrator/core/defaults.js';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { BackproofError } from '../orchestrator/core/errors.js';
import { Logger } from '../orchestrator/core/logger.js';
import { EvidenceUpkeep } from '../orchestrator/daemon/evidence-upkeep.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { S3Witness } from '../orchestrator/evidence/s3-witness.js';
import { checkWitness, headKey, parseHead, publishHead, WITNESS_FORMAT, type WitnessHead } from '../orchestrator/evidence/witness.js';
import { signerFromPem } from '../orchestrator/evidence/signing-key.js';
import { checkpointText } from '../orchestrator/evidence/chain.js';
import { check, cleanEnv, REPO, runCommand } from './helpers/command.js';
import { startHttpReceiver } from './helpers/http-receiver.js';
import { startPgCluster } from './helpers/pg-cluster.js';
import { startS3Server, S3RVER_CREDENTIALS } from './helpers/s3-server.js';
import { OpenStores, sampleRun } from './helpers/store-backends.js';

/**
 * The evidence witness: the signed chain head published to an S3 bucket (real s3rver on loopback)
 * and read back by `evidence verify --witness`, which finds records deleted from the end of the
 * chain and a chain rewritten after publication, even one rebuilt and re-signed with the
 * installation's own key. Object Lock headers and AWS's answers for a bucket without Object Lock
 * are checked against a loopback HTTP server answering with recorded S3 responses (s3rver ignores
 * Object Lock). Then the CLI (bin/backproof.js, built by npm run build) and the daemon's schedule.
 */
const HOUR = 3_600_000;
const base = Date.UTC(2026, 9, 1, 2, 0, 0);
const at = (ms: number): string => new Date(base + ms).toISOString();
const keyPem = (): string => generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const installationKey = keyPem();

const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-witness-test-'));
t.teardown(() => fs.rm(tmp, { recursive: true, force: true }));
const s3 = await startS3Server();
t.teardown(() => s3.stop());
const cluster = await startPgCluster();
t.teardown(() => cluster.stop());
const pgUrl = await cluster.createDatabase('witness_test');
const stores = new OpenStores();
let schemas = 0;
const pgStore = (schema = `witness_${++schemas}_${process.pid}`): Promise<RunStore> =>
  stores.track(RunStore.open({ url: pgUrl, dataDir: path.join(tmp, 'pg-data'), schema, signingKey: installationKey }));

let buckets = 0;
async function bucket(): Promise<string> {
  const name = `witness-${++buckets}`;
  await s3.createBucket(name);
  return name;
}

function witnessOn(bucketName: string, over: Partial<WitnessConfig['s3']> = {}): WitnessConfig['s3'] {
  return {
    bucket: bucketName,
    prefix: 'acme-msp/',
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { ...S3RVER_CREDENTIALS, origin: 'test' },
    sdkChecksums: 'when_required',
    // s3rver has no Object Lock; the lock headers are checked against recorded responses below.
    objectLock: 'none',
    retainMs: DEFAULTS.witness.retainMs,
    maxRetries: 0,
    requestTimeoutMs: 10_000,
    ...over,
  };
}

/** Finalizes `n` runs (seq offset+1..offset+n), `edit` applied to each record before it is sealed. */
async function seed(store: RunStore, n: number, offset = 0, edit: (r: RunRecord, i: number) => RunRecord = (r) => r): Promise<RunRecord[]> {
  const out: RunRecord[] = [];
  for (let i = offset; i < offset + n; i++) {
    const run = sampleRun(at(i * HOUR), { id: `00000000-0000-4000-8000-${String(i + 1).padStart(12, '0')}`, policy: 'acme-db' });
    await store.recordStart(run);
    const done = edit({ ...run, status: 'finished', verdict: i % 4 === 3 ? 'fail' : 'pass', finishedAt: at(i * HOUR + 60_000), durationMs: 60_000 }, i);
    await store.finalize(done);
    out.push(done);
  }
  return out;
}

async function objectsIn(bucketName: string): Promise<string[]> {
  const out = await s3.client.send(new ListObjectsV2Command({ Bucket: bucketName }));
  return (out.Contents ?? []).map((o) => o.Key!).sort();
}

/** One client with one policy: what a config must hold besides evidence:. */
const CLIENT = 'clients:\n  - name: acme\n    policies:\n      - name: acme-db\n        kind: postgres\n        source: {driver: local, path: ./backups}\n';

t.test('config: evidence.witness with its defaults; bad values name the key and the fix', async (tt) => {
  const ok = parseConfigText(
    `evidence:\n  witness:\n    s3:\n      bucket: audit-witness\n      endpoint: https://s3.example.test\n      credentials: {accessKeyId: AKIA-W, secretAccessKey: s3cr3t-w}\n${CLIENT}`,
    'c.yaml',
    {},
  );
  const w = ok.evidence?.witness;
  tt.equal(w?.s3.objectLock, 'compliance', 'compliance mode unless told otherwise');
  tt.equal(w?.s3.prefix, 'backproof-witness/');
  tt.equal(w?.s3.retainMs, 400 * 24 * HOUR, '400 days of retention');
  tt.equal(w?.everyMs, HOUR, 'published hourly');
  tt.equal(w?.s3.forcePathStyle, true, 'path style with an endpoint');
  tt.equal(w?.s3.credentials?.origin, 'evidence.witness.s3.credentials');
  tt.ok(ok.secrets.includes('s3cr3t-w') && ok.secrets.includes('AKIA-W'), 'the witness credentials are secrets (redacted everywhere)');
  tt.throws(
    () => parseConfigText(`evidence:\n  witness:\n    s3: {bucket: audit-witness, objectLock: strict}\n${CLIENT}`, 'c.yaml', {}),
    /evidence\.witness\.s3\.objectLock[\s\S]*compliance/,
    'an unknown lock mode names the key and the modes',
  );
  tt.throws(() => parseConfigText(`evidence:\n  witness:\n    s3: {bucket: audit-witness}\n    every: often\n${CLIENT}`, 'c.yaml', {}), /evidence\.witness\.every[\s\S]*duration/);
  tt.throws(
    () => parseConfigText(`evidence:\n  witness:\n    s3: {bucket: audit-witness, profile: p, credentials: {accessKeyId: a1234, secretAccessKey: b1234}}\n${CLIENT}`, 'c.yaml', {}),
    /credentials and profile are both set/,
  );
});

t.test('publish: the head, signed, once per head; verify --witness agrees while nothing changed', async (tt) => {
  const store = await pgStore();
  const b = await bucket();
  const target = new S3Witness(witnessOn(b));
  tt.teardown(() => target.close());
  const chain = store.evidenceChain();

  const empty = await publishHead(chain, target);
  tt.same(empty, { published: false, why: 'nothing sealed yet', location: target.location }, 'an empty store publishes nothing');
  tt.same((await checkWitness(chain, target)).problems, [], 'and an empty witness agrees with it');

  await seed(store, 5);
  const first = await publishHead(chain, target);
  tt.ok(first.published, 'published');
  if (!first.published) return;
  tt.equal(first.seq, 5);
  tt.equal(first.created, true);
  tt.equal(first.key, `acme-msp/heads/000000000000005-${first.hash.slice(0, 16)}.json`, 'the key orders heads by seq');
  tt.same(await objectsIn(b), [first.key]);
  const body = await (await s3.client.send(new GetObjectCommand({ Bucket: b, Key: first.key }))).Body!.transformToString();
  const parsed = parseHead(body);
  tt.ok('head' in parsed, 'the object is a valid signed head on its own');
  const head = (parsed as { head: WitnessHead }).head;
  tt.equal(head.format, WITNESS_FORMAT);
  tt.equal(head.keyFingerprint, signerFromPem(installationKey, 'k').fingerprint, 'signed with the installation key');
  tt.match(checkpointText(head), /^backproof evidence checkpoint v1\nlinks 1\.\.5 verified at /, 'the signature covers the checkpoint text');

  const again = await publishHead(chain, target);
  tt.same(again.published && { created: again.created, key: again.key }, { created: false, key: first.key }, 'the same head is not written twice');
  await seed(store, 3, 5);
  const second = await publishHead(chain, target);
  tt.equal(second.published && second.seq, 8);
  tt.equal((await objectsIn(b)).length, 2, 'one object per head');

  const verdict = await checkWitness(chain, target);
  tt.equal(verdict.ok, true, JSON.stringify(verdict.problems));
  tt.equal(verdict.heads, 2);
  tt.equal(verdict.newest?.seq, 8);
  tt.equal(verdict.storeHeadSeq, 8);
  await stores.release(store);
});

t.test('verify --witness finds records deleted from the end of the chain, which verify alone cannot', async (tt) => {
  const store = await pgStore();
  const s = store.schema;
  const b = await bucket();
  const target = new S3Witness(witnessOn(b));
  tt.teardown(() => target.close());
  const chain = store.evidenceChain();
  const runs = await seed(store, 6);
  tt.ok((await publishHead(chain, target)).published);

  // A database administrator removes the two newest runs, their links and the checkpoint at the head.
  const sql = (q: string, v: unknown[] = []): Promise<string> => cluster.psql(q.replace(/\$(\d)/g, (_, n: string) => `'${String(v[Number(n) - 1])}'`), 'witness_test');
  const gone = runs.slice(4).map((r) => r.id);
  for (const id of gone) {
    await sql(`DELETE FROM ${s}.evidence_chain WHERE run_id = $1`, [id]);
    await sql(`DELETE FROM ${s}.runs WHERE id = $1`, [id]);
  }
  await sql(`DELETE FROM ${s}.evidence_checkpoints WHERE seq > 4`);
  const link4 = (await sql(`SELECT hash FROM ${s}.evidence_chain WHERE seq = 4`)).trim();
  await sql(`UPDATE ${s}.evidence_chain_head SET seq = 4, hash = $1`, [link4]);

  const alone = await chain.verify({ full: true });
  tt.equal(alone.ok, true, 'the truncated chain verifies on its own: it is a consistent, shorter chain');
  const w = await checkWitness(chain, target);
  tt.equal(w.ok, false, 'the witness disagrees');
  tt.equal(w.storeHeadSeq, 4);
  tt.match(w.problems[0]?.problem, /link 6 was published at .+, but the stored chain ends at seq 4: records were deleted after it was published/);
  await stores.release(store);
});

t.test('verify --witness finds a chain rebuilt and re-signed with the installation key', async (tt) => {
  const honest = await pgStore();
  const b = await bucket();
  const target = new S3Witness(witnessOn(b));
  tt.teardown(() => target.close());
  await seed(honest, 6);
  tt.ok((await publishHead(honest.evidenceChain(), target)).published, 'the honest chain is published');

  // Someone holding the database and the signing key rebuilds the whole chain with run 3 turned
  // from fail into pass (seq 4 is the failing one): every link and signature is valid.
  const forged = await pgStore();
  await seed(forged, 6, 0, (r, i) => (i === 3 ? { ...r, verdict: 'pass' } : r));
  const alone = await forged.evidenceChain().verify({ full: true });
  tt.equal(alone.ok, true, 'the forged chain verifies on its own, signatures and all');
  const w = await checkWitness(forged.evidenceChain(), target);
  tt.equal(w.ok, false);
  tt.match(w.problems.map((p) => p.problem).join('\n'), /link 6's hash differs from the one published at .+: the chain was rewritten after it was published/);
  tt.same((await checkWitness(honest.evidenceChain(), target)).ok, true, 'the honest chain still agrees');

  // A head signed by another key, dropped into the bucket: named, as is an object that is not a head.
  const stranger = signerFromPem(keyPem(), 'stranger');
  const madeAt = new Date().toISOString();
  const alien: WitnessHead = { format: WITNESS_FORMAT, seq: 2, hash: 'b'.repeat(64), madeAt, keyFingerprint: stranger.fingerprint, publicKeyPem: stranger.publicKeyPem, signature: stranger.sign(checkpointText({ seq: 2, hash: 'b'.repeat(64), madeAt })) };
  await s3.put(b, headKey('acme-msp/', alien), JSON.stringify(alien));
  await s3.put(b, 'acme-msp/heads/000000000000003-junk.json', 'not json');
  const forgedHead = { ...alien, hash: 'c'.repeat(64) };
  await s3.put(b, headKey('acme-msp/', forgedHead), JSON.stringify(forgedHead));
  const mixed = await checkWitness(honest.evidenceChain(), target);
  const byKey = new Map<string, string>();
  for (const p of mixed.problems) byKey.set(p.key, [byKey.get(p.key), p.problem].filter(Boolean).join('\n'));
  tt.match(byKey.get(headKey('acme-msp/', alien)), /a key the store has no record of/);
  tt.match(byKey.get('acme-msp/heads/000000000000003-junk.json'), /not JSON/);
  tt.match(byKey.get(headKey('acme-msp/', forgedHead)), /signature is invalid/);
  await stores.release(honest);
  await stores.release(forged);
});

t.test('Object Lock: compliance headers, Content-MD5; AWS answers for a bucket without Object Lock and for denied credentials (recorded responses)', async (tt) => {
  const fake = await startHttpReceiver();
  tt.teardown(() => fake.close());
  const secretKey = 'witness-secret-Zq81xR';
  const cfg = witnessOn('audit-witness', {
    endpoint: fake.url(),
    objectLock: 'compliance',
    retainMs: 30 * 24 * HOUR,
    credentials: { accessKeyId: 'AKIAWITNESS0001', secretAccessKey: secretKey, origin: 'evidence.witness.s3.credentials' },
  });
  const target = new S3Witness(cfg);
  tt.teardown(() => target.close());
  const signer = signerFromPem(installationKey, 'k');
  const madeAt = new Date().toISOString();
  const head: WitnessHead = { format: WITNESS_FORMAT, seq: 42, hash: 'd'.repeat(64), madeAt, keyFingerprint: signer.fingerprint, publicKeyPem: signer.publicKeyPem, signature: signer.sign(checkpointText({ seq: 42, hash: 'd'.repeat(64), madeAt })) };

  fake.answer({ status: 404, headers: { 'content-type': 'application/xml' } }, { status: 200, headers: { ETag: '"5d41402abc4b2a76b9719d911017c592"' } });
  const before = Date.now();
  const out = await target.publish(head);
  tt.equal(out.created, true);
  const [probe, put] = fake.requests;
  tt.equal(probe?.method, 'HEAD', 'looks first: a head is written once');
  tt.equal(put?.method, 'PUT');
  tt.equal(put?.url.split('?')[0], `/audit-witness/${headKey('acme-msp/', head)}`);
  tt.equal(put?.headers['x-amz-object-lock-mode'], 'COMPLIANCE');
  const until = Date.parse(String(put?.headers['x-amz-object-lock-retain-until-date']));
  tt.ok(until >= before + cfg.retainMs - 1000 && until <= Date.now() + cfg.retainMs + 1000, 'retained for evidence.witness.s3.retain from now');
  tt.equal(put?.headers['content-md5'], createHash('md5').update(put?.body ?? '').digest('base64'), 'Content-MD5 of the body (S3 requires it with a retention)');
  tt.ok('head' in parseHead(put?.body ?? ''), 'the body is the signed head');
  tt.equal(out.lockedUntil, new Date(until).toISOString());

  // AWS's answer to a retention put on a bucket created without Object Lock.
  fake.reset();
  fake.answer(
    { status: 404 },
    {
      status: 400,
      headers: { 'content-type': 'application/xml' },
      body: '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidRequest</Code><Message>Bucket is missing Object Lock Configuration</Message><RequestId>7Q1W2E3R4T5Y6U7I</RequestId><HostId>x</HostId></Error>',
    },
  );
  const noLock = await target.publish(head).catch((e: unknown) => e);
  tt.ok(noLock instanceof BackproofError && noLock.code === 'witness_failed');
  tt.match((noLock as Error).message, /InvalidRequest 400: Bucket is missing Object Lock Configuration; the bucket must have Object Lock enabled .*objectLock: none/);

  // A server that echoes the request's credentials in its 403: never in our message.
  fake.reset();
  fake.answer(
    { status: 404 },
    {
      status: 403,
      headers: { 'content-type': 'application/xml' },
      body: `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied for AKIAWITNESS0001 with ${secretKey}</Message></Error>`,
    },
  );
  const denied = (await target.publish(head).catch((e: unknown) => e)) as Error;
  tt.match(denied.message, /AccessDenied 403: Access Denied for \*\*\* with \*\*\*; the credentials \(evidence\.witness\.s3\.credentials\) need s3:PutObject/);
  tt.notMatch(denied.message, /AKIAWITNESS0001|Zq81xR/, 'no credential in the message');
});

t.test('CLI: evidence publish and evidence verify --witness on the embedded store; exit codes; truncation found', async (tt) => {
  const dataDir = path.join(tmp, 'cli-data');
  const b = await bucket();
  const store = await stores.track(RunStore.open({ dataDir, schema: DEFAULTS.schema }));
  await seed(store, 4);
  await stores.release(store);
  const config = path.join(tmp, 'witness.yaml');
  await fs.writeFile(
    config,
    [
      'evidence:',
      '  witness:',
      '    s3:',
      `      bucket: ${b}`,
      `      endpoint: ${s3.endpoint}`,
      '      objectLock: none',
      '      credentials: {accessKeyId: "${env:WITNESS_KEY}", secretAccessKey: "${env:WITNESS_SECRET}"}',
      'clients: []',
      '',
    ].join('\n'),
  );
  const env = cleanEnv({ WITNESS_KEY: S3RVER_CREDENTIALS.accessKeyId, WITNESS_SECRET: S3RVER_CREDENTIALS.secretAccessKey });
  const cli = (...args: string[]) => runCommand(process.execPath, ['bin/backproof.js', '--config', config, '--data-dir', dataDir, ...args], { env, cwd: REPO, timeoutMs: 120_000 });

  const published = await cli('evidence', 'publish');
  tt.equal(published.code, 0, published.stderr);
  tt.match(published.stdout, /^published: head seq 4 \([0-9a-f]{16}\.\.\.\) to backproof-witness\/heads\/000000000000004-[0-9a-f]{16}\.json\n$/);
  const twice = await cli('evidence', 'publish', '--json');
  tt.equal(twice.code, 0);
  tt.match(JSON.parse(twice.stdout), { published: true, created: false, seq: 4 });
  const verified = await cli('evidence', 'verify', '--witness');
  tt.equal(verified.code, 0, verified.stderr);
  tt.match(verified.stdout, /witness s3:\/\/witness-\d+\/backproof-witness\/ at http:\/\/127\.0\.0\.1:\d+: ok, 1 published head agree with the stored chain \(newest: seq 4/);

  // A head published for a link the store does not have (as after the newest records were deleted).
  const signer = signerFromPem(await fs.readFile(path.join(dataDir, 'evidence-key.pem'), 'utf8'), 'k');
  const madeAt = new Date().toISOString();
  const later: WitnessHead = { format: WITNESS_FORMAT, seq: 9, hash: 'e'.repeat(64), madeAt, keyFingerprint: signer.fingerprint, publicKeyPem: signer.publicKeyPem, signature: signer.sign(checkpointText({ seq: 9, hash: 'e'.repeat(64), madeAt })) };
  await s3.put(b, headKey('backproof-witness/', later), JSON.stringify(later));
  const tampered = await cli('evidence', 'verify', '--witness');
  tt.equal(tampered.code, 1, 'exit 1: tampered');
  tt.match(tampered.stdout, /^ok: .*chain intact[\s\S]*TAMPERED: the witness .* disagrees with the stored chain \(1 problem, 2 published heads read\):\n {2}backproof-witness\/heads\/000000000000009-e+\.json: link 9 was published at .+, but the stored chain ends at seq 4/);
  const asJson = JSON.parse((await cli('evidence', 'verify', '--witness', '--json')).stdout) as { ok: boolean; chainOk: boolean; witness: { problems: unknown[] } };
  tt.match(asJson, { ok: false, chainOk: true, witness: { problems: [{ seq: 9 }] } });

  const noWitness = path.join(tmp, 'plain.yaml');
  await fs.writeFile(noWitness, 'clients: []\n');
  const usage = await runCommand(process.execPath, ['bin/backproof.js', '--config', noWitness, '--data-dir', dataDir, 'evidence', 'publish'], { env, cwd: REPO });
  tt.equal(usage.code, 2);
  tt.match(usage.stderr, /no evidence\.witness in .*plain\.yaml: add evidence: \{ witness:/);
  await check(process.execPath, ['bin/backproof.js', '--data-dir', dataDir, '--config', config, 'evidence', 'verify'], { env });
});

t.test('daemon upkeep: publishes the head at its first check and then every evidence.witness.every; a failing witness is retried at the next check', async (tt) => {
  const store = await pgStore();
  const b = await bucket();
  await seed(store, 3);
  const lines: string[] = [];
  const logger = new Logger({ level: 'info', json: true, write: (line) => lines.push(line) });
  const upkeep = new EvidenceUpkeep(store, () => logger);
  const evidence = { witness: { s3: witnessOn(b), everyMs: HOUR } };
  const signal = new AbortController().signal;
  await upkeep.due(evidence, signal);
  tt.equal((await objectsIn(b)).length, 1, 'published at the first check');
  tt.match(lines.join('\n'), /evidence chain head seq 3 published to acme-msp\/heads\/000000000000003-/);
  await seed(store, 2, 3);
  tt.equal(upkeep.due(evidence, signal), undefined, 'not due again within the hour');

  const broken = { witness: { s3: witnessOn('no-such-bucket'), everyMs: HOUR } };
  const fresh = new EvidenceUpkeep(store, () => logger);
  await fresh.due(broken, signal);
  tt.match(lines.join('\n'), /publishing the evidence chain head failed \(tried again at the next check\): .*no-such-bucket/);
  const retry = fresh.due(evidence, signal);
  tt.ok(retry, 'a failed publication is due again at the next check');
  await retry;
  tt.equal((await objectsIn(b)).length, 2, 'the moved head is published then');
  tt.notMatch(lines.join('\n'), /S3RVER/, 'no credential in the log');
  await stores.release(store);
});
