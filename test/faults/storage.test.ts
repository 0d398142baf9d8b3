import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { tempDir } from '../helpers/harness.js';
import { startS3Server, type S3Server } from '../helpers/s3-server.js';
import { cellOf, POINTS } from './cells.js';
import { BACKUP_BYTES, backupFolder, checkCell, customPolicy, fixedBytes, openBench, runHeld, snapshotOf } from './fault-bench.js';

// Fault matrix, columns "S3 server killed" and "backup folder unmounted": the storage goes away
// while the run is held at each point. The S3 server (s3rver, its own process) is SIGKILLed; at
// fetch_restore the backup's stream is already open (the sandbox phase peeked its first bytes),
// so it is cut mid-stream. The folder is a tmpfs mount, lazily unmounted (`umount -l`), as a NAS
// mount that drops. After each cell a fresh server or mount holds the same backup.

const exec = promisify(execFile);
const BUCKET = 'acme-backups';
const KEY = 'shop/shop-20261201.bin';

let s3: S3Server | undefined;
const oldDirs: string[] = [];
const port = await freePortFromServer();
/** A server on the one port the config names, holding the backup. */
async function s3Up(): Promise<S3Server> {
  if (s3) return s3;
  const server = await startS3Server(port);
  await server.createBucket(BUCKET);
  await server.put(BUCKET, KEY, fixedBytes(BACKUP_BYTES));
  s3 = server;
  return server;
}
async function freePortFromServer(): Promise<number> {
  const probe = await startS3Server();
  const p = probe.port;
  await probe.stop();
  return p;
}

const mount = path.join(await tempDir('faults-folder'), 'backups');
await fs.mkdir(mount);
let mounted = false;
async function folderUp(): Promise<void> {
  if (mounted) return;
  await exec('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=0755', 'tmpfs', mount]);
  mounted = true;
  await backupFolder(mount);
}

t.teardown(async () => {
  if (mounted) await exec('umount', ['-l', mount]);
  await s3?.stop();
  for (const dir of oldDirs) await fs.rm(dir, { recursive: true, force: true });
});

await s3Up();
await folderUp();
const s3Source = `{ driver: s3, bucket: ${BUCKET}, prefix: shop/, endpoint: "http://127.0.0.1:${port}", maxRetries: 0, credentials: { accessKeyId: S3RVER, secretAccessKey: S3RVER }, select: { settle: 0s } }`;
const folderSource = `{ driver: local, path: ${JSON.stringify(mount)}, select: { glob: "shop-*.bin", settle: 0s } }`;
const bench = await openBench(t, {
  name: 'storage',
  policies: customPolicy({ name: 'shop-s3', source: s3Source }) + customPolicy({ name: 'shop-folder', source: folderSource }),
  sources: [],
});

for (const point of POINTS.filter((p) => !('na' in cellOf('s3', p)))) {
  t.test(`S3 server killed at ${point}`, async (t) => {
    const server = await s3Up();
    bench.sources = [server.directory];
    const before = await snapshotOf(bench.sources);
    const held = await runHeld(bench, 'shop-s3', point, async () => {
      process.kill(server.pid, 'SIGKILL');
      s3 = undefined;
      oldDirs.push(server.directory);
      await new Promise((resolve) => setTimeout(resolve, 200));
    });
    t.not(held.code, null, `the run ended by itself: ${held.stderr.slice(-1500)}`);
    await checkCell(t, bench, 's3', point, held, before);
    server.client.destroy();
  });
}

for (const point of POINTS.filter((p) => !('na' in cellOf('folder', p)))) {
  t.test(`backup folder unmounted at ${point}`, async (t) => {
    await folderUp();
    bench.sources = [];
    const held = await runHeld(bench, 'shop-folder', point, async () => {
      await exec('umount', ['-l', mount]);
      mounted = false;
    });
    t.not(held.code, null, `the run ended by itself: ${held.stderr.slice(-1500)}`);
    await checkCell(t, bench, 'folder', point, held, await snapshotOf([]));
    t.same(await fs.readdir(mount), [], 'nothing was written where the folder was mounted');
  });
}
