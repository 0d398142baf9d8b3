import { formatBytes } from '../core/format.js';

/**
 * Shows bytes streamed into the sandbox: a line redrawn in place on a terminal, a line every
 * 10 s otherwise (logs, CI).
 */
export class ProgressLine {
  private lastDraw = 0;
  private started = 0;
  private shown = false;
  private readonly tty = Boolean(process.stderr.isTTY);

  update = (p: { bytes: number; totalBytes?: number }): void => {
    const now = Date.now();
    if (this.started === 0) this.started = now;
    const every = this.tty ? 250 : 10_000;
    if (now - this.lastDraw < every && p.bytes !== p.totalBytes) return;
    this.lastDraw = now;
    const secs = Math.max((now - this.started) / 1000, 0.001);
    const pct = p.totalBytes ? ` ${((100 * p.bytes) / p.totalBytes).toFixed(0).padStart(3)}%` : '';
    const line = `restoring${pct}  ${formatBytes(p.bytes)}${p.totalBytes ? ` of ${formatBytes(p.totalBytes)}` : ''}  ${formatBytes(p.bytes / secs)}/s`;
    if (this.tty) {
      process.stderr.write(`\r${line}\x1b[K`);
      this.shown = true;
    } else if (now - this.started >= every) {
      process.stderr.write(line + '\n');
    }
  };

  clear(): void {
    if (this.tty && this.shown) process.stderr.write('\r\x1b[K');
    this.shown = false;
    this.started = 0;
    this.lastDraw = 0;
  }
}
