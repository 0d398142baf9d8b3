import { promises as fs } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { driverFor, restorerFor } from '../orchestrator/cli/plugins.js';
import { RESTORE_KINDS, type PolicyConfig, type RestoreKind } from '../orchestrator/core/config-types.js';
import { DEFAULTS } from '../orchestrator/core/defaults.js';
import type { RunRecord } from '../orchestrator/core/domain.js';
import type { RunStore } from '../orchestrator/evidence/run-store.js';
import { runPolicy } from '../orchestrator/runner/run-policy.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { FILES_USER } from '../restore-sandboxes/images/build-image.js';
import type { SandboxRuntime } from '../restore-sandboxes/sandbox-runtime.js';
import { craftTar } from './helpers/archive-fixtures.js';
import { codes, leftoversOf, openEmbeddedStore, policyFromYaml, quietLogger, tempDir } from './helpers/harness.js';
import { age } from './helpers/fixtures.js';
import { seededBytes } from './helpers/bytes.js';
import { testVmImages } from './helpers/vm-images.js';

// One conformance suite for the restorer seam, over RESTORE_KINDS: for every kind a tiny good
// backup passes and a broken one fails (never `internal`), with the sandbox's log tail kept; a run
// cancelled while its sandbox starts is `cancelled`; nothing of any run stays in the engine. The
// Record below makes a new kind without its fixtures a compile error (tsc runs in the test command).

interface KindFixture {
  /** The policy's kind-specific YAML (keys at 8 spaces), if any. */
  extra?: string;
  /** Writes a good backup of this kind at `file`. */
  good(file: string): Promise<void>;
  /** Writes a backup of this kind that must fail, and the reason codes that may say why. */
  broken(file: string): Promise<void>;
  failCodes: string[];
  /** Whether a failed restore leaves words in the sandbox's log (a server's log, a tool's stderr). */
  tailOnFailure: boolean;
}

const text = (body: string) => (file: string) => fs.writeFile(file, body);
const tarOf = (file: string) =>
  craftTar(file, [
    { name: 'share/', type: 'directory' },
    { name: 'share/readme.txt', data: 'backproof conformance\n'.repeat(20) },
    { name: 'share/data.bin', data: seededBytes(4096, 'files-good') },
  ]);

const FIXTURES: Record<RestoreKind, KindFixture> = {
  postgres: {
    good: text(`CREATE TABLE items (id int PRIMARY KEY, name text);\nINSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g;\n`),
    // A custom-format dump's signature and a valid archive header (1.14, custom format) over
    // garbage: pg_restore refuses it. The garbage is fixed so that every run judges the same bytes.
    broken: (file) => fs.writeFile(file, Buffer.concat([Buffer.from('PGDMP'), Buffer.from([1, 14, 0, 4, 8, 1]), seededBytes(4096, 'postgres-broken')])),
    failCodes: ['truncated_dump', 'restore_failed', 'unrecognized_format'],
    tailOnFailure: true,
  },
  mysql: {
    good: text(`CREATE TABLE items (id int PRIMARY KEY, name varchar(40));\nINSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three');\n`),
    broken: text(`CREATE TABLE items (id int PRIMARY KEY, name varchar(40));\nINSERT INTO items VALUES (1, 'one'), (2, 'two'\n`),
    failCodes: ['restore_failed', 'truncated_dump'],
    tailOnFailure: true,
  },
  files: {
    good: tarOf,
    // A member that climbs out of the restore root.
    broken: (file) => craftTar(file, [{ name: 'share/ok.txt', data: 'fine\n' }, { name: '../../escape.txt', data: 'out\n' }]),
    failCodes: ['unsafe_archive'],
    tailOnFailure: false,
  },
  sqlite: {
    good: text(`PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO items VALUES(1,'one');\nINSERT INTO items VALUES(2,'two');\nCOMMIT;\n`),
    // A database file's header over garbage pages.
    broken: (file) => fs.writeFile(file, Buffer.concat([Buffer.from('SQLite format 3\0'), Buffer.from([0x10, 0x00, 0x01, 0x01]), seededBytes(8192 - 20, 'sqlite-broken')])),
    failCodes: ['restore_failed', 'unrecognized_format', 'truncated_dump'],
    tailOnFailure: false,
  },
  custom: {
    extra: `        custom:
          image: ${DEFAULTS.filesImage}
          user: "${FILES_USER}"
          restore: [tar, -x, -f, "-", -C, /restore]`,
    good: tarOf,
    broken: (file) => fs.writeFile(file, seededBytes(4096, 'custom-broken')),
    failCodes: ['restore_failed'],
    tailOnFailure: true,
  },
  vm: {
    extra: '        vm: { memory: 256m, accel: tcg }',
    good: async (file) => fs.copyFile((await testVmImages()).files['good.raw']!, file),
    // The disk's boot sector zeroed: the firmware finds nothing to boot.
    broken: async (file) => fs.copyFile((await testVmImages()).files['zeroed-mbr.raw']!, file),
    failCodes: ['not_booted'],
    tailOnFailure: true,
  },
};

const runtime = new DockerRuntime();
let store: RunStore;
t.before(async () => {
  store = (await openEmbeddedStore()).store;
});
t.teardown(() => store?.close());

async function verifyWith(policy: PolicyConfig, rt: SandboxRuntime = runtime, signal?: AbortSignal): Promise<RunRecord> {
  return runPolicy(policy, { store, runtime: rt, driverFor, restorerFor, logger: quietLogger() }, { signal });
}

async function policyWith(kind: RestoreKind, write: (file: string) => Promise<void>): Promise<PolicyConfig> {
  const folder = await tempDir(`conformance-${kind}`);
  t.teardown(() => fs.rm(folder, { recursive: true, force: true }));
  const file = path.join(folder, `shop-${kind}.bak`);
  await write(file);
  await age(file, 3_600_000); // taken an hour ago: settled, within the rpo
  return policyFromYaml({ folder, kind, glob: 'shop-*', probes: '          []', sandbox: 'memory: 1g, timeout: 10m', extra: FIXTURES[kind].extra ?? '' });
}

for (const kind of RESTORE_KINDS) {
  const fixture = FIXTURES[kind];
  t.test(`kind ${kind}`, async (t) => {
    await t.test('a tiny good backup passes', async (t) => {
      const run = await verifyWith(await policyWith(kind, fixture.good));
      t.equal(run.verdict, 'pass', `${kind}: ${JSON.stringify(run.reasons)}`);
      t.same(codes(run), []);
      t.ok(run.phases.find((p) => p.name === 'fetch_restore' && p.outcome === 'ok'), 'the restore phase ran');
      t.ok(run.backup?.sha256, 'the bytes were hashed');
      t.equal(await leftoversOf(run.id), 0, 'nothing left in the engine');
    });

    await t.test('a broken backup fails, with its reason and the sandbox log', async (t) => {
      const run = await verifyWith(await policyWith(kind, fixture.broken));
      t.equal(run.verdict, 'fail', `${kind}: ${JSON.stringify(run.reasons)}`);
      t.notOk(codes(run).includes('internal'), 'never internal');
      t.ok(
        codes(run).some((c) => fixture.failCodes.includes(c)),
        `one of ${fixture.failCodes.join(', ')} in ${codes(run).join(', ')}`,
      );
      t.type(run.sandbox?.logTail, 'string', 'a log tail is recorded');
      if (fixture.tailOnFailure) t.ok(run.sandbox?.logTail?.trim(), `the log tail says something: ${run.sandbox?.logTail?.slice(0, 200)}`);
      t.equal(await leftoversOf(run.id), 0, 'nothing left in the engine');
    });

    await t.test('cancelled while its sandbox starts: cancelled, recorded, nothing left', async (t) => {
      const abort = new AbortController();
      // The engine creates the sandbox, then the caller cancels: the restorer sees an aborted signal.
      const cancelling = Object.create(runtime) as DockerRuntime;
      cancelling.create = async (...args: Parameters<DockerRuntime['create']>) => {
        const sandbox = await runtime.create(...args);
        abort.abort(new Error('the operator stopped it'));
        return sandbox;
      };
      const run = await verifyWith(await policyWith(kind, fixture.good), cancelling, abort.signal);
      t.equal(run.status, 'cancelled', `${kind}: ${JSON.stringify(run.reasons)}`);
      t.same(codes(run), ['cancelled']);
      t.equal(run.phases.find((p) => p.name === 'teardown')?.outcome, 'ok', 'torn down');
      const stored = await store.get(run.id);
      t.equal(stored?.status, 'cancelled', 'the store has it');
      t.equal(await leftoversOf(run.id), 0, 'nothing left in the engine');
    });
  });
}
