/** Small judgements on a backup's first bytes and on text shown in reasons, shared by the restorers. */

/** Text: no NUL byte and under 1% other control characters (tabs and line ends allowed). */
export function looksLikeText(head: Buffer): boolean {
  if (head.length === 0) return false;
  let control = 0;
  for (const b of head) {
    if (b === 0) return false;
    if (b < 0x09 || (b > 0x0d && b < 0x20)) control++;
  }
  return control / head.length < 0.01;
}

/** Shannon entropy of the bytes, in bits per byte (0..8; random data is close to 8). */
export function entropy(bytes: Buffer): number {
  if (bytes.length === 0) return 0;
  // An indexed loop over typed counts: 64 KiB of a file's head is judged for every restored file.
  const counts = new Uint32Array(256);
  for (let i = 0; i < bytes.length; i++) counts[bytes[i]!]!++;
  let h = 0;
  for (let b = 0; b < 256; b++) {
    const c = counts[b]!;
    if (c === 0) continue;
    const p = c / bytes.length;
    h -= p * Math.log2(p);
  }
  return h;
}

/** At most `n` characters, with an ellipsis when cut. */
export function truncate(s: string, n: number): string {
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}
