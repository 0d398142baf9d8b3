import { randomUUID } from 'node:crypto';
import { sha256 } from './bytes.js';
import { PNG } from 'pngjs';
import type { BootMilestone, BootRecord, BootVerdict, PhaseRecord, Reason, RunArtifact, RunRecord } from '../../orchestrator/core/domain.js';
import type { RunStore } from '../../orchestrator/evidence/run-store.js';

/**
 * Evidence of kind vm without QEMU: runs with a boot record and a real PNG screenshot, recorded
 * through a real RunStore (recordStart, then finalize with the screenshot as an artifact, as the
 * runner does), so the record seals the screenshot's sha256.
 */

export const SCREEN_W = 320;
export const SCREEN_H = 200;

/**
 * A 320x200 RGB PNG like a QEMU screendump: a dark screen with rows of light "text", a coloured
 * status bar and a block whose place depends on `seed`, so that every screen differs.
 */
export function makeScreen(seed: number, bar: [number, number, number] = [26, 127, 55]): Buffer {
  const png = new PNG({ width: SCREEN_W, height: SCREEN_H, colorType: 2, inputHasAlpha: false });
  for (let y = 0; y < SCREEN_H; y++) {
    for (let x = 0; x < SCREEN_W; x++) {
      const i = (y * SCREEN_W + x) * 4;
      const row = Math.floor(y / 10);
      const text = y % 10 < 7 && row < 14 && x > 8 && x < 40 + ((row * 37 + seed * 11) % 260) && (x * 7 + y * 3 + seed) % 5 !== 0;
      const status = y >= SCREEN_H - 16;
      const block = Math.abs(x - (40 + seed * 23) % 280) < 12 && Math.abs(y - 150) < 12;
      const [r, g, b] = status ? bar : block ? [255, 200, 0] : text ? [200, 200, 200] : [8, 8, 16];
      png.data[i] = r;
      png.data[i + 1] = g;
      png.data[i + 2] = b;
      png.data[i + 3] = 255;
    }
  }
  return PNG.sync.write(png, { colorType: 2 });
}

export { sha256 };

export interface VmRunSpec {
  client: string;
  policy: string;
  startedAt: string;
  bootVerdict: BootVerdict;
  bootMs: number;
  /** The PNG kept as `screenshot.png`; null: the run kept none. */
  screen: Buffer | null;
  failure?: string;
  milestones: BootMilestone[];
  screenText?: string;
  serialTail?: string;
}

/** A finished vm run: pass when it booted, else fail with the reason the boot verdict gives. */
export function vmRun(spec: VmRunSpec): { run: RunRecord; artifacts: RunArtifact[] } {
  const t0 = Date.parse(spec.startedAt);
  let t = t0;
  const phase = (name: PhaseRecord['name'], ms: number, outcome: PhaseRecord['outcome'], detail?: string): PhaseRecord => {
    const p: PhaseRecord = { name, startedAt: new Date(t).toISOString(), endedAt: new Date(t + ms).toISOString(), durationMs: ms, outcome, ...(detail ? { detail } : {}) };
    t += ms;
    return p;
  };
  const booted = spec.bootVerdict === 'booted';
  const fetchMs = 64_000;
  const phases = [
    phase('select', 210, 'ok'),
    phase('sandbox', 1_900, 'ok', 'container 7be1c0'),
    phase('fetch_restore', fetchMs, 'ok', 'qcow2 image, 4.1 GiB streamed'),
    phase('readiness', spec.bootMs, booted ? 'ok' : 'fail', booted ? 'login prompt' : spec.failure),
    phase('teardown', 1_100, 'ok'),
  ];
  const screenshot = spec.screen ? { name: 'screenshot.png', mediaType: 'image/png', sha256: sha256(spec.screen), bytes: spec.screen.length, width: SCREEN_W, height: SCREEN_H } : undefined;
  const boot: BootRecord = {
    verdict: spec.bootVerdict,
    reason: booted ? 'a login prompt on the screen: "debian login:"' : `${spec.failure ?? 'stalled'} on the screen`,
    ...(spec.failure ? { failure: spec.failure } : {}),
    bootMs: spec.bootMs,
    accel: 'tcg',
    firmware: 'uefi',
    firmwareWhy: 'a GPT disk with an EFI system partition',
    machine: 'q35',
    bus: 'virtio',
    diskFormat: 'qcow2',
    virtualSize: 20 * 1024 ** 3,
    partitionTable: 'gpt',
    qemuVersion: 'QEMU 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1)',
    milestones: spec.milestones,
    screenshots: 9,
    ...(screenshot ? { screenshot } : {}),
    ...(spec.screenText !== undefined ? { screenText: spec.screenText, screenTextSource: 'vga-text' as const } : {}),
    ...(spec.serialTail !== undefined ? { serialTail: spec.serialTail } : {}),
    diskUnchanged: true,
  };
  const reasons: Reason[] = booted
    ? []
    : [{ code: spec.bootVerdict === 'inconclusive' ? 'boot_inconclusive' : 'not_booted', message: `the machine did not boot: ${spec.failure ?? 'stalled'} after ${(spec.bootMs / 1000).toFixed(1)}s` }];
  const run: RunRecord = {
    id: randomUUID(),
    client: spec.client,
    policy: spec.policy,
    kind: 'vm',
    status: 'finished',
    verdict: booted ? 'pass' : 'fail',
    reasons,
    startedAt: spec.startedAt,
    finishedAt: new Date(t).toISOString(),
    durationMs: t - t0,
    host: 'verify-01',
    pid: 4242,
    backproofVersion: '0.1.0',
    backup: {
      driver: 'local',
      location: `/srv/backups/${spec.client}/vm`,
      key: `web01-${spec.startedAt.slice(0, 10)}.qcow2`,
      size: 4_400_000_000,
      modifiedAt: new Date(t0 - 3 * 3_600_000).toISOString(),
      backupTime: new Date(t0 - 3 * 3_600_000).toISOString(),
      timestampSource: 'name',
      ageMs: 3 * 3_600_000,
      sha256: 'cd'.repeat(32),
      bytesRead: 4_400_000_000,
      format: 'qcow2',
    },
    phases,
    probes: [],
    metrics: { rpoTargetMs: 26 * 3_600_000, rpoMeasuredMs: 3 * 3_600_000, rpoMet: true, rtoMeasuredMs: fetchMs + spec.bootMs },
    sandbox: { runtime: 'docker', image: 'backproof/vm', limits: { memoryBytes: 4 * 1024 ** 3, cpus: 2, network: 'none' } },
    restored: null,
    boot,
  };
  return { run, artifacts: spec.screen ? [{ name: 'screenshot.png', mediaType: 'image/png', bytes: spec.screen }] : [] };
}

/** Records the run as the runner does: started, then finalized with its artifacts (sealed). */
export async function recordRun(store: RunStore, made: { run: RunRecord; artifacts: RunArtifact[] }): Promise<RunRecord> {
  await store.recordStart({ ...made.run, status: 'running', verdict: null, reasons: [], finishedAt: null, durationMs: null });
  await store.finalize(made.run, made.artifacts);
  return made.run;
}

/** The milestones of a Debian guest booting under UEFI, up to `upTo` (the last one reached). */
export function debianMilestones(upTo: BootMilestone['name'], scale = 1): BootMilestone[] {
  const all: BootMilestone[] = [
    { name: 'firmware', atMs: 900, source: 'screen', text: 'BdsDxe: loading Boot0001 "UEFI QEMU HARDDISK"' },
    { name: 'bootloader', atMs: 3_200, source: 'screen', text: 'GNU GRUB  version 2.06-13+deb12u1' },
    { name: 'kernel', atMs: 6_800, source: 'serial', text: '[    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)' },
    { name: 'init', atMs: 14_500, source: 'serial', text: 'Welcome to Debian GNU/Linux 12 (bookworm)!' },
    { name: 'login', atMs: 38_200, source: 'screen', text: 'debian login:' },
  ];
  const end = all.findIndex((m) => m.name === upTo);
  return all.slice(0, end + 1).map((m) => ({ ...m, atMs: Math.round(m.atMs * scale) }));
}
