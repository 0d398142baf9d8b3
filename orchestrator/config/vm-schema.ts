import { z } from 'zod';
import { DEFAULTS } from '../core/defaults.js';
import { durationKey, identifier, regexString, size, sizeText } from './schema-helpers.js';
import type { VmKindConfig, VmPattern } from '../core/config-types.js';

const pattern = z
  .strictObject({
    name: identifier('pattern').describe('What the pattern means, e.g. citrix-logon; a failure pattern\'s name becomes the failure\'s name.'),
    pattern: regexString.describe('A JavaScript regular expression, matched case-insensitively against the screen text and the serial log.'),
  })
  .transform((value): VmPattern => value);

const expect = z
  .strictObject({
    screen: regexString.optional().describe('The final screen text must match this, e.g. the hostname: "web01 login".'),
    serial: regexString.optional().describe('The serial log must match this, e.g. "Started .*nginx".'),
  })
  .describe('Probes after the boot. Optional.');

/** kind: vm options; every key optional. */
export const vmSchema = z
  .strictObject({
    format: z
      .enum(['auto', 'raw', 'qcow2', 'vmdk', 'vhdx', 'vhd'])
      .default('auto')
      .describe('Disk image format. Default auto: read by qemu-img info inside the sandbox, never guessed by QEMU.'),
    firmware: z.enum(['auto', 'bios', 'uefi']).default('auto').describe('Default auto: UEFI (OVMF) for a GPT disk with an EFI system partition, else BIOS (SeaBIOS).'),
    machine: z.enum(['auto', 'pc', 'q35']).default('auto').describe('Default auto: pc for BIOS, q35 for UEFI.'),
    bus: z
      .enum(['auto', 'ide', 'sata', 'virtio', 'scsi'])
      .default('auto')
      .describe('Disk bus. Default auto: IDE on pc, SATA on q35 (restored VMware and Hyper-V guests may lack virtio drivers).'),
    accel: z.enum(['auto', 'kvm', 'tcg']).default('auto').describe('Default auto: KVM when the Docker host has /dev/kvm and it brings a probe boot sector to long mode, else TCG (software emulation, slower); a KVM fault during the boot boots once more under TCG. kvm: a KVM fault is an error, no retry.'),
    memory: size.optional().describe(`Guest memory. Default ${sizeText(DEFAULTS.vm.memoryBytes)}; sandbox.memory must exceed it by ${sizeText(DEFAULTS.vm.overheadBytes)}.`),
    cpus: z.number().int().min(1).max(16).default(DEFAULTS.vm.cpus).describe(`Guest CPUs. Default ${DEFAULTS.vm.cpus}.`),
    maxDisk: size.optional().describe(`A compressed image (.gz, .zst, .xz) is expanded into the sandbox up to this size. Default ${sizeText(DEFAULTS.vm.maxDiskBytes)}.`),
    os: z.enum(['any', 'linux', 'windows']).default('any').describe('Which built-in boot patterns apply. Default any (Linux and Windows).'),
    bootTimeout: durationKey('Overall limit of the boot; a machine still busy then is inconclusive.', DEFAULTS.vm.bootTimeoutMs),
    stallTimeout: durationKey('not_booted when the screen and the serial port stay unchanged this long.', DEFAULTS.vm.stallTimeoutMs),
    screenshotEvery: durationKey('How often the screen is captured.', DEFAULTS.vm.screenshotEveryMs),
    ocr: z.boolean().default(true).describe('Read graphics-mode screens with OCR (tesseract, in the sandbox). Default true.'),
    bootedPatterns: z.array(pattern).default([]).describe('Further patterns that mean the machine booted (a logon screen the defaults do not know).'),
    failurePatterns: z.array(pattern).default([]).describe('Further patterns that mean it did not boot.'),
    inconclusive: z.enum(['fail', 'error']).default('fail').describe('A boot still busy at bootTimeout: fail (default) or error (an error of the verification, paging the MSP rather than the client).'),
    expect: expect.prefault({}),
  })
  .transform(({ memory, maxDisk, bootTimeout, stallTimeout, screenshotEvery, expect, ...rest }): VmKindConfig => ({
    ...rest,
    memoryBytes: memory ?? DEFAULTS.vm.memoryBytes,
    maxDiskBytes: maxDisk ?? DEFAULTS.vm.maxDiskBytes,
    bootTimeoutMs: bootTimeout ?? DEFAULTS.vm.bootTimeoutMs,
    stallTimeoutMs: stallTimeout ?? DEFAULTS.vm.stallTimeoutMs,
    screenshotEveryMs: Math.max(500, screenshotEvery ?? DEFAULTS.vm.screenshotEveryMs),
    expect: { ...(expect.screen !== undefined ? { screen: expect.screen } : {}), ...(expect.serial !== undefined ? { serial: expect.serial } : {}) },
  }))
  .describe('Options for kind: vm (raw, qcow2, vmdk, vhdx or VHD disk images, optionally .gz/.zst/.xz): the machine is booted in QEMU inside the sandbox. All keys optional.');
