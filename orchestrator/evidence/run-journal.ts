import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { RunArtifact, RunRecord } from '../core/domain.js';

/**
 * Where a run's final record waits when the evidence store is down as the run ends: one file per
 * run in `<data dir>/journal/`, private to the owner (0700/0600), written atomically (a temporary
 * file renamed into place). The next open of the store writes each back, sealed as if it had
 * been written on time, before runs whose process died are marked aborted; a record the store
 * will not take any more (another node marked the run aborted meanwhile) moves to `rejected/`,
 * kept for a person to read.
 */
interface Entry {
  run: RunRecord;
  artifacts: Array<{ name: string; mediaType: string; base64: string }>;
  journaledAt: string;
}

export class RunJournal {
  constructor(readonly dir: string) {}

  /** Keeps `run` until the store takes it; returns the file. */
  async write(run: RunRecord, artifacts: readonly RunArtifact[]): Promise<string> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const entry: Entry = { run, artifacts: artifacts.map((a) => ({ name: a.name, mediaType: a.mediaType, base64: Buffer.from(a.bytes).toString('base64') })), journaledAt: new Date().toISOString() };
    const file = path.join(this.dir, `${run.id}.json`);
    const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    await fs.writeFile(tmp, JSON.stringify(entry), { mode: 0o600 });
    await fs.rename(tmp, file);
    return file;
  }

  /**
   * Offers every kept record to `finalize`, oldest first. A record finalized is removed; one
   * refused for good (`permanent(err)`) moves to `rejected/`; any other failure (the store still
   * down) leaves it for the next time.
   */
  async replay(finalize: (run: RunRecord, artifacts: RunArtifact[]) => Promise<void>, permanent: (err: unknown) => boolean): Promise<{ replayed: RunRecord[]; rejected: Array<{ run: RunRecord; why: string }> }> {
    const out = { replayed: [] as RunRecord[], rejected: [] as Array<{ run: RunRecord; why: string }> };
    let names: string[];
    try {
      names = (await fs.readdir(this.dir)).filter((n) => n.endsWith('.json')).sort();
    } catch {
      return out; // no journal: nothing waits
    }
    const entries: Array<{ file: string; entry: Entry }> = [];
    for (const name of names) {
      const file = path.join(this.dir, name);
      entries.push({ file, entry: JSON.parse(await fs.readFile(file, 'utf8')) as Entry });
    }
    entries.sort((a, b) => a.entry.run.startedAt.localeCompare(b.entry.run.startedAt));
    for (const { file, entry } of entries) {
      const artifacts = entry.artifacts.map((a) => ({ name: a.name, mediaType: a.mediaType, bytes: Buffer.from(a.base64, 'base64') }));
      try {
        await finalize(entry.run, artifacts);
        await fs.rm(file);
        out.replayed.push(entry.run);
      } catch (err) {
        if (!permanent(err)) throw err;
        const rejected = path.join(this.dir, 'rejected');
        await fs.mkdir(rejected, { recursive: true, mode: 0o700 });
        await fs.rename(file, path.join(rejected, path.basename(file)));
        out.rejected.push({ run: entry.run, why: (err as Error).message });
      }
    }
    return out;
  }
}
