import type { BootAttempt, BootRecord, BootVerdict } from '../orchestrator/core/domain.js';
import { formatBytes, formatSeconds } from '../orchestrator/core/format.js';

/**
 * The words every view of a boot (kind vm) shares: the terminal (run-summary.ts), the dashboard
 * (orchestrator/web/boot-section.ts) and the monthly report, so that all three say the same.
 */

export const BOOT_VERDICT_LABEL: Record<BootVerdict, string> = { booted: 'booted', not_booted: 'NOT BOOTED', inconclusive: 'inconclusive' };

/** The artifact name a vm run keeps its last screenshot under (BootRecord.screenshot.name). */
export const SCREENSHOT_ARTIFACT = 'screenshot.png';

/** "booted in 41.2s", "NOT BOOTED after 2m00s". */
export function bootOutcome(verdict: BootVerdict, bootMs: number): string {
  return `${BOOT_VERDICT_LABEL[verdict]} ${verdict === 'booted' ? 'in' : 'after'} ${formatSeconds(bootMs)}`;
}

/** "tcg (/dev/kvm exists but is slower than emulation here ...)": the accelerator and why. */
export function accelText(boot: Pick<BootRecord, 'accel' | 'accelWhy'>): string {
  if (boot.accelWhy) return `${boot.accel} (${boot.accelWhy})`;
  return boot.accel === 'kvm' ? 'kvm (hardware virtualization)' : 'tcg (software emulation, no KVM: slower)';
}

/**
 * One accelerator attempt (BootRecord.attempts): "kvm probe: accelerator fault after 0.4s: QEMU
 * said ...", "tcg boot: booted in 61.0s: a login prompt ...".
 */
export function attemptText(a: BootAttempt): string {
  // A fault QEMU reported is in its words; a guest kernel's panic that slow emulation caused says so itself.
  const said = a.said.startsWith('the guest kernel') ? a.said : `QEMU said: ${a.said}`;
  const outcome = a.outcome === 'accel_fault' ? `accelerator fault after ${formatSeconds(a.durationMs)}: ${said}` : `${bootOutcome(a.outcome, a.durationMs)}: ${a.said}`;
  return `${a.accel} ${a.stage}: ${outcome}`;
}

/** "uefi (the disk has a GPT with an EFI system partition)". */
export function firmwareText(boot: Pick<BootRecord, 'firmware' | 'firmwareWhy'>): string {
  return boot.firmwareWhy ? `${boot.firmware} (${boot.firmwareWhy})` : boot.firmware;
}

/** "qcow2, 20.00 GiB virtual, gpt". */
export function diskText(boot: Pick<BootRecord, 'diskFormat' | 'virtualSize' | 'partitionTable'>): string {
  return `${boot.diskFormat}, ${formatBytes(boot.virtualSize)} virtual, ${boot.partitionTable === 'none' ? 'no partition table' : `${boot.partitionTable} partition table`}`;
}

/** "QEMU 8.2.2 (Debian ...)", whether or not the recorded version starts with the name. */
export function qemuText(version: string): string {
  return /^qemu\b/i.test(version) ? version : `QEMU ${version}`;
}

export function diskUnchangedText(unchanged: boolean | undefined): string {
  if (unchanged === undefined) return 'not checked';
  return unchanged ? 'yes: its sha256 read again after the boot equals the one streamed from storage' : 'NO: its sha256 after the boot differs from the one streamed from storage';
}

/** "1024x768 PNG, 23.1 KiB". */
export function screenshotText(shot: NonNullable<BootRecord['screenshot']>): string {
  const size = shot.width !== undefined && shot.height !== undefined ? `${shot.width}x${shot.height} ` : '';
  const type = shot.mediaType === 'image/png' ? 'PNG' : shot.mediaType;
  return `${size}${type}, ${formatBytes(shot.bytes)}`;
}

/** The command that saves a run's screenshot to a file. */
export function screenshotCommand(runId: string): string {
  return `backproof runs show ${runId.slice(0, 8)} --screenshot FILE.png`;
}
