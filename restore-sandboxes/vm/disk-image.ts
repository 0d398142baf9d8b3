import type { VmDiskFormat, VmKindConfig } from '../../orchestrator/core/config-types.js';
import { VerificationError } from '../../orchestrator/core/errors.js';

/**
 * What a restored disk image is, from `qemu-img info` run inside the sandbox and from its own
 * first sectors: the format QEMU is told (never left to guess), whether it points outside itself,
 * and which firmware its partition table wants.
 */

/** Our format names and QEMU's (`vhd` is QEMU's `vpc`). */
export const QEMU_FORMAT: Record<VmDiskFormat, string> = { raw: 'raw', qcow2: 'qcow2', vmdk: 'vmdk', vhdx: 'vhdx', vhd: 'vpc' };
const FROM_QEMU: Record<string, VmDiskFormat> = Object.fromEntries(Object.entries(QEMU_FORMAT).map(([ours, qemu]) => [qemu, ours as VmDiskFormat]));

export interface DiskInfo {
  format: VmDiskFormat;
  /** QEMU's name for it, for -drive format= and -F. */
  qemuFormat: string;
  virtualSize: number;
  /** Facts for the evidence (vmdk create type, qcow2 compat, ...). */
  facts: Record<string, string>;
}

interface QemuImgInfo {
  format?: string;
  'virtual-size'?: number;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'dirty-flag'?: boolean;
  'format-specific'?: { type?: string; data?: Record<string, unknown> };
}

/**
 * Reads `qemu-img info --output=json` of `path`. An image that names a backing file, or a vmdk
 * whose extents live in other files, is refused: backproof never opens a file an image points
 * to, and a snapshot delta without its base is not a whole backup.
 */
export function judgeImageInfo(json: string, path: string, configured: VmKindConfig['format']): DiskInfo {
  let info: QemuImgInfo;
  try {
    info = JSON.parse(json) as QemuImgInfo;
  } catch {
    throw new VerificationError('sandbox_failed', `qemu-img info printed no JSON: ${json.slice(0, 200)}`);
  }
  const qemuFormat = String(info.format ?? '');
  const format = FROM_QEMU[qemuFormat];
  if (!format) {
    throw new VerificationError(
      'unrecognized_format',
      `qemu-img reads the backup as ${qemuFormat || 'nothing it knows'}, which kind vm does not boot; it boots raw, qcow2, vmdk, vhdx and vhd images`,
    );
  }
  if (configured !== 'auto' && configured !== format) {
    throw new VerificationError('unrecognized_format', `the policy says vm.format: ${configured}, but the image is ${format}`);
  }
  const backing = info['backing-filename'] ?? info['full-backing-filename'];
  if (backing) {
    throw new VerificationError(
      'unsafe_archive',
      `the ${format} image names a backing file (${printable(backing)}); backproof never opens files an image points to, and a snapshot delta without its base is not a whole backup: back up the flattened disk (qemu-img convert)`,
    );
  }
  const data = info['format-specific']?.data ?? {};
  const facts: Record<string, string> = {};
  if (format === 'vmdk') {
    const extents = Array.isArray(data.extents) ? (data.extents as Array<{ filename?: string }>) : [];
    const outside = extents.map((e) => String(e.filename ?? '')).filter((f) => f !== '' && f !== path);
    if (outside.length > 0) {
      throw new VerificationError(
        'unsafe_archive',
        `the vmdk descriptor names extents in other files (${outside.slice(0, 3).map(printable).join(', ')}); only single-file vmdk images (monolithicSparse, streamOptimized) are booted: export the disk as one file`,
      );
    }
    if (typeof data['create-type'] === 'string') facts.createType = data['create-type'];
  }
  if (format === 'qcow2') {
    if (data.corrupt === true) throw new VerificationError('restore_failed', 'the qcow2 image is marked corrupt in its header');
    if (typeof data.compat === 'string') facts.compat = data.compat;
    if (data.encrypt) throw new VerificationError('unrecognized_format', 'the qcow2 image is encrypted; backproof boots unencrypted images');
  }
  if (info['dirty-flag']) facts.dirty = 'yes: the image was not closed cleanly';
  const virtualSize = Number(info['virtual-size'] ?? 0);
  if (!(virtualSize > 0)) throw new VerificationError('empty_backup', `the ${format} image has a virtual size of 0 bytes`);
  return { format, qemuFormat, virtualSize, facts };
}

/**
 * `qemu-img check --output=json`: exit 0 clean, 3 leaked clusters only (harmless), 2 corruption,
 * 63 the format has no check, 1 the check could not run.
 */
export function judgeImageCheck(exitCode: number, stdout: string, stderr: string, format: VmDiskFormat): string | undefined {
  if (exitCode === 0) return 'clean';
  if (exitCode === 63) return undefined;
  if (exitCode === 3) return 'leaked clusters only (harmless)';
  let corruptions = 0;
  try {
    corruptions = Number((JSON.parse(stdout) as { 'corruptions'?: number }).corruptions ?? 0);
  } catch {
    // the numbers are only for the message
  }
  if (exitCode === 2) throw new VerificationError('restore_failed', `qemu-img check found the ${format} image corrupt${corruptions ? ` (${corruptions} corruptions)` : ''}: ${lastLine(stderr || stdout)}`);
  throw new VerificationError('restore_failed', `qemu-img check could not read the ${format} image (exit ${exitCode}): ${lastLine(stderr || stdout)}`);
}

export type PartitionTable = 'mbr' | 'gpt' | 'none';

export interface DiskLayout {
  table: PartitionTable;
  /** An EFI system partition (GPT type C12A7328-..., or MBR type 0xEF). */
  esp: boolean;
  /** A BIOS boot partition (GPT type 21686148-..., GRUB's core image on a GPT disk). */
  biosBoot: boolean;
  /** The MBR has boot code (not all zeros before the partition table). */
  bootCode: boolean;
}

const ESP_GUID = 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b';
const BIOS_BOOT_GUID = '21686148-6449-6e6f-744e-656564454649';
const SECTOR = 512;

/** The partition table from the disk's first 34 sectors as the guest sees them. */
export function readLayout(head: Buffer): DiskLayout {
  const layout: DiskLayout = { table: 'none', esp: false, biosBoot: false, bootCode: false };
  if (head.length < SECTOR) return layout;
  layout.bootCode = head.subarray(0, 440).some((b) => b !== 0);
  const signed = head[510] === 0x55 && head[511] === 0xaa;
  const types = signed ? [0, 1, 2, 3].map((i) => head[446 + i * 16 + 4] ?? 0) : [];
  if (head.length >= 2 * SECTOR && head.toString('latin1', SECTOR, SECTOR + 8) === 'EFI PART') {
    layout.table = 'gpt';
    const entriesLba = Number(head.readBigUInt64LE(SECTOR + 72));
    const count = head.readUInt32LE(SECTOR + 80);
    const size = head.readUInt32LE(SECTOR + 84);
    if (size >= 128 && size <= 4096) {
      for (let i = 0; i < Math.min(count, 128); i++) {
        const at = entriesLba * SECTOR + i * size;
        if (at + 16 > head.length) break;
        const guid = guidAt(head, at);
        if (guid === ESP_GUID) layout.esp = true;
        if (guid === BIOS_BOOT_GUID) layout.biosBoot = true;
      }
    }
    return layout;
  }
  if (signed && types.some((t) => t !== 0)) {
    layout.table = 'mbr';
    layout.esp = types.includes(0xef);
  }
  return layout;
}

/** The firmware a disk wants: UEFI for an EFI system partition without BIOS boot code, else BIOS. */
export function chooseFirmware(layout: DiskLayout, configured: VmKindConfig['firmware']): { firmware: 'bios' | 'uefi'; why: string } {
  if (configured !== 'auto') return { firmware: configured, why: `the policy sets vm.firmware: ${configured}` };
  if (layout.table === 'gpt') {
    if (layout.esp) return { firmware: 'uefi', why: 'a GPT disk with an EFI system partition' };
    return { firmware: 'bios', why: layout.biosBoot ? 'a GPT disk with a BIOS boot partition' : 'a GPT disk without an EFI system partition' };
  }
  if (layout.table === 'mbr') {
    if (layout.esp && !layout.bootCode) return { firmware: 'uefi', why: 'an MBR disk with an EFI system partition and no BIOS boot code' };
    return { firmware: 'bios', why: 'an MBR partition table' };
  }
  return { firmware: 'bios', why: 'no partition table found: the BIOS tries the first sector' };
}

/** A GUID as written on disk (first three fields little-endian). */
function guidAt(b: Buffer, at: number): string {
  const hex = (from: number, to: number, reverse: boolean): string => {
    const bytes = [...b.subarray(at + from, at + to)];
    return (reverse ? bytes.reverse() : bytes).map((x) => x.toString(16).padStart(2, '0')).join('');
  };
  return `${hex(0, 4, true)}-${hex(4, 6, true)}-${hex(6, 8, true)}-${hex(8, 10, false)}-${hex(10, 16, false)}`;
}

function printable(text: string): string {
  const flat = text.replace(/[^\x20-\x7e]/g, '?');
  return flat.length > 120 ? `${flat.slice(0, 119)}…` : flat;
}

function lastLine(text: string): string {
  return printable(text.trim().split('\n').filter(Boolean).at(-1) ?? '');
}
