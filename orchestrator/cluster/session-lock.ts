import { createHash } from 'node:crypto';
import pg from 'pg';

/**
 * A PostgreSQL session-level advisory lock on a connection of its own. It is held as long as
 * that connection lives: a process that dies (SIGKILL, power loss) loses it when the server
 * notices the connection is gone, so another node can take it. Used for the one active scheduler
 * and for per-client run limits across workers.
 */
export class SessionLock {
  private lostHandler: ((err: Error) => void) | undefined;
  private released = false;

  private constructor(
    private readonly client: pg.Client,
    readonly name: string,
  ) {
    const lost = (err?: Error): void => {
      if (this.released) return;
      this.released = true;
      this.lostHandler?.(err ?? new Error('the connection holding the lock ended'));
    };
    client.on('error', lost);
    client.on('end', () => lost());
  }

  /** The lock `name`, or undefined when another session holds it. */
  static async tryAcquire(url: string, name: string): Promise<SessionLock | undefined> {
    const client = new pg.Client({ connectionString: url, application_name: `backproof-lock ${name}`.slice(0, 63), keepAlive: true });
    client.on('error', () => undefined);
    await client.connect();
    try {
      const [k1, k2] = lockKeys(name);
      const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::int, $2::int) AS ok', [k1, k2]);
      if (rows[0]?.ok) return new SessionLock(client, name);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    await client.end().catch(() => undefined);
    return undefined;
  }

  /** Called once if the connection (and so the lock) is lost before `release()`. */
  onLost(handler: (err: Error) => void): void {
    this.lostHandler = handler;
  }

  /** Checks the connection still answers (a lock on a dead connection is no lock). */
  async alive(): Promise<boolean> {
    if (this.released) return false;
    try {
      await this.client.query('SELECT 1');
      return true;
    } catch {
      return false;
    }
  }

  /** Releases the lock and closes its connection; safe to call twice. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.client.end().catch(() => undefined);
  }
}

/** Two int4 keys from a name (PostgreSQL's two-key advisory lock space). */
function lockKeys(name: string): [number, number] {
  const h = createHash('sha256').update(`backproof-lock\0${name}`).digest();
  return [h.readInt32BE(0), h.readInt32BE(4)];
}
