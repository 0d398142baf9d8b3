import { spawn } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';

/**
 * The small bootable Debian 12 disk images that the vm kind's tests boot, built by
 * scripts/build-test-vm-images.sh (as root, from Debian packages, no loop devices) into
 * $BACKPROOF_VM_CACHE (default /var/cache/backproof-test/vm) and reused while the script is
 * unchanged. The script runs once per process; its progress goes to stderr.
 */

/** What a test should see when it boots the image with the product's QEMU flags. */
export type TestVmExpect = 'login' | 'no-bootable-device' | 'grub-rescue' | 'initramfs-shell';

export interface TestVmImageInfo {
  sha256: string;
  /** Bytes of the file (apparent size; the raw images are sparse). */
  size: number;
  /** Bytes the file takes on disk. */
  diskUsage: number;
  /** Bytes of the disk the guest sees. */
  virtualSize: number;
  /** QEMU's name for the format (raw, qcow2, vmdk, vhdx, vpc); good.raw.zst is raw once decompressed. */
  format: string;
  compression: 'none' | 'zstd';
  firmware: 'bios' | 'uefi';
  expect: TestVmExpect;
  description: string;
}

export interface TestVmManifest {
  scriptSha256: string;
  builtAt: string;
  suite: string;
  /** The guest kernel's release, e.g. 6.1.0-56-amd64. */
  kernel: string;
  hostname: string;
  /** What the serial port and tty1 show once booted: "backproof-guest login:". */
  loginPrompt: string;
  rootUuid: string;
  /** The root device that wrong-root.raw's kernel command line names. */
  wrongRoot: string;
  kernelCmdline: string;
  /** By file name: good.raw, zeroed-mbr.raw, zeroed-superblock.raw, wrong-root.raw, good.qcow2, good.vmdk, good.vhdx, good.vhd, good-uefi.raw, good.raw.zst. */
  files: Record<string, TestVmImageInfo>;
}

export interface TestVmImages {
  dir: string;
  /** Absolute path by file name, for every file in the manifest. */
  files: Record<string, string>;
  manifest: TestVmManifest;
}

export const VM_IMAGES_SCRIPT = decodeURIComponent(new URL('../../scripts/build-test-vm-images.sh', import.meta.url).pathname);

let images: Promise<TestVmImages> | undefined;

/** Builds the images if the cache is missing or stale (minutes, cold), else just reads the manifest. */
export function testVmImages(): Promise<TestVmImages> {
  images ??= load();
  return images;
}

async function load(): Promise<TestVmImages> {
  const dir = process.env.BACKPROOF_VM_CACHE || '/var/cache/backproof-test/vm';
  await runScript(dir);
  const manifest = JSON.parse(await readFile(`${dir}/manifest.json`, 'utf8')) as TestVmManifest;
  const files: Record<string, string> = {};
  for (const name of Object.keys(manifest.files)) {
    files[name] = `${dir}/${name}`;
    await access(files[name]);
  }
  return { dir, files, manifest };
}

function runScript(dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [VM_IMAGES_SCRIPT, dir], { stdio: ['ignore', 2, 2] });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${VM_IMAGES_SCRIPT} ${dir} failed (${signal ?? `exit ${code}`}); its output is above on stderr`));
    });
  });
}
