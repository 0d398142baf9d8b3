import { execFile } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import https from 'node:https';
import { promisify } from 'node:util';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client, type PutObjectCommandInput } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const run = promisify(execFile);

/** s3rver accepts only these; anything else is refused as InvalidAccessKeyId. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** A real S3-compatible HTTP server on 127.0.0.1 (s3rver, in a child process), its files in a temp folder. */
export interface S3Server {
  port: number;
  endpoint: string;
  /** Where s3rver keeps objects: `<directory>/<bucket>/<key>._S3rver_object`. */
  directory: string;
  client: S3Client;
  /** With `tls`: the CA file that signed the server's certificate. */
  caFile?: string;
  /** The s3rver process (its own, so its OpenSSL flags do not leak into the code under test). */
  pid: number;
  createBucket(bucket: string): Promise<void>;
  put(bucket: string, key: string, body: PutObjectCommandInput['Body'], extra?: Partial<PutObjectCommandInput>): Promise<void>;
  /** The file s3rver stores an object's bytes in (to damage it "at rest"). */
  objectFile(bucket: string, key: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * `tls`: HTTPS with a certificate made now for 127.0.0.1 by its own CA (`caFile`), as an on-premises
 * store with a private CA serves (pgBackRest reaches S3 over HTTPS only).
 */
export async function startS3Server(port = 0, opts: { tls?: boolean } = {}): Promise<S3Server> {
  const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-s3rver-'));
  const main = fileURLToPath(new URL('./s3rver-main.mjs', import.meta.url));
  const tlsFiles = opts.tls ? await makeCertificate(await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-s3rver-tls-'))) : undefined;
  const child = spawn(process.execPath, ['--openssl-legacy-provider', main, directory, String(port), ...(tlsFiles ? [tlsFiles.key, tlsFiles.cert] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
  const address = await new Promise<{ port: number }>((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('\n')) resolve(JSON.parse(text.split('\n')[0]!) as { port: number });
    });
    child.once('exit', (code) => reject(new Error(`s3rver exited with ${code} before listening`)));
  });
  const endpoint = `${tlsFiles ? 'https' : 'http'}://127.0.0.1:${address.port}`;
  const client = new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...(tlsFiles ? { requestHandler: { httpsAgent: new https.Agent({ ca: readFileSync(tlsFiles.ca, 'utf8') }) } } : {}),
  });
  return {
    port: address.port,
    endpoint,
    directory,
    client,
    ...(tlsFiles ? { caFile: tlsFiles.ca } : {}),
    async createBucket(bucket) {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
    },
    async put(bucket, key, body, extra = {}) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ...extra }));
    },
    async objectFile(bucket, key) {
      const file = `${directory}/${bucket}/${key}._S3rver_object`;
      await fs.access(file);
      return file;
    },
    pid: child.pid!,
    async stop() {
      client.destroy();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
      await fs.rm(directory, { recursive: true, force: true });
      if (tlsFiles) await fs.rm(path.dirname(tlsFiles.ca), { recursive: true, force: true });
    },
  };
}

/** A CA and a server certificate it signed for IP 127.0.0.1, made with openssl in `dir` (files 0644). */
async function makeCertificate(dir: string): Promise<{ ca: string; key: string; cert: string }> {
  const f = (name: string): string => path.join(dir, name);
  const openssl = (...args: string[]) => run('openssl', args);
  await openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '3650', '-subj', '/CN=backproof test CA');
  await openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
  // Node matches an IP host against IP entries, pgBackRest against DNS entries: both.
  await fs.writeFile(f('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:127.0.0.1\n');
  await openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '3650', '-extfile', f('san.ext'));
  // pgbackrest runs as the postgres user in the tests: it must read the CA.
  await fs.chmod(dir, 0o755);
  await fs.chmod(f('ca.pem'), 0o644);
  return { ca: f('ca.pem'), key: f('server.key'), cert: f('server.pem') };
}
