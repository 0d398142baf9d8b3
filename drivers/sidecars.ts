import { VerificationError } from '../orchestrator/core/errors.js';
import { parseChecksumLines } from '../orchestrator/core/checksum-lines.js';
import type { ExpectedChecksum } from './storage-driver.js';

/**
 * Checksums kept beside a backup by whoever wrote it, the same for every driver that stores
 * plain files or objects: `<name>.sha256` (its own sidecar) or a `SHA256SUMS` list in the same
 * folder or prefix. `read(key)` returns a small object's text, or undefined when it does not
 * exist; lists are read once per folder per instance.
 */
export class SidecarChecksums {
  private readonly listsByDir = new Map<string, Promise<Array<{ name: string; text: string }>>>();

  constructor(private readonly read: (key: string) => Promise<string | undefined>) {}

  async find(key: string): Promise<ExpectedChecksum | undefined> {
    const slash = key.lastIndexOf('/');
    const dir = slash === -1 ? '' : key.slice(0, slash + 1);
    const base = key.slice(slash + 1);
    const own = await this.read(`${key}.sha256`);
    if (own !== undefined) {
      const hex = parseChecksumFile(own, base, true);
      if (!hex) throw new VerificationError('sidecar_invalid', `sidecar ${base}.sha256 holds no sha256 for ${base}`);
      return { algorithm: 'sha256', hex, source: `sidecar ${base}.sha256` };
    }
    for (const { name, text } of await this.lists(dir)) {
      const hex = parseChecksumFile(text, base, false);
      if (hex) return { algorithm: 'sha256', hex, source: name };
    }
    return undefined;
  }

  private lists(dir: string): Promise<Array<{ name: string; text: string }>> {
    let lists = this.listsByDir.get(dir);
    if (!lists) {
      lists = (async () => {
        const found = [];
        for (const name of SUMS_NAMES) {
          const text = await this.read(`${dir}${name}`);
          if (text !== undefined) found.push({ name, text });
        }
        return found;
      })();
      this.listsByDir.set(dir, lists);
    }
    return lists;
  }
}

const SUMS_NAMES = ['SHA256SUMS', 'sha256sums', 'SHA256SUMS.txt'];

/** Sidecars larger than this are not checksum files; they are not read. */
export const SIDECAR_MAX_BYTES = 1024 * 1024;

/**
 * Reads `sha256sum` output (`HEX  name` or `HEX *name`), the BSD/`--tag` form
 * (`SHA256 (name) = HEX`, also openssl's `SHA2-256(name)= HEX`) or a bare hex digest. A bare
 * digest, or one for standard input (`HEX  -` from `sha256sum < file`), is accepted only from a
 * file's own single-line sidecar.
 */
export function parseChecksumFile(text: string, name: string, allowBare: boolean): string | undefined {
  const records = parseChecksumLines(text);
  for (const r of records) {
    if (r?.file !== undefined && r.file.split(/[\\/]/).pop() === name) return r.hex;
  }
  const only = records.length === 1 ? records[0] : undefined;
  if (allowBare && only && (only.file === undefined || only.file === '-' || only.file === 'stdin')) return only.hex;
  return undefined;
}
