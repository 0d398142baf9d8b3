import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import type { ResolvedConfig, WitnessConfig } from '../core/config-types.js';
import { BackproofError } from '../core/errors.js';
import { isoOf, verifyBundle, type ChainVerification, type EvidenceBundle } from '../evidence/chain.js';
import { existingSigningKey, signerFromPem } from '../evidence/signing-key.js';
import { witnessTarget } from '../evidence/s3-witness.js';
import { checkWitness, publishHead, type PublishOutcome, type WitnessCheck } from '../evidence/witness.js';
import { dataDir, openStore, storeSettings, type GlobalOptions } from './context.js';

/**
 * `backproof evidence verify [--from --to] [--bundle FILE] [--json]` and
 * `backproof evidence publish` (the chain head to evidence.witness), and
 * `backproof evidence export --client C --from --to [--out FILE]`; a bundle carries the files the
 * client's records name (vm screenshots), and --bundle checks each against its sealed sha256.
 * Exit codes: 0 intact, 1 tampered or invalid, 2 could not check (config, store, usage).
 */
export function registerEvidence(program: Command, setExit: (code: number) => void): void {
  const evidence = program.command('evidence').description('the hash-chained, signed evidence: verify it, export a client\'s bundle for an auditor');
  evidence
    .command('verify')
    .description('check that no run record was edited, deleted, inserted or reordered (exit 0 intact, 1 tampered, 2 error); walks the links sealed since the last signed checkpoint (--full: all); --bundle checks an exported bundle offline')
    .option('--from <date>', 'only runs started at or after this date or ISO time')
    .option('--to <date>', 'only runs started before this date or ISO time')
    .option('--bundle <file>', 'check an exported bundle instead: offline, no config or database needed')
    .option('--full', 'walk every link again, not only those sealed since the last signed checkpoint (and check the checkpoints)')
    .option('--witness', 'also compare the stored chain with every head published to evidence.witness (deleted or rewritten records)')
    .option('--json', 'JSON on stdout')
    .action(async (opts: { from?: string; to?: string; bundle?: string; full?: boolean; witness?: boolean; json?: boolean }, cmd: Command) => {
      if (opts.bundle !== undefined) {
        if (opts.from !== undefined || opts.to !== undefined || opts.full || opts.witness) {
          throw new BackproofError('usage', '--from, --to, --full and --witness do not apply to --bundle: a bundle holds its own period and is always checked whole');
        }
        const { result, bundle } = await checkBundleFile(opts.bundle);
        process.stdout.write(`${opts.json ? JSON.stringify(result, null, 2) : renderBundleResult(result, bundle)}\n`);
        setExit(result.ok ? 0 : 1);
        return;
      }
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const range = { ...(opts.from !== undefined ? { from: isoOf(opts.from, 'from') } : {}), ...(opts.to !== undefined ? { to: isoOf(opts.to, 'to') } : {}) };
      const config = await storeSettings(global);
      const witnessConfig = opts.witness ? requireWitness(config, global) : undefined;
      const store = await openStore(config, global);
      let result: ChainVerification;
      let witness: WitnessCheck | undefined;
      try {
        // Intact to the head: sign a checkpoint there, so the next verify walks only newer links.
        result = await store.evidenceChain().verify({ ...range, full: opts.full === true, writeCheckpoint: true });
        if (witnessConfig) {
          const target = witnessTarget(witnessConfig);
          try {
            witness = await checkWitness(store.evidenceChain(), target);
          } finally {
            await target.close();
          }
        }
      } finally {
        await store.close();
      }
      const ok = result.ok && (witness?.ok ?? true);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(witness ? { ...result, ok, chainOk: result.ok, witness } : result, null, 2)}\n`);
      } else {
        const lines = [renderChainResult(result)];
        const own = await ownFingerprint(config, global);
        if (result.ok && result.head && own !== undefined && own !== result.head.keyFingerprint) {
          lines.push(`note: this installation signs with ${own}, not with the key that signed the head; check that ${result.head.keyFingerprint ?? 'it'} is one of yours`);
        }
        if (witness) lines.push(renderWitnessCheck(witness));
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      setExit(ok ? 0 : 1);
    });

  evidence
    .command('publish')
    .description('verify the chain and publish its signed head to evidence.witness (an S3 bucket with Object Lock), where the store\'s administrator cannot change it; the daemon does this every evidence.witness.every (exit 0 published or already there, 1 the chain does not verify, 2 error)')
    .option('--json', 'JSON on stdout')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const config = await storeSettings(global);
      const target = witnessTarget(requireWitness(config, global));
      const store = await openStore(config, global);
      let outcome: PublishOutcome;
      try {
        outcome = await publishHead(store.evidenceChain(), target);
      } finally {
        await target.close();
        await store.close();
      }
      process.stdout.write(`${opts.json ? JSON.stringify(outcome, null, 2) : renderPublishOutcome(outcome)}\n`);
      setExit(outcome.published || outcome.why === 'nothing sealed yet' ? 0 : 1);
    });

  evidence
    .command('export')
    .description("write a client's evidence for a period as a bundle an auditor checks offline (backproof evidence verify --bundle, or sha256sum/openssl/jq)")
    .requiredOption('--client <name>', 'the client')
    .requiredOption('--from <date>', 'runs started at or after this date or ISO time')
    .requiredOption('--to <date>', 'runs started before this date or ISO time')
    .option('-o, --out <file>', 'where to write it (default evidence-<client>-<from>-<to>.json)')
    .option('--json', 'a JSON summary on stdout')
    .action(async (opts: { client: string; from: string; to: string; out?: string; json?: boolean }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const from = isoOf(opts.from, 'from');
      const to = isoOf(opts.to, 'to');
      const config = await storeSettings(global);
      const store = await openStore(config, global);
      let bundle: EvidenceBundle;
      try {
        bundle = await store.evidenceChain().exportBundle({ client: opts.client, from, to });
      } finally {
        await store.close();
      }
      const out = path.resolve(opts.out ?? defaultBundleName(opts.client, from, to));
      await fs.writeFile(out, `${JSON.stringify(bundle, null, 2)}\n`);
      const check = verifyBundle(JSON.parse(await fs.readFile(out, 'utf8')));
      const records = bundle.entries.filter((e) => 'record' in e).length;
      const first = bundle.entries[0]?.seq ?? 0;
      if (opts.json) {
        const summary = { file: out, client: bundle.client, from, to, records, links: bundle.entries.length, firstSeq: first, head: bundle.head, verified: check };
        process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      } else {
        const elided = bundle.entries.length - records;
        process.stdout.write(
          [
            `wrote ${out}`,
            `  ${records.toLocaleString('en-US')} record${records === 1 ? '' : 's'} of ${bundle.client}, runs started ${from} to ${to}`,
            `  links seq ${first}-${bundle.head.seq}${elided > 0 ? ` (${elided.toLocaleString('en-US')} of other clients: hashes only, content not disclosed)` : ''}`,
            `  head seq ${bundle.head.seq} signed by ${bundle.head.keyFingerprint}; attestation signed by ${bundle.attestation.keyFingerprint}`,
            ...(bundle.artifacts ? [`  ${filesText(bundle.artifacts.length)} the records name (vm screenshots), each with the sha256 its record seals`] : []),
            `  ${check.ok ? 'the bundle verifies offline: backproof evidence verify --bundle FILE' : `the written bundle does not verify: ${check.firstBad?.problem ?? ''}`}`,
          ].join('\n') + '\n',
        );
      }
      setExit(check.ok ? 0 : 1);
    });
}

/** The config's evidence.witness, or a usage error saying how to set one. */
function requireWitness(config: Pick<ResolvedConfig, 'evidence'>, global: GlobalOptions): WitnessConfig {
  const w = config.evidence?.witness;
  if (!w) {
    throw new BackproofError(
      'usage',
      `no evidence.witness in ${global.config ?? 'the config'}: add evidence: { witness: { s3: { bucket: ..., endpoint: ..., credentials: ... } } } (docs/evidence.md, "Witness")`,
    );
  }
  return w;
}

export function renderPublishOutcome(o: PublishOutcome): string {
  if (!o.published) return `not published to ${o.location}: ${o.why}`;
  const lock = o.lockedUntil ? `, locked until ${o.lockedUntil}` : '';
  return o.created ? `published: head seq ${o.seq} (${o.hash.slice(0, 16)}...) to ${o.key}${lock}` : `already published: head seq ${o.seq} is ${o.key}`;
}

export function renderWitnessCheck(w: WitnessCheck): string {
  const heads = `${w.heads.toLocaleString('en-US')} published head${w.heads === 1 ? '' : 's'}`;
  if (w.ok) {
    if (!w.newest) return `witness ${w.location}: nothing published yet (backproof evidence publish)`;
    return `witness ${w.location}: ok, ${heads} agree with the stored chain (newest: seq ${w.newest.seq}, published ${w.newest.madeAt}; the store ends at seq ${w.storeHeadSeq})`;
  }
  const shown = w.problems.slice(0, 10).map((p) => `  ${p.key}: ${p.problem}`);
  const more = w.problems.length > shown.length ? [`  ... and ${w.problems.length - shown.length} more (--json lists all)`] : [];
  return [`TAMPERED: the witness ${w.location} disagrees with the stored chain (${w.problems.length} problem${w.problems.length === 1 ? '' : 's'}, ${heads} read):`, ...shown, ...more].join('\n');
}

/** This installation's key fingerprint, without creating a key. */
async function ownFingerprint(config: Pick<ResolvedConfig, 'evidence' | 'database'>, global: GlobalOptions): Promise<string | undefined> {
  try {
    if (config.evidence?.signingKey !== undefined) return signerFromPem(config.evidence.signingKey, 'evidence.signingKey').fingerprint;
    return (await existingSigningKey(dataDir(global, config.database)))?.fingerprint;
  } catch {
    return undefined;
  }
}

async function checkBundleFile(file: string): Promise<{ result: ChainVerification; bundle: unknown }> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new BackproofError('bundle_unreadable', `cannot read the bundle ${file}: ${(err as Error).message}`, { cause: err });
  }
  let bundle: unknown;
  try {
    bundle = JSON.parse(text);
  } catch (err) {
    return { result: { ok: false, checked: 0, firstBad: { seq: null, runId: null, problem: `${file} is not JSON (${(err as Error).message}): it was truncated or changed` } }, bundle: undefined };
  }
  return { result: verifyBundle(bundle), bundle };
}

export function renderChainResult(r: ChainVerification): string {
  if (!r.ok) return tampered(r);
  const period = r.from !== undefined || r.to !== undefined ? ` for runs started ${r.from ?? 'at any time'} to ${r.to ?? 'now'}` : '';
  const count = `${r.checked.toLocaleString('en-US')} record${r.checked === 1 ? '' : 's'}`;
  if (!r.head) return `ok: ${count}${period}, nothing sealed yet`;
  const lines = [`ok: ${count}${period}, chain intact, head seq ${r.head.seq} signed by ${r.head.keyFingerprint ?? 'no key'} (${r.head.signatureValid ? 'valid' : 'INVALID'})`];
  const cp = r.checkpoint;
  if (cp && period === '') {
    lines.push(`  seq 1-${cp.seq} not walked again: found intact at ${cp.madeAt} (checkpoint signed by ${cp.keyFingerprint}); --full walks every link`);
  } else if (cp) {
    lines.push(`  records re-hashed through the checkpoint at seq ${cp.seq} (found intact at ${cp.madeAt}, signed by ${cp.keyFingerprint}): their signatures were checked then`);
  }
  if (r.checkpointWritten) lines.push(`  checkpoint signed at seq ${r.checkpointWritten.seq}: the next verify starts after it`);
  if (r.checkpointNotWritten !== undefined) lines.push(`  no checkpoint written (${r.checkpointNotWritten}): the next verify walks these links again`);
  return lines.join('\n');
}

function renderBundleResult(r: ChainVerification, bundle: unknown): string {
  if (!r.ok) return tampered(r);
  const b = bundle as EvidenceBundle;
  const first = b.entries[0]?.seq ?? 0;
  const count = `${r.checked.toLocaleString('en-US')} record${r.checked === 1 ? '' : 's'}`;
  const files = b.artifacts?.length ? `, ${filesText(b.artifacts.length)} matching the sha256 their records seal` : '';
  return `ok: bundle of ${b.client}, ${count} of runs started ${b.from} to ${b.to}, links seq ${first}-${b.head.seq} intact, head signed by ${b.head.keyFingerprint} (valid), attestation signed by ${b.attestation.keyFingerprint} (valid)${files}`;
}

function filesText(n: number): string {
  return `${n.toLocaleString('en-US')} file${n === 1 ? '' : 's'}`;
}

function tampered(r: ChainVerification): string {
  const bad = r.firstBad;
  if (!bad) return 'TAMPERED';
  const where = bad.seq !== null ? ` seq ${bad.seq}${bad.runId ? ` (run ${bad.runId})` : ''}` : bad.runId ? ` run ${bad.runId}` : '';
  return `TAMPERED: first bad record${where}: ${bad.problem}`;
}

/** evidence-<client>-<from>-<to>.json, dates as days when they are midnights. */
function defaultBundleName(client: string, from: string, to: string): string {
  const day = (iso: string): string => (iso.endsWith('T00:00:00.000Z') ? iso.slice(0, 10) : iso.replace(/[:.]/g, '').replace(/000Z$/, 'Z'));
  return `evidence-${client.replace(/[^A-Za-z0-9._-]/g, '_')}-${day(from)}-${day(to)}.json`;
}
