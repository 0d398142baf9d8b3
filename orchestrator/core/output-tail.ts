/**
 * Keeps the first `headBytes` and the last `tailBytes` of a process's output, so a chatty tool
 * cannot fill memory and the evidence still shows how it began and how it ended. Used for
 * sandbox execs (restore-sandboxes) and for the storage drivers' child processes (restic, borg).
 */
export class OutputTail {
  private head: Buffer[] = [];
  private headKept = 0;
  private tail: Buffer[] = [];
  private tailKept = 0;
  private dropped = 0;

  constructor(
    private readonly headBytes: number,
    private readonly tailBytes: number = headBytes,
  ) {}

  push(chunk: Buffer | string): void {
    if (typeof chunk === 'string') chunk = Buffer.from(chunk);
    if (this.headKept < this.headBytes) {
      const take = chunk.subarray(0, this.headBytes - this.headKept);
      this.head.push(take);
      this.headKept += take.length;
      chunk = chunk.subarray(take.length);
    }
    if (chunk.length === 0) return;
    this.tail.push(chunk);
    this.tailKept += chunk.length;
    while (this.tailKept > this.tailBytes && this.tail.length > 0) {
      const first = this.tail[0]!;
      const excess = this.tailKept - this.tailBytes;
      if (first.length <= excess) {
        this.tail.shift();
        this.tailKept -= first.length;
        this.dropped += first.length;
      } else {
        this.tail[0] = first.subarray(excess);
        this.tailKept -= excess;
        this.dropped += excess;
      }
    }
  }

  text(): string {
    const head = Buffer.concat(this.head).toString('utf8');
    const tail = Buffer.concat(this.tail).toString('utf8');
    return this.dropped > 0 ? `${head}\n[... ${this.dropped} bytes omitted ...]\n${tail}` : head + tail;
  }
}
