import { promises as fs } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { PolicyOf } from '../orchestrator/core/config-types.js';
import type { RunRecord } from '../orchestrator/core/domain.js';
import type { Restorer } from '../restore-sandboxes/restorer.js';
import type { RunStore } from '../orchestrator/evidence/run-store.js';
import { driverFor } from '../orchestrator/cli/plugins.js';
import { runPolicy } from '../orchestrator/runner/run-policy.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { accelFaultInStderr, classifyRunState, emulationPanicIn } from '../restore-sandboxes/vm/accel-faults.js';
import { probeAccel } from '../restore-sandboxes/vm/kvm-probe.js';
import { PROBE_MARKERS, probeBootSector } from '../restore-sandboxes/vm/probe-sector.js';
import { VmRestorer, type VmRestorerOptions } from '../restore-sandboxes/vm/vm-restorer.js';
import { bootSection } from '../orchestrator/web/boot-section.js';
import { renderRunSummary } from '../reports/run-summary.js';
import { codes, leftoversOf, openEmbeddedStore, policyFromYaml, quietLogger, tempDir } from './helpers/harness.js';
import { testVmImages, type TestVmImages } from './helpers/vm-images.js';

// Accelerator faults in kind vm: a KVM that fails is an `error` of the verification (the host's
// fault), never a `fail` of the backup. This machine has no /dev/kvm, so a test seam passes a
// host path as the sandbox's /dev/kvm: /dev/null, which QEMU opens and whose KVM ioctls fail
// ("Inappropriate ioctl for device"), as a broken KVM's do. The boots run under TCG; one small
// image (good.vmdk), one boot per test.

t.setTimeout(20 * 60_000);

/** The test seam: /dev/null as the sandbox's /dev/kvm. */
const FAKE_KVM = '/dev/null';

let images: TestVmImages;
let store: RunStore;
const runtime = new DockerRuntime();

t.before(async () => {
  images = await testVmImages();
  store = (await openEmbeddedStore()).store;
});
t.teardown(async () => {
  await store?.close();
});

// ---------------------------------------------------------------------------------------------
// No QEMU: the probe's boot sector, and what QEMU says.

t.test('the probe boot sector: 512 bytes, boot signature, a marker per stage, each printed by its own stage', async (t) => {
  const s = probeBootSector();
  t.equal(s.length, 512);
  t.equal(s.readUInt16LE(510), 0xaa55, 'the boot signature');
  t.same(
    PROBE_MARKERS.map((m) => m.split(' ').slice(1).join(' ')),
    ['real mode', 'protected mode', 'long mode'],
  );
  const at = PROBE_MARKERS.map((m) => s.indexOf(Buffer.from(`${m}\r\n\0`, 'latin1')));
  t.ok(at.every((o) => o > 0), 'every marker is in the sector, NUL-terminated');
  t.ok(at[0]! < at[1]! && at[1]! < at[2]!, 'in stage order');
  // Each stage loads its marker's address (0x7c00 + offset) before its print loop:
  // real mode `mov si, imm16` (be), protected mode and long mode `mov esi, imm32` (be).
  t.equal(s[0x12], 0xbe);
  t.equal(s.readUInt16LE(0x13), 0x7c00 + at[0]!, 'real mode prints the real-mode marker');
  t.equal(s[0x62], 0xbe);
  t.equal(s.readUInt32LE(0x63), 0x7c00 + at[1]!, 'protected mode prints its marker');
  t.equal(s[0x9d], 0xbe);
  t.equal(s.readUInt32LE(0x9e), 0x7c00 + at[2]!, 'long mode prints its marker');
  // The far jumps that switch modes land on those stages: 08:pm (32-bit), 18:lm (64-bit).
  t.same([s[0x50], s[0x51], s.readUInt32LE(0x52), s.readUInt16LE(0x56)], [0x66, 0xea, 0x7c58, 0x08]);
  t.same([s[0x96], s.readUInt32LE(0x97), s.readUInt16LE(0x9b)], [0xea, 0x7c9d, 0x18]);
  // The GDT's 64-bit code descriptor has L set and D clear.
  t.equal(s.readUInt32LE(0xd0 + 4), 0x00af9a00);
  t.ok(probeBootSector().equals(s), 'the same bytes every time');
});

t.test('QEMU stderr: KVM faults are named, with QEMU\'s own lines; other messages are not', async (t) => {
  const faults: Array<[string, RegExp]> = [
    // Recorded from this machine's QEMU with /dev/null as /dev/kvm:
    ['kvm version too old\nqemu-system-x86_64: -accel kvm: failed to initialize kvm: Inappropriate ioctl for device\n', /kvm version too old; .*failed to initialize kvm: Inappropriate ioctl for device/],
    // A nested KVM in a boot loader's mode switch (QEMU then pauses the vCPU):
    [
      'KVM internal error. Suberror: 1\nextra data[0]: 0x0000000000000001\nextra data[1]: 0x0000000000000003\nemulation failure\nEAX=00000010 EBX=00000000 ECX=00000000 EDX=00000080\nESI=00007c3e EDI=00000000 EBP=00000000 ESP=00006cf0\nCode=... <0f> 22 c0\n',
      /^KVM internal error\. Suberror: 1; emulation failure$/,
    ],
    ['Could not access KVM kernel module: No such file or directory\nqemu-system-x86_64: failed to initialize kvm: No such file or directory\n', /Could not access KVM kernel module/],
    ['qemu-system-x86_64: kvm_init_vcpu: ioctl(KVM_CREATE_VCPU) failed: 22 Invalid argument\n', /ioctl\(KVM_CREATE_VCPU\) failed/],
    ['error: kvm run failed Bad address\nRAX=0000000000000000\n', /kvm run failed Bad address/],
    ['KVM: entry failed, hardware error 0x80000021\n', /entry failed, hardware error/],
  ];
  for (const [stderr, said] of faults) t.match(accelFaultInStderr(stderr), said, stderr.split('\n')[0]!);
  for (const stderr of [
    '',
    'qemu-system-x86_64: -fw_cfg name=etc/sercon-port,file=/restore/run/sercon-port: warning: externally provided fw_cfg item names should be prefixed with "opt/"\n',
    'qemu-system-x86_64: terminating on signal 15 from pid 8 (timeout)\n',
    "qemu-system-x86_64: cannot set up guest memory 'pc.ram': Cannot allocate memory\n",
    'qemu-system-x86_64: -drive file=/restore/run/overlay.qcow2: Could not open backing file: Permission denied\n',
  ]) {
    t.equal(accelFaultInStderr(stderr), undefined, `not a KVM fault: ${stderr.trim() || '(nothing)'}`);
  }
});

t.test('QMP query-status: internal-error is the accelerator, guest-panicked the guest, a paused vCPU neither', async (t) => {
  t.same(classifyRunState({ running: false, singlestep: false, status: 'internal-error' }), { class: 'accelerator', status: 'internal-error' });
  t.same(classifyRunState({ running: false, singlestep: false, status: 'guest-panicked' }), { class: 'guest', status: 'guest-panicked' });
  t.same(classifyRunState({ running: false, singlestep: false, status: 'paused' }), { class: 'paused', status: 'paused' });
  t.same(classifyRunState({ running: false, status: 'io-error' }), { class: 'paused', status: 'io-error' });
  t.same(classifyRunState({ running: true, singlestep: false, status: 'running' }), { class: 'running', status: 'running' });
  t.same(classifyRunState({ running: false, status: 'shutdown' }), { class: 'ended', status: 'shutdown' });
  t.same(classifyRunState(undefined), { class: 'unknown', status: '' });
  t.same(classifyRunState('internal-error'), { class: 'unknown', status: '' }, 'only the answer\'s status field counts');
});

// ---------------------------------------------------------------------------------------------
// QEMU in the sandbox image.

function vmPolicy(folder: string, accel: string, vm = ''): PolicyOf<'vm'> {
  return policyFromYaml({
    folder,
    kind: 'vm',
    glob: '*',
    rpo: '30d',
    sandbox: 'memory: 2g, timeout: 12m',
    extra: `        vm: { accel: ${accel}, memory: 1g, stallTimeout: 2m, bootTimeout: 8m${vm ? `, ${vm}` : ''} }`,
  }) as PolicyOf<'vm'>;
}

t.test('the probe: the boot sector reaches every stage under TCG; a fake /dev/kvm that fails is a fault in QEMU\'s words', async (t) => {
  const restorer = new VmRestorer({ kvmDevice: FAKE_KVM });
  const policy = vmPolicy(await tempDir('vm-probe'), 'kvm');
  const sandbox = await runtime.create(restorer.sandboxSpec(policy, `vm-accel-probe-${process.pid}`));
  try {
    const signal = AbortSignal.timeout(120_000);
    const tcg = await probeAccel(sandbox, '1000:1000', signal, 'tcg', 60_000);
    t.ok(tcg.ok, JSON.stringify(tcg));
    t.same(tcg.markers, [...PROBE_MARKERS], 'real mode, protected mode and long mode, each on the serial port');
    t.notOk(tcg.fault);
    const kvm = await probeAccel(sandbox, '0:0', signal, 'kvm');
    t.notOk(kvm.ok);
    t.match(kvm.fault, /failed to initialize kvm: Inappropriate ioctl for device/, 'QEMU\'s own words');
    t.same(kvm.markers, []);
    t.match(kvm.why, /\/dev\/kvm exists but QEMU could not use it \(.*\): software emulation/);
  } finally {
    await sandbox.remove();
  }
});

/**
 * A 512-byte boot sector that prints `text` on the first serial port and halts, as a guest's kernel
 * prints its panic: real mode, DS=0, a print loop on port 0x3f8 (the probe sector's first stage).
 */
function printingBootSector(text: string): Buffer {
  const MSG = 0x20;
  const msg = Buffer.from(`${text}\r\n\0`, 'latin1');
  if (MSG + msg.length > 510) throw new Error('the text does not fit in a boot sector');
  // prettier-ignore
  const code = [
    0xea, 0x05, 0x7c, 0x00, 0x00,  // 00 ljmp 0000:7c05
    0xfa,                          // 05 cli
    0x31, 0xc0,                    // 06 xor ax, ax
    0x8e, 0xd8,                    // 08 mov ds, ax
    0xfc,                          // 0a cld
    0xbe, MSG, 0x7c,               // 0b mov si, 7c00+MSG
    0xba, 0xf8, 0x03,              // 0e mov dx, 3f8
    0xac,                          // 11 lodsb
    0x84, 0xc0,                    // 12 test al, al
    0x74, 0x03,                    // 14 jz 19
    0xee,                          // 16 out dx, al
    0xeb, 0xf8,                    // 17 jmp 11
    0xf4,                          // 19 hlt
    0xeb, 0xfd,                    // 1a jmp 19
  ];
  const sector = Buffer.alloc(512);
  Buffer.from(code).copy(sector, 0);
  msg.copy(sector, MSG);
  sector.writeUInt16LE(0xaa55, 510);
  return sector;
}

/**
 * One run through the runner with the restorer's test seam: of good.vmdk (the smallest good
 * image), or of `blank`, a 1 MiB raw disk of zeros (the firmware finds nothing to boot, in seconds).
 */
async function bootWith(t: Test, accel: string, options: VmRestorerOptions, image: 'good.vmdk' | 'blank' | Buffer = 'good.vmdk'): Promise<RunRecord> {
  const folder = await tempDir('vm-accel');
  const raw = image === 'blank' ? Buffer.alloc(1024 * 1024) : Buffer.isBuffer(image) ? Buffer.concat([image, Buffer.alloc(1024 * 1024 - image.length)]) : undefined;
  const target = path.join(folder, raw ? 'disk.raw' : (image as string));
  if (raw) await fs.writeFile(target, raw);
  else await fs.link(images.files[image as string]!, target).catch(() => fs.copyFile(images.files[image as string]!, target));
  await fs.utimes(target, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
  const policy = vmPolicy(folder, accel, raw ? '' : `expect: { serial: "${images.manifest.hostname} login|Linux version" }`);
  const run = await runPolicy(policy, { store, runtime, driverFor, restorerFor: () => new VmRestorer(options) as unknown as Restorer, logger: quietLogger() });
  t.equal(await leftoversOf(run.id), 0, 'no container or volume left');
  return run;
}

t.test('accel: kvm with a fake /dev/kvm that fails: error sandbox_failed in QEMU\'s words, never fail, no retry', async (t) => {
  const run = await bootWith(t, 'kvm', { kvmDevice: FAKE_KVM });
  t.equal(run.verdict, 'error', JSON.stringify(run.reasons));
  t.same(codes(run), ['sandbox_failed']);
  t.match(run.reasons[0]!.message, /KVM accelerator failed, not the guest/);
  t.match(run.reasons[0]!.message, /failed to initialize kvm: Inappropriate ioctl for device/, 'QEMU\'s words');
  t.notOk(codes(run).includes('not_booted'));
  t.notOk(run.boot, 'nothing booted: no boot verdict is recorded');
});

t.test('accel: auto with a fake /dev/kvm that fails during the boot (probe skipped by the seam): the TCG retry boots, both attempts recorded', async (t) => {
  const run = await bootWith(t, 'auto', { kvmDevice: FAKE_KVM, skipKvmProbe: true });
  t.equal(run.verdict, 'pass', JSON.stringify(run.reasons));
  const b = run.boot!;
  t.ok(b);
  t.equal(b.verdict, 'booted');
  t.equal(b.accel, 'tcg', 'the verdict is the TCG attempt\'s');
  t.match(b.accelWhy, /KVM failed during the boot \(.*failed to initialize kvm.*\): booted again under software emulation/);
  t.same(
    b.attempts?.map((a) => [a.accel, a.stage, a.outcome]),
    [
      ['kvm', 'boot', 'accel_fault'],
      ['tcg', 'boot', 'booted'],
    ],
  );
  t.match(b.attempts?.[0]?.said, /failed to initialize kvm: Inappropriate ioctl for device/);
  t.match(b.attempts?.[1]?.said, /login prompt/);
  t.ok(b.attempts!.every((a) => a.durationMs >= 0 && !Number.isNaN(Date.parse(a.startedAt))));
  t.ok(Date.parse(b.attempts![0]!.startedAt) <= Date.parse(b.attempts![1]!.startedAt), 'in order');
  t.equal(b.diskUnchanged, true);
  t.same(run.probes.map((p) => p.pass), [true]);
  // Where the boot evidence is shown: `runs show` and the run page list both attempts.
  const summary = renderRunSummary(run);
  t.match(summary, /attempt: kvm boot: accelerator fault after [\d.]+s: QEMU said: .*failed to initialize kvm/);
  t.match(summary, /attempt: tcg boot: booted in [\dm.]+s: a login prompt/);
  t.match(run.sandbox?.serverVersion, /\(KVM; TCG if KVM fails\)$/, 'the sandbox line says so before the boot');
  const page = String(bootSection(run));
  t.match(page, /<dt>Attempts<\/dt><dd><ol class="attempts"><li>kvm boot: accelerator fault/);
});

t.test('accel: auto with a fake /dev/kvm that fails the probe: the probe is the KVM attempt, the boot runs under TCG', async (t) => {
  // A blank disk: the TCG boot's own verdict (nothing to boot) is quick, and is the run's.
  const run = await bootWith(t, 'auto', { kvmDevice: FAKE_KVM }, 'blank');
  const b = run.boot!;
  t.ok(b, JSON.stringify(run.reasons));
  t.equal(b.accel, 'tcg');
  t.match(b.accelWhy, /\/dev\/kvm exists but QEMU could not use it \(.*failed to initialize kvm.*\): software emulation/);
  t.same(
    b.attempts?.map((a) => [a.accel, a.stage, a.outcome]),
    [
      ['kvm', 'probe', 'accel_fault'],
      ['tcg', 'boot', 'not_booted'],
    ],
  );
  t.match(b.attempts?.[0]?.said, /failed to initialize kvm: Inappropriate ioctl for device/);
  t.equal(b.failure, 'no_bootable_device', 'the verdict is the TCG boot\'s, about the disk');
  t.equal(run.verdict, 'fail');
  t.same(codes(run), ['not_booted']);
});

// A Linux kernel under TCG on a busy host can panic in its timer check ("IO-APIC + timer doesn't
// work!", seen in this project's CI on the good image): the emulator's fault, not the disk's. A boot
// sector that prints exactly that panic stands for such a guest, one that prints another panic for
// a guest that is broken.
const TIMER_PANIC = "[    0.056000] Kernel panic - not syncing: IO-APIC + timer doesn't work!  Boot with apic=debug and send a report.";

t.test('emulationPanicIn: the timer-check panic is named, other panics are not', async (t) => {
  t.equal(emulationPanicIn(`SeaBIOS\n${TIMER_PANIC}\n`), TIMER_PANIC);
  t.equal(emulationPanicIn('[    1.2] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n'), undefined);
  t.equal(emulationPanicIn(''), undefined);
});

t.test('accel: tcg, a guest that panics in the timer check: booted again, then an error (the backup was not judged), never a fail', async (t) => {
  const run = await bootWith(t, 'tcg', {}, printingBootSector(TIMER_PANIC));
  t.equal(run.verdict, 'error', JSON.stringify(run.reasons));
  t.same(codes(run), ['sandbox_failed']);
  t.match(run.reasons[0]!.message, /software emulation \(TCG\) was too slow for the guest kernel's timer check in two boots/);
  t.match(run.reasons[0]!.message, /IO-APIC \+ timer doesn't work/, 'the kernel\'s own line');
  const b = run.boot;
  t.ok(b, 'the boot evidence is kept');
  t.same(
    b?.attempts?.map((a) => [a.accel, a.stage, a.outcome]),
    [
      ['tcg', 'boot', 'accel_fault'],
      ['tcg', 'boot', 'accel_fault'],
    ],
  );
  t.match(b?.attempts?.[0]?.said, /the guest kernel's timer check failed under software emulation: ".*IO-APIC \+ timer doesn't work/);
  t.match(renderRunSummary(run), /attempt: tcg boot: accelerator fault after [\d.]+s: the guest kernel's timer check failed/, 'not "QEMU said": the kernel said it');
});

t.test('accel: tcg, a guest whose kernel panics otherwise: fail not_booted after one boot', async (t) => {
  const run = await bootWith(t, 'tcg', {}, printingBootSector('[    2.400000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100'));
  t.equal(run.verdict, 'fail', JSON.stringify(run.reasons));
  t.same(codes(run), ['not_booted']);
  t.equal(run.boot?.failure, 'kernel_panic');
  t.notOk(run.boot?.attempts, 'one boot, no retry');
});
