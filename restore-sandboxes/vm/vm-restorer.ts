import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PolicyOf } from '../../orchestrator/core/config-types.js';
import { DEFAULTS } from '../../orchestrator/core/defaults.js';
import type { BootAttempt, BootRecord, ProbeResult, RunArtifact } from '../../orchestrator/core/domain.js';
import { VerificationError } from '../../orchestrator/core/errors.js';
import { formatAge, formatBytes } from '../../orchestrator/core/format.js';
import { peek } from '../../orchestrator/core/integrity.js';
import { decompress, decompressInSandbox, detectCompression } from '../compression.js';
import { lastLines, sandboxLimits, type Inspection, type RestoreContext, type RestoreOutcome, type Restorer } from '../restorer.js';
import type { ExecResult, Sandbox, SandboxSpec } from '../sandbox-runtime.js';
import { accelFaultInStderr, emulationPanicIn } from './accel-faults.js';
import { BootWatcher, type BootJudgement } from './boot-watcher.js';
import { chooseFirmware, judgeImageCheck, judgeImageInfo, readLayout, type DiskInfo, type DiskLayout } from './disk-image.js';
import { OVMF_CODE, OVMF_VARS, planMachine, qemuArgv, VM_PATHS, type MachinePlan } from './qemu-args.js';
import { probeAccel } from './kvm-probe.js';
import { QmpClient } from './qmp-client.js';
import { readFile } from './sandbox-streams.js';

/** Writes the disk image and owns it: QEMU runs as another user and can only read it. */
const DISK_OWNER = '65534:65534';
/** QEMU without KVM: an unprivileged user. */
const QEMU_USER = '1000:1000';
/**
 * QEMU with KVM: the engine passes /dev/kvm as the host has it (root-only, 0600), so QEMU runs
 * as root, still without a single capability, no privilege gain, in no network, unable to write
 * the disk image (owned by nobody, mode 0444: writing it would need CAP_DAC_OVERRIDE).
 */
const QEMU_KVM_USER = '0:0';
const SCREENSHOT = 'screenshot.png';
const GPT_HEAD_SECTORS = 34;
const QEMU_START_TIMEOUT_MS = 20_000;

export interface VmRestorerOptions {
  /**
   * Test seam: this host path is passed as the sandbox's /dev/kvm (and stands for the host's
   * /dev/kvm when `accel: auto` looks for one), e.g. /dev/null, which fails KVM's ioctls as a
   * broken KVM does. Default /dev/kvm.
   */
  kvmDevice?: string;
  /** Test seam: skip the KVM probe under `accel: auto`, so the boot itself meets the KVM. Default false. */
  skipKvmProbe?: boolean;
}

/**
 * kind: vm: a whole machine's disk image (raw, qcow2, vmdk, vhdx, vhd; optionally gz/zst/xz),
 * booted in QEMU inside the sandbox and judged from its screen and serial port.
 *
 * restore: the image streams into the sandbox's volume (decompressed there, within vm.maxDisk),
 *   owned by another user and read-only to QEMU; `qemu-img info` names its format (never QEMU's
 *   guess), images pointing to other files are refused, `qemu-img check` looks for corruption,
 *   the partition table picks the firmware, and a qcow2 overlay takes every guest write.
 * ready: QEMU starts (KVM when the host has it and, under accel: auto, KVM passed the probe;
 *   else TCG) and the boot watcher judges it: booted, not_booted (a named failure, QEMU exited,
 *   stalled) or inconclusive. An accelerator fault (accel-faults.ts) is no verdict: an error,
 *   or under accel: auto one more boot under TCG from a fresh overlay. Then QEMU quits and the
 *   image's sha256 is read again: the guest never wrote to the backup.
 * probe: vm.expect's screen and serial patterns.
 */
export class VmRestorer implements Restorer<'vm'> {
  readonly kind = 'vm' as const;
  private readonly kvmDevice: string;
  private readonly skipKvmProbe: boolean;
  private accel: 'kvm' | 'tcg' = 'tcg';
  /** The user QEMU runs as, fixed once the run directory exists (a TCG retry keeps it). */
  private runUser: string | undefined;
  private readonly attempts: BootAttempt[] = [];
  private accelWhy = '';
  private disk: DiskInfo | undefined;
  private layout: DiskLayout | undefined;
  private firmware: { firmware: 'bios' | 'uefi'; why: string } | undefined;
  private plan: MachinePlan | undefined;
  private diskSha256: string | undefined;
  private diskUnchanged: boolean | undefined;
  private qemuVersion = '';
  private judgement: BootJudgement | undefined;
  private readonly notes: string[] = [];

  constructor(options: VmRestorerOptions = {}) {
    this.kvmDevice = options.kvmDevice ?? '/dev/kvm';
    this.skipKvmProbe = options.skipKvmProbe ?? false;
  }

  sandboxSpec(policy: PolicyOf<'vm'>, runId: string, image?: string): SandboxSpec {
    const vm = policy.vm;
    this.accel = vm.accel === 'auto' ? (existsSync(this.kvmDevice) ? 'kvm' : 'tcg') : vm.accel;
    this.accelWhy = vm.accel !== 'auto' ? `the policy sets vm.accel: ${vm.accel}` : this.accel === 'kvm' ? '/dev/kvm exists' : 'no /dev/kvm on this host: software emulation';
    return {
      runId,
      policy: policy.name,
      image: image ?? policy.sandbox.image ?? DEFAULTS.vm.image,
      cmd: ['sleep', 'infinity'],
      user: DISK_OWNER,
      capAdd: [],
      ...sandboxLimits(policy),
      volumes: ['/restore'],
      readOnlyRoot: true,
      ...(this.accel === 'kvm' ? { devices: [this.kvmDevice === '/dev/kvm' ? '/dev/kvm' : { host: this.kvmDevice, container: '/dev/kvm' }] } : {}),
    };
  }

  private get qemuUser(): string {
    return this.runUser ?? (this.accel === 'kvm' ? QEMU_KVM_USER : QEMU_USER);
  }

  async prepare(ctx: RestoreContext<'vm'>): Promise<{ serverVersion: string }> {
    const { sandbox, signal } = ctx;
    const version = await sandbox.exec(['qemu-system-x86_64', '--version'], { user: this.qemuUser, signal });
    if (version.exitCode !== 0) throw failure('sandbox_failed', `QEMU does not run in image ${sandbox.image}`, version);
    this.qemuVersion = version.stdout.split('\n')[0]?.replace(/^QEMU emulator version\s*/, 'QEMU ').trim() ?? 'QEMU';
    if (this.accel === 'kvm') {
      const kvm = await sandbox.exec(['test', '-r', '/dev/kvm', '-a', '-w', '/dev/kvm'], { user: this.qemuUser, signal });
      if (kvm.exitCode !== 0) throw new VerificationError('sandbox_failed', '/dev/kvm is not usable in the sandbox; set vm.accel: tcg to boot without KVM');
      if (ctx.policy.vm.accel === 'auto' && !this.skipKvmProbe) {
        // A /dev/kvm can exist and still fail a boot loader (nested KVM's "emulation failure" in
        // a mode switch) or be slower than emulation: our own boot sector tells, in a second.
        const startedAt = new Date();
        const probe = await probeAccel(sandbox, this.qemuUser, signal);
        this.accelWhy = probe.why;
        if (!probe.ok) {
          this.accel = 'tcg';
          this.attempts.push({ accel: 'kvm', stage: 'probe', outcome: probe.fault ? 'accel_fault' : 'inconclusive', said: probe.fault ?? probe.why, startedAt: startedAt.toISOString(), durationMs: probe.durationMs });
        }
        ctx.logger.info(`accelerator: ${this.accel} (${probe.why})`);
      }
    }
    const dir = await sandbox.exec(['mkdir', '-m', '0700', VM_PATHS.run], { user: this.qemuUser, signal });
    if (dir.exitCode !== 0) throw failure('sandbox_failed', `could not make ${VM_PATHS.run}`, dir);
    this.runUser = this.qemuUser;
    // Said before the boot: with accel: auto, a KVM fault during the boot still means a TCG boot.
    const accel = this.accel === 'kvm' && ctx.policy.vm.accel === 'auto' ? 'KVM; TCG if KVM fails' : this.accel.toUpperCase();
    return { serverVersion: `${this.qemuVersion} (${accel})` };
  }

  async restore(ctx: RestoreContext<'vm'>, input: Readable): Promise<RestoreOutcome> {
    const vm = ctx.policy.vm;
    const { sandbox, signal } = ctx;
    const peeked = await peek(input, 8);
    const compressed = detectCompression(peeked.head);
    const plain =
      compressed === 'none'
        ? { compression: compressed, stream: peeked.stream }
        : await decompress(peeked.stream, (c, bytes) => decompressInSandbox(sandbox, c, bytes, { signal, user: DISK_OWNER }));
    const counter = new DiskCounter(vm.maxDiskBytes);
    // conv=sparse: a raw disk's empty space takes no room in the volume.
    const write = await sandbox.exec(['dd', `of=${VM_PATHS.disk}`, 'bs=1M', 'iflag=fullblock', 'conv=sparse', 'status=none'], {
      stdin: pipeline(plain.stream, counter, () => undefined),
      user: DISK_OWNER,
      signal,
    });
    if (write.exitCode !== 0) throw failure('sandbox_failed', `writing the disk image into the sandbox failed (dd exit ${write.exitCode})`, write);
    if (!write.stdinComplete || !counter.sha256) throw new VerificationError('sandbox_failed', 'the disk image was not written to the end');
    if (counter.bytes === 0) throw new VerificationError('empty_backup', `the ${plain.compression} backup decompresses to nothing`);
    this.diskSha256 = counter.sha256;
    await this.run(sandbox, ['chmod', '0444', VM_PATHS.disk], DISK_OWNER, signal, 'could not make the disk image read-only');

    // What the image is: qemu-img says, or the policy does; never QEMU's guess at boot.
    const format = vm.format === 'auto' ? [] : ['-f', vm.format === 'vhd' ? 'vpc' : vm.format];
    const info = await sandbox.exec(['qemu-img', 'info', '--output=json', ...format, VM_PATHS.disk], { user: this.qemuUser, signal });
    if (info.exitCode !== 0) throw failure('unrecognized_format', `qemu-img cannot read the backup as ${vm.format === 'auto' ? 'a disk image' : `a ${vm.format} image`}`, info);
    const disk = judgeImageInfo(info.stdout, VM_PATHS.disk, vm.format);
    this.disk = disk;
    const header: Record<string, string> = { diskFormat: disk.format, virtualSize: String(disk.virtualSize), imageSha256: counter.sha256, imageBytes: String(counter.bytes), ...disk.facts };
    if (disk.format !== 'raw') {
      const check = await sandbox.exec(['qemu-img', 'check', '--output=json', '-f', disk.qemuFormat, VM_PATHS.disk], { user: this.qemuUser, signal });
      const said = judgeImageCheck(check.exitCode, check.stdout, check.stderr, disk.format);
      if (said) header.imageCheck = said;
    }

    // The partition table, as the guest will see it, picks the firmware.
    const sectors = Math.max(1, Math.min(GPT_HEAD_SECTORS, Math.floor(disk.virtualSize / 512)));
    await this.run(sandbox, ['qemu-img', 'dd', '-f', disk.qemuFormat, '-O', 'raw', 'bs=512', `count=${sectors}`, `if=${VM_PATHS.disk}`, `of=${VM_PATHS.head}`], this.qemuUser, signal, 'could not read the first sectors of the disk');
    this.layout = readLayout(await readFile(sandbox, VM_PATHS.head, this.qemuUser, signal));
    this.firmware = chooseFirmware(this.layout, vm.firmware);
    header.partitionTable = this.layout.table;
    header.firmware = `${this.firmware.firmware} (${this.firmware.why})`;

    this.plan = planMachine(vm, this.firmware.firmware, this.accel, disk.qemuFormat);
    await this.freshMachineFiles(sandbox, signal);
    if (this.plan.firmware === 'uefi') {
      this.plan.ovmfCode = (await this.ovmf(sandbox, signal)).code;
    } else {
      // SeaBIOS writes its messages to the serial port when told which port (0x3f8, little-endian).
      await this.run(sandbox, ['sh', '-c', `printf '\\370\\003' > ${VM_PATHS.sercon}`], this.qemuUser, signal, 'could not write the SeaBIOS console setting');
    }
    return { format: disk.format, compression: plain.compression, header };
  }

  async ready(ctx: RestoreContext<'vm'>): Promise<void> {
    const vm = ctx.policy.vm;
    const plan = this.plan;
    if (!plan) throw new VerificationError('internal', 'the vm restorer was asked to boot before the disk was restored');
    let boot = await this.boot(ctx, plan);
    if (boot.fault && plan.accel === 'kvm' && vm.accel === 'auto') {
      // KVM failed, not the guest: once more under emulation, from a fresh overlay and a fresh QEMU.
      ctx.logger.warn(`KVM failed during the boot (${boot.fault}); booting again under software emulation`);
      this.accel = 'tcg';
      this.accelWhy = `KVM failed during the boot (${boot.fault}): booted again under software emulation`;
      this.plan = { ...plan, accel: 'tcg' };
      boot = await this.bootAgain(ctx);
    }
    if (boot.slowEmulation) {
      // The emulator, not the disk, was too slow for the guest's timer check: once more, as above.
      ctx.logger.warn(`the guest kernel's timer check failed under software emulation (${boot.fault}); booting again`);
      boot = await this.bootAgain(ctx);
      if (boot.slowEmulation) {
        throw new VerificationError('sandbox_failed', `software emulation (TCG) was too slow for the guest kernel's timer check in two boots, not a fault of the backup (it was not judged): ${boot.fault}; give the sandbox more CPU, run fewer boots at once, or boot with KVM`);
      }
    }
    if (boot.fault) {
      const hint = this.plan!.accel === 'kvm' ? '; set vm.accel: tcg (or auto) to boot without KVM' : '';
      throw new VerificationError('sandbox_failed', `the ${this.plan!.accel.toUpperCase()} accelerator failed, not the guest (the backup was not judged): QEMU said: ${boot.fault}${hint}`);
    }
    const { exit, shutdown } = boot;
    const j = this.judgement!;
    const qemuCrashed = j.failure === 'qemu_exited' && !shutdown && exit !== undefined && exit.exitCode !== 0;
    if (qemuCrashed) throw new VerificationError('sandbox_failed', `QEMU stopped (exit ${exit!.exitCode}) during the boot: ${lastLines(exit!.stderr, 3)}`);
    ctx.logger.info(`boot ${j.verdict} after ${formatAge(j.bootMs)}: ${j.reason}`);
    if (this.diskUnchanged === false) throw new VerificationError('sandbox_failed', 'the disk image changed during the boot: the overlay did not keep the guest\'s writes away from the backup');
    if (j.verdict === 'not_booted') throw new VerificationError('not_booted', `the machine did not boot (${j.failure}): ${j.reason}`);
    if (j.verdict === 'inconclusive') throw new VerificationError(vm.inconclusive === 'error' ? 'timeout' : 'boot_inconclusive', `the boot is inconclusive: ${j.reason}`);
  }

  /**
   * One boot of the restored image under `plan.accel`, recorded in `attempts`. `fault`: the
   * accelerator failed (QEMU's words: from its stderr when it would not start or stopped, from its
   * run state when it paused the vCPU); the judgement is then no verdict on the backup.
   * `slowEmulation`: under TCG, the guest kernel panicked in a check that slow emulation fails
   * (accel-faults.ts, emulationPanicIn); `fault` then holds the kernel's line.
   */
  private async boot(ctx: RestoreContext<'vm'>, plan: MachinePlan): Promise<{ fault?: string; slowEmulation?: true; exit?: ExecResult; shutdown: boolean }> {
    const vm = ctx.policy.vm;
    const { sandbox, signal } = ctx;
    const startedAt = performance.now();
    const startedIso = new Date().toISOString();
    const record = (outcome: BootAttempt['outcome'], said: string): void => {
      this.attempts.push({ accel: plan.accel, stage: 'boot', outcome, said: said.slice(0, 400), startedAt: startedIso, durationMs: Math.round(performance.now() - startedAt) });
    };
    // QEMU runs in an exec of its own, for as long as the boot lasts: its exit code and stderr
    // tell a crash of QEMU (an error of the verification) from a guest that reset or powered off.
    let exit: ExecResult | undefined;
    const exited = sandbox.exec(qemuArgv(plan), { user: this.qemuUser, signal, maxOutputBytes: 8 * 1024 }).then(
      (r) => {
        exit = r;
      },
      () => undefined,
    );
    let qmp: QmpClient;
    try {
      await this.waitForSocket(sandbox, signal, () => exit);
      qmp = await QmpClient.connect(sandbox, VM_PATHS.qmp, this.qemuUser, signal);
    } catch (err) {
      // QEMU opens its QMP socket before it sets up the accelerator: a KVM that will not
      // initialize ends QEMU before or just after the socket appears. Its stderr tells.
      await Promise.race([exited, sleep(5_000, undefined, { signal })]);
      const said = exit ? accelFaultInStderr(exit.stderr) : undefined;
      if (said && plan.accel === 'kvm') {
        record('accel_fault', said);
        return { fault: said, ...(exit ? { exit } : {}), shutdown: false };
      }
      throw err;
    }
    try {
      ctx.logger.info(`booting the ${this.disk?.format} image (${plan.firmware}, ${plan.machine}, ${plan.bus}, ${plan.accel}); judging within ${formatAge(vm.bootTimeoutMs)}`);
      this.judgement = await new BootWatcher({ qmp, sandbox, user: this.qemuUser, vm, signal, logger: ctx.logger, startedAt }).watch();
    } finally {
      await qmp.execute('quit', undefined, 10_000).catch(() => undefined);
      await qmp.close();
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    }
    await this.checkDiskUnchanged(sandbox, signal);
    const j = this.judgement;
    const shutdown = qmp.events.some((e) => e.event === 'SHUTDOWN');
    // QEMU's stderr names a KVM fault whether it paused the vCPU (the watcher saw internal-error)
    // or exited: either way the screen and serial port say nothing about the backup.
    const stderrSaid = exit ? accelFaultInStderr(exit.stderr) : undefined;
    const fault = j.accelFault ? (stderrSaid ? `${stderrSaid}; ${j.accelFault}` : j.accelFault) : stderrSaid && j.verdict !== 'booted' && !shutdown ? stderrSaid : undefined;
    if (fault) {
      record('accel_fault', fault);
      return { fault, ...(exit ? { exit } : {}), shutdown };
    }
    const panic = plan.accel === 'tcg' && j.verdict === 'not_booted' && j.failure === 'kernel_panic' ? emulationPanicIn(`${j.reason}\n${j.serial}`) : undefined;
    if (panic) {
      const said = `the guest kernel's timer check failed under software emulation: "${panic}"`;
      record('accel_fault', said);
      return { fault: said, slowEmulation: true, ...(exit ? { exit } : {}), shutdown };
    }
    record(j.verdict, j.reason);
    return { ...(exit ? { exit } : {}), shutdown };
  }

  /** One more boot under `this.plan`, from a fresh overlay and a fresh QEMU: nothing of the last boot is judged. */
  private async bootAgain(ctx: RestoreContext<'vm'>): ReturnType<VmRestorer['boot']> {
    this.judgement = undefined;
    await this.freshMachineFiles(ctx.sandbox, ctx.signal);
    return this.boot(ctx, this.plan!);
  }

  /** A fresh qcow2 overlay over the restored image (and a fresh UEFI variable store): no write of an earlier boot remains. */
  private async freshMachineFiles(sandbox: Sandbox, signal: AbortSignal): Promise<void> {
    const plan = this.plan!;
    await this.run(sandbox, ['rm', '-f', VM_PATHS.overlay, VM_PATHS.vars, VM_PATHS.serial, VM_PATHS.screenshot, VM_PATHS.qmp], this.qemuUser, signal, 'could not remove the files of the earlier boot');
    await this.run(sandbox, ['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', plan.qemuFormat, '-b', VM_PATHS.disk, VM_PATHS.overlay], this.qemuUser, signal, 'could not create the overlay for guest writes');
    if (plan.firmware === 'uefi') {
      const pair = await this.ovmf(sandbox, signal);
      await this.run(sandbox, ['cp', pair.vars, VM_PATHS.vars], this.qemuUser, signal, 'could not copy the UEFI variable store');
    }
  }

  async inspect(): Promise<Inspection> {
    const j = this.judgement;
    const summary: Record<string, string | number> = {};
    if (this.disk) Object.assign(summary, { diskFormat: this.disk.format, virtualSize: this.disk.virtualSize });
    if (this.plan) Object.assign(summary, { firmware: this.plan.firmware, accel: this.plan.accel });
    if (j) Object.assign(summary, { boot: j.verdict, bootMs: j.bootMs, milestones: j.milestones.map((m) => m.name).join(', ') });
    return { summary, reasons: [] };
  }

  async probe(ctx: RestoreContext<'vm'>): Promise<ProbeResult[]> {
    const { expect } = ctx.policy.vm;
    const j = this.judgement;
    const results: ProbeResult[] = [];
    const check = (name: string, type: string, pattern: string, text: string): void => {
      const started = performance.now();
      const m = new RegExp(pattern, 'im').exec(text);
      results.push({
        name,
        type,
        expected: `matches /${pattern}/`,
        actual: m ? `"${m[0].slice(0, 120)}"` : text.trim() ? `no match in ${text.length} characters; last line "${text.trim().split('\n').at(-1)?.slice(0, 120)}"` : 'no text',
        pass: Boolean(m),
        durationMs: Math.round(performance.now() - started),
      });
    };
    if (expect.screen !== undefined) check('screen text', 'screen', expect.screen, j?.screenText ?? '');
    if (expect.serial !== undefined) check('serial log', 'serial', expect.serial, j?.serial ?? '');
    return results;
  }

  async logTail(): Promise<string> {
    const serial = this.judgement?.serial.trim().split('\n').slice(-40).join('\n') ?? '';
    return [...this.notes, serial ? `serial:\n${serial}` : ''].filter(Boolean).join('\n').slice(-4000);
  }

  evidence(): { boot?: BootRecord; artifacts: RunArtifact[] } {
    const j = this.judgement;
    if (!j || !this.disk || !this.plan || !this.layout || !this.firmware) return { artifacts: [] };
    const artifacts: RunArtifact[] = [];
    const boot: BootRecord = {
      verdict: j.verdict,
      reason: j.reason,
      ...(j.failure ? { failure: j.failure } : {}),
      bootMs: j.bootMs,
      accel: this.plan.accel,
      accelWhy: this.accelWhy,
      firmware: this.plan.firmware,
      firmwareWhy: this.firmware.why,
      machine: this.plan.machine,
      bus: this.plan.bus,
      diskFormat: this.disk.format,
      virtualSize: this.disk.virtualSize,
      partitionTable: this.layout.table,
      qemuVersion: this.qemuVersion,
      milestones: j.milestones,
      screenshots: j.screenshots,
      ...(j.screenText ? { screenText: j.screenText.slice(-4000) } : {}),
      ...(j.screenTextSource ? { screenTextSource: j.screenTextSource } : {}),
      ...(j.serial ? { serialTail: j.serial.slice(-4000) } : {}),
      ...(this.diskUnchanged !== undefined ? { diskUnchanged: this.diskUnchanged } : {}),
      ...(this.attempts.some((a) => a.outcome === 'accel_fault' || a.stage === 'probe') ? { attempts: this.attempts } : {}),
    };
    if (j.lastFrame) {
      const png = j.lastFrame.png;
      boot.screenshot = { name: SCREENSHOT, mediaType: 'image/png', sha256: createHash('sha256').update(png).digest('hex'), bytes: png.length, width: j.lastFrame.width, height: j.lastFrame.height };
      artifacts.push({ name: SCREENSHOT, mediaType: 'image/png', bytes: png });
    }
    return { boot, artifacts };
  }

  /** Until QEMU's QMP socket exists; QEMU exiting first is a failed start. */
  private async waitForSocket(sandbox: Sandbox, signal: AbortSignal, exit: () => ExecResult | undefined): Promise<void> {
    const deadline = Date.now() + QEMU_START_TIMEOUT_MS;
    for (;;) {
      const gone = exit();
      if (gone) {
        const words = lastLines(gone.stderr || gone.stdout, 3);
        const hint = /kvm/i.test(words) ? '; set vm.accel: tcg to boot without KVM' : /memory|allocate/i.test(words) ? '; lower vm.memory or raise sandbox.memory' : '';
        throw new VerificationError('sandbox_failed', `QEMU did not start (exit ${gone.exitCode}): ${words || 'no output'}${hint}`);
      }
      const there = await sandbox.exec(['test', '-S', VM_PATHS.qmp], { user: this.qemuUser, signal });
      if (there.exitCode === 0) return;
      if (Date.now() > deadline) throw new VerificationError('sandbox_failed', `QEMU did not open its QMP socket within ${QEMU_START_TIMEOUT_MS / 1000} s`);
      await sleep(100, undefined, { signal });
    }
  }

  /** The image read again after the boot: the guest's writes went to the overlay, never to it. */
  private async checkDiskUnchanged(sandbox: Sandbox, signal: AbortSignal): Promise<void> {
    if (!this.diskSha256) return;
    const sum = await sandbox.exec(['sha256sum', VM_PATHS.disk], { user: DISK_OWNER, signal });
    if (sum.exitCode !== 0) {
      this.notes.push(`sha256sum of the disk image after the boot failed: ${lastLines(sum.stderr, 1)}`);
      return;
    }
    this.diskUnchanged = sum.stdout.split(/\s/)[0] === this.diskSha256;
  }

  /** The OVMF code and variable files the image has, as a matching pair. */
  private async ovmf(sandbox: Sandbox, signal: AbortSignal): Promise<{ code: string; vars: string }> {
    for (let i = 0; i < OVMF_CODE.length; i++) {
      const code = OVMF_CODE[i]!;
      const vars = OVMF_VARS[i]!;
      const found = await sandbox.exec(['test', '-f', code, '-a', '-f', vars], { signal });
      if (found.exitCode === 0) return { code, vars };
    }
    throw new VerificationError('sandbox_failed', `image ${sandbox.image} has no OVMF firmware (${OVMF_CODE.join(' or ')}); rebuild it: backproof images build qemu`);
  }

  private async run(sandbox: Sandbox, argv: string[], user: string, signal: AbortSignal, what: string): Promise<ExecResult> {
    const r = await sandbox.exec(argv, { user, signal });
    if (r.exitCode !== 0) throw failure('sandbox_failed', what, r);
    return r;
  }
}

function failure(code: 'sandbox_failed' | 'unrecognized_format', what: string, r: ExecResult): VerificationError {
  const words = lastLines(`${r.stderr}\n${r.stdout}`, 2);
  return new VerificationError(code, `${what}${words ? `: ${words}` : ` (exit ${r.exitCode})`}`);
}

/** sha256 and byte count of the plain image on its way into the sandbox; stops past vm.maxDisk. */
class DiskCounter extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  sha256: string | undefined;

  constructor(private readonly max: number) {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.max) {
      // exec() throws this stream's error: the run fails with it.
      cb(new VerificationError('archive_limit', `the disk image expands beyond vm.maxDisk (${formatBytes(this.max)}); raise vm.maxDisk if it is really that large`));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.sha256 = this.hash.digest('hex');
    cb();
  }
}
