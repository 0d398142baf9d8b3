import type { EvidenceConfig } from '../core/config-types.js';
import { DEFAULTS } from '../core/defaults.js';
import type { Logger } from '../core/logger.js';
import type { RunStore } from '../evidence/run-store.js';
import { witnessTarget } from '../evidence/s3-witness.js';
import { publishHead } from '../evidence/witness.js';

/**
 * The daemon's background work on the evidence chain, at its checks:
 * - once a day, verify the links sealed since the last checkpoint and sign a new one at the
 *   head, so `evidence verify` and the month's reports stay quick; a chain that does not verify
 *   is logged as an error naming the first bad link;
 * - every `evidence.witness.every`, publish the chain head to the witness (when it moved), so
 *   deleting or rewriting records later is found by `evidence verify --witness`. A chain that
 *   does not verify is not published; a witness that fails is logged and tried at the next check.
 * One piece of work at a time; `work` hands it to the daemon, which waits for it at shutdown.
 */
export class EvidenceUpkeep {
  private running: Promise<void> | undefined;
  private nextCheckpointAt = 0;
  private nextPublishAt = 0;

  constructor(
    private readonly store: RunStore,
    private readonly logger: () => Logger,
  ) {}

  /** Starts what is due (nothing while earlier work runs); returns the work started, if any. */
  due(evidence: EvidenceConfig | undefined, signal: AbortSignal): Promise<void> | undefined {
    if (this.running) return undefined;
    const now = Date.now();
    const checkpoint = now >= this.nextCheckpointAt;
    const witness = evidence?.witness;
    const publish = witness !== undefined && now >= this.nextPublishAt;
    if (!checkpoint && !publish) return undefined;
    if (checkpoint) this.nextCheckpointAt = now + DEFAULTS.daemon.evidenceCheckpointEveryMs;
    if (publish) this.nextPublishAt = now + witness.everyMs;
    const work = (async () => {
      if (checkpoint) await this.checkpoint(signal);
      if (publish && !signal.aborted) await this.publish(evidence!, signal);
    })().finally(() => (this.running = undefined));
    this.running = work;
    return work;
  }

  private async checkpoint(signal: AbortSignal): Promise<void> {
    try {
      const r = await this.store.evidenceChain().verify({ writeCheckpoint: true, signal });
      if (!r.ok) {
        const bad = r.firstBad;
        this.logger().error(`the evidence chain does not verify${bad ? ` at ${bad.seq !== null ? `seq ${bad.seq}` : `run ${bad.runId ?? '?'}`}: ${bad.problem}` : ''}; run backproof evidence verify --full`);
      } else if (r.checkpointWritten) {
        this.logger().info(`evidence chain intact through seq ${r.checkpointWritten.seq} (${r.checked} new link${r.checked === 1 ? '' : 's'} checked); checkpoint signed`);
      } else if (r.checkpointNotWritten !== undefined) {
        this.logger().warn(`evidence chain intact; no checkpoint written: ${r.checkpointNotWritten}`);
      }
    } catch (err) {
      if (!signal.aborted) this.logger().warn(`evidence verification failed: ${(err as Error).message}`);
    }
  }

  private async publish(evidence: EvidenceConfig, signal: AbortSignal): Promise<void> {
    const target = witnessTarget(evidence.witness!);
    try {
      const o = await publishHead(this.store.evidenceChain(), target, signal);
      if (o.published && o.created) this.logger().info(`evidence chain head seq ${o.seq} published to ${o.key}${o.lockedUntil ? `, locked until ${o.lockedUntil}` : ''}`);
      else if (!o.published && o.why !== 'nothing sealed yet') this.logger().error(`evidence chain head not published to ${o.location}: ${o.why}`);
    } catch (err) {
      if (!signal.aborted) {
        this.logger().warn(`publishing the evidence chain head failed (tried again at the next check): ${(err as Error).message}`);
        this.nextPublishAt = 0;
      }
    } finally {
      await target.close();
    }
  }
}
