import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { BackproofError } from '../core/errors.js';

/**
 * The installation's Ed25519 key that signs the evidence chain (node:crypto, no dependency).
 * It comes from config `evidence.signingKey` (a PEM private key, usually
 * `${file:/etc/backproof/evidence-key.pem}`), else from `<dataDir>/evidence-key.pem`, created on
 * first use with mode 0600. Several workers on one PostgreSQL should share one key through config;
 * each key that signs is recorded in the store (`evidence_keys`), so past keys still verify.
 *
 * A key's fingerprint is `SHA256:` + base64 (no padding) of sha256 over the raw 32-byte public
 * key, as ssh prints them. With openssl:
 * `openssl pkey -pubin -in key.pem -outform DER | tail -c 32 | openssl dgst -sha256 -binary | base64 | tr -d =`
 */
export const SIGNING_KEY_FILE = 'evidence-key.pem';

export interface EvidenceSigner {
  readonly fingerprint: string;
  /** SPKI PEM of the public key. */
  readonly publicKeyPem: string;
  /** Base64 Ed25519 signature over the UTF-8 bytes of `message`. */
  sign(message: string): string;
}

/** A signer, or how to get one when it is first needed (the data dir's key is created lazily). */
export type SignerSource = EvidenceSigner | (() => Promise<EvidenceSigner>);

/** A signer over a PEM private key; `origin` names where the PEM came from, for errors. */
export function signerFromPem(pem: string, origin: string): EvidenceSigner {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new BackproofError('evidence_key_invalid', `${origin} is not a PEM private key (${(err as Error).message}); make one with: openssl genpkey -algorithm ed25519 -out evidence-key.pem`, {
      cause: err,
    });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new BackproofError(
      'evidence_key_invalid',
      `${origin} is a ${key.asymmetricKeyType ?? 'unknown'} key; evidence is signed with Ed25519: make a key with openssl genpkey -algorithm ed25519 -out evidence-key.pem`,
    );
  }
  const publicKey = createPublicKey(key);
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return {
    fingerprint: fingerprintOf(publicKey),
    publicKeyPem,
    sign: (message) => sign(null, Buffer.from(message, 'utf8'), key).toString('base64'),
  };
}

/** The config's key when given, else the data dir's (created on first use). */
export async function openSigner(opts: { signingKey?: string | undefined; dataDir: string }): Promise<EvidenceSigner> {
  if (opts.signingKey !== undefined) return signerFromPem(opts.signingKey, 'evidence.signingKey in the config');
  return loadOrCreateSigningKey(opts.dataDir);
}

/** `<dataDir>/evidence-key.pem`, created (mode 0600) when absent. Safe when several processes race. */
export async function loadOrCreateSigningKey(dataDir: string): Promise<EvidenceSigner> {
  const file = signingKeyPath(dataDir);
  await enforcePrivateKeyFile(file);
  const existing = await readKeyFile(file);
  if (existing !== undefined) return signerFromPem(existing, file);
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  // Written aside, then linked into place: link() is atomic and fails if another process created
  // the key meanwhile (then theirs is used), so no reader ever sees half a key.
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await fs.writeFile(tmp, pem, { mode: 0o600, flag: 'wx' });
  try {
    await fs.link(tmp, file);
    return signerFromPem(pem, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const theirs = await readKeyFile(file);
    if (theirs === undefined) throw err;
    return signerFromPem(theirs, file);
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/** The data dir's key if it exists (never creates one), for telling whose key signed a chain. */
export async function existingSigningKey(dataDir: string): Promise<EvidenceSigner | undefined> {
  const file = signingKeyPath(dataDir);
  await enforcePrivateKeyFile(file);
  const pem = await readKeyFile(file);
  return pem === undefined ? undefined : signerFromPem(pem, file);
}

export function signingKeyPath(dataDir: string): string {
  return path.join(path.resolve(dataDir), SIGNING_KEY_FILE);
}

/** `SHA256:<base64 without padding>` of the raw 32-byte Ed25519 public key. */
export function fingerprintOf(publicKey: KeyObject | string): string {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  const x = key.export({ format: 'jwk' }).x;
  if (key.asymmetricKeyType !== 'ed25519' || typeof x !== 'string') {
    throw new BackproofError('evidence_key_invalid', `not an Ed25519 public key (${key.asymmetricKeyType ?? 'unknown type'})`);
  }
  const raw = Buffer.from(x, 'base64url');
  return `SHA256:${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}`;
}

/** Whether `signatureB64` is a valid Ed25519 signature of `message` under the PEM public key. */
export function verifySignature(publicKeyPem: string, message: string, signatureB64: string): boolean {
  try {
    const sig = Buffer.from(signatureB64, 'base64');
    // Node's base64 decoder ignores stray characters and spare bits: accept only the one canonical text.
    if (sig.length !== 64 || sig.toString('base64') !== signatureB64) return false;
    const key = createPublicKey(publicKeyPem);
    if (key.asymmetricKeyType !== 'ed25519') return false;
    return verify(null, Buffer.from(message, 'utf8'), key, sig);
  } catch {
    return false;
  }
}

/**
 * The data dir's key must be 0600. One that group or others may read was fixed or refused before
 * it signs anything: owned by us, it is made 0600 with a warning (our own file, made loose by a
 * copy or an older release; refusing would only make the owner type the chmod); owned by another
 * user, it is refused (`evidence_key_insecure`): we cannot vouch for a key someone else controls.
 * A symlink is judged by what it points to (an admin may link the key from /etc/backproof).
 */
export async function enforcePrivateKeyFile(file: string): Promise<void> {
  const uid = process.getuid?.();
  if (uid === undefined) return; // Windows: no POSIX modes
  let st: Stats;
  try {
    st = await fs.stat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new BackproofError('evidence_key_unreadable', `cannot read the evidence signing key ${file}: ${(err as Error).message}`, { cause: err });
  }
  if ((st.mode & 0o077) === 0) return;
  const octal = (st.mode & 0o777).toString(8).padStart(3, '0');
  if (st.uid !== uid) {
    throw new BackproofError(
      'evidence_key_insecure',
      `the evidence signing key ${file} is owned by uid ${st.uid} (not ${uid}, who runs backproof) and readable by other users (mode ${octal}); refusing to sign with it. ` +
        `Fix: chown ${uid} ${file} && chmod 600 ${file}, then, as others could have copied it, rotate it: move it away (a new key is made) or set evidence.signingKey`,
    );
  }
  await fs.chmod(file, 0o600);
  process.emitWarning(
    `the evidence signing key ${file} was accessible to other local users (mode ${octal}); made it 0600. If other users on this host are not trusted, rotate it: move it away (a new key is made) or set evidence.signingKey`,
    { type: 'BackproofWarning', code: 'evidence_key_permissions_fixed' },
  );
}

async function readKeyFile(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new BackproofError('evidence_key_unreadable', `cannot read the evidence signing key ${file}: ${(err as Error).message}`, { cause: err });
  }
}
