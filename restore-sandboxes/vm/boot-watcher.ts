import { setTimeout as sleep } from 'node:timers/promises';
import type { VmKindConfig } from '../../orchestrator/core/config-types.js';
import type { BootMilestone, BootVerdict } from '../../orchestrator/core/domain.js';
import { formatAge } from '../../orchestrator/core/format.js';
import type { Logger } from '../../orchestrator/core/logger.js';
import type { Sandbox } from '../sandbox-runtime.js';
import { classifyRunState, runStateWords } from './accel-faults.js';
import { cleanConsoleText, firstMatch, matchedLine, MILESTONES, patternsFor, type BootPatterns, type NamedPattern } from './boot-patterns.js';
import { VM_PATHS } from './qemu-args.js';
import type { QmpClient, QmpEvent } from './qmp-client.js';
import { FileReader, FollowedFile } from './sandbox-streams.js';
import { decodeFrame, isBlank, screenChanged, textModeGeometry, textFromXp, trimBlankLines, VGA_TEXT_BASE, type Frame } from './screen.js';
import { timeoutSignal } from '../../orchestrator/core/timeout-signal.js';

/** Serial output kept for matching and evidence. */
const SERIAL_KEPT_CHARS = 256 * 1024;
/** Ticks the screen gets to show its own login prompt after the serial port showed one. */
const LAST_LOOK_TRIES = 3;
/** A console's last screenful. */
const RECENT_SERIAL_LINES = 30;
const OCR_TIMEOUT_MS = 30_000;

export interface BootJudgement {
  verdict: BootVerdict;
  reason: string;
  failure?: string;
  bootMs: number;
  milestones: BootMilestone[];
  screenshots: number;
  lastFrame?: Frame;
  screenText?: string;
  screenTextSource?: 'vga-text' | 'ocr';
  serial: string;
  /**
   * The accelerator (KVM) stopped the guest: QEMU's own words (its run state over QMP). The
   * verdict is then `inconclusive`: a frozen screen says nothing about the backup.
   */
  accelFault?: string;
}

export interface WatchOptions {
  qmp: QmpClient;
  sandbox: Sandbox;
  /** The user QEMU runs as (files it writes are read as that user). */
  user: string;
  vm: VmKindConfig;
  signal: AbortSignal;
  logger: Logger;
  /** performance.now() when QEMU was started. */
  startedAt: number;
}

/**
 * Watches a booting machine over QMP until it is judged: screenshots every
 * `vm.screenshotEvery`, the screen's text (VGA memory in text mode, OCR in graphics mode), the
 * serial port, QEMU's events. The first login prompt or logon screen is `booted`; a named
 * failure seen twice in a row, a guest panic, QEMU exiting, or a screen and serial port that stay
 * still for `vm.stallTimeout` is `not_booted`; still changing at `vm.bootTimeout` is
 * `inconclusive`. QEMU's run state is asked every tick: `internal-error` (the accelerator stopped
 * the vCPU) ends the watch at once with `accelFault`, before any stall can be judged.
 */
export class BootWatcher {
  private readonly patterns: BootPatterns;
  private readonly milestones: BootMilestone[] = [];
  private screenshots = 0;
  private frame: Frame | undefined;
  private textFrame: Frame | undefined;
  private screenText = '';
  private textSource: 'vga-text' | 'ocr' | undefined;
  private serial = '';
  private lastChange: number;
  private pendingFailure: { name: string; line: string } | undefined;
  private wake: (() => void) | undefined;
  private decidedAt: number | undefined;
  private files!: FileReader;
  private serialLog!: FollowedFile;

  constructor(private readonly o: WatchOptions) {
    this.patterns = patternsFor(o.vm);
    this.lastChange = o.startedAt;
  }

  async watch(): Promise<BootJudgement> {
    const { sandbox, user, signal } = this.o;
    this.files = new FileReader(sandbox, user, signal);
    this.serialLog = new FollowedFile(sandbox, VM_PATHS.serial, user, signal);
    try {
      return await this.loop();
    } finally {
      await Promise.all([this.files.close(), this.serialLog.close()]);
    }
  }

  private async loop(): Promise<BootJudgement> {
    const { qmp, vm, signal } = this.o;
    qmp.listen(() => this.wake?.());
    for (;;) {
      signal.throwIfAborted();
      const tickStart = performance.now();
      const running = qmp.isOpen && !this.shutdown();
      if (running) await this.look();
      this.readSerial();
      this.markMilestones();
      const fault = running ? await this.accelFault() : undefined;
      if (fault) return { ...this.judge('inconclusive', `the accelerator stopped the guest, which says nothing about the backup: ${fault}`, 'accel_fault'), accelFault: fault };

      const panicked = qmp.events.find((e) => e.event === 'GUEST_PANICKED');
      const booted = firstMatch(this.patterns.booted, this.texts());
      if (booted && !panicked) {
        const source = this.sourceOf(booted.line);
        this.milestone('login', booted.line, source);
        await this.lastLook(source === 'serial');
        return this.judge('booted', `${booted.pattern.says}: "${booted.line}"`);
      }
      const failed = firstMatch(this.patterns.failures, this.recentTexts());
      if (panicked) {
        await this.lastLook(false);
        return this.notBooted(failed?.pattern ?? KERNEL_PANIC, failed?.line ?? 'QEMU reported a guest panic (pvpanic)');
      }
      if (!running) {
        if (failed) return this.notBooted(failed.pattern, failed.line);
        return this.judge('not_booted', `QEMU exited before a login prompt: ${describeExit(qmp.events)}`, 'qemu_exited');
      }
      if (failed) {
        // Seen twice in a row: a firmware that retries, or a message that scrolls past, is not the end.
        if (this.pendingFailure?.name === failed.pattern.name) {
          await this.lastLook(false);
          return this.notBooted(failed.pattern, failed.line);
        }
        this.pendingFailure = { name: failed.pattern.name, line: failed.line };
      } else {
        this.pendingFailure = undefined;
      }
      const now = performance.now();
      if (now - this.lastChange >= vm.stallTimeoutMs) {
        // The furthest milestone in the boot's order, not the last one seen (a late firmware banner).
        const last = this.milestones.reduce<BootMilestone | undefined>((far, m) => (far && rankOf(far.name) >= rankOf(m.name) ? far : m), undefined);
        return this.judge(
          'not_booted',
          `the screen and the serial port stayed unchanged for ${formatAge(Math.round(now - this.lastChange))}${last ? ` after the ${last.name} milestone ("${last.text}")` : ' from the start'}`,
          'stalled',
        );
      }
      if (now - this.o.startedAt >= vm.bootTimeoutMs) {
        return this.judge('inconclusive', `no login prompt and no failure within the boot timeout of ${formatAge(vm.bootTimeoutMs)}; the screen was still changing`);
      }
      const wait = Math.max(0, vm.screenshotEveryMs - (performance.now() - tickStart));
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        sleep(wait, undefined, { signal }).then(resolve, resolve);
      });
      this.wake = undefined;
    }
  }

  /**
   * One screenshot, and the screen's text when it changed: from VGA memory in text mode (cheap,
   * every change); by OCR in graphics mode once the screen holds still for a tick (OCR costs a
   * second or two of CPU, and a screen still scrolling is not where a boot ends).
   */
  private async look(force = false): Promise<void> {
    const { qmp, signal, vm } = this.o;
    try {
      await qmp.execute('screendump', { filename: VM_PATHS.screenshot, format: 'png' });
      const png = await this.files.read(VM_PATHS.screenshot);
      if (!png) return;
      const frame = decodeFrame(png);
      this.screenshots++;
      const moving = screenChanged(this.frame, frame);
      if (moving) this.lastChange = performance.now();
      this.frame = frame;
      if (this.textFrame && !screenChanged(this.textFrame, frame)) return;
      const geometry = textModeGeometry(frame);
      let text = '';
      if (geometry) {
        text = textFromXp(await qmp.hmp(`xp /${geometry.cols * geometry.rows * 2}xb ${VGA_TEXT_BASE}`), geometry.cols, geometry.rows);
        this.textSource = 'vga-text';
      } else if (vm.ocr && !isBlank(frame)) {
        if (moving && !force) return;
        text = await ocr(this.o.sandbox, this.o.user, signal);
        this.textSource = 'ocr';
      }
      this.textFrame = frame;
      if (text !== this.screenText) this.lastChange = performance.now();
      this.screenText = text;
    } catch (err) {
      if (signal.aborted) throw err;
      // QEMU went away between the check and the command: the loop sees it next.
      if (qmp.isOpen) this.o.logger.debug(`screenshot failed: ${(err as Error).message}`);
    }
  }

  /**
   * The evidence's last screenshot and screen text, read now whatever the screen is doing. When
   * the serial port decided `booted`, the screen gets a few ticks to show its own prompt, so the
   * picture kept is the logon screen a person expects. The verdict's time is the decision's.
   */
  private async lastLook(waitForScreenPrompt: boolean): Promise<void> {
    this.decidedAt ??= performance.now();
    const tries = waitForScreenPrompt ? LAST_LOOK_TRIES : 1;
    for (let i = 0; i < tries && this.o.qmp.isOpen; i++) {
      if (i > 0) await sleep(this.o.vm.screenshotEveryMs, undefined, { signal: this.o.signal });
      await this.look(true);
      if (!waitForScreenPrompt || firstMatch(this.patterns.booted, [this.screenText])) return;
    }
  }

  /** QEMU's run state: `internal-error` is the accelerator's fault (accel-faults.ts). */
  private async accelFault(): Promise<string | undefined> {
    try {
      const state = classifyRunState(await this.o.qmp.execute('query-status', undefined, 10_000));
      return state.class === 'accelerator' ? runStateWords(state) : undefined;
    } catch (err) {
      if (this.o.signal.aborted) throw err;
      return undefined; // QEMU went away: the loop sees it next
    }
  }

  private readSerial(): void {
    const bytes = this.serialLog.take();
    if (bytes.length === 0) return;
    this.serial = (this.serial + cleanConsoleText(bytes.toString('latin1'))).slice(-SERIAL_KEPT_CHARS);
    this.lastChange = performance.now();
  }

  private texts(): string[] {
    // The serial log's end: what a console shows last is what it is doing now.
    return [this.screenText, this.serial.slice(-16 * 1024)];
  }

  /**
   * For failures: the screen, and only the serial log's last lines. The log keeps everything, and
   * a warning that scrolled past long ago (a resume device not found) is not where the boot is.
   */
  private recentTexts(): string[] {
    const lines = this.serial.split('\n').filter((l) => l.trim() !== '');
    return [this.screenText, lines.slice(-RECENT_SERIAL_LINES).join('\n')];
  }

  private sourceOf(line: string): 'screen' | 'serial' {
    return this.screenText.includes(line) ? 'screen' : 'serial';
  }

  private markMilestones(): void {
    const done = new Set(this.milestones.map((m) => m.name));
    for (const { name, re } of MILESTONES) {
      if (done.has(name)) continue;
      for (const [source, text] of [['screen', this.screenText], ['serial', this.serial]] as const) {
        const m = re.exec(text);
        if (m) {
          this.milestone(name, matchedLine(text, m), source);
          break;
        }
      }
    }
  }

  /**
   * Records a milestone when first seen. A milestone seen after a later one (the firmware's
   * banner read from the serial log once the screen already showed the bootloader) happened
   * before it: it is given that one's time at most, so the order is the boot's, not the polls'.
   */
  private milestone(name: BootMilestone['name'], text: string, source: BootMilestone['source']): void {
    if (this.milestones.some((m) => m.name === name)) return;
    const laterSeen = this.milestones.filter((m) => rankOf(m.name) > rankOf(name)).map((m) => m.atMs);
    const atMs = Math.min(Math.round(performance.now() - this.o.startedAt), ...laterSeen);
    this.milestones.push({ name, atMs, source, text: text.slice(0, 160) });
  }

  private shutdown(): QmpEvent | undefined {
    return this.o.qmp.events.find((e) => e.event === 'SHUTDOWN');
  }

  private notBooted(p: NamedPattern, line: string): BootJudgement {
    return this.judge('not_booted', `${p.says}: "${line}"`, p.name);
  }

  private judge(verdict: BootVerdict, reason: string, failure?: string): BootJudgement {
    return {
      verdict,
      reason,
      ...(failure ? { failure } : {}),
      bootMs: Math.round((this.decidedAt ?? performance.now()) - this.o.startedAt),
      milestones: [...this.milestones].sort((a, b) => a.atMs - b.atMs || rankOf(a.name) - rankOf(b.name)),
      screenshots: this.screenshots,
      ...(this.frame ? { lastFrame: this.frame } : {}),
      ...(this.screenText ? { screenText: this.screenText } : {}),
      ...(this.textSource ? { screenTextSource: this.textSource } : {}),
      serial: this.serial,
    };
  }
}

const KERNEL_PANIC: NamedPattern = { name: 'kernel_panic', os: 'any', re: /$^/, says: 'the guest panicked' };

function describeExit(events: readonly QmpEvent[]): string {
  const shutdown = events.find((e) => e.event === 'SHUTDOWN');
  const reason = String(shutdown?.data?.reason ?? '');
  if (reason === 'guest-reset') return 'the guest reset itself (a reboot, or a triple fault) before reaching a login prompt';
  if (reason === 'guest-shutdown') return 'the guest powered itself off';
  if (reason === 'guest-panic') return 'the guest panicked';
  return reason ? `shutdown (${reason})` : 'QEMU ended without saying why';
}

/** tesseract on the last screenshot, inside the sandbox (the pixels are the guest's). */
async function ocr(sandbox: Sandbox, user: string, signal: AbortSignal): Promise<string> {
  const r = await sandbox.exec(['tesseract', VM_PATHS.screenshot, 'stdout', '--psm', '6', '-l', 'eng'], {
    user,
    env: { OMP_THREAD_LIMIT: '1' },
    signal: AbortSignal.any([signal, timeoutSignal(OCR_TIMEOUT_MS)]),
    maxOutputBytes: 64 * 1024,
  });
  return r.exitCode === 0 ? trimBlankLines(r.stdout.replace(/\f/g, '')) : '';
}

/** A milestone's place in the boot: MILESTONES' order, then the login prompt, the last one. */
function rankOf(name: BootMilestone['name']): number {
  const i = MILESTONES.findIndex((m) => m.name === name);
  return i < 0 ? MILESTONES.length : i;
}
