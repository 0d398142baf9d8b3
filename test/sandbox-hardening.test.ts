import t from 'tap';
import { restorerFor } from '../orchestrator/cli/plugins.js';
import { RESTORE_KINDS, type RestoreKind } from '../orchestrator/core/config-types.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { PROBE_HELPER } from '../restore-sandboxes/probes/sandbox-probes.js';
import { DEFAULTS } from '../orchestrator/core/defaults.js';
import { FILES_USER } from '../restore-sandboxes/images/build-image.js';
import { leftoversOf, policyFromYaml, tempDir } from './helpers/harness.js';

// The isolation promise, checked on the containers the engine really created for each kind:
// no network, every capability dropped (and none added back), no privilege gain, read-only
// root, a size-limited tmpfs, memory/CPU/pids limits, a non-root user, an init process. A pod's
// services join the main container's network namespace and have the same hardening.

const runtime = new DockerRuntime();
let folder: string;
t.before(async () => {
  folder = await tempDir('hardening');
});

const CUSTOM = `        custom:
          image: ${DEFAULTS.filesImage}
          user: "${FILES_USER}"
          restore: [tar, -x, -f, "-", -C, /restore]
          services:
            - name: web
              image: ${DEFAULTS.filesImage}
              user: "${FILES_USER}"
              cmd: [busybox, httpd, -f, -p, "127.0.0.1:8080", -h, /restore]`;

// One entry per kind of RESTORE_KINDS: the type makes a new kind without one a compile error
// (tsc runs in the test command), so no kind is skipped silently.
const EXPECTED: Record<RestoreKind, { user: RegExp; extra?: string }> = {
  postgres: { user: /^postgres$/ },
  mysql: { user: /^mysql$/ },
  files: { user: /^1000:1000$/ },
  sqlite: { user: /^1000:1000$/ },
  custom: { user: /^1000:1000$/, extra: CUSTOM },
  // QEMU runs as 1000 (TCG) or as root without capabilities (KVM's device is root-only); the
  // container's own process is nobody's, who owns the disk image QEMU may only read.
  vm: { user: /^65534:65534$/, extra: '        vm: { memory: 256m }' },
};
const KINDS = RESTORE_KINDS.map((kind) => ({ kind, ...EXPECTED[kind] }));

for (const { kind, user, extra } of KINDS) {
  t.test(`kind ${kind}: the created containers are locked down`, async (t) => {
    const policy = policyFromYaml({ folder, kind, sandbox: 'memory: 768m, cpus: 1.5, pids: 256, tmp: 64m', extra: extra ?? '' });
    const restorer = restorerFor(policy);
    const runId = `hardening-${kind}-${process.pid}`;
    const sandbox = await runtime.create(restorer.sandboxSpec(policy, runId));
    try {
      if (kind === 'files') {
        // A probe helper added later (http probes from a non-files image) gets the same treatment.
        await sandbox.addService({ name: PROBE_HELPER, image: DEFAULTS.filesImage, cmd: ['sleep', 'infinity'], user: FILES_USER });
      }
      const main = await runtime.docker.getContainer(sandbox.id).inspect();
      const containers = [main, ...(await Promise.all(sandbox.services.map((s) => runtime.docker.getContainer(`backproof-${runId}-${s}`).inspect())))];
      t.equal(containers.length, kind === 'custom' || kind === 'files' ? 2 : 1);
      for (const c of containers) {
        const h = c.HostConfig;
        const what = `${kind} ${c.Name}`;
        t.equal(h.NetworkMode, c.Id === main.Id ? 'none' : `container:${main.Id}`, `${what}: no network of its own`);
        t.same(h.CapDrop, ['ALL'], `${what}: every capability dropped`);
        t.same(h.CapAdd ?? [], [], `${what}: none added back`);
        t.same(h.SecurityOpt, ['no-new-privileges'], `${what}: no privilege gain`);
        t.equal(h.Privileged, false);
        t.equal(h.ReadonlyRootfs, true, `${what}: read-only root`);
        t.equal(h.Memory, 768 * 1024 ** 2, `${what}: memory limit`);
        t.equal(h.MemorySwap, 768 * 1024 ** 2, `${what}: no swap beyond it`);
        t.equal(h.NanoCpus, 1.5e9, `${what}: CPU limit`);
        t.equal(h.PidsLimit, 256, `${what}: pids limit`);
        t.match(h.Tmpfs?.['/tmp'], /size=67108864/, `${what}: /tmp is a tmpfs of 64 MiB`);
        t.match(h.Tmpfs?.['/tmp'], /nosuid,nodev/);
        t.equal(h.Init, true);
        t.notOk(h.Binds?.length, `${what}: no host folders mounted`);
        t.ok((h.Mounts ?? []).every((m) => m.Type === 'volume'), `${what}: only per-run volumes`);
        t.equal(c.Config.Labels['backproof.run'], runId);
      }
      t.match(main.Config.User, user, `${kind}: runs as a non-root user`);
      const id = await sandbox.exec(['id', '-u']);
      t.not(id.stdout.trim(), '0', `${kind}: the restore user is not root`);
      const net = await sandbox.exec(['cat', '/proc/net/dev']);
      t.same(
        net.stdout
          .split('\n')
          .slice(2)
          .map((l) => l.split(':')[0]?.trim())
          .filter(Boolean),
        ['lo'],
        `${kind}: only loopback inside`,
      );
    } finally {
      await sandbox.remove();
    }
    t.equal(await leftoversOf(runId), 0);
  });
}
