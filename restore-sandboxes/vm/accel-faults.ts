/**
 * Accelerator faults: the host's KVM failing, not the guest. A nested or broken KVM stops a good
 * guest ("emulation failure" in a boot loader's mode switch) or never starts one; QEMU then
 * either exits or pauses the vCPU and keeps running, so the screen freezes like a hung boot.
 * Such a run is an `error` (sandbox_failed, with QEMU's own words), never a `fail`: the backup
 * was not judged. This file only classifies what QEMU says; vm-restorer.ts decides what to do.
 */

/** QEMU's stderr lines that mean the accelerator failed (KVM's messages, as QEMU prints them). */
const STDERR_FAULTS: readonly RegExp[] = [
  /KVM internal error/i,
  /emulation failure/i,
  /Could not access KVM kernel module/i,
  /failed to initialize kvm/i,
  /kvm version too old/i,
  /\bioctl\(KVM_[A-Z0-9_]+\)(?: failed|: )/i,
  /\bKVM_[A-Z0-9_]+ failed\b/,
  /\bkvm run failed\b/i,
  /KVM: entry failed, hardware error/i,
  /\bkvm_init_vcpu\b.*failed/i,
  /-accel kvm: .*(?:failed|not supported|No such file)/i,
];

/**
 * The guest kernel's words that software emulation, not the disk, caused its panic: Linux checks
 * that the timer interrupt arrives through the IO-APIC within a few milliseconds (check_timer)
 * and panics when it does not. Under TCG on a busy host the vCPU can run too slowly for that
 * check; cloud images boot with `no_timer_check` for this reason. Under KVM the panic is the guest's.
 */
const EMULATION_PANICS: readonly RegExp[] = [/IO-APIC \+ timer doesn't work/i];

/**
 * The line of a Linux guest's panic that slow software emulation causes (see EMULATION_PANICS), or
 * undefined. Only meaningful for a boot under TCG.
 */
export function emulationPanicIn(text: string): string | undefined {
  const line = text.split('\n').find((l) => EMULATION_PANICS.some((re) => re.test(l)));
  return line?.trim().slice(0, 300);
}

/** Lines of QEMU's stderr kept as its words for a fault. */
const WORDS_LINES = 3;

/**
 * The lines of QEMU's stderr that report an accelerator fault (at most three, joined by "; "), or
 * undefined when it reports none. The register dump QEMU prints after "KVM internal error" is left
 * out: the first lines say what happened.
 */
export function accelFaultInStderr(stderr: string): string | undefined {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const hits = lines.filter((l) => STDERR_FAULTS.some((re) => re.test(l)));
  if (hits.length === 0) return undefined;
  return [...new Set(hits)].slice(0, WORDS_LINES).join('; ').slice(0, 400);
}

/**
 * QMP `query-status`'s answer, as the watcher reads it:
 * - `accelerator`: `internal-error`: the vCPU stopped because the accelerator (KVM) could not run
 *   it (QEMU's name for a KVM exit it cannot handle, such as an emulation failure); the host's fault;
 * - `guest`: `guest-panicked`: the guest's kernel reported a panic (pvpanic); the guest's fault;
 * - `paused`: stopped for another reason (`paused`, `io-error`, `debug`, ...): not a verdict either way;
 * - `running`; `ended` (`shutdown`); `unknown` (no status in the answer).
 */
export type RunStateClass = 'accelerator' | 'guest' | 'paused' | 'running' | 'ended' | 'unknown';

export interface RunState {
  class: RunStateClass;
  /** QEMU's status word, e.g. "internal-error". */
  status: string;
}

export function classifyRunState(answer: unknown): RunState {
  const status = typeof answer === 'object' && answer !== null && typeof (answer as { status?: unknown }).status === 'string' ? (answer as { status: string }).status : '';
  switch (status) {
    case 'internal-error':
      return { class: 'accelerator', status };
    case 'guest-panicked':
      return { class: 'guest', status };
    case 'running':
      return { class: 'running', status };
    case 'shutdown':
      return { class: 'ended', status };
    case '':
      return { class: 'unknown', status };
    default:
      return { class: 'paused', status };
  }
}

/** What QEMU said about an accelerator fault seen over QMP, in its own status word. */
export function runStateWords(state: RunState): string {
  return `QMP query-status: "${state.status}" (the vCPU stopped: the accelerator could not run the guest)`;
}
