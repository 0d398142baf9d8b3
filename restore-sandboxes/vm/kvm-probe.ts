import { Readable } from 'node:stream';
import type { Sandbox } from '../sandbox-runtime.js';
import { accelFaultInStderr } from './accel-faults.js';
import { PROBE_MARKERS, probeBootSector } from './probe-sector.js';

/** KVM must bring the probe's boot sector to long mode within this; emulation takes about a second. */
export const KVM_PROBE_LIMIT_MS = 4_000;


export interface AccelProbe {
  /** The last marker (long mode) appeared within the limit. */
  ok: boolean;
  /** The accelerator failed: QEMU's own words (stderr, or the stage it stopped at). */
  fault?: string;
  /** The markers seen, in order. */
  markers: string[];
  durationMs: number;
  /** One line for the evidence: why this accelerator is used or not. */
  why: string;
}

/**
 * Proves that an accelerator can run what a boot needs, not only firmware: QEMU boots
 * probe-sector.ts's boot sector (real mode -> protected mode -> long mode, a serial marker at
 * each) from a 64 KiB disk in the sandbox's /tmp, and passes when the long-mode marker appears
 * within `limitMs`. A nested KVM that fails in a boot loader's mode switch fails here, in a
 * second, instead of in the restored machine's boot. Run as the user QEMU runs as.
 */
export async function probeAccel(sandbox: Sandbox, user: string, signal: AbortSignal, accel: 'kvm' | 'tcg' = 'kvm', limitMs = KVM_PROBE_LIMIT_MS): Promise<AccelProbe> {
  // One folder per accelerator and user: another user's folder would not be writable.
  const DIR = `/tmp/bp-probe-${accel}-${user.replace(/[^0-9]/g, '-')}`;
  const write = await sandbox.exec(['sh', '-c', `mkdir -p ${DIR} && cat > ${DIR}/disk.img && truncate -s 64K ${DIR}/disk.img && printf '\\370\\003' > ${DIR}/sercon`], {
    user,
    signal,
    stdin: Readable.from([probeBootSector()]),
  });
  if (write.exitCode !== 0) return { ok: false, markers: [], durationMs: 0, why: `the accelerator probe could not run (writing its disk: ${write.stderr.trim().slice(0, 200)}): software emulation` };
  const last = PROBE_MARKERS.at(-1)!;
  const cpu = accel === 'kvm' ? '-accel kvm -cpu host,-arch-capabilities' : '-accel tcg -cpu qemu64';
  const script = [
    'start=$(date +%s%N)',
    `qemu-system-x86_64 -nodefaults -no-user-config -machine pc ${cpu} -m 64 -display none -nic none -no-reboot -serial file:${DIR}/serial.log -fw_cfg name=etc/sercon-port,file=${DIR}/sercon -drive file=${DIR}/disk.img,format=raw,if=ide -boot strict=on 2>${DIR}/qemu.err & q=$!`,
    `end=$(( start + ${limitMs} * 1000000 ))`,
    'while [ "$(date +%s%N)" -lt "$end" ]; do',
    `  if grep -q "${last}" ${DIR}/serial.log 2>/dev/null; then kill $q; echo "ok $(( ($(date +%s%N) - start) / 1000000 ))"; exit 0; fi`,
    '  kill -0 $q 2>/dev/null || { echo "exited $(( ($(date +%s%N) - start) / 1000000 ))"; exit 0; }',
    '  sleep 0.05',
    'done',
    `kill $q; echo "slow ${limitMs}"`,
  ].join('\n');
  const r = await sandbox.exec(['sh', '-c', script], { user, signal });
  const files = await sandbox.exec(['sh', '-c', `sleep 0.2; cat ${DIR}/serial.log; echo; echo '--- stderr'; tail -c 4000 ${DIR}/qemu.err`], { user, signal });
  const [serial = '', stderr = ''] = files.stdout.split('\n--- stderr\n');
  const markers = PROBE_MARKERS.filter((m) => serial.includes(m));
  const [how = '', msText = '0'] = r.stdout.trim().split(' ');
  const durationMs = Number(msText) || 0;
  const name = accel.toUpperCase();
  const reached = markers.length ? `it reached "${markers.at(-1)}"` : 'no marker appeared';
  if (how === 'ok') return { ok: true, markers, durationMs, why: `/dev/kvm exists and works: the probe's boot sector reached long mode in ${durationMs} ms` };
  const said = accelFaultInStderr(stderr);
  if (said || how === 'exited') {
    const words = said ?? (stderr.trim().split('\n').slice(-2).join('; ').slice(0, 300) || `QEMU exited without a word (${reached})`);
    return { ok: false, fault: words, markers, durationMs, why: `/dev/kvm exists but QEMU could not use it (${words}): software emulation` };
  }
  return {
    ok: false,
    markers,
    durationMs,
    why: `/dev/kvm exists but is slower than emulation here (${name} did not bring the probe's boot sector to long mode within ${limitMs / 1000} s; ${reached}, as under nested virtualization without hardware help): software emulation`,
  };
}
