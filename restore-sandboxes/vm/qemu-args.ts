import type { VmKindConfig } from '../../orchestrator/core/config-types.js';

/** Where kind vm keeps its files inside the sandbox (the per-run volume). */
export const VM_PATHS = {
  /** The backup as restored: written once by another user, mode 0444; QEMU only reads it. */
  disk: '/restore/disk.img',
  run: '/restore/run',
  overlay: '/restore/run/overlay.qcow2',
  serial: '/restore/run/serial.log',
  qmp: '/restore/run/qmp.sock',
  screenshot: '/restore/run/screen.png',
  sercon: '/restore/run/sercon-port',
  vars: '/restore/run/efi-vars.fd',
  head: '/restore/run/head.bin',
} as const;

/** OVMF firmware files in Debian's ovmf package (bookworm ships the 4M builds). */
export const OVMF_CODE = ['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_CODE.fd'];
export const OVMF_VARS = ['/usr/share/OVMF/OVMF_VARS_4M.fd', '/usr/share/OVMF/OVMF_VARS.fd'];

export interface MachinePlan {
  accel: 'kvm' | 'tcg';
  firmware: 'bios' | 'uefi';
  machine: 'pc' | 'q35';
  bus: 'ide' | 'sata' | 'virtio' | 'scsi';
  qemuFormat: string;
  memoryMiB: number;
  cpus: number;
  /** The OVMF code file found in the image (uefi only). */
  ovmfCode?: string;
}

/** The machine: what the policy says, else what the firmware suits. */
export function planMachine(vm: VmKindConfig, firmware: 'bios' | 'uefi', accel: 'kvm' | 'tcg', qemuFormat: string): MachinePlan {
  const machine = vm.machine !== 'auto' ? vm.machine : firmware === 'uefi' ? 'q35' : 'pc';
  const bus = vm.bus !== 'auto' ? vm.bus : machine === 'q35' ? 'sata' : 'ide';
  return { accel, firmware, machine, bus, qemuFormat, memoryMiB: Math.max(64, Math.floor(vm.memoryBytes / 1024 ** 2)), cpus: vm.cpus };
}

/**
 * QEMU's command line. No default devices, no NIC, no USB, no audio; no reboot (a guest that
 * resets ends QEMU, which the watcher reports); the serial port to a file; QMP on a unix socket;
 * the disk through a throw-away qcow2 overlay whose backing file QEMU opens read-only; boot
 * only from that disk; pvpanic, so a guest kernel's panic is an event; QEMU's own seccomp
 * sandbox on top of the container's.
 */
export function qemuArgv(plan: MachinePlan): string[] {
  const drive = `file=${VM_PATHS.overlay},format=qcow2,if=none,id=d0,cache=unsafe,discard=ignore`;
  const disk: string[] = (() => {
    switch (plan.bus) {
      case 'ide':
        return ['-device', 'ide-hd,bus=ide.0,drive=d0,bootindex=0'];
      case 'sata':
        return plan.machine === 'q35' ? ['-device', 'ide-hd,bus=ide.0,drive=d0,bootindex=0'] : ['-device', 'ahci,id=ahci0', '-device', 'ide-hd,bus=ahci0.0,drive=d0,bootindex=0'];
      case 'virtio':
        return ['-device', 'virtio-blk-pci,drive=d0,bootindex=0'];
      case 'scsi':
        return ['-device', 'virtio-scsi-pci,id=scsi0', '-device', 'scsi-hd,bus=scsi0.0,drive=d0,bootindex=0'];
    }
  })();
  // arch-capabilities off: nested hypervisors advertise the MSR and then refuse to set it.
  const cpu = plan.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host,-arch-capabilities'] : ['-accel', 'tcg,thread=multi', '-cpu', 'qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16'];
  const firmware =
    plan.firmware === 'uefi'
      ? ['-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${plan.ovmfCode ?? OVMF_CODE[0]}`, '-drive', `if=pflash,format=raw,unit=1,file=${VM_PATHS.vars}`]
      : ['-fw_cfg', `name=etc/sercon-port,file=${VM_PATHS.sercon}`];
  return [
    'qemu-system-x86_64',
    '-name',
    'backproof-restore',
    '-nodefaults',
    '-no-user-config',
    '-machine',
    plan.machine,
    ...cpu,
    '-smp',
    String(plan.cpus),
    '-m',
    String(plan.memoryMiB),
    '-vga',
    'std',
    '-display',
    'none',
    '-nic',
    'none',
    '-no-reboot',
    '-device',
    'pvpanic',
    '-serial',
    `file:${VM_PATHS.serial}`,
    '-qmp',
    `unix:${VM_PATHS.qmp},server=on,wait=off`,
    ...firmware,
    '-drive',
    drive,
    ...disk,
    '-boot',
    'strict=on',
    '-sandbox',
    'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
  ];
}
