// Runs s3rver (a real S3-compatible HTTP server) on 127.0.0.1 in its own process:
//   node --openssl-legacy-provider test/helpers/s3rver-main.mjs DIRECTORY [PORT [KEY CERT]]
// With KEY and CERT (PEM files) it serves HTTPS.
// s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only offers
// through its legacy provider; without it the second page of a listing fails with a 500.
// Prints {"port": N} once listening; stops on SIGTERM.
import { readFileSync } from 'node:fs';
import process from 'node:process';
import S3rver from 's3rver';

const [directory, port = '0', key, cert] = process.argv.slice(2);
const tls = key && cert ? { key: readFileSync(key), cert: readFileSync(cert) } : {};
const server = new S3rver({ address: '127.0.0.1', port: Number(port), silent: !process.env.S3RVER_LOUD, directory, ...tls });
const { port: listening } = await server.run();
process.stdout.write(`${JSON.stringify({ port: listening })}\n`);
process.on('SIGTERM', () => {
  server.close().then(() => process.exit(0));
});
