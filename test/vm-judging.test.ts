import { PNG } from 'pngjs';
import t from 'tap';
import { parseConfigText } from '../orchestrator/config/load.js';
import { VerificationError } from '../orchestrator/core/errors.js';
import { cleanConsoleText, firstMatch, patternsFor } from '../restore-sandboxes/vm/boot-patterns.js';
import { chooseFirmware, judgeImageCheck, judgeImageInfo, readLayout } from '../restore-sandboxes/vm/disk-image.js';
import { planMachine, qemuArgv } from '../restore-sandboxes/vm/qemu-args.js';
import { decodeFrame, screenChanged, textFromXp, textModeGeometry } from '../restore-sandboxes/vm/screen.js';

// The parts of kind vm that judge bytes and text, without QEMU: partition tables, qemu-img's
// answers, what screens and serial consoles of machines that boot or fail say (Linux and
// Windows, as VGA text or as OCR reads it), and the screen comparison. test/vm-boot.test.ts
// boots real machines.

const vmPolicy = (vm: string) =>
  parseConfigText(
    `clients:
  - name: acme
    policies:
      - name: dc01
        kind: vm
        source: { driver: local, path: /tmp }
        sandbox: { memory: 3g }
        vm: ${vm}
`,
    '/tmp/backproof.yaml',
    {},
  ).policies[0]!;

const defaults = patternsFor(vmPolicy('{}').vm!);
const verdictOf = (text: string): string => firstMatch(defaults.failures, [text])?.pattern.name ?? (firstMatch(defaults.booted, [text]) ? 'booted' : 'none');

t.test('screens and consoles of machines that booted', async (t) => {
  for (const text of [
    'Debian GNU/Linux 12 web01 tty1\n\nweb01 login: ',
    'Ubuntu 22.04.3 LTS db01 ttyS0\n\ndb01 login:',
    'CentOS Stream 9\nKernel 5.14.0 on an x86_64\n\nlocalhost login: _',
    'Debian GNU/Linux 12 backproof-guest ttyl\n\nbackproof-guest logim:', // OCR's slips
    'Press Ctrl + Alt + Delete to sign in.',
    'Press CTRL+ALT+DEL to log on',
    '10:42\nMonday, November 28',
    'Other user\nSign-in options',
  ]) {
    t.equal(verdictOf(text), 'booted', text.split('\n').at(-1)!);
  }
});

t.test('named failures, most specific first', async (t) => {
  const cases: Array<[string, string]> = [
    ['SeaBIOS (version 1.16.2)\nBooting from Hard Disk...\nBoot failed: not a bootable disk\n\nNo bootable device.', 'no_bootable_device'],
    ['BdsDxe: No bootable option or device was found.', 'no_bootable_device'],
    ['Missing operating system', 'no_bootable_device'],
    ['Reboot and Select proper Boot device\nor Insert Boot Media in selected Boot device and press a key', 'no_bootable_device'],
    ['UEFI Interactive Shell v2.2\nEDK II\nMapping table\nShell> ', 'uefi_shell'],
    ['Welcome to GRUB!\n\nerror: unknown filesystem.\nEntering rescue mode...\ngrub rescue> ', 'grub_rescue'],
    ['Gave up waiting for root file system device.  Common problems:\nALERT!  UUID=1234 does not exist.  Dropping to a shell!\n(initramfs) ', 'root_not_found'],
    ['[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)', 'root_not_found'],
    ['[    3.4] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009', 'kernel_panic'],
    ['You are in emergency mode. After logging in, type "journalctl -xb" to view system logs', 'emergency_shell'],
    ['Give root password for maintenance\n(or press Control-D to continue):', 'emergency_shell'],
    ['Your PC ran into a problem and needs to restart.\nStop code: INACCESSIBLE_BOOT_DEVICE', 'windows_stop'],
    ['A problem has been detected and Windows has been shut down to prevent damage\n*** STOP: 0x0000007B (0xFFFFF880009A97E8,0xFFFFFFFFC0000034,0x0,0x0)', 'windows_stop'],
    ['Preparing Automatic Repair', 'windows_stop'],
    ['Windows Boot Manager\nWindows failed to start. A recent hardware or software change might be the cause.\nStatus: 0xc000000e', 'windows_stop'],
    ['BOOTMGR is missing\nPress Ctrl+Alt+Del to restart', 'windows_stop'],
  ];
  for (const [text, name] of cases) t.equal(verdictOf(text), name, text.split('\n')[0]!);
  t.equal(verdictOf('[  OK  ] Reached target multi-user.target'), 'none', 'boot progress is neither');
  t.equal(verdictOf('Loading Linux 6.1.0-13-amd64 ...\nLoading initial ramdisk ...'), 'none');
});

t.test('vm.os narrows the defaults; a policy\'s own patterns come first', async (t) => {
  const linux = patternsFor(vmPolicy('{ os: linux }').vm!);
  t.notOk(firstMatch(linux.failures, ['Your PC ran into a problem']), 'no Windows patterns for os: linux');
  const own = patternsFor(vmPolicy('{ bootedPatterns: [{ name: kiosk, pattern: "KIOSK READY" }], failurePatterns: [{ name: license, pattern: "license expired" }] }').vm!);
  t.equal(firstMatch(own.booted, ['== kiosk ready ==']!)?.pattern.name, 'kiosk', 'case-insensitive');
  t.equal(firstMatch(own.failures, ['Your license expired\nPress Ctrl+Alt+Del'])?.pattern.name, 'license');
});

t.test('serial console text loses escapes and carriage returns', async (t) => {
  t.equal(cleanConsoleText('\x1b[0;32m  OK  \x1b[0m] Started\r\nx\x1b(B\x1b[?25l'), '  OK  ] Started\nx');
});

t.test('partition tables pick the firmware', async (t) => {
  const mbr = Buffer.alloc(34 * 512);
  mbr.fill(0x90, 0, 440);
  mbr[446 + 4] = 0x83;
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  t.same(chooseFirmware(readLayout(mbr), 'auto'), { firmware: 'bios', why: 'an MBR partition table' });

  const gpt = Buffer.alloc(34 * 512);
  gpt[446 + 4] = 0xee;
  gpt[510] = 0x55;
  gpt[511] = 0xaa;
  gpt.write('EFI PART', 512, 'latin1');
  gpt.writeBigUInt64LE(2n, 512 + 72);
  gpt.writeUInt32LE(128, 512 + 80);
  gpt.writeUInt32LE(128, 512 + 84);
  Buffer.from('28732ac11ff8d211ba4b00a0c93ec93b', 'hex').copy(gpt, 1024); // the EFI system partition's type
  const layout = readLayout(gpt);
  t.equal(layout.table, 'gpt');
  t.equal(layout.esp, true);
  t.same(chooseFirmware(layout, 'auto'), { firmware: 'uefi', why: 'a GPT disk with an EFI system partition' });
  Buffer.from('4861682149646f6e744e656564454649', 'hex').copy(gpt, 1024); // a BIOS boot partition instead
  t.match(chooseFirmware(readLayout(gpt), 'auto'), { firmware: 'bios', why: /BIOS boot partition/ });

  t.same(readLayout(Buffer.alloc(34 * 512)), { table: 'none', esp: false, biosBoot: false, bootCode: false }, 'all zeros');
  t.match(chooseFirmware(readLayout(Buffer.alloc(512)), 'uefi'), { firmware: 'uefi', why: /policy/ });
});

t.test("qemu-img's answers", async (t) => {
  const info = (o: object): string => JSON.stringify({ 'virtual-size': 1 << 30, ...o });
  t.match(judgeImageInfo(info({ format: 'vpc' }), '/d', 'auto'), { format: 'vhd', qemuFormat: 'vpc' });
  t.match(judgeImageInfo(info({ format: 'vmdk', 'format-specific': { type: 'vmdk', data: { 'create-type': 'streamOptimized', extents: [{ filename: '/d' }] } } }), '/d', 'auto'), {
    format: 'vmdk',
    facts: { createType: 'streamOptimized' },
  });
  const refuses = (json: string, code: string, message: RegExp, configured: 'auto' | 'raw' = 'auto'): void => {
    let thrown: unknown;
    try {
      judgeImageInfo(json, '/d', configured);
    } catch (err) {
      thrown = err;
    }
    t.ok(thrown instanceof VerificationError, message.source);
    t.match(thrown, { reason: code, message }, message.source);
  };
  refuses(info({ format: 'qcow2', 'backing-filename': '/etc/shadow' }), 'unsafe_archive', /backing file \(\/etc\/shadow\)/);
  refuses(info({ format: 'vmdk', 'format-specific': { data: { extents: [{ filename: '/d' }, { filename: '/srv/disk-flat.vmdk' }] } } }), 'unsafe_archive', /extents in other files/);
  refuses(info({ format: 'qcow2', 'format-specific': { data: { corrupt: true } } }), 'restore_failed', /marked corrupt/);
  refuses(info({ format: 'luks' }), 'unrecognized_format', /luks/);
  refuses(info({ format: 'qcow2' }), 'unrecognized_format', /vm.format: raw/, 'raw');
  refuses(JSON.stringify({ format: 'raw', 'virtual-size': 0 }), 'empty_backup', /0 bytes/);
  t.equal(judgeImageCheck(0, '{}', '', 'qcow2'), 'clean');
  t.equal(judgeImageCheck(63, '', '', 'vhd'), undefined, 'no check for this format');
  t.throws(() => judgeImageCheck(2, '{"corruptions": 3}', 'ERROR cluster 5 refcount=0', 'qcow2'), /corrupt \(3 corruptions\)/);
});

t.test('the QEMU command line', async (t) => {
  const vm = vmPolicy('{ memory: 2g, cpus: 1 }').vm!;
  const bios = qemuArgv(planMachine(vm, 'bios', 'tcg', 'raw')).join(' ');
  t.match(bios, /-nodefaults .*-nic none .*-no-reboot/);
  t.match(bios, /-machine pc .*-accel tcg/);
  t.match(bios, /-m 2048/);
  t.match(bios, /-device ide-hd,bus=ide\.0,drive=d0,bootindex=0/);
  t.match(bios, /-boot strict=on/);
  t.notMatch(bios, /pflash/);
  const uefi = qemuArgv({ ...planMachine(vm, 'uefi', 'kvm', 'vpc'), ovmfCode: '/usr/share/OVMF/OVMF_CODE_4M.fd' }).join(' ');
  t.match(uefi, /-machine q35 .*-accel kvm -cpu host/);
  t.match(uefi, /if=pflash,format=raw,unit=0,readonly=on,file=\/usr\/share\/OVMF\/OVMF_CODE_4M\.fd/);
  const virtio = qemuArgv(planMachine(vmPolicy('{ bus: virtio }').vm!, 'bios', 'tcg', 'raw')).join(' ');
  t.match(virtio, /virtio-blk-pci,drive=d0/);
});

t.test('screens: VGA text memory and pixel comparison', async (t) => {
  const cells = [...'web01 login: '].flatMap((c) => [c.charCodeAt(0), 0x07]);
  const xp = `00000000000b8000: ${cells.map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(' ')}\n`;
  t.equal(textFromXp(xp, 80, 25), 'web01 login:');
  t.same(textModeGeometry({ width: 720, height: 400 }), { cols: 80, rows: 25 });
  t.equal(textModeGeometry({ width: 1024, height: 768 }), undefined);
  const frame = (paint: (x: number, y: number) => number) => {
    const png = new PNG({ width: 100, height: 100 });
    for (let i = 0; i < 100 * 100; i++) png.data.fill(paint(i % 100, Math.floor(i / 100)), i * 4, i * 4 + 3).writeUInt8(255, i * 4 + 3);
    return decodeFrame(PNG.sync.write(png));
  };
  const a = frame(() => 0);
  const cursor = frame((x, y) => (x < 4 && y < 8 ? 255 : 0));
  const prompt = frame((x, y) => (y >= 50 && y < 52 && x >= 10 && x < 60 && x % 3 === 0 ? 255 : 0));
  t.notOk(screenChanged(a, cursor), 'a blinking cursor is not a change');
  t.ok(screenChanged(a, prompt), 'a new line of text is, however few its pixels (0.3% here)');
  t.ok(screenChanged(undefined, a));
  t.notOk(screenChanged(a, frame(() => 0)));
});

t.test('config: vm options are checked with the key path and a fix', async (t) => {
  t.throws(
    () => parseConfigText('clients:\n  - name: a\n    policies:\n      - name: p\n        kind: vm\n        source: { driver: local, path: /tmp }\n        vm: { memory: 2g }\n', '/tmp/x.yaml', {}),
    /sandbox\.memory.*no room for QEMU.*at least 2560m|sandbox.memory/s,
  );
  t.throws(() => vmPolicy('{ format: iso }'), /vm\.format/);
  t.throws(() => vmPolicy('{ bootedPatterns: [{ name: x, pattern: "(" }] }'), /not a valid regular expression/);
  t.throws(() => parseConfigText('clients:\n  - name: a\n    policies:\n      - name: p\n        kind: files\n        source: { driver: local, path: /tmp }\n        vm: {}\n', '/tmp/x.yaml', {}), /vm applies only to kind: vm/);
  const p = vmPolicy('{}');
  t.match(p.vm, { format: 'auto', accel: 'auto', memoryBytes: 1024 ** 3, bootTimeoutMs: 600_000, stallTimeoutMs: 120_000, inconclusive: 'fail' });
});
