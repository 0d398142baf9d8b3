import { spawn, type SpawnOptions } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync, randomUUID, verify as verifyEd25519 } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import t from 'tap';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { canonicalJson, checkpointText, EvidenceChain, GENESIS_HASH, linkHash, PROBLEMS, verifyBundle, type ChainVerification, type EvidenceBundle } from '../orchestrator/evidence/chain.js';
import { createPgExecutor } from '../orchestrator/evidence/pg-executor.js';
import { loadMigrations, migrate } from '../orchestrator/evidence/migrate.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { fingerprintOf, loadOrCreateSigningKey, signerFromPem, SIGNING_KEY_FILE } from '../orchestrator/evidence/signing-key.js';
import { parseConfigText } from '../orchestrator/config/load.js';
import { startPgCluster } from './helpers/pg-cluster.js';
import { OpenStores, backproofConnections, sampleRun as runAt } from './helpers/store-backends.js';

/**
 * The evidence chain: every finalized run hash-chained and signed; tampering in PostgreSQL
 * directly (edit, delete, insert, reorder) is named by verify; a client's bundle checks offline,
 * by `verifyBundle`, by the CLI (`bin/backproof.js`, built by `npm run build`), and by the
 * bundle recipe of docs/evidence.md with the real jq, sha256sum, base64 and openssl.
 */
const BIN = path.resolve('bin/backproof.js');
const base = Date.UTC(2026, 10, 1, 3, 0, 0, 123);
const at = (offsetMs: number): string => new Date(base + offsetMs).toISOString();
const HOUR = 3_600_000;

const cluster = await startPgCluster();
t.teardown(() => cluster.stop());
const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-chain-test-'));
t.teardown(() => fs.rm(tmp, { recursive: true, force: true }));
const pgUrl = await cluster.createDatabase('chain_test');
const keyPem = (): string => generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const installationKey = keyPem();
const installationFp = signerFromPem(installationKey, 'test').fingerprint;

const storeRegister = new OpenStores();
const track = (p: Promise<RunStore>): Promise<RunStore> => storeRegister.track(p);
const release = (store: RunStore): Promise<void> => storeRegister.release(store);
let schemas = 0;
/** A PostgreSQL store on a fresh schema, signing with the installation's config key. */
const pgStore = (schema = `chain_${++schemas}_${process.pid}`): Promise<RunStore> =>
  track(RunStore.open({ url: pgUrl, dataDir: path.join(tmp, 'pg-data'), schema, signingKey: installationKey }));

/** SQL straight into the server, as someone tampering with the evidence would. */
async function sql(text: string, values: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}

function sampleRun(over: Partial<RunRecord> = {}): RunRecord {
  return runAt(at(0), { policy: 'acme-db', ...over });
}

function finished(run: RunRecord, i = 0): RunRecord {
  const started = Date.parse(run.startedAt);
  const t0 = (ms: number): string => new Date(started + ms).toISOString();
  const failing = i % 3 === 1;
  return {
    ...run,
    status: 'finished',
    verdict: failing ? 'fail' : 'pass',
    reasons: failing ? [{ code: 'probe_failed', message: `probe 'orders' expected >= 1000 rows, got 12; "quoted" (ü, 日本, 🎉) \u2028` }] : [],
    finishedAt: t0(93_456),
    durationMs: 93_456,
    backup: {
      driver: 's3',
      location: 's3://acme/pg/',
      key: `pg/${run.client}-${i}.dump.gz`,
      size: 5_368_709_120 + i,
      modifiedAt: t0(-HOUR),
      backupTime: t0(-HOUR),
      timestampSource: 'name',
      ageMs: HOUR,
      sha256: 'a'.repeat(64),
      provider: { versionId: `v${i}` },
    },
    phases: [{ name: 'fetch_restore', startedAt: t0(0), endedAt: t0(90_000), durationMs: 90_000, outcome: failing ? 'fail' : 'ok' }],
    probes: [{ name: 'orders', type: 'rowCount', expected: '>= 1000', actual: failing ? '12' : '5000', pass: !failing, durationMs: 12 }],
    metrics: { rpoTargetMs: 26 * HOUR, rpoMeasuredMs: HOUR, rpoMet: true, fetchBytesPerSec: 69_835_000.5 },
    sandbox: { runtime: 'docker', image: 'backproof/postgres:15', limits: { memoryBytes: 2 ** 31, network: 'none' } },
    restored: { database: 'shop', tables: 3 },
  };
}

/** Finalizes `n` runs one after another (seq i+1 is runs[i]), alternating clients acme and globex. */
async function seed(store: RunStore, n: number, offsetHours = 0): Promise<RunRecord[]> {
  const runs: RunRecord[] = [];
  for (let i = 0; i < n; i++) {
    const run = sampleRun({ client: i % 2 === 0 ? 'acme' : 'globex', policy: i % 2 === 0 ? 'acme-db' : 'globex-db', startedAt: at((offsetHours + i) * HOUR) });
    await store.recordStart(run);
    const done = finished(run, i);
    await store.finalize(done);
    runs.push(done);
  }
  return runs;
}

function bad(tt: Tap, result: ChainVerification, seq: number | null, runId: string | null, problem: string | RegExp, msg: string): void {
  tt.equal(result.ok, false, `${msg}: not ok`);
  tt.equal(result.firstBad?.seq ?? null, seq, `${msg}: seq`);
  tt.equal(result.firstBad?.runId ?? null, runId, `${msg}: run`);
  if (typeof problem === 'string') tt.equal(result.firstBad?.problem, problem, `${msg}: problem`);
  else tt.match(result.firstBad?.problem ?? '', problem, `${msg}: problem`);
}
/** The part of a tap Test the helpers use (subtests have a different class than the root). */
interface Tap {
  equal(found: unknown, wanted: unknown, message: string): unknown;
  match(found: unknown, wanted: unknown, message: string): unknown;
  ok(found: unknown, message: string): unknown;
}

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((r) => child.once('exit', r));
  if (child.pid === undefined) throw new Error('no pid');
  return child.pid;
}

// ---- Canonical JSON ------------------------------------------------------------------------------

t.test('canonical JSON: sorted keys at every level, no whitespace, JSON.stringify scalars', async (tt) => {
  tt.equal(canonicalJson({ b: 1, a: [3, { z: null, y: true, x: 'é' }], c: {} }), '{"a":[3,{"x":"é","y":true,"z":null}],"b":1,"c":{}}');
  tt.equal(canonicalJson({ b: 1, a: 2 }), canonicalJson({ a: 2, b: 1 }), 'key order does not matter');
  tt.equal(canonicalJson({ '\u00e9': 1, e: 2, E: 3, '10': 4, '9': 5, '\ud83c\udf89': 6, '\uff01': 7 }), '{"10":4,"9":5,"E":3,"e":2,"é":1,"🎉":6,"！":7}', 'UTF-16 code unit order (RFC 8785)');
  tt.equal(canonicalJson('line\n"q"\\ \u2028 \u0001 ü 🎉'), JSON.stringify('line\n"q"\\ \u2028 \u0001 ü 🎉'), 'strings as JSON.stringify');
  tt.equal(canonicalJson([1.5e21, -0, 0.1, 5_368_709_120, 1e-7]), '[1.5e+21,0,0.1,5368709120,1e-7]', 'numbers as JSON.stringify');
  tt.equal(canonicalJson({ a: undefined, b: [undefined] }), '{"b":[null]}', 'undefined as JSON.stringify');
  tt.throws(() => canonicalJson(Number.NaN), /NaN/);
  tt.throws(() => canonicalJson(new Date(0)), /plain objects/);
  tt.throws(() => canonicalJson(10n), /bigint/);
  const { createHash } = await import('node:crypto');
  tt.equal(linkHash(GENESIS_HASH, '{"a":"ü"}'), createHash('sha256').update(Buffer.from(`${'0'.repeat(64)}{"a":"ü"}`, 'utf8')).digest('hex'), 'sha256 over UTF-8 of prevHash + text');
});

// ---- Both backends --------------------------------------------------------------------------------

const backends: Array<{ name: string; open(): Promise<RunStore>; dataDir: string }> = [
  { name: 'postgres', open: () => pgStore(), dataDir: path.join(tmp, 'pg-data') },
  { name: 'pglite', open: () => track(RunStore.open({ dataDir: path.join(tmp, 'lite'), schema: 'backproof' })), dataDir: path.join(tmp, 'lite') },
];

for (const backend of backends) {
  t.test(`${backend.name}: finalized, cancelled and aborted runs are chained and verify`, async (tt) => {
    const store = await backend.open();
    const chain = store.evidenceChain();
    tt.same(await chain.verify(), { ok: true, checked: 0 }, 'an empty chain verifies');
    const runs = await seed(store, 6);

    const cancelled = sampleRun({ startedAt: at(10 * HOUR) });
    await store.recordStart(cancelled);
    await store.finalize({ ...cancelled, status: 'cancelled', verdict: 'error', reasons: [{ code: 'cancelled', message: 'SIGTERM' }], finishedAt: at(10 * HOUR + 5), durationMs: 5 });
    const aborted = sampleRun({ startedAt: at(11 * HOUR), host: os.hostname(), pid: await deadPid() });
    await store.recordStart(aborted);
    const stillRunning = sampleRun({ startedAt: at(12 * HOUR), host: 'elsewhere' });
    await store.recordStart(stillRunning);
    tt.same((await store.markAbortedRuns()).map((r) => r.id), [aborted.id]);

    const result = await chain.verify();
    tt.equal(result.ok, true, JSON.stringify(result.firstBad));
    tt.equal(result.checked, 8, 'six finished, one cancelled, one aborted; the running one is not in the chain');
    tt.equal(result.head?.seq, 8);
    tt.equal(result.head?.signatureValid, true);
    const links = await chain.links([...runs.map((r) => r.id), cancelled.id, aborted.id, stillRunning.id, 'not-a-uuid']);
    tt.equal(links.size, 8);
    tt.notOk(links.has(stillRunning.id), 'a running run has no link');
    tt.equal(links.get(cancelled.id)?.seq, 7);
    tt.equal(links.get(aborted.id)?.seq, 8);
    tt.equal(result.head?.hash, links.get(aborted.id)?.hash);
    // Each link recomputes from the record as the store reads it back.
    let prev = GENESIS_HASH;
    for (const [i, run] of runs.entries()) {
      const link = links.get(run.id)!;
      tt.equal(link.seq, i + 1);
      tt.equal(link.prevHash, prev);
      tt.strictSame(await store.get(run.id), run, 'records read back unchanged (no chain fields)');
      tt.equal(link.hash, linkHash(prev, canonicalJson(await store.get(run.id))));
      prev = link.hash;
    }
    const keys = await chain.publicKeys();
    tt.equal(keys.length, 1);
    tt.equal(keys[0]?.fingerprint, result.head?.keyFingerprint);
    if (backend.name === 'postgres') {
      tt.equal(result.head?.keyFingerprint, installationFp, 'the config key signs');
    } else {
      const file = path.join(backend.dataDir, SIGNING_KEY_FILE);
      tt.equal((await fs.stat(file)).mode & 0o777, 0o600, 'the data dir key was created with mode 0600');
      tt.equal(result.head?.keyFingerprint, signerFromPem(await fs.readFile(file, 'utf8'), file).fingerprint, 'the data dir key signs');
    }
    await store.finalize(finished(stillRunning)).catch(() => undefined);
    await release(store);
  });
}

t.test('keys: created on first seal, not at open; one key when processes race; fingerprints like ssh', async (tt) => {
  const dir = path.join(tmp, 'keys');
  const store = await track(RunStore.open({ dataDir: dir, schema: 'backproof' }));
  tt.notOk(existsSync(path.join(dir, SIGNING_KEY_FILE)), 'no key before anything is sealed');
  await seed(store, 1);
  tt.ok(existsSync(path.join(dir, SIGNING_KEY_FILE)), 'created at the first seal');
  await release(store);

  const raceDir = path.join(tmp, 'keys-race');
  const signers = await Promise.all([1, 2, 3, 4, 5].map(() => loadOrCreateSigningKey(raceDir)));
  tt.equal(new Set(signers.map((s) => s.fingerprint)).size, 1, 'concurrent first uses end with one key');
  tt.same((await fs.readdir(raceDir)).sort(), [SIGNING_KEY_FILE], 'no temp file left');

  const { execFileSync } = await import('node:child_process');
  const pub = path.join(tmp, 'pub.pem');
  await fs.writeFile(pub, signers[0]!.publicKeyPem);
  const der = execFileSync('openssl', ['pkey', '-pubin', '-in', pub, '-outform', 'DER']);
  const { createHash } = await import('node:crypto');
  tt.equal(fingerprintOf(signers[0]!.publicKeyPem), `SHA256:${createHash('sha256').update(der.subarray(-32)).digest('base64').replace(/=+$/, '')}`, 'sha256 of the raw key, like ssh');

  tt.throws(() => signerFromPem('nope', 'evidence.signingKey'), { code: 'evidence_key_invalid' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  tt.throws(() => signerFromPem(rsa, 'evidence.signingKey'), /Ed25519/);
  const yaml = (key: string): string =>
    `evidence:\n  signingKey: ${JSON.stringify(key)}\nclients:\n  - name: acme\n    policies:\n      - { name: db, kind: postgres, source: { driver: local, path: /srv } }\n`;
  const config = parseConfigText(yaml(installationKey), path.join(tmp, 'backproof.yaml'), {});
  tt.equal(config.evidence?.signingKey, installationKey, 'config evidence.signingKey resolves');
  tt.ok(config.secrets.includes(installationKey), 'and is a secret the logger redacts');
  tt.throws(() => parseConfigText(yaml(rsa), path.join(tmp, 'backproof.yaml'), {}), /evidence\.signingKey: not a PEM Ed25519 private key/);
  const without = yaml(installationKey).replace(/^evidence:\n.*\n/, '');
  tt.equal(parseConfigText(without, path.join(tmp, 'backproof.yaml'), {}).evidence, undefined, 'absent without evidence:');
});

// ---- Tampering in PostgreSQL directly ---------------------------------------------------------------

/** A fresh schema with 8 sealed runs; `fn` tampers through SQL and checks what verify says. */
function tamperCase(name: string, fn: (ctx: { s: string; runs: RunRecord[]; chain: EvidenceChain; tt: Tap }) => Promise<void>): void {
  t.test(`tamper: ${name}`, async (tt) => {
    const store = await pgStore();
    const runs = await seed(store, 8);
    const chain = store.evidenceChain();
    tt.equal((await chain.verify()).ok, true, 'intact before');
    await fn({ s: store.schema, runs, chain, tt });
    await release(store);
  });
}

tamperCase('edit a field (verdict) of seq 4', async ({ s, runs, chain, tt }) => {
  await sql(`UPDATE ${s}.runs SET verdict = 'fail' WHERE id = $1`, [runs[3]!.id]);
  bad(tt, await chain.verify(), 4, runs[3]!.id, PROBLEMS.hashDiffers, 'edited verdict');
});

tamperCase('edit inside a jsonb field (one reason\'s text) of seq 2', async ({ s, runs, chain, tt }) => {
  await sql(`UPDATE ${s}.runs SET reasons = jsonb_set(reasons, '{0,message}', '"fine"') WHERE id = $1`, [runs[1]!.id]);
  bad(tt, await chain.verify(), 2, runs[1]!.id, PROBLEMS.hashDiffers, 'edited reasons');
});

tamperCase('edit a timestamp by one millisecond, then put a sealed run back to running', async ({ s, runs, chain, tt }) => {
  await sql(`UPDATE ${s}.runs SET finished_at = finished_at + interval '1 millisecond' WHERE id = $1`, [runs[6]!.id]);
  bad(tt, await chain.verify(), 7, runs[6]!.id, PROBLEMS.hashDiffers, 'edited finished_at');
  await sql(`UPDATE ${s}.runs SET finished_at = finished_at - interval '1 millisecond' WHERE id = $1`, [runs[6]!.id]);
  tt.equal((await chain.verify()).ok, true, 'intact again once undone');
  await sql(`UPDATE ${s}.runs SET status = 'running' WHERE id = $1`, [runs[0]!.id]);
  bad(tt, await chain.verify(), 1, runs[0]!.id, PROBLEMS.hashDiffers, 'back to running');
});

tamperCase('delete a record (row and link): the gap is named', async ({ s, runs, chain, tt }) => {
  await sql(`DELETE FROM ${s}.runs WHERE id = $1`, [runs[4]!.id]);
  await sql(`DELETE FROM ${s}.evidence_chain WHERE run_id = $1`, [runs[4]!.id]);
  bad(tt, await chain.verify(), 5, null, 'link missing: seq 6 follows 4 (a record was deleted)', 'deleted seq 5');
});

tamperCase('delete only the run row: its link names it', async ({ s, runs, chain, tt }) => {
  await sql(`DELETE FROM ${s}.runs WHERE id = $1`, [runs[2]!.id]);
  bad(tt, await chain.verify(), 3, runs[2]!.id, /record deleted/, 'deleted row of seq 3');
});

tamperCase('delete the first record, and the newest one', async ({ s, runs, chain, tt }) => {
  await sql(`DELETE FROM ${s}.runs WHERE id = $1`, [runs[7]!.id]);
  await sql(`DELETE FROM ${s}.evidence_chain WHERE run_id = $1`, [runs[7]!.id]);
  bad(tt, await chain.verify(), 8, null, 'link missing: the chain ends at seq 7 but its head is seq 8 (the newest records were deleted)', 'deleted the newest');
  await sql(`DELETE FROM ${s}.evidence_chain WHERE seq = 1`);
  await sql(`DELETE FROM ${s}.runs WHERE id = $1`, [runs[0]!.id]);
  bad(tt, await chain.verify(), 1, null, PROBLEMS.startsLate(2), 'deleted seq 1');
});

tamperCase('insert a fabricated finalized run without a link', async ({ s, chain, tt }) => {
  const fake = randomUUID();
  await sql(
    `INSERT INTO ${s}.runs (id, client, policy, kind, status, verdict, started_at, finished_at, host, pid, backproof_version)
     VALUES ($1, 'acme', 'acme-db', 'postgres', 'finished', 'pass', $2, $2, 'test-host', 1, '0.1.0')`,
    [fake, at(3 * HOUR + 1)],
  );
  bad(tt, await chain.verify(), null, fake, PROBLEMS.unlinked, 'inserted run');
  await sql(`INSERT INTO ${s}.runs (id, client, policy, kind, status, started_at, host, pid, backproof_version) VALUES ($1, 'acme', 'p', 'postgres', 'running', now(), 'h', 1, '0')`, [randomUUID()]);
});

tamperCase('insert a fabricated run with plausible chain values (hash right, signature copied / own key)', async ({ s, runs, chain, tt }) => {
  const fake = finished(sampleRun({ startedAt: at(20 * HOUR) }), 0);
  await sql(
    `INSERT INTO ${s}.runs (id, client, policy, kind, status, verdict, reasons, started_at, finished_at, duration_ms, host, pid, backproof_version, backup, phases, probes, metrics, sandbox, restored)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
    [fake.id, fake.client, fake.policy, fake.kind, fake.status, fake.verdict, JSON.stringify(fake.reasons), fake.startedAt, fake.finishedAt, fake.durationMs, fake.host, fake.pid, fake.backproofVersion,
      JSON.stringify(fake.backup), JSON.stringify(fake.phases), JSON.stringify(fake.probes), JSON.stringify(fake.metrics), JSON.stringify(fake.sandbox), JSON.stringify(fake.restored)],
  );
  const head = (await sql(`SELECT hash, signature, key_fingerprint FROM ${s}.evidence_chain WHERE seq = 8`)).rows[0] as { hash: string; signature: string; key_fingerprint: string };
  const hash = linkHash(head.hash, canonicalJson(fake));
  await sql(`INSERT INTO ${s}.evidence_chain (seq, run_id, prev_hash, hash, signature, key_fingerprint, sealed_at) VALUES (9, $1, $2, $3, $4, $5, now())`, [fake.id, head.hash, hash, head.signature, head.key_fingerprint]);
  await sql(`UPDATE ${s}.evidence_chain_head SET seq = 9, hash = $1`, [hash]);
  bad(tt, await chain.verify(), 9, fake.id, PROBLEMS.badSignature, 'copied signature');

  const forger = signerFromPem(keyPem(), 'forger');
  await sql(`UPDATE ${s}.evidence_chain SET signature = $1, key_fingerprint = $2 WHERE seq = 9`, [forger.sign(hash), forger.fingerprint]);
  bad(tt, await chain.verify(), 9, fake.id, PROBLEMS.unknownKey(forger.fingerprint), 'a signature by an unknown key');
  await sql(`INSERT INTO ${s}.evidence_keys (fingerprint, public_key_pem, first_used_at) VALUES ($1, $2, now())`, [installationFp.replace(/.$/, 'x'), forger.publicKeyPem]);
  await sql(`UPDATE ${s}.evidence_chain SET key_fingerprint = $1 WHERE seq = 9`, [installationFp.replace(/.$/, 'x')]);
  bad(tt, await chain.verify(), 9, fake.id, /unknown key/, 'a key stored under a fingerprint it does not have is not trusted');
  await sql(`UPDATE ${s}.evidence_chain SET signature = NULL, key_fingerprint = NULL WHERE seq = 9`);
  bad(tt, await chain.verify(), 9, fake.id, PROBLEMS.unsigned, 'unsigned');
  tt.ok(runs.length === 8, 'the seeded runs are untouched');
});

tamperCase('reorder: swap the seq of two links', async ({ s, runs, chain, tt }) => {
  await sql(`UPDATE ${s}.evidence_chain SET seq = 1000 WHERE seq = 4`);
  await sql(`UPDATE ${s}.evidence_chain SET seq = 4 WHERE seq = 5`);
  await sql(`UPDATE ${s}.evidence_chain SET seq = 5 WHERE seq = 1000`);
  bad(tt, await chain.verify(), 4, runs[4]!.id, PROBLEMS.prevMismatch(3), 'swapped 4 and 5');
});

tamperCase('a period: problems outside it do not count, inside it they do', async ({ s, runs, chain, tt }) => {
  // Runs i started at hour i: the period [2h, 5h) holds seq 3..5.
  const period = { from: at(2 * HOUR), to: at(5 * HOUR) };
  const ok = await chain.verify(period);
  tt.equal(ok.ok, true, 'the period verifies');
  tt.equal(ok.from, period.from, 'and says which');
  tt.ok(ok.checked >= 3 && ok.head?.seq === 6, 'walked the period and the link after it');
  await sql(`UPDATE ${s}.runs SET verdict = 'pass' WHERE id = $1`, [runs[7]!.id]);
  tt.equal((await chain.verify(period)).ok, true, 'a record edited well after the period');
  bad(tt, await chain.verify(), 8, runs[7]!.id, PROBLEMS.hashDiffers, 'the whole chain still names it');
  await sql(`DELETE FROM ${s}.runs WHERE id = $1`, [runs[5]!.id]);
  await sql(`DELETE FROM ${s}.evidence_chain WHERE run_id = $1`, [runs[5]!.id]);
  bad(tt, await chain.verify(period), 6, null, 'link missing: seq 7 follows 5 (a record was deleted)', 'the link after the period deleted');
  await sql(`DELETE FROM ${s}.runs WHERE id = $1`, [runs[1]!.id]);
  await sql(`DELETE FROM ${s}.evidence_chain WHERE run_id = $1`, [runs[1]!.id]);
  bad(tt, await chain.verify(period), 2, null, 'link missing: seq 3 follows 1 (a record was deleted)', 'the link before the period deleted');
});

// ---- Checkpoints ----------------------------------------------------------------------------------

/** Rewrites record `fromSeq` and the links through `toSeq` consistently (hashes recomputed, as someone without the key could), keeping old signatures. */
async function rewriteChain(s: string, runs: RunRecord[], fromSeq: number, toSeq: number, edit: (r: RunRecord) => RunRecord): Promise<void> {
  let prev = ((await sql(`SELECT hash FROM ${s}.evidence_chain WHERE seq = $1`, [fromSeq - 1])).rows[0] as { hash: string } | undefined)?.hash ?? GENESIS_HASH;
  for (let seq = fromSeq; seq <= toSeq; seq++) {
    const record = seq === fromSeq ? edit(runs[seq - 1]!) : runs[seq - 1]!;
    if (seq === fromSeq) await sql(`UPDATE ${s}.runs SET verdict = $1 WHERE id = $2`, [record.verdict, record.id]);
    const hash = linkHash(prev, canonicalJson(record));
    await sql(`UPDATE ${s}.evidence_chain SET prev_hash = $1, hash = $2 WHERE seq = $3`, [prev, hash, seq]);
    prev = hash;
  }
  // The next link now points at the rewritten one (its own hash left as it was), or the head does.
  await sql(`UPDATE ${s}.evidence_chain SET prev_hash = $1 WHERE seq = $2`, [prev, toSeq + 1]);
  await sql(`UPDATE ${s}.evidence_chain_head SET hash = $1 WHERE seq = $2`, [prev, toSeq]);
}

t.test('checkpoint: signed at the head; the next verify walks only newer links; --full and a period walk the old ones again', async (tt) => {
  const store = await pgStore();
  const s = store.schema;
  const runs = await seed(store, 8);
  const chain = store.evidenceChain();
  const first = await chain.verify({ writeCheckpoint: true });
  tt.equal(first.ok, true);
  tt.equal(first.checked, 8, 'no checkpoint yet: every link walked');
  tt.equal(first.checkpointWritten?.seq, 8, 'checkpoint signed at the head');
  const row = (await sql(`SELECT * FROM ${s}.evidence_checkpoints`)).rows;
  tt.equal(row.length, 1);
  tt.equal(row[0].key_fingerprint, installationFp, 'signed with the installation key');

  runs.push(...(await seed(store, 3, 8)));
  const next = await chain.verify({ writeCheckpoint: true });
  tt.equal(next.ok, true, JSON.stringify(next.firstBad));
  tt.equal(next.checked, 3, 'only the three links sealed since');
  tt.same(next.checkpoint, { seq: 8, madeAt: first.checkpointWritten?.madeAt, keyFingerprint: installationFp }, 'says which checkpoint it started from');
  tt.equal(next.head?.seq, 11);
  tt.equal(next.checkpointWritten?.seq, 11);
  const again = await chain.verify({ writeCheckpoint: true });
  tt.equal(again.checked, 0, 'nothing new: nothing walked');
  tt.equal(again.head?.seq, 11, 'the head is still reported');
  tt.notOk(again.checkpointWritten, 'and no second checkpoint at the same head');
  const fullAgain = await chain.verify({ full: true, writeCheckpoint: true });
  tt.equal(fullAgain.checked, 11, '--full walks every link');
  tt.notOk(fullAgain.checkpointWritten, 'nor does --full write one where one is');

  // An old record edited: the incremental verify does not re-read it; --full and a period over it do.
  await sql(`UPDATE ${s}.runs SET verdict = 'pass' WHERE id = $1`, [runs[1]!.id]);
  const quick = await chain.verify();
  tt.equal(quick.ok, true, 'links 1..11 are not walked again');
  tt.equal(quick.checkpoint?.seq, 11);
  bad(tt, await chain.verify({ full: true }), 2, runs[1]!.id, PROBLEMS.hashDiffers, '--full');
  bad(tt, await chain.verify({ from: at(0), to: at(3 * HOUR) }), 2, runs[1]!.id, PROBLEMS.hashDiffers, 'a period re-hashes its records');
  await release(store);
});

t.test('checkpoint: forged, stale or orphaned checkpoints are problems, never skipped', async (tt) => {
  const store = await pgStore();
  const s = store.schema;
  await seed(store, 8);
  const chain = store.evidenceChain();
  tt.equal((await chain.verify({ writeCheckpoint: true })).checkpointWritten?.seq, 8);
  const saved = (await sql(`SELECT hash, signature FROM ${s}.evidence_checkpoints WHERE seq = 8`)).rows[0] as { hash: string; signature: string };

  await sql(`UPDATE ${s}.evidence_checkpoints SET hash = $1`, [flipHex(saved.hash)]);
  bad(tt, await chain.verify(), 8, null, PROBLEMS.checkpointForged(8), 'a checkpoint whose hash was changed');
  await sql(`UPDATE ${s}.evidence_checkpoints SET hash = $1`, [saved.hash]);
  tt.equal((await chain.verify()).ok, true, 'intact once undone');

  const forger = signerFromPem(keyPem(), 'forger');
  const madeAt = new Date().toISOString();
  const fake = { seq: 9, hash: 'f'.repeat(64), madeAt };
  await sql(`INSERT INTO ${s}.evidence_checkpoints (seq, hash, made_at, key_fingerprint, signature) VALUES (9, $1, $2, $3, $4)`, [
    fake.hash,
    madeAt,
    forger.fingerprint,
    forger.sign(checkpointText(fake)),
  ]);
  bad(tt, await chain.verify(), 9, null, PROBLEMS.checkpointForged(9), 'a checkpoint by an unknown key, past the head, is not relied on');
  bad(tt, await chain.verify({ from: at(0), to: at(3 * HOUR) }), 9, null, PROBLEMS.checkpointForged(9), 'nor by a period');
  await sql(`DELETE FROM ${s}.evidence_checkpoints WHERE seq = 9`);

  await sql(`UPDATE ${s}.evidence_chain SET hash = $1 WHERE seq = 8`, [flipHex(saved.hash)]);
  bad(tt, await chain.verify(), 8, null, PROBLEMS.checkpointDiffers(8, (await checkpointAt(s, 8)).made_at), 'the checkpoint link rewritten');
  await sql(`UPDATE ${s}.evidence_chain SET hash = $1 WHERE seq = 8`, [saved.hash]);

  await sql(`UPDATE ${s}.evidence_chain SET seq = 100 WHERE seq = 8`);
  bad(tt, await chain.verify(), 8, null, PROBLEMS.checkpointLinkGone(8, (await checkpointAt(s, 8)).made_at), 'the checkpoint link gone');
  await sql(`UPDATE ${s}.evidence_chain SET seq = 8 WHERE seq = 100`);
  tt.equal((await chain.verify()).ok, true, 'intact again');
  await sql(`UPDATE ${s}.evidence_checkpoints SET signature = $1`, [saved.signature.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'))]);
  bad(tt, await chain.verify({ full: true }), 8, null, PROBLEMS.checkpointForged(8), '--full checks every checkpoint');
  await release(store);
});

t.test('checkpoint: a period re-hashes its records and checks again only the signature of the last link it walks, which is enough', async (tt) => {
  const store = await pgStore();
  const s = store.schema;
  const runs = await seed(store, 8);
  const chain = store.evidenceChain();
  await chain.verify({ writeCheckpoint: true });
  // The period [2h, 5h) holds seq 3..5; the walk covers 2..6.
  const period = { from: at(2 * HOUR), to: at(5 * HOUR) };
  await sql(`UPDATE ${s}.evidence_chain SET signature = NULL, key_fingerprint = NULL WHERE seq = 4`);
  const vouched = await chain.verify(period);
  tt.equal(vouched.ok, true, 'seq 4 was found signed when the checkpoint was made');
  tt.equal(vouched.checkpoint?.seq, 8);
  tt.equal(vouched.head?.seq, 6);
  bad(tt, await chain.verify({ ...period, full: true }), 4, runs[3]!.id, PROBLEMS.unsigned, '--full checks every signature');
  await sql(`UPDATE ${s}.evidence_chain SET signature = NULL, key_fingerprint = NULL WHERE seq = 6`);
  bad(tt, await chain.verify(period), 6, runs[5]!.id, PROBLEMS.unsigned, 'the last link walked is always checked');

  // Records rewritten with every hash recomputed (no key): the last link's old signature no longer fits.
  const other = await pgStore();
  const more = await seed(other, 8);
  const otherChain = other.evidenceChain();
  await otherChain.verify({ writeCheckpoint: true });
  const flipVerdict = (r: RunRecord): RunRecord => ({ ...r, verdict: r.verdict === 'pass' ? 'fail' : 'pass' });
  await rewriteChain(other.schema, more, 4, 6, flipVerdict);
  bad(tt, await otherChain.verify(period), 6, more[5]!.id, PROBLEMS.badSignature, 'rewritten through the period: its last link\'s signature no longer fits');
  bad(tt, await otherChain.verify({ full: true }), 4, more[3]!.id, PROBLEMS.badSignature, 'rewritten through the period: --full');
  await rewriteChain(other.schema, more, 4, 8, (r) => (r.id === more[3]!.id ? flipVerdict(flipVerdict(r)) : r));
  tt.equal((await otherChain.verify({ full: true })).ok, true, 'undone');
  await rewriteChain(other.schema, more, 4, 8, flipVerdict);
  bad(tt, await otherChain.verify(period), 8, null, PROBLEMS.checkpointDiffers(8, (await checkpointAt(other.schema, 8)).made_at), 'rewritten through the checkpoint: the period');
  bad(tt, await otherChain.verify(), 8, null, PROBLEMS.checkpointDiffers(8, (await checkpointAt(other.schema, 8)).made_at), 'rewritten through the checkpoint: the whole chain');
  await release(other);
  await release(store);
});

async function checkpointAt(s: string, seq: number): Promise<{ made_at: string }> {
  return (await sql(`SELECT made_at FROM ${s}.evidence_checkpoints WHERE seq = $1`, [seq])).rows[0] as { made_at: string };
}

// ---- Client digests: one client's verification --------------------------------------------------

/** A store of either backend with `sql` into it (as someone tampering would) and the key it signs with. */
interface DigestStore {
  store: RunStore;
  s: string;
  q(text: string, values?: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
  signer(): Promise<ReturnType<typeof signerFromPem>>;
}
let liteDirs = 0;
const digestBackends: Array<{ name: string; open(): Promise<DigestStore> }> = [
  {
    name: 'postgres',
    open: async () => {
      const store = await pgStore();
      return { store, s: store.schema, q: (text, values = []) => sql(text, values), signer: async () => signerFromPem(installationKey, 'test') };
    },
  },
  {
    name: 'pglite',
    open: async () => {
      const dir = path.join(tmp, `lite-digests-${++liteDirs}`);
      const store = await track(RunStore.open({ dataDir: dir, schema: 'backproof' }));
      return {
        store,
        s: store.schema,
        q: (text, values = []) => store.executor.query(text, values),
        signer: async () => signerFromPem(await fs.readFile(path.join(dir, SIGNING_KEY_FILE), 'utf8'), 'test'),
      };
    },
  },
];

/** Every client's digest recomputed from the stored links and the records they hash (the test's own reading of the formula). */
async function digestsOf(db: DigestStore, upTo: number): Promise<Record<string, { links: number; digest: string }>> {
  const out: Record<string, { links: number; digest: string }> = {};
  const rows = (await db.q(`SELECT c.seq, c.hash, r.client FROM ${db.s}.evidence_chain c JOIN ${db.s}.runs r ON r.id = c.run_id WHERE c.seq <= $1 ORDER BY c.seq`, [upTo])).rows;
  for (const r of rows) {
    const d = out[String(r.client)] ?? { links: 0, digest: '0'.repeat(64) };
    out[String(r.client)] = { links: d.links + 1, digest: createHash('sha256').update(`${d.digest}${Number(r.seq)}:${String(r.hash)}`).digest('hex') };
  }
  return out;
}

async function checkpointRow(db: DigestStore, seq: number): Promise<{ made_at: string; clients: string | null; signature: string; hash: string; key_fingerprint: string }> {
  return (await db.q(`SELECT made_at, clients, signature, hash, key_fingerprint FROM ${db.s}.evidence_checkpoints WHERE seq = $1`, [seq])).rows[0] as never;
}

// Runs i started at hour i, acme at even i (seq 1, 3, 5, ...), globex at odd. The period [2h, 8h) holds seq 3..8.
const PERIOD = { from: at(2 * HOUR), to: at(8 * HOUR) };

for (const backend of digestBackends) {
  t.test(`${backend.name}: client digests: signed with the checkpoint, extended by the next, checked by --full`, async (tt) => {
    const db = await backend.open();
    const { store, s } = db;
    const chain = store.evidenceChain();
    await seed(store, 8);
    const first = await chain.verify({ writeCheckpoint: true });
    tt.equal(first.checkpointWritten?.seq, 8);
    let row = await checkpointRow(db, 8);
    tt.same(JSON.parse(row.clients!), await digestsOf(db, 8), 'every client: its links and the running sha256 over seq:hash');
    tt.equal(row.clients, canonicalJson(await digestsOf(db, 8)), 'stored as canonical JSON');
    const key = createPublicKey((await db.signer()).publicKeyPem);
    const signed = (text: string): boolean => verifyEd25519(null, Buffer.from(text), key, Buffer.from(row.signature, 'base64'));
    tt.ok(signed(checkpointText({ seq: 8, hash: row.hash, madeAt: row.made_at, clients: row.clients! })), 'the signature covers the digests (checkpoint v2)');
    tt.match(checkpointText({ seq: 8, hash: row.hash, madeAt: row.made_at, clients: row.clients! }), /^backproof evidence checkpoint v2\n.*\nclient digests sha256: [0-9a-f]{64}\n$/s);
    tt.notOk(signed(checkpointText({ seq: 8, hash: row.hash, madeAt: row.made_at })), 'not the v1 text');

    await seed(store, 3, 8);
    const next = await chain.verify({ writeCheckpoint: true });
    tt.equal(next.checked, 3, 'only the links since were walked');
    tt.equal(next.checkpointWritten?.seq, 11);
    row = await checkpointRow(db, 11);
    tt.same(JSON.parse(row.clients!), await digestsOf(db, 11), "the previous checkpoint's digests extended by the links walked since");

    const full = await chain.verify({ full: true });
    tt.equal(full.ok, true, JSON.stringify(full.firstBad));
    const ok = await chain.verifyClient({ client: 'acme', ...PERIOD });
    tt.equal(ok.ok, true, JSON.stringify(ok.firstBad));
    tt.same(ok.clientDigest, { client: 'acme', links: 6, checkpointSeq: 11 }, "acme's links up to the checkpoint gave its signed digest");
    tt.equal(ok.checked, 5, "acme's records of the period (seq 3, 5, 7) and its links around them (1, 9) re-hashed");
    tt.equal(ok.head?.seq, 11, 'the head reached');
    tt.same(await chain.verifyClient({ client: 'nobody', ...PERIOD }).then((r) => [r.ok, r.clientDigest]), [true, { client: 'nobody', links: 0, checkpointSeq: 11 }], 'a client with no links');

    // A digest set re-signed with the installation's key but wrong: --full recomputes them.
    const signer = await db.signer();
    const forged = JSON.parse(row.clients!) as Record<string, { links: number; digest: string }>;
    forged.acme = { links: 5, digest: forged.acme!.digest };
    const forgedText = canonicalJson(forged);
    await db.q(`UPDATE ${s}.evidence_checkpoints SET clients = $1, signature = $2 WHERE seq = 11`, [forgedText, signer.sign(checkpointText({ seq: 11, hash: row.hash, madeAt: row.made_at, clients: forgedText }))]);
    bad(tt, await chain.verify({ full: true }), 11, null, PROBLEMS.checkpointClientsDiffer(11, row.made_at, 'acme', { links: 6, digest: forged.acme.digest }, forged.acme), '--full: digests signed wrong');
    tt.match((await chain.verify({ full: true })).firstBad?.problem, /client "acme" has 6 links, the checkpoint signed 5/);
    bad(tt, await chain.verifyClient({ client: 'acme', ...PERIOD }), null, null, /the links of client "acme" up to seq 11 do not match the digest the checkpoint of .* signed: 6 found, 5 signed/, "acme's verification");
    tt.equal((await chain.verifyClient({ client: 'globex', ...PERIOD })).ok, true, "globex's digest is right");
    await release(store);
  });

  t.test(`${backend.name}: client digests: an upgraded store (checkpoint without digests) walks from seq 1 once, then signs them`, async (tt) => {
    const db = await backend.open();
    const { store, s } = db;
    const chain = store.evidenceChain();
    await seed(store, 8);
    await chain.verify({ writeCheckpoint: true });
    // The checkpoint as made before migration 0014: no digests, signed as v1.
    const row = await checkpointRow(db, 8);
    const signer = await db.signer();
    await db.q(`UPDATE ${s}.evidence_checkpoints SET clients = NULL, signature = $1 WHERE seq = 8`, [signer.sign(checkpointText({ seq: 8, hash: row.hash, madeAt: row.made_at }))]);
    const quick = await chain.verify();
    tt.equal(quick.ok, true, 'an old checkpoint still verifies');
    tt.equal(quick.checkpoint?.seq, 8, 'and is relied on');
    const fallback = await chain.verifyClient({ client: 'acme', ...PERIOD });
    tt.equal(fallback.ok, true, JSON.stringify(fallback.firstBad));
    tt.notOk(fallback.clientDigest, "without digests a client's verification is the period's walk");
    tt.equal(fallback.checked, 8, 'every record from seq 1 (the tests seal now: nothing was sealed before the period) to the head');

    const upgrade = await chain.verify({ writeCheckpoint: true });
    tt.equal(upgrade.checked, 8, 'walked from seq 1');
    tt.notOk(upgrade.checkpoint, 'not said to start after the old checkpoint');
    tt.equal(upgrade.checkpointWritten?.seq, 8, 'the old checkpoint at the head replaced by one with digests');
    tt.same(JSON.parse((await checkpointRow(db, 8)).clients!), await digestsOf(db, 8));
    tt.same((await chain.verifyClient({ client: 'acme', ...PERIOD })).clientDigest, { client: 'acme', links: 4, checkpointSeq: 8 });
    tt.equal((await chain.verify({ writeCheckpoint: true })).checked, 0, 'from then on, only new links');

    // With links sealed after the old checkpoint: one walk from 1 to the head.
    await db.q(`UPDATE ${s}.evidence_checkpoints SET clients = NULL, signature = $1, made_at = $2 WHERE seq = 8`, [signer.sign(checkpointText({ seq: 8, hash: row.hash, madeAt: row.made_at })), row.made_at]);
    await seed(store, 3, 8);
    const later = await chain.verify({ writeCheckpoint: true });
    tt.equal(later.checked, 11, 'walked from seq 1 to the head');
    tt.equal(later.checkpointWritten?.seq, 11);
    tt.equal((await checkpointRow(db, 8)).clients, null, 'the old checkpoint left as it was');
    tt.same(JSON.parse((await checkpointRow(db, 11)).clients!), await digestsOf(db, 11));
    // Tampering before the old checkpoint is found by that walk, and nothing is signed.
    await db.q(`DELETE FROM ${s}.evidence_checkpoints WHERE seq = 11`);
    const victim = (await db.q(`SELECT run_id FROM ${s}.evidence_chain WHERE seq = 3`)).rows[0]!.run_id as string;
    await db.q(`UPDATE ${s}.runs SET client = 'globex' WHERE id = $1`, [victim]);
    bad(tt, await chain.verify({ writeCheckpoint: true }), 3, victim, PROBLEMS.hashDiffers, 'a run moved before the old checkpoint');
    tt.equal((await db.q(`SELECT count(*)::int AS n FROM ${s}.evidence_checkpoints WHERE clients IS NOT NULL`)).rows[0]!.n, 0, 'no digests signed');
    await release(store);
  });
}

/**
 * A fresh store of 12 sealed runs (acme at seq 1, 3, ..., 11; globex at 2, 4, ..., 12) and a
 * checkpoint with digests at 12; `fn` tampers and checks acme's verification of PERIOD and --full.
 */
function digestTamper(name: string, fn: (ctx: { db: DigestStore; runs: RunRecord[]; chain: EvidenceChain; tt: Tap; made: string }) => Promise<void>): void {
  for (const backend of digestBackends) {
    t.test(`${backend.name}: client digests: ${name}`, async (tt) => {
      const db = await backend.open();
      const runs = await seed(db.store, 12);
      // Sealed when they finished, as in a store in use (the tests seal now, long after `at(...)`).
      await db.q(`UPDATE ${db.s}.evidence_chain c SET sealed_at = r.finished_at FROM ${db.s}.runs r WHERE r.id = c.run_id`);
      const chain = db.store.evidenceChain();
      tt.equal((await chain.verify({ writeCheckpoint: true })).checkpointWritten?.seq, 12);
      const before = await chain.verifyClient({ client: 'acme', ...PERIOD });
      tt.equal(before.ok, true, 'intact before');
      tt.equal(before.checkpoint?.seq, 12);
      await fn({ db, runs, chain, tt, made: (await checkpointRow(db, 12)).made_at });
      await release(db.store);
    });
  }
}
const acmeOf = (chain: EvidenceChain): Promise<ChainVerification> => chain.verifyClient({ client: 'acme', ...PERIOD });
const moveTo = (db: DigestStore, run: RunRecord, client: string) => db.q(`UPDATE ${db.s}.runs SET client = $1 WHERE id = $2`, [client, run.id]);

digestTamper('a run of the client moved to another (C->D), in the period and before it', async ({ db, runs, chain, tt, made }) => {
  await moveTo(db, runs[4]!, 'globex');
  bad(tt, await acmeOf(chain), 5, runs[4]!.id, PROBLEMS.hashDiffers, 'moved out of the period: the period walk names it');
  tt.equal((await chain.verifyClient({ client: 'globex', ...PERIOD })).ok, false, "globex's check fails too");
  bad(tt, await chain.verify({ full: true }), 5, runs[4]!.id, PROBLEMS.hashDiffers, '--full');
  await moveTo(db, runs[4]!, 'acme');
  tt.equal((await acmeOf(chain)).ok, true, 'undone');
  await moveTo(db, runs[10]!, 'globex');
  bad(tt, await acmeOf(chain), null, null, PROBLEMS.clientLinksDiffer('acme', 12, made, { links: 5, digest: '' }, { links: 6, digest: '' }), 'moved, outside the period: the digest');
  tt.match((await acmeOf(chain)).firstBad?.problem, /5 found, 6 signed \(a run of this client was moved to another client/, 'says what may have happened');
  bad(tt, await chain.verify({ full: true }), 11, runs[10]!.id, PROBLEMS.hashDiffers, '--full');
});

digestTamper("a run of the client moved out of the period by its start time, even the client's only one", async ({ db, runs, chain, tt }) => {
  const hour = { from: at(4 * HOUR), to: at(5 * HOUR) }; // acme's seq 5 alone
  tt.equal((await chain.verifyClient({ client: 'acme', ...hour })).ok, true, 'intact');
  await db.q(`UPDATE ${db.s}.runs SET started_at = $1 WHERE id = $2`, [at(HOUR / 2), runs[4]!.id]);
  bad(tt, await chain.verifyClient({ client: 'acme', ...hour }), 5, runs[4]!.id, PROBLEMS.hashDiffers, 'its link was sealed in the period: re-hashed');
  bad(tt, await acmeOf(chain), 5, runs[4]!.id, PROBLEMS.hashDiffers, 'the longer period');
  await db.q(`UPDATE ${db.s}.evidence_chain SET sealed_at = $1 WHERE run_id = $2`, [at(HOUR / 2), runs[4]!.id]);
  bad(tt, await acmeOf(chain), 5, runs[4]!.id, PROBLEMS.hashDiffers, "its sealing time moved too: between the client's links of the period, re-hashed");
});

digestTamper("another client's run moved to the client (D->C), in the period and after it", async ({ db, runs, chain, tt }) => {
  await moveTo(db, runs[5]!, 'acme');
  bad(tt, await acmeOf(chain), 6, runs[5]!.id, PROBLEMS.hashDiffers, 'moved into the period: re-hashed as the client\'s');
  bad(tt, await chain.verify({ full: true }), 6, runs[5]!.id, PROBLEMS.hashDiffers, '--full');
  await moveTo(db, runs[5]!, 'globex');
  await moveTo(db, runs[11]!, 'acme');
  bad(tt, await acmeOf(chain), null, null, /7 found, 6 signed \(a run of another client was moved to this one/, 'moved in outside the period: the digest');
  bad(tt, await chain.verify({ full: true }), 12, runs[11]!.id, PROBLEMS.hashDiffers, '--full');
});

digestTamper("a record of the client edited, in the period; another client's edited record is not this client's problem", async ({ db, runs, chain, tt }) => {
  await db.q(`UPDATE ${db.s}.runs SET verdict = 'fail' WHERE id = $1`, [runs[6]!.id]);
  bad(tt, await acmeOf(chain), 7, runs[6]!.id, PROBLEMS.hashDiffers, 'edited');
  bad(tt, await chain.verify({ full: true }), 7, runs[6]!.id, PROBLEMS.hashDiffers, '--full');
  await db.q(`UPDATE ${db.s}.runs SET verdict = 'pass' WHERE id = $1`, [runs[6]!.id]);
  await db.q(`UPDATE ${db.s}.runs SET duration_ms = duration_ms + 1 WHERE id = $1`, [runs[3]!.id]);
  tt.equal((await acmeOf(chain)).ok, true, "globex's record is not re-hashed by acme's check");
  bad(tt, await chain.verifyClient({ client: 'globex', ...PERIOD }), 4, runs[3]!.id, PROBLEMS.hashDiffers, "globex's check");
});

digestTamper('a run of the client deleted with its link, or its row alone', async ({ db, runs, chain, tt }) => {
  await db.q(`DELETE FROM ${db.s}.runs WHERE id = $1`, [runs[0]!.id]);
  await db.q(`DELETE FROM ${db.s}.evidence_chain WHERE run_id = $1`, [runs[0]!.id]);
  bad(tt, await acmeOf(chain), null, null, /5 found, 6 signed \(a run of this client was moved to another client, or deleted/, 'seq 1 deleted, before the period');
  bad(tt, await chain.verify({ full: true }), 1, null, PROBLEMS.startsLate(2), '--full');
  await db.q(`DELETE FROM ${db.s}.runs WHERE id = $1`, [runs[4]!.id]);
  await db.q(`DELETE FROM ${db.s}.evidence_chain WHERE run_id = $1`, [runs[4]!.id]);
  bad(tt, await acmeOf(chain), 5, null, 'link missing: seq 6 follows 4 (a record was deleted)', 'seq 5 deleted, in the period: the period walk names the gap');
});

digestTamper('a run row of the client deleted, its link kept', async ({ db, runs, chain, tt }) => {
  await db.q(`DELETE FROM ${db.s}.runs WHERE id = $1`, [runs[8]!.id]);
  bad(tt, await acmeOf(chain), 9, runs[8]!.id, /record deleted/, 'the link after the period names it');
  bad(tt, await chain.verify({ full: true }), 9, runs[8]!.id, /record deleted/, '--full');
});

digestTamper("a link's hash edited, in the period and after it", async ({ db, runs, chain, tt }) => {
  const hashOf = async (seq: number): Promise<string> => (await db.q(`SELECT hash FROM ${db.s}.evidence_chain WHERE seq = $1`, [seq])).rows[0]!.hash as string;
  const h5 = await hashOf(5);
  await db.q(`UPDATE ${db.s}.evidence_chain SET hash = $1 WHERE seq = 5`, [flipHex(h5)]);
  bad(tt, await acmeOf(chain), 5, runs[4]!.id, PROBLEMS.hashDiffers, 'in the period');
  bad(tt, await chain.verify({ full: true }), 5, runs[4]!.id, PROBLEMS.hashDiffers, '--full');
  await db.q(`UPDATE ${db.s}.evidence_chain SET hash = $1 WHERE seq = 5`, [h5]);
  // Seq 11 with its record's hash recomputed, and its next link's prev_hash: only the digest binds it.
  const h10 = await hashOf(10);
  const fake = { ...runs[10]!, durationMs: runs[10]!.durationMs! + 1 };
  await db.q(`UPDATE ${db.s}.runs SET duration_ms = $1 WHERE id = $2`, [fake.durationMs, fake.id]);
  const h11 = linkHash(h10, canonicalJson(fake));
  await db.q(`UPDATE ${db.s}.evidence_chain SET hash = $1 WHERE seq = 11`, [h11]);
  await db.q(`UPDATE ${db.s}.evidence_chain SET prev_hash = $1 WHERE seq = 12`, [h11]);
  bad(tt, await acmeOf(chain), null, null, /6 found, 6 signed, other seqs or hashes \(a link's hash was changed/, 'outside the period, consistently rehashed: the digest');
  bad(tt, await chain.verify({ full: true }), 11, runs[10]!.id, PROBLEMS.badSignature, '--full');
});

digestTamper('the digest set edited, removed, or the checkpoint link changed', async ({ db, chain, tt, made }) => {
  const row = await checkpointRow(db, 12);
  const edited = row.clients!.replace('"links":6', '"links":5');
  await db.q(`UPDATE ${db.s}.evidence_checkpoints SET clients = $1`, [edited]);
  bad(tt, await acmeOf(chain), 12, null, PROBLEMS.checkpointForged(12), 'edited digests: the signature fails');
  bad(tt, await chain.verify(), 12, null, PROBLEMS.checkpointForged(12), 'the quick verify');
  bad(tt, await chain.verify({ full: true }), 12, null, PROBLEMS.checkpointForged(12), '--full');
  await db.q(`UPDATE ${db.s}.evidence_checkpoints SET clients = NULL`);
  bad(tt, await acmeOf(chain), 12, null, PROBLEMS.checkpointForged(12), 'removed digests: the v1 text is not what was signed');
  await db.q(`UPDATE ${db.s}.evidence_checkpoints SET clients = $1`, ['{"acme":{"links":6}}']);
  bad(tt, await acmeOf(chain), 12, null, PROBLEMS.checkpointForged(12), 'unreadable digests');
  await db.q(`UPDATE ${db.s}.evidence_checkpoints SET clients = $1`, [row.clients]);
  tt.equal((await acmeOf(chain)).ok, true, 'intact again');
  await db.q(`UPDATE ${db.s}.evidence_chain SET hash = $1 WHERE seq = 12`, [flipHex(row.hash)]);
  bad(tt, await acmeOf(chain), 12, null, PROBLEMS.checkpointDiffers(12, made), 'the checkpoint link changed');
  await db.q(`UPDATE ${db.s}.evidence_chain SET hash = $1 WHERE seq = 12`, [row.hash]);
  await db.q(`UPDATE ${db.s}.evidence_chain SET seq = 100 WHERE seq = 12`);
  bad(tt, await acmeOf(chain), 12, null, PROBLEMS.checkpointLinkGone(12, made), 'the checkpoint link gone');
});

digestTamper('links sealed after the checkpoint are walked whole; a run inserted without a link', async ({ db, chain, tt }) => {
  const more = await seed(db.store, 3, 4); // started in the period, sealed at seq 13..15
  const ok = await acmeOf(chain);
  tt.equal(ok.ok, true, JSON.stringify(ok.firstBad));
  tt.equal(ok.head?.seq, 15, 'walked to the head');
  await db.q(`UPDATE ${db.s}.runs SET duration_ms = duration_ms + 1 WHERE id = $1`, [more[1]!.id]);
  bad(tt, await acmeOf(chain), 14, more[1]!.id, PROBLEMS.hashDiffers, "another client's record after the checkpoint: walked whole");
  await db.q(`UPDATE ${db.s}.runs SET duration_ms = duration_ms - 1 WHERE id = $1`, [more[1]!.id]);
  await db.q(`UPDATE ${db.s}.evidence_chain_head SET seq = 16`);
  bad(tt, await acmeOf(chain), 16, null, /the chain ends at seq 15 but its head is seq 16/, 'the head row');
  await db.q(`UPDATE ${db.s}.evidence_chain_head SET seq = 15`);
  const fake = randomUUID();
  await db.q(
    `INSERT INTO ${db.s}.runs (id, client, policy, kind, status, verdict, started_at, finished_at, host, pid, backproof_version)
     VALUES ($1, 'acme', 'acme-db', 'postgres', 'finished', 'pass', $2, $2, 'test-host', 1, '0.1.0')`,
    [fake, at(3 * HOUR + 1)],
  );
  bad(tt, await acmeOf(chain), null, fake, PROBLEMS.unlinked, 'inserted run');
});

// ---- Concurrency -------------------------------------------------------------------------------------

t.test('postgres: 2 stores (2 pools) finalize 20 runs each at once: one contiguous, valid chain', async (tt) => {
  const schema = `chain_concurrent_${process.pid}`;
  const [a, b] = await Promise.all([pgStore(schema), pgStore(schema)]);
  const finalizeMany = (store: RunStore, client: string): Promise<void[]> =>
    Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const run = sampleRun({ client, startedAt: at(i * 60_000) });
        await store.recordStart(run);
        await store.finalize(finished(run, i));
      }),
    );
  await Promise.all([finalizeMany(a!, 'acme'), finalizeMany(b!, 'globex')]);
  const result = await a!.evidenceChain().verify();
  tt.equal(result.ok, true, JSON.stringify(result.firstBad));
  tt.equal(result.checked, 40);
  tt.equal(result.head?.seq, 40);
  const seqs = (await sql(`SELECT seq FROM ${schema}.evidence_chain ORDER BY seq`)).rows.map((r: { seq: string }) => Number(r.seq));
  tt.same(seqs, Array.from({ length: 40 }, (_, i) => i + 1), 'seq 1..40, no gap, no duplicate');
  await release(a!);
  await release(b!);
});

t.test('postgres: runs finalized before the chain existed are sealed at the next open', async (tt) => {
  const schema = `chain_legacy_${process.pid}`;
  const executor = await createPgExecutor(pgUrl);
  await migrate(executor, schema, loadMigrations().filter((m) => m.version <= 2));
  const old = [finished(sampleRun({ startedAt: at(2 * HOUR) })), finished(sampleRun({ startedAt: at(HOUR) }))];
  for (const r of old) {
    await executor.query(
      `INSERT INTO ${schema}.runs (id, client, policy, kind, status, verdict, reasons, started_at, finished_at, duration_ms, host, pid, backproof_version)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
      [r.id, r.client, r.policy, r.kind, r.status, r.verdict, JSON.stringify(r.reasons), r.startedAt, r.finishedAt, r.durationMs, r.host, r.pid, r.backproofVersion],
    );
  }
  await executor.close();
  const stores = await Promise.all([pgStore(schema), pgStore(schema)]);
  const links = await stores[0]!.evidenceChain().links(old.map((r) => r.id));
  tt.same([links.get(old[1]!.id)?.seq, links.get(old[0]!.id)?.seq], [1, 2], 'sealed once, oldest first, by one of two concurrent openers');
  tt.equal((await stores[0]!.evidenceChain().verify()).ok, true);
  for (const s of stores) await release(s!);
});

// ---- Bundles -----------------------------------------------------------------------------------------

let bundleSchema = '';
let bundleRuns: RunRecord[] = [];
let goodBundle: EvidenceBundle;
t.test('export a bundle for one client of two: verifies offline, discloses nothing of the other', async (tt) => {
  const store = await pgStore();
  bundleSchema = store.schema;
  bundleRuns = await seed(store, 9); // acme: seq 1,3,5,7,9; globex: 2,4,6,8
  const chain = store.evidenceChain();
  const bundle = await chain.exportBundle({ client: 'acme', from: at(2 * HOUR), to: at(7 * HOUR) }); // acme seq 3, 5, 7
  goodBundle = bundle;
  tt.same(bundle.entries.map((e) => [e.seq, 'record' in e]), [[3, true], [4, false], [5, true], [6, false], [7, true]]);
  tt.equal(bundle.head.seq, 7);
  tt.equal(bundle.head.keyFingerprint, installationFp);
  tt.same(bundle.keys.map((k) => k.fingerprint), [installationFp]);
  const result = verifyBundle(JSON.parse(JSON.stringify(bundle)));
  tt.same(result, { ok: true, checked: 3, from: at(2 * HOUR), to: at(7 * HOUR), head: { seq: 7, hash: bundle.head.hash, signatureValid: true, keyFingerprint: installationFp } });
  const text = JSON.stringify(bundle);
  for (const other of bundleRuns.filter((r) => r.client === 'globex')) tt.notOk(text.includes(other.id), `globex run ${other.id} is not named`);
  tt.notOk(text.includes('globex'), "nothing of globex's records is in the bundle");
  const first = bundle.entries[0] as { record: string };
  tt.strictSame(JSON.parse(first.record), bundleRuns[2], 'a record is the run as stored');
  await tt.rejects(chain.exportBundle({ client: 'nobody', from: at(0), to: at(HOUR) }), { code: 'evidence_nothing_to_export' });
  await tt.rejects(new EvidenceChain(store.executor, store.schema).exportBundle({ client: 'acme', from: at(0), to: at(9 * HOUR) }), { code: 'evidence_no_signer' });

  await sql(`UPDATE ${store.schema}.runs SET verdict = 'fail' WHERE id = $1`, [bundleRuns[3]!.id]);
  await tt.rejects(chain.exportBundle({ client: 'acme', from: at(2 * HOUR), to: at(7 * HOUR) }), { code: 'evidence_tampered' }, 'refuses to export a chain that does not verify');
  await sql(`UPDATE ${store.schema}.runs SET verdict = $2 WHERE id = $1`, [bundleRuns[3]!.id, bundleRuns[3]!.verdict]);
  await release(store);
});

t.test('a bundle with one changed byte fails offline verification, naming the entry', async (tt) => {
  const clone = (): EvidenceBundle => JSON.parse(JSON.stringify(goodBundle)) as EvidenceBundle;
  const flip = (s: string, i: number): string => s.slice(0, i) + (s[i] === 'a' ? 'b' : s[i] === '0' ? '1' : s[i] === 'A' ? 'B' : 'a') + s.slice(i + 1);
  const rec = (b: EvidenceBundle, i: number): { record: string; runId: string } => b.entries[i] as unknown as { record: string; runId: string };

  let b = clone();
  rec(b, 2).record = rec(b, 2).record.replace(/"verdict":"(pass|fail)"/, (_m, v: string) => `"verdict":"${v === 'pass' ? 'fail' : 'pass'}"`);
  bad(tt, verifyBundle(b), 5, rec(b, 2).runId, PROBLEMS.hashDiffers, 'a record text');
  b = clone();
  rec(b, 0).record = rec(b, 0).record.replace('"fetchBytesPerSec":69835000.5', '"fetchBytesPerSec":69835000.6');
  bad(tt, verifyBundle(b), 3, rec(b, 0).runId, PROBLEMS.hashDiffers, 'a number in a record');
  b = clone();
  b.entries[1]!.hash = flip(b.entries[1]!.hash, 10);
  bad(tt, verifyBundle(b), 5, rec(b, 2).runId, PROBLEMS.prevMismatch(4), "an elided entry's hash");
  b = clone();
  b.entries[0]!.hash = flip(b.entries[0]!.hash, 63);
  bad(tt, verifyBundle(b), 3, rec(b, 0).runId, PROBLEMS.hashDiffers, "a record entry's hash");
  b = clone();
  b.head.signature = flip(b.head.signature, 5);
  bad(tt, verifyBundle(b), 7, rec(b, 4).runId, /signature invalid/, 'the signature');
  tt.equal(verifyBundle(b).head?.signatureValid, false);
  b = clone();
  b.head.signature = b.head.signature.replace(/.==$/, (m) => `${m[0] === 'A' ? 'B' : 'A'}==`);
  tt.equal(verifyBundle(b).ok, false, "the signature's last base64 character (spare bits)");
  b = clone();
  b.entries[2] = { seq: b.entries[2]!.seq, prevHash: b.entries[2]!.prevHash, hash: b.entries[2]!.hash };
  bad(tt, verifyBundle(b), 7, rec(b, 4).runId, /attestation does not match/, 'a record of the client turned into an elided entry');
  b = clone();
  const forger = signerFromPem(keyPem(), 'forger');
  b.keys = [{ fingerprint: forger.fingerprint, pem: forger.publicKeyPem }];
  b.head.keyFingerprint = forger.fingerprint;
  bad(tt, verifyBundle(b), 7, rec(b, 4).runId, /signature invalid/, 'a signature checked against a key that did not sign');
  b = clone();
  b.entries.splice(1, 1);
  bad(tt, verifyBundle(b), 5, rec(b, 1).runId, PROBLEMS.gap(5, 3), 'an entry removed');
  tt.equal(verifyBundle({ format: 'x' }).ok, false);
  tt.equal(verifyBundle(null).ok, false);

  // Every single byte of the file: change it and the bundle either is no longer JSON or fails.
  const text = JSON.stringify(goodBundle, null, 2);
  let changed = 0;
  for (let i = 0; i < text.length; i++) {
    if (/\s/.test(text[i]!)) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(flip(text, i));
    } catch {
      continue;
    }
    changed += 1;
    const r = verifyBundle(parsed);
    if (r.ok) tt.fail(`changing byte ${i} (${JSON.stringify(text.slice(Math.max(0, i - 20), i + 20))}) went unnoticed`);
  }
  tt.ok(changed > 1000, `${changed} single-byte changes that still parse, each one caught`);
});

// ---- The command line and the recipe of docs/evidence.md -------------------------------------------

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}
function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Result> {
  const opts: SpawnOptions = { cwd, env: { ...process.env, BACKPROOF_CONFIG: '', DATABASE_URL: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] };
  const child = spawn(cmd, args, opts);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}
const cli = (args: string[], cwd: string): Promise<Result> => run(process.execPath, [BIN, ...args], cwd);

/** The shell blocks for checking a bundle, in docs/evidence.md. */
async function readmeRecipes(): Promise<{ script: string; node: string }> {
  const text = await fs.readFile('docs/evidence.md', 'utf8');
  const blocks = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const script = blocks.find((b) => b.includes('# Checks a backproof evidence bundle'));
  const node = blocks.find((b) => b.startsWith('node -e'));
  if (script && node) return { script, node };
  throw new Error('no bundle-checking recipe in docs/evidence.md');
}

t.test('cli: evidence verify, export, verify --bundle; the docs/evidence.md recipe with jq, sha256sum, openssl', async (tt) => {
  tt.ok(existsSync('dist/orchestrator/cli/evidence-command.js'), 'built (npm run build)');
  const dir = await fs.mkdtemp(path.join(tmp, 'cli-'));
  await fs.writeFile(path.join(dir, 'key.pem'), installationKey, { mode: 0o600 });
  await fs.writeFile(
    path.join(dir, 'backproof.yaml'),
    `database: { url: ${JSON.stringify(pgUrl)}, schema: ${bundleSchema} }\nevidence: { signingKey: "\${file:key.pem}" }\nclients:\n  - name: acme\n    policies:\n      - { name: acme-db, kind: postgres, source: { driver: local, path: /srv } }\n`,
  );

  const ok = await cli(['evidence', 'verify'], dir);
  tt.equal(ok.code, 0, ok.stderr);
  tt.equal(ok.stdout, `ok: 9 records, chain intact, head seq 9 signed by ${installationFp} (valid)\n  checkpoint signed at seq 9: the next verify starts after it\n`);
  const json = JSON.parse((await cli(['evidence', 'verify', '--json', '--from', '2026-11-01', '--to', at(3 * HOUR)], dir)).stdout) as ChainVerification;
  tt.equal(json.ok, true);
  tt.equal(json.from, '2026-11-01T00:00:00.000Z');

  const exp = await cli(['evidence', 'export', '--client', 'acme', '--from', '2026-11-01', '--to', '2026-12-01'], dir);
  tt.equal(exp.code, 0, exp.stderr);
  const file = path.join(dir, 'evidence-acme-2026-11-01-2026-12-01.json');
  tt.match(exp.stdout, `wrote ${file}`);
  tt.match(exp.stdout, /5 records of acme/);
  tt.match(exp.stdout, /links seq 1-9 \(4 of other clients: hashes only/);

  // Offline: another folder, no config, no database.
  const offline = await fs.mkdtemp(path.join(tmp, 'offline-'));
  const bundlePath = path.join(offline, 'bundle.json');
  await fs.copyFile(file, bundlePath);
  const vb = await cli(['evidence', 'verify', '--bundle', 'bundle.json'], offline);
  tt.equal(vb.code, 0, vb.stderr);
  tt.match(vb.stdout, /^ok: bundle of acme, 5 records of runs started 2026-11-01T00:00:00\.000Z to 2026-12-01T00:00:00\.000Z, links seq 1-9 intact/);

  const recipes = await readmeRecipes();
  const script = path.join(offline, 'check-bundle.sh');
  await fs.writeFile(script, recipes.script);
  const viaTools = await run('bash', [script, bundlePath], offline);
  tt.equal(viaTools.code, 0, viaTools.stdout + viaTools.stderr);
  tt.match(viaTools.stdout, `signed by ${installationFp}`);
  tt.match(viaTools.stdout, /bundle OK: 5 records of acme/);
  const viaNode = await run('bash', ['-c', recipes.node.replaceAll('BUNDLE.json', JSON.stringify(bundlePath))], offline);
  tt.equal(viaNode.code, 0, viaNode.stderr);
  tt.match(viaNode.stdout, 'records and links ok');

  // One changed byte: the CLI and both recipes refuse it.
  const good = await fs.readFile(bundlePath, 'utf8');
  const tamperedBundle = path.join(offline, 'tampered.json');
  const cases: Array<[string, string, RegExp]> = [
    ['record', good.replace('\\"verdict\\":\\"fail\\"', '\\"verdict\\":\\"pass\\"'), /TAMPERED: first bad record seq 5 .*hash differs/],
    ['hash', good.replace(goodBundleHash(good, 5), flipHex(goodBundleHash(good, 5))), /TAMPERED: first bad record seq [56] /],
    ['signature', good.replace(/("signature": ")(.)/, (_m, a: string, c: string) => `${a}${c === 'A' ? 'B' : 'A'}`), /TAMPERED: .*signature invalid/],
  ];
  for (const [what, text, expected] of cases) {
    tt.not(text, good, `${what}: changed`);
    await fs.writeFile(tamperedBundle, text);
    const r = await cli(['evidence', 'verify', '--bundle', tamperedBundle], offline);
    tt.equal(r.code, 1, `${what}: exit 1`);
    tt.match(r.stdout, expected, what);
    const tools = await run('bash', [script, tamperedBundle], offline);
    tt.not(tools.code, 0, `${what}: the standard-tools recipe fails too (${tools.stdout.trim()})`);
    if (what !== 'signature') {
      const node = await run('bash', ['-c', recipes.node.replaceAll('BUNDLE.json', JSON.stringify(tamperedBundle))], offline);
      tt.not(node.code, 0, `${what}: the node one-liner fails too`);
    }
  }
  await fs.writeFile(tamperedBundle, good.slice(0, 100));
  tt.equal((await cli(['evidence', 'verify', '--bundle', tamperedBundle], offline)).code, 1, 'a truncated file is invalid');
  tt.equal((await cli(['evidence', 'verify', '--bundle', 'missing.json'], offline)).code, 2, 'a missing file is an error');

  // Tamper in the database: links 1-9 are behind the checkpoint, so only --full (or a period) re-reads them.
  const victim = bundleRuns[4]!;
  await sql(`UPDATE ${bundleSchema}.runs SET reasons = '[]' WHERE id = $1`, [victim.id]);
  const quick = await cli(['evidence', 'verify'], dir);
  tt.equal(quick.code, 0, quick.stderr);
  tt.match(quick.stdout, /^ok: 0 records, chain intact, head seq 9 .*\n {2}seq 1-9 not walked again: found intact at \S+ \(checkpoint signed by \S+\); --full walks every link\n$/);
  const t1 = await cli(['evidence', 'verify', '--full'], dir);
  tt.equal(t1.code, 1);
  tt.equal(t1.stdout, `TAMPERED: first bad record seq 5 (run ${victim.id}): record changed after it was sealed (hash differs)\n`);
  const t2 = await cli(['evidence', 'export', '--client', 'acme', '--from', '2026-11-01', '--to', '2026-12-01', '--out', 'x.json'], dir);
  tt.equal(t2.code, 2);
  tt.match(t2.stderr, /does not verify at seq 5/);
  tt.equal((await cli(['evidence', 'verify', '--from', 'yesterday'], dir)).code, 2, 'a bad date is a usage error');

  // The embedded store, no config: the data dir's key.
  const lite = await fs.mkdtemp(path.join(tmp, 'cli-lite-'));
  const liteData = path.join(lite, 'data');
  const empty = await cli(['--data-dir', liteData, 'evidence', 'verify'], lite);
  tt.equal(empty.code, 0, empty.stderr);
  tt.equal(empty.stdout, 'ok: 0 records, nothing sealed yet\n');
  const store = await track(RunStore.open({ dataDir: liteData, schema: 'backproof' }));
  await seed(store, 3);
  await release(store);
  const liteOk = await cli(['--data-dir', liteData, 'evidence', 'verify'], lite);
  tt.equal(liteOk.code, 0, liteOk.stderr);
  const dataFp = signerFromPem(await fs.readFile(path.join(liteData, SIGNING_KEY_FILE), 'utf8'), 'k').fingerprint;
  tt.equal(liteOk.stdout, `ok: 3 records, chain intact, head seq 3 signed by ${dataFp} (valid)\n  checkpoint signed at seq 3: the next verify starts after it\n`);
});

function goodBundleHash(text: string, seq: number): string {
  const b = JSON.parse(text) as EvidenceBundle;
  return b.entries.find((e) => e.seq === seq)!.hash;
}
function flipHex(hex: string): string {
  return hex.slice(0, 20) + (hex[20] === 'f' ? 'e' : 'f') + hex.slice(21);
}

t.test('leak check: every store closed, no connection left', async (tt) => {
  tt.equal(storeRegister.open.size, 0, 'no store left open');
  tt.equal(await backproofConnections(cluster), 0, 'no backproof connection left on the server');
});
