import { execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import type { RunRecord } from '../orchestrator/core/domain.js';
import { parseConfigText } from '../orchestrator/config/load.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { ageFile, goodArchive } from './helpers/daemon-harness.js';
import { openEmbeddedStore, policyFromYaml, tempDir, verify } from './helpers/harness.js';
import { startPrivateDockerd, type PrivateDockerd } from './helpers/private-dockerd.js';

// A worker driving another machine's engine over TCP with TLS (dockerd --tlsverify), or over SSH
// (a real sshd on loopback). For TLS a second,
// private dockerd listening on 127.0.0.1 with certificates made by openssl here. Only a client
// with a certificate from the engine's CA gets in; a run through it restores and passes.

const openssl = (args: string[], cwd: string) => promisify(execFile)('openssl', args, { cwd });

async function makeCerts(dir: string): Promise<void> {
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=backproof test CA', '-keyout', 'ca-key.pem', '-out', 'ca.pem'], dir);
  await fs.writeFile(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await fs.writeFile(path.join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, cn] of [
    ['server', '127.0.0.1'],
    ['client', 'worker-1'],
  ] as const) {
    await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`], dir);
    await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`], dir);
  }
  // A client certificate from another CA: the engine must refuse it.
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=intruder', '-keyout', 'rogue-key.pem', '-out', 'rogue.pem'], dir);
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

let engine: PrivateDockerd;
let certs: string;
let host: string;
t.before(async () => {
  certs = await tempDir('tls');
  await makeCerts(certs);
  host = `tcp://127.0.0.1:${await freePort()}`;
  const c = (f: string): string => path.join(certs, f);
  engine = await startPrivateDockerd({ extraArgs: ['--host', host, '--tlsverify', '--tlscacert', c('ca.pem'), '--tlscert', c('server.pem'), '--tlskey', c('server-key.pem')] });
  await engine.loadImage('backproof/files');
});
t.teardown(async () => {
  await engine?.destroy();
  if (certs) await fs.rm(certs, { recursive: true, force: true });
});

/** A files-kind run of `folder` through `runtime` on a fresh embedded store: it passes and leaves nothing on that engine. */
async function filesRunThrough(t: Test, runtime: DockerRuntime, folder: string): Promise<RunRecord> {
  const { store, dataDir } = await openEmbeddedStore();
  t.teardown(async () => {
    await store.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  });
  const run = await verify(policyFromYaml({ folder, kind: 'files', glob: '*.tar.gz', timestamp: 'mtime', probes: '          - files: { exist: ["docs/*.txt"] }' }), store, runtime);
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  const left = await runtime.leftovers(run.id);
  t.equal(left.containers.length + left.volumes.length, 0, 'nothing left on that engine');
  return run;
}

const read = (f: string): Promise<string> => fs.readFile(path.join(certs, f), 'utf8');

t.test('only a client certificate from the engine\'s CA gets in', async (t) => {
  const tls = { ca: await read('ca.pem'), cert: await read('client.pem'), key: await read('client-key.pem') };
  t.match((await new DockerRuntime({ host, tls }).ping()).version, /API/);
  await t.rejects(new DockerRuntime({ host }).ping(), 'plain HTTP is refused');
  await t.rejects(new DockerRuntime({ host, tls: { ...tls, cert: await read('rogue.pem'), key: await read('rogue-key.pem') } }).ping(), 'a certificate from another CA is refused');
});

t.test('docker.tls in the config: PEM through ${file:}, the key a secret; a run through the remote engine passes', async (t) => {
  const folder = await tempDir('remote-backups');
  await ageFile(await goodArchive(folder, 'share-1.tar.gz'), 60_000);
  const config = parseConfigText(
    `docker:
  host: ${host}
  tls: { ca: "\${file:${certs}/ca.pem}", cert: "\${file:${certs}/client.pem}", key: "\${file:${certs}/client-key.pem}" }
clients:
  - name: acme
    policies:
      - name: share
        kind: files
        source: { driver: local, path: ${JSON.stringify(folder)}, select: { glob: "*.tar.gz", settle: 0s } }
`,
    path.join(folder, 'backproof.yaml'),
    {},
  );
  const key = (await read('client-key.pem')).trim();
  t.ok(config.secrets.some((s) => s.trim() === key), 'the client key is redacted wherever it might appear');
  const runtime = new DockerRuntime(config.docker);
  t.equal(runtime.endpoint, host);
  const run = await filesRunThrough(t, runtime, folder);
  t.equal(run.sandbox?.runtime, 'docker');
});

t.test('ssh://: a worker drives an engine through sshd (docker system dial-stdio) with docker.sshKey', async (t) => {
  // A real sshd of our own on loopback, root by key only, in front of the shared engine.
  const dir = await tempDir('sshd');
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const keygen = (name: string) => promisify(execFile)('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, name)]);
  await keygen('host_key');
  await keygen('client_key');
  await fs.copyFile(path.join(dir, 'client_key.pub'), path.join(dir, 'authorized_keys'));
  const port = await freePort();
  await fs.writeFile(
    path.join(dir, 'sshd_config'),
    [`Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${dir}/host_key`, `AuthorizedKeysFile ${dir}/authorized_keys`, 'PermitRootLogin prohibit-password', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no', `PidFile ${dir}/sshd.pid`].join('\n') + '\n',
  );
  await fs.mkdir('/run/sshd', { recursive: true });
  const sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { stdio: 'ignore' });
  t.teardown(() => {
    sshd.kill('SIGTERM');
  });
  for (let i = 0; i < 50; i++) {
    if (await new Promise<boolean>((resolve) => net.connect(port, '127.0.0.1').once('connect', function (this: net.Socket) { this.destroy(); resolve(true); }).once('error', () => resolve(false)))) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const sshKey = await fs.readFile(path.join(dir, 'client_key'), 'utf8');
  const runtime = new DockerRuntime({ host: `ssh://root@127.0.0.1:${port}`, sshKey });
  t.equal(runtime.endpoint, `ssh://127.0.0.1:${port}`, 'no user name in the endpoint recorded');
  t.match((await runtime.ping()).version, /API/);
  const folder = await tempDir('ssh-backups');
  await ageFile(await goodArchive(folder, 'share-1.tar.gz'), 60_000);
  await filesRunThrough(t, runtime, folder);
});
