/**
 * Benchmark: boot time of kind vm per disk format and per case, against a baseline run in the
 * same script: the same QEMU, flags and image in a bare container of the same image, timed
 * until the guest's serial console prints its login prompt, with nothing watching. The ratio of
 * backproof's boot (QEMU start to the `booted` verdict) to the bare boot is what the watcher
 * (screenshots every 2 s, VGA text or OCR, serial reads) costs the guest; the whole run adds the
 * transfer of the image into the sandbox, qemu-img's checks and the hash read-back.
 *
 *   node --import tsx bench/vm-boot.ts [--cases good.raw,good.qcow2,...] [--accel tcg|kvm]
 *
 * The images are the tests' (scripts/build-test-vm-images.sh, cached).
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { driverFor, restorerFor } from '../orchestrator/cli/plugins.js';
import { DEFAULTS } from '../orchestrator/core/defaults.js';
import { RunStore } from '../orchestrator/evidence/run-store.js';
import { runPolicy } from '../orchestrator/runner/run-policy.js';
import { DockerRuntime } from '../restore-sandboxes/docker/docker-runtime.js';
import { policyFromYaml, quietLogger, tempDir } from '../test/helpers/harness.js';
import { testVmImages } from '../test/helpers/vm-images.js';

const sh = promisify(execFile);
const progress = (msg: string): boolean => process.stderr.write(`[bench] ${msg}\n`);
const ALL = 'good.raw,good.qcow2,good.vmdk,good.vhdx,good.vhd,good.raw.zst,good-uefi.raw,zeroed-mbr.raw,zeroed-superblock.raw,wrong-root.raw';
const { values } = parseArgs({ options: { cases: { type: 'string', default: ALL }, accel: { type: 'string', default: 'tcg' } } });
const accel = values.accel === 'kvm' ? 'kvm' : 'tcg';

const images = await testVmImages();
const store = await RunStore.open({ dataDir: await tempDir('bench-vm'), schema: 'backproof' });
const runtime = new DockerRuntime();

/** QEMU alone in a container, the product's flags, until `login:` on the serial port. */
async function bareBoot(file: string): Promise<number> {
  const cpu = accel === 'kvm' ? '-accel kvm -cpu host,-arch-capabilities' : '-accel tcg,thread=multi -cpu qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16';
  const script = [
    'qemu-img create -q -f qcow2 -F raw -b /in/disk /tmp/overlay.qcow2',
    `qemu-system-x86_64 -nodefaults -no-user-config -machine pc ${cpu} -smp 2 -m 1024 -vga std -display none -nic none -no-reboot -serial file:/tmp/serial.log -drive file=/tmp/overlay.qcow2,format=qcow2,if=none,id=d0,cache=unsafe -device ide-hd,bus=ide.0,drive=d0,bootindex=0 -boot strict=on & q=$!`,
    'start=$(date +%s%N)',
    'while ! grep -q "login:" /tmp/serial.log 2>/dev/null; do sleep 0.2; done',
    'echo $(( ($(date +%s%N) - start) / 1000000 ))',
    'kill $q',
  ].join('\n');
  const { stdout } = await sh('docker', [
    'run', '--rm', '--network', 'none', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', '--memory', '2g', '--cpus', '2',
    ...(accel === 'kvm' ? ['--device', '/dev/kvm', '--user', '0:0'] : ['--user', '1000:1000']),
    '--tmpfs', '/tmp:rw,size=512m,mode=1777', '-v', `${file}:/in/disk:ro`, DEFAULTS.vm.image, 'sh', '-c', script,
  ], { timeout: 15 * 60_000 });
  return Number(stdout.trim().split('\n').at(-1));
}

const rows: string[][] = [['case', 'format', 'verdict', 'boot s', 'run s', 'bare boot s', 'boot/bare', 'vs raw']];
let rawBoot: number | undefined;
let bareRaw: number | undefined;
for (const name of values.cases.split(',')) {
  const file = images.files[name];
  if (!file) throw new Error(`no test image ${name}; known: ${Object.keys(images.files).join(', ')}`);
  const folder = await tempDir('bench-vm');
  await fs.link(file, path.join(folder, name)).catch(() => fs.copyFile(file, path.join(folder, name)));
  const policy = policyFromYaml({ folder, kind: 'vm', glob: '*', rpo: '30d', sandbox: 'memory: 2g, timeout: 20m', extra: `        vm: { accel: ${accel}, memory: 1g, bootTimeout: 15m }` });
  progress(`${name}: booting through backproof`);
  const run = await runPolicy(policy, { store, runtime, driverFor, restorerFor, logger: quietLogger() });
  const boot = run.boot?.bootMs ?? Number.NaN;
  if (name === 'good.raw') rawBoot = boot;
  let bare = Number.NaN;
  if (name === 'good.raw') {
    progress(`${name}: booting bare QEMU (baseline)`);
    bare = bareRaw = await bareBoot(file);
  }
  rows.push([
    name,
    run.boot?.diskFormat ?? run.backup?.format ?? '?',
    `${run.boot?.verdict ?? run.verdict}${run.boot?.failure ? ` (${run.boot.failure})` : ''}`,
    (boot / 1000).toFixed(1),
    ((run.durationMs ?? 0) / 1000).toFixed(1),
    Number.isNaN(bare) ? '' : (bare / 1000).toFixed(1),
    Number.isNaN(bare) ? '' : `${(boot / bare).toFixed(2)}x`,
    rawBoot && run.boot?.verdict === 'booted' ? `${(boot / rawBoot).toFixed(2)}x` : '',
  ]);
  progress(`${name}: ${rows.at(-1)!.join(' | ')}`);
}
await store.close();

const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
console.log(`kind vm boot times (${accel.toUpperCase()}, 2 guest CPUs, 1 GiB; bare QEMU baseline ${bareRaw ? `${(bareRaw / 1000).toFixed(1)} s` : 'not run'})`);
for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '));
