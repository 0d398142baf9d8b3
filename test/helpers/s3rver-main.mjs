// Runs s3rver (a real S3-compatible HTTP server) on 127.0.0.1 in its own process:
//   node --openssl-legacy-provider test/helpers/s3rver-main.mjs DIRECTORY [PORT]
// s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only offers
// through its legacy provider; without it the second page of a listing fails with a 500.
// Prints {"port": N} once listening; stops on SIGTERM.
import process from 'node:process';
import S3rver from 's3rver';

const [directory, port = '0'] = process.argv.slice(2);
const server = new S3rver({ address: '127.0.0.1', port: Number(port), silent: !process.env.S3RVER_LOUD, directory });
const { port: listening } = await server.run();
process.stdout.write(`${JSON.stringify({ port: listening })}\n`);
process.on('SIGTERM', () => {
  server.close().then(() => process.exit(0));
});
