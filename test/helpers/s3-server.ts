import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client, type PutObjectCommandInput } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

/** s3rver accepts only these; anything else is refused as InvalidAccessKeyId. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** A real S3-compatible HTTP server on 127.0.0.1 (s3rver, in a child process), its files in a temp folder. */
export interface S3Server {
  port: number;
  endpoint: string;
  /** Where s3rver keeps objects: `<directory>/<bucket>/<key>._S3rver_object`. */
  directory: string;
  client: S3Client;
  /** The s3rver process (its own, so its OpenSSL flags do not leak into the code under test). */
  pid: number;
  createBucket(bucket: string): Promise<void>;
  put(bucket: string, key: string, body: PutObjectCommandInput['Body'], extra?: Partial<PutObjectCommandInput>): Promise<void>;
  /** The file s3rver stores an object's bytes in (to damage it "at rest"). */
  objectFile(bucket: string, key: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startS3Server(port = 0): Promise<S3Server> {
  const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'backproof-s3rver-'));
  const main = fileURLToPath(new URL('./s3rver-main.mjs', import.meta.url));
  const child = spawn(process.execPath, ['--openssl-legacy-provider', main, directory, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const address = await new Promise<{ port: number }>((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('\n')) resolve(JSON.parse(text.split('\n')[0]!) as { port: number });
    });
    child.once('exit', (code) => reject(new Error(`s3rver exited with ${code} before listening`)));
  });
  const endpoint = `http://127.0.0.1:${address.port}`;
  const client = new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return {
    port: address.port,
    endpoint,
    directory,
    client,
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
    },
  };
}
