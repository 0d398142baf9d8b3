import { statSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { check, cleanEnv, expectedVersionText, runCommand } from './helpers/command.js';
import { tempDir } from './helpers/harness.js';

// The Docker image, built as CI can build it here: there is no image registry, so the base is
// scripts/build-base-image.sh's (Debian packages and the npm registry's Node.js 24, cached by its
// recipe), the context is scripts/docker-context.sh's (npm pack plus production dependencies) and
// the Dockerfile runs nothing that needs a network. Then the image against the host's engine, as
// the Dockerfile's header says to run it (the engine's socket mounted, its group added, because
// the image runs as the unprivileged user backproof):
//   - --version names the version and the commit dist/ was built from;
//   - `demo` makes a real dump in a sandbox, restores it in another and passes; the HEALTHCHECK
//     reports a one-shot command healthy while it runs;
//   - `daemon` with daemon.liveness.port becomes healthy by the image's own HEALTHCHECK (GET
//     /healthz inside the container: the container has no network at all) and stops cleanly.

const SOCKET = '/var/run/docker.sock';
const LABEL = 'backproof.test=docker-image';
const image = `backproof-image-test:${process.pid}`;
let dir: string;
let built = false;

/** `docker run` arguments that give the container the host's engine and nothing else. */
const engineArgs = (): string[] => ['--network', 'none', '--label', LABEL, '-v', `${SOCKET}:${SOCKET}`, '--group-add', String(statSync(SOCKET).gid)];

async function inspect(id: string): Promise<{ status: string; exitCode: number; health?: { Status: string; Log: { ExitCode: number; Output: string }[] } }> {
  const state = JSON.parse(await check('docker', ['inspect', '-f', '{{json .State}}', id])) as { Status: string; ExitCode: number; Health?: { Status: string; Log: { ExitCode: number; Output: string }[] } };
  return { status: state.Status, exitCode: state.ExitCode, ...(state.Health ? { health: state.Health } : {}) };
}

let base: string;
let buildMs = 0;

// The build first; then the four checks at once (most of their time is waiting on containers, and
// the suite runs at most two files at a time).
t.before(async () => {
  dir = await tempDir('docker-image');
  base = (await check('bash', ['scripts/build-base-image.sh', '24'], { timeoutMs: 600_000 })).split('\n').at(-1)!;
  // The production dependencies of this package-lock.json are kept between runs.
  const env = cleanEnv({ BACKPROOF_DEPS_CACHE: path.join(process.env.BACKPROOF_TEST_CACHE ?? '/var/cache/backproof-test', 'docker-deps') });
  const context = await check('bash', ['scripts/docker-context.sh', path.join(dir, 'context')], { timeoutMs: 300_000, env });
  const started = performance.now();
  await check('docker', ['build', '-q', '-t', image, '--build-arg', `BASE_IMAGE=${base}`, context], { timeoutMs: 600_000 });
  buildMs = performance.now() - started;
  built = true;
});
t.teardown(async () => {
  const left = (await check('docker', ['ps', '-aq', '--filter', `label=${LABEL}`])).split('\n').filter(Boolean);
  if (left.length > 0) await runCommand('docker', ['rm', '-f', '-v', ...left]);
  if (built) await runCommand('docker', ['rmi', '-f', image]);
  await rm(dir, { recursive: true, force: true });
});
t.jobs = 4;

/** Removes a finished container and its anonymous volume (the image's VOLUME /var/lib/backproof), and checks none is left. */
async function removeWithVolumes(t: Test, id: string): Promise<void> {
  const volumes = (await check('docker', ['inspect', '-f', '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}', id])).split(/\s+/).filter(Boolean);
  t.ok(volumes.length > 0, 'the data dir was a volume of its own');
  await check('docker', ['rm', '-v', id]);
  const left = (await check('docker', ['volume', 'ls', '-q'])).split('\n').filter((v) => volumes.includes(v));
  t.same(left, [], 'the container and its volume are gone');
}

t.test('built from our own base with no network: non-root, with a HEALTHCHECK', { buffered: true }, async (t) => {
  t.match(base, /^backproof-base:node24-[0-9a-f]{12}$/, `base ${base}; docker build ${(buildMs / 1000).toFixed(1)} s`);
  const config = JSON.parse(await check('docker', ['image', 'inspect', '-f', '{{json .Config}}', image])) as { User: string; Healthcheck?: { Test: string[] }; Cmd: string[] };
  t.equal(config.User, 'backproof', 'runs as the user backproof');
  t.same(config.Healthcheck?.Test, ['CMD', 'node', '/app/docker-healthcheck.mjs'], 'HEALTHCHECK');
  t.same(config.Cmd, ['daemon'], 'the default command is the daemon');
  t.equal(await check('docker', ['run', '--rm', '--network', 'none', '--entrypoint', 'id', image, '-u']), '10001', 'uid 10001');
});

t.test('--version names the version and commit', { buffered: true }, async (t) => {
  const r = await runCommand('docker', ['run', '--rm', '--network', 'none', image, '--version']);
  t.equal(r.stdout.trim(), expectedVersionText().text);
});

t.test('demo: a real restore passes against the host engine; a one-shot command is healthy', { buffered: true }, async (t) => {
  const id = await check('docker', ['run', '-d', ...engineArgs(), '--health-interval=1s', image, 'demo']);
  const seen = new Set<string>();
  const deadline = Date.now() + 240_000;
  let state = await inspect(id);
  while (state.status !== 'exited' && Date.now() < deadline) {
    if (state.health) seen.add(state.health.Status);
    await new Promise((r) => setTimeout(r, 500));
    state = await inspect(id);
  }
  const logs = await runCommand('docker', ['logs', id]);
  t.equal(state.exitCode, 0, 'demo exits 0', { stderr: state.exitCode === 0 ? undefined : logs.stderr.slice(-3000) });
  t.match(logs.stdout, /^PASS {2}demo-client\/shop-db/m, 'the restore passes');
  t.ok(seen.has('healthy'), `the HEALTHCHECK reports the one-shot command healthy (seen: ${[...seen].join(', ')})`);
  await removeWithVolumes(t, id);
});

t.test('daemon: healthy by its liveness endpoint, stops cleanly', { buffered: true }, async (t) => {
  const config = path.join(dir, 'backproof.yaml');
  await writeFile(
    config,
    `daemon:
  catchUp: false
  liveness: { port: 9464 }
clients:
  - name: acme
    policies:
      - name: shop-db
        kind: postgres
        source: { driver: local, path: /tmp, select: { glob: "*.dump" } }
        targets: { rpo: 26h, rto: 30m }
        schedule: { when: "monthly on 1 at 04:00" }
`,
  );
  const id = await check('docker', ['run', '-d', ...engineArgs(), '--health-interval=1s', '-v', `${config}:/etc/backproof/backproof.yaml:ro`, image]);
  const deadline = Date.now() + 90_000;
  let state = await inspect(id);
  while (state.status === 'running' && state.health?.Status !== 'healthy' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    state = await inspect(id);
  }
  const logs = await runCommand('docker', ['logs', id]);
  t.equal(state.health?.Status, 'healthy', 'healthy', { state: state.status, stderr: logs.stderr.slice(-2000) });
  t.match(state.health?.Log.at(-1)?.Output ?? '', /127\.0\.0\.1:9464\/healthz: 200 \{"status":"ok"/, 'by GET /healthz answering 200');
  const stop = await runCommand('docker', ['stop', '-t', '30', id]);
  t.equal(stop.code, 0, 'docker stop');
  state = await inspect(id);
  t.equal(state.exitCode, 0, 'SIGTERM: the daemon drains and exits 0');
  const all = await runCommand('docker', ['logs', id]);
  t.match(all.stderr, /daemon stopped/);
  t.notMatch(all.stderr, /Warning/, 'Node.js printed no warning', { stderr: all.stderr.slice(0, 3000) });
  await removeWithVolumes(t, id);
});
