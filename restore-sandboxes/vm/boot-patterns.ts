import type { BootMilestoneName } from '../../orchestrator/core/domain.js';
import type { VmKindConfig, VmPattern } from '../../orchestrator/core/config-types.js';

/**
 * What a booting machine's screen and serial port say, as patterns: milestones on the way, the
 * prompts that mean it booted, and the named failures that mean it did not. Screen text comes
 * from VGA text memory or OCR (which slips: "ttyl" for "tty1", "logm" for "login"), so the
 * patterns match loosely where OCR is the likely reader.
 */

export interface NamedPattern {
  name: string;
  re: RegExp;
  /** Which default set it belongs to (user patterns: any). */
  os: 'linux' | 'windows' | 'any';
  /** A one-line explanation for the evidence. */
  says: string;
}

/** In the order they happen; a later milestone implies the earlier ones were passed. */
export const MILESTONES: Array<{ name: BootMilestoneName; re: RegExp }> = [
  { name: 'firmware', re: /SeaBIOS|iPXE|Booting from (Hard Disk|Floppy|DVD|ROM)|BdsDxe|TianoCore|UEFI v?\d|Machine UUID/i },
  {
    name: 'bootloader',
    re: /GNU GRUB|GRUB loading|Welcome to GRUB|Booting `|Booting a command list|Loading Linux|SYSLINUX|ISOLINUX|EXTLINUX|systemd-boot|Windows Boot Manager|Starting Windows|Windows is loading files|bootmgr/i,
  },
  { name: 'kernel', re: /Linux version \d|Loading initial ramdisk|Decompressing Linux|EFI stub:|Booting the kernel|^\s*\[\s*\d+\.\d{3,}\]|Windows is starting|Getting devices ready/im },
  { name: 'init', re: /systemd\[1\]|Welcome to (?!GRUB).{2,60}!|Reached target|\[\s*OK\s*\]|INIT: version|OpenRC|Starting .{3,80}\.\.\.|Please wait|Preparing Windows|Getting ready/i },
];

/** A login prompt or logon screen. */
export const BOOTED: NamedPattern[] = [
  { name: 'linux-login', os: 'linux', re: /(^|\s)\S{0,64}\s?log ?[il1]n ?[:;]\s*$/im, says: 'a login prompt' },
  { name: 'linux-login-ocr', os: 'linux', re: /\b(login|logln|log1n|logim)\s*[:;]/i, says: 'a login prompt' },
  { name: 'display-manager', os: 'linux', re: /\b(GNOME Display Manager|LightDM|SDDM)\b|^\s*Password\s*:\s*$/im, says: 'a graphical login' },
  { name: 'windows-ctrl-alt-del', os: 'windows', re: /Press\s+Ctrl\s*\+?\s*Alt\s*\+?\s*Del(ete)?/i, says: 'the Windows logon screen (Ctrl+Alt+Delete)' },
  { name: 'windows-sign-in', os: 'windows', re: /\bOther user\b|\bSign[- ]in options\b|\bSwitch user\b|\bLog on to\b/i, says: 'the Windows sign-in screen' },
  {
    name: 'windows-lock-screen',
    os: 'windows',
    re: /\b\d{1,2}[:.]\d{2}\b[\s\S]{0,80}\b(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b/i,
    says: 'the Windows lock screen (time and date)',
  },
];

/**
 * Named failures, most specific first: a root file system that cannot be found also ends in a
 * panic or a shell, and the root is the reason a person can act on.
 */
export const FAILURES: NamedPattern[] = [
  {
    name: 'no_bootable_device',
    os: 'any',
    re: /No bootable device|Boot failed: (not a bootable disk|could not read the boot disk)|No bootable option or device was found|Operating System not found|Missing operating system|Invalid partition table|Error loading operating system|Reboot and select proper Boot device|Non-system disk or disk error|No boot device available/i,
    says: 'the firmware found nothing to boot',
  },
  { name: 'uefi_shell', os: 'any', re: /UEFI Interactive Shell|EFI Shell version|^\s*Shell>\s*$/im, says: 'the UEFI shell: the firmware found no boot loader' },
  {
    name: 'grub_rescue',
    os: 'linux',
    re: /grub rescue>|Entering rescue mode|^\s*grub>\s*$|Minimal BASH-like line editing is supported/im,
    says: 'GRUB could not load its configuration or modules (rescue mode)',
  },
  {
    name: 'root_not_found',
    os: 'linux',
    re: /Gave up waiting for root (file system )?device|ALERT!\s+\S+ does not exist|Unable to find root|VFS: Unable to mount root fs|Cannot open root device|\/dev\/root does not exist|Failed to mount \S+ as root file ?system|mounting \S+ on \/root failed|Could not boot\.?$/im,
    says: 'the kernel started, but the root file system was not found or could not be mounted',
  },
  { name: 'kernel_panic', os: 'linux', re: /Kernel panic - not syncing|end Kernel panic/i, says: 'the kernel panicked' },
  {
    name: 'emergency_shell',
    os: 'linux',
    re: /You are in (emergency|rescue) mode|Give root password for maintenance|Cannot open access to console, the root account is locked|^\(initramfs\)\s*$|Entering emergency mode|dracut:\/#|Welcome to emergency mode/im,
    says: 'the boot stopped in an emergency or initramfs shell',
  },
  {
    name: 'windows_stop',
    os: 'windows',
    re: /Your (PC|device) ran into a problem|A problem has been detected and Windows has been shut down|STOP: 0x[0-9A-F]{8}|Stop code|INACCESSIBLE_BOOT_DEVICE|CRITICAL_PROCESS_DIED|UNMOUNTABLE_BOOT_VOLUME|Windows failed to start|Preparing Automatic Repair|Automatic Repair couldn't|needs to be repaired|BOOTMGR is (missing|compressed)|winload\.(exe|efi)|0xc000000e|0xc0000225|0xc000021a/i,
    says: 'Windows stopped (a stop screen, repair or boot manager error)',
  },
];

export interface BootPatterns {
  booted: NamedPattern[];
  failures: NamedPattern[];
}

/** The defaults for the policy's vm.os, plus its own patterns (failures first: a user's name wins). */
export function patternsFor(vm: Pick<VmKindConfig, 'os' | 'bootedPatterns' | 'failurePatterns'>): BootPatterns {
  const wanted = (p: NamedPattern): boolean => vm.os === 'any' || p.os === 'any' || p.os === vm.os;
  const own = (p: VmPattern, says: string): NamedPattern => ({ name: p.name, re: new RegExp(p.pattern, 'im'), os: 'any', says });
  return {
    booted: [...vm.bootedPatterns.map((p) => own(p, `the policy's pattern ${p.name}`)), ...BOOTED.filter(wanted)],
    failures: [...vm.failurePatterns.map((p) => own(p, `the policy's failure pattern ${p.name}`)), ...FAILURES.filter(wanted)],
  };
}

/** The first pattern matching any of the texts, with the line it matched. */
export function firstMatch(patterns: readonly NamedPattern[], texts: readonly string[]): { pattern: NamedPattern; line: string } | undefined {
  for (const pattern of patterns) {
    for (const text of texts) {
      const m = pattern.re.exec(text);
      if (m) return { pattern, line: matchedLine(text, m) };
    }
  }
  return undefined;
}

/** The whole line where a match's text starts (past the whitespace it may begin with), at most 160 characters. */
export function matchedLine(text: string, m: RegExpExecArray): string {
  return lineAround(text, m.index + (m[0].length - m[0].trimStart().length));
}

function lineAround(text: string, index: number): string {
  const start = text.lastIndexOf('\n', index) + 1;
  const end = text.indexOf('\n', index);
  const line = text.slice(start, end === -1 ? undefined : end).trim();
  return line.length > 160 ? `${line.slice(0, 159)}…` : line;
}

const ESC = String.fromCharCode(0x1b);
const CSI_SEQUENCE = new RegExp(`${ESC}\\[[0-9;?]*[ -/]*[@-~]`, 'g');
const SHORT_ESCAPE = new RegExp(`${ESC}[()][0-9A-Za-z]|${ESC}[=>c78DEHM]`, 'g');

/** Serial output as text: escape sequences and carriage returns out, printable only. */
export function cleanConsoleText(text: string): string {
  return text
    .replace(CSI_SEQUENCE, '')
    .replace(SHORT_ESCAPE, '')
    .replace(/\r\n?/g, '\n')
    .replace(/[^\n\t\x20-\x7e]/g, '');
}
