/** Checksum files as `sha256sum` and BSD `shasum --tag` write them: read by the storage drivers' sidecars and the files probes. */

/**
 * Every line of a sha256sum-style file as { hex, file }: GNU (`HEX  name`, `HEX *name`, or a
 * bare `HEX`) and BSD/--tag (`SHA256 (name) = HEX`); lines of neither form are `undefined`.
 */
export function parseChecksumLines(text: string): Array<{ hex: string; file?: string } | undefined> {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean)
    .map((line) => {
      const gnu = /^([0-9a-fA-F]{64})(?:\s+\*?(.+))?$/.exec(line);
      if (gnu) return { hex: gnu[1]!.toLowerCase(), file: gnu[2]?.trim() };
      const bsd = /^SHA(?:2-)?256\s*\((.+)\)\s*=\s*([0-9a-fA-F]{64})$/i.exec(line);
      if (bsd) return { hex: bsd[2]!.toLowerCase(), file: bsd[1]!.trim() };
      return undefined;
    });
}
