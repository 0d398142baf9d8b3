#!/usr/bin/env bash
# Builds the small bootable Debian 12 disk images that the "vm" restore kind's tests boot, as root:
#   usage: scripts/build-test-vm-images.sh [OUTDIR]   (default ${BACKPROOF_VM_CACHE:-/var/cache/backproof-test/vm})
#   - good.raw: MBR, one ext4 partition at 1 MiB, GRUB i386-pc installed by hand; boots to
#     "backproof-guest login:" on tty1 and on the serial port (console=ttyS0,115200);
#   - broken variants made from good.raw by byte edits: zeroed-mbr.raw (no boot sector),
#     zeroed-superblock.raw (ext4 primary superblock zeroed: GRUB rescue), wrong-root.raw
#     (kernel gets root=/dev/sdb1: the initramfs gives up);
#   - good.qcow2, good.vmdk (streamOptimized), good.vhdx, good.vhd (vpc), good.raw.zst (when zstd exists);
#   - good-uefi.raw: GPT, FAT32 EFI system partition with a standalone GRUB, the same ext4 root;
#   - manifest.json: every file with its sha256, size, format and what it is.
# No loop devices and no mounts: the root filesystem comes from mmdebstrap (a tarball, cached in
# OUTDIR/cache), the ext4 file system from `mkfs.ext4 -d`, the FAT one from mkfs.vfat and mtools, and
# the disks are put together with sfdisk and dd on plain files.
# Idempotent: when OUTDIR/.stamp holds this script's sha256 and the files are there, nothing is done;
# changing this script rebuilds. Concurrent runs wait for each other (flock on OUTDIR/.lock).
set -euo pipefail

OUT="${1:-${BACKPROOF_VM_CACHE:-/var/cache/backproof-test/vm}}"
SELF="$(readlink -f "${BASH_SOURCE[0]}")"
SCRIPT_SHA="$(sha256sum "$SELF" | cut -d' ' -f1)"
T0=$SECONDS
say() { printf 'vm-images: [%3ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() {
  printf 'vm-images: error: %s\n' "$*" >&2
  exit 1
}

# Fixed identities, so tests and the manifest can name them.
HOSTNAME_GUEST=backproof-guest
ROOT_UUID=3f6b1c2e-9a4d-4e8b-b5c7-0d1e2f3a4b5c
WRONG_ROOT=/dev/sdb1
ROOT_LABEL=bp-root
MACHINE_ID=b4c7f00d3f6b1c2e9a4d4e8bb5c70d1e
MBR_ID=0x62a4c0f1
GPT_ID=7a3c2f10-5d4e-4b6a-9c8d-1e2f3a4b5c6d
ESP_PART_UUID=7a3c2f10-5d4e-4b6a-9c8d-1e2f3a4b5c01
ROOT_PART_UUID=7a3c2f10-5d4e-4b6a-9c8d-1e2f3a4b5c02
ESP_VOLID=B4C70EF1
ESP_MIB=40
SUITE=bookworm

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
exec 9>"$OUT/.lock"
flock 9

STAMP="$OUT/.stamp"
if [ -f "$STAMP" ] && [ "$(head -n 1 "$STAMP")" = "$SCRIPT_SHA" ]; then
  complete=1
  while IFS= read -r name; do [ -f "$OUT/$name" ] || complete=0; done < <(tail -n +2 "$STAMP")
  if [ "$complete" = 1 ]; then
    say "up to date in $OUT"
    exit 0
  fi
fi

[ "$(id -u)" = 0 ] || die "building needs root (mmdebstrap, file ownership in the root filesystem); run it as root or point BACKPROOF_VM_CACHE at a built cache"
rm -f "$STAMP"

# --- host tools -----------------------------------------------------------------------------------
need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
{ command -v grub-mkimage >/dev/null && [ -f /usr/lib/grub/i386-pc/boot.img ]; } || need+=(grub-pc-bin)
{ command -v grub-mkstandalone >/dev/null && [ -f /usr/lib/grub/x86_64-efi/linux.mod ]; } || need+=(grub-efi-amd64-bin)
{ command -v mkfs.ext4 >/dev/null && command -v debugfs >/dev/null; } || need+=(e2fsprogs)
command -v sfdisk >/dev/null || need+=(fdisk)
command -v mcopy >/dev/null || need+=(mtools)
command -v mkfs.vfat >/dev/null || need+=(dosfstools)
command -v qemu-img >/dev/null || need+=(qemu-utils)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_log="$(mktemp)"
  { apt-get update -qq && NEEDRESTART_SUSPEND=1 apt-get install -y -qq --no-install-recommends "${need[@]}"; } >"$apt_log" 2>&1 || {
    cat "$apt_log" >&2
    die "apt-get install ${need[*]} failed"
  }
  rm -f "$apt_log"
fi

WORK="$OUT/.work"
rm -rf "$WORK"
mkdir -p "$WORK" "$OUT/cache"
trap 'rm -rf "$WORK"' EXIT

# --- root filesystem (cached by the mmdebstrap arguments) -----------------------------------------
# shellcheck disable=SC2054 # --include takes a comma-separated list
MM_ARGS=(
  --variant=minbase
  --include=linux-image-amd64,systemd-sysv,udev,initramfs-tools,kmod,e2fsprogs,zstd
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/lintian/*'
)
# Kernel modules for hardware a test VM never has (GPUs other than bochs/cirrus, NICs, wireless,
# sound, media, InfiniBand...): a third of the image. Storage, input and virtio stay.
for m in drivers/gpu/drm/amd drivers/gpu/drm/nouveau drivers/gpu/drm/i915 drivers/gpu/drm/radeon drivers/net/wireless drivers/net/ethernet \
  drivers/media drivers/infiniband drivers/staging drivers/iio drivers/isdn drivers/bluetooth sound net/wireless net/mac80211 net/bluetooth; do
  MM_ARGS+=(--dpkgopt="path-exclude=/usr/lib/modules/*/kernel/$m/*" --dpkgopt="path-exclude=/lib/modules/*/kernel/$m/*")
done
# A small initramfs with the disk drivers a VM has (IDE/AHCI/virtio/NVMe) and ext4, written before the
# kernel is installed so it is made once: GRUB reads it through BIOS calls, slow without KVM.
# shellcheck disable=SC2016 # $1 is the chroot, expanded by mmdebstrap's shell
MM_ARGS+=(
  --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d" &&
    printf "MODULES=list\nCOMPRESS=zstd\n" >"$1/etc/initramfs-tools/conf.d/backproof.conf" &&
    printf "%s\n" ata_piix ata_generic ahci sd_mod virtio_pci virtio_blk virtio_scsi nvme ext4 crc32c_generic >"$1/usr/share/initramfs-tools/modules.d/backproof"'
  "$SUITE"
)
ROOTFS_TAR="$OUT/cache/rootfs.tar"
rootfs_key="$(printf '%s\n' "${MM_ARGS[@]}" | sha256sum | cut -d' ' -f1)"
if [ -f "$ROOTFS_TAR" ] && [ "$(cat "$OUT/cache/rootfs.key" 2>/dev/null)" = "$rootfs_key" ]; then
  say "root filesystem: cached $ROOTFS_TAR"
else
  say "root filesystem: mmdebstrap $SUITE (minbase + kernel, systemd, udev), a few minutes"
  rm -f "$ROOTFS_TAR" "$OUT/cache/rootfs.key"
  mmdebstrap --quiet "${MM_ARGS[@]}" "$WORK/rootfs.tar"
  mv "$WORK/rootfs.tar" "$ROOTFS_TAR"
  echo "$rootfs_key" >"$OUT/cache/rootfs.key"
fi

say "root filesystem: unpacking and configuring"
ROOT="$WORK/root"
mkdir -p "$ROOT"
tar -C "$ROOT" --numeric-owner --xattrs --xattrs-include='*' -xpf "$ROOTFS_TAR"
kernels=("$ROOT"/boot/vmlinuz-*)
{ [ ${#kernels[@]} = 1 ] && [ -f "${kernels[0]}" ]; } || die "expected one kernel in the root filesystem, found: ${kernels[*]}"
KVER="${kernels[0]##*/vmlinuz-}"
[ -f "$ROOT/boot/initrd.img-$KVER" ] || die "no initrd for $KVER"
echo "$HOSTNAME_GUEST" >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$HOSTNAME_GUEST" >"$ROOT/etc/hosts"
printf '# <file system> <mount point> <type> <options> <dump> <pass>\nUUID=%s / ext4 errors=remount-ro 0 1\n' "$ROOT_UUID" >"$ROOT/etc/fstab"
# An empty machine-id makes every boot a first boot, where systemd-firstboot prompts on the console.
echo "$MACHINE_ID" >"$ROOT/etc/machine-id"
rm -f "$ROOT/etc/resolv.conf"
# Without dbus/logind, Debian's getty-static starts gettys on tty2..tty6 through six systemctl runs:
# seconds of boot without KVM. tty1 (getty.target.wants) and ttyS0 (from console=) keep theirs.
ln -sf /dev/null "$ROOT/etc/systemd/system/getty-static.service"
# The screen stays in VGA text mode (720x400, readable from text memory) up to the login prompt and
# after it: without this, bochs-drm loads during udev coldplug, around the login prompt without KVM,
# and switches tty1 to a 1280x800 framebuffer. (The UEFI image has a framebuffer from the start.)
printf '# backproof test image: keep the VGA text console\nblacklist bochs\n' >"$ROOT/etc/modprobe.d/backproof-text-console.conf"
# As procps's 10-console-messages.conf does on a standard Debian: once systemd-sysctl has run, only
# warnings reach the consoles, so the login prompt stays the last line on tty1 and ttyS0.
printf 'kernel.printk = 4 4 1 7\n' >"$ROOT/etc/sysctl.d/10-console-messages.conf"
: >"$ROOT/etc/resolv.conf"

# no_timer_check, as cloud images have: under TCG on a busy host (CI runs boots beside other tests)
# the kernel's IO-APIC timer check can fail and panic ("IO-APIC + timer doesn't work!"). backproof
# boots such a guest again (test/vm-accel.test.ts has the panic); the good image should just boot.
KCMD_GOOD="root=UUID=$ROOT_UUID ro console=tty0 console=ttyS0,115200 no_timer_check"
# The wrong-root variant edits grub.cfg in place, so both command lines have the same length.
KCMD_WRONG="$(printf "%-${#KCMD_GOOD}s" "root=$WRONG_ROOT ro console=tty0 console=ttyS0,115200")"
grub_cfg() { # $1 = kernel command line, $2 = how GRUB finds the root partition
  cat <<EOF
set timeout=1
set default=0
$2
menuentry 'Debian GNU/Linux 12 ($HOSTNAME_GUEST, $KVER)' {
	insmod ext2
	linux /boot/vmlinuz-$KVER $1
	initrd /boot/initrd.img-$KVER
}
EOF
}
# BIOS: core.img's prefix already names (hd0,msdos1), which becomes $root.
mkdir -p "$ROOT/boot/grub/i386-pc"
cp /usr/lib/grub/i386-pc/*.mod /usr/lib/grub/i386-pc/*.lst "$ROOT/boot/grub/i386-pc/"
grub_cfg "$KCMD_GOOD" 'insmod part_msdos' >"$ROOT/boot/grub/grub.cfg"
grub_cfg "$KCMD_WRONG" 'insmod part_msdos' >"$WORK/grub-wrong.cfg"
[ "$(stat -c %s "$ROOT/boot/grub/grub.cfg")" = "$(stat -c %s "$WORK/grub-wrong.cfg")" ] || die "wrong-root grub.cfg differs in length"

# --- ext4 file system -----------------------------------------------------------------------------
used_kib="$(du -s --apparent-size --block-size=1K "$ROOT" | cut -f1)"
FS_MIB=$(((used_kib * 5 / 4 / 1024 + 96 + 63) / 64 * 64))
say "ext4: mkfs.ext4 -d, ${FS_MIB} MiB (content $((used_kib / 1024)) MiB)"
truncate -s "${FS_MIB}M" "$WORK/root.ext4"
mkfs.ext4 -q -F -t ext4 -T default -b 4096 -I 256 -L "$ROOT_LABEL" -U "$ROOT_UUID" -E lazy_itable_init=0,root_owner=0:0 -d "$ROOT" "$WORK/root.ext4"
e2fsck -fn "$WORK/root.ext4" >/dev/null 2>&1 || die "e2fsck finds errors in the new file system"
rm -rf "$ROOT"

# --- good.raw: MBR, ext4 at 1 MiB, GRUB i386-pc ---------------------------------------------------
say "good.raw: partition table, file system, GRUB i386-pc"
DISK_SECTORS=$(((FS_MIB + 1) * 2048))
raw="$WORK/good.raw"
truncate -s $((DISK_SECTORS * 512)) "$raw"
sfdisk -q --no-reread --no-tell-kernel "$raw" <<EOF
label: dos
label-id: $MBR_ID
unit: sectors
start=2048, size=$((FS_MIB * 2048)), type=83, bootable
EOF
dd if="$WORK/root.ext4" of="$raw" bs=1M seek=1 conv=notrunc,sparse status=none
grub-mkimage -O i386-pc -d /usr/lib/grub/i386-pc -p '(hd0,msdos1)/boot/grub' -o "$WORK/core.img" biosdisk part_msdos ext2
core_size="$(stat -c %s "$WORK/core.img")"
[ "$core_size" -le $((2047 * 512)) ] || die "core.img ($core_size bytes) does not fit before the partition"
dd if=/usr/lib/grub/i386-pc/boot.img of="$raw" bs=440 count=1 conv=notrunc status=none
dd if="$WORK/core.img" of="$raw" bs=512 seek=1 conv=notrunc status=none

# --- broken variants: byte edits of good.raw ------------------------------------------------------
say "broken variants: zeroed-mbr, zeroed-superblock, wrong-root"
cp --sparse=always "$raw" "$WORK/zeroed-mbr.raw"
dd if=/dev/zero of="$WORK/zeroed-mbr.raw" bs=512 count=1 conv=notrunc status=none
cp --sparse=always "$raw" "$WORK/zeroed-superblock.raw"
dd if=/dev/zero of="$WORK/zeroed-superblock.raw" bs=1024 seek=$((1024 + 1)) count=1 conv=notrunc status=none
# grub.cfg is one data block (ext4 does not checksum file data): find it, check it, overwrite it.
cfg_block="$(debugfs -R 'bmap /boot/grub/grub.cfg 0' "$WORK/root.ext4" 2>/dev/null | tail -n 1)"
{ [[ "$cfg_block" =~ ^[0-9]+$ ]] && [ "$cfg_block" -gt 0 ]; } || die "cannot find grub.cfg's block: $cfg_block"
cfg_offset=$((1048576 + cfg_block * 4096))
cfg_size="$(stat -c %s "$WORK/grub-wrong.cfg")"
cmp -s -n "$cfg_size" <(tail -c +$((cfg_offset + 1)) "$raw" | head -c "$cfg_size") <(debugfs -R 'cat /boot/grub/grub.cfg' "$WORK/root.ext4" 2>/dev/null) ||
  die "grub.cfg is not where debugfs says"
cp --sparse=always "$raw" "$WORK/wrong-root.raw"
dd if="$WORK/grub-wrong.cfg" of="$WORK/wrong-root.raw" bs=1 seek="$cfg_offset" conv=notrunc status=none

# --- format conversions ---------------------------------------------------------------------------
say "conversions: qcow2, vmdk (streamOptimized), vhdx, vhd"
qemu-img convert -f raw -O qcow2 "$raw" "$WORK/good.qcow2"
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$raw" "$WORK/good.vmdk"
qemu-img convert -f raw -O vhdx "$raw" "$WORK/good.vhdx"
qemu-img convert -f raw -O vpc -o force_size=on "$raw" "$WORK/good.vhd"
if command -v zstd >/dev/null; then
  say "conversions: zstd -3"
  zstd -q -3 -T0 "$raw" -o "$WORK/good.raw.zst"
fi

# --- good-uefi.raw: GPT, EFI system partition with a standalone GRUB, the same ext4 root ----------
say "good-uefi.raw: GRUB x86_64-efi, FAT32 ESP, GPT"
# all_video (efi_gop): GRUB hands the kernel OVMF's framebuffer, so tty1 and its login prompt
# are drawn in graphics mode (read by OCR), as on a real UEFI machine.
grub_cfg "$KCMD_GOOD" "insmod part_gpt
insmod fat
insmod all_video
search --no-floppy --fs-uuid --set=root $ROOT_UUID" >"$WORK/grub-efi.cfg"
grub-mkstandalone -O x86_64-efi -d /usr/lib/grub/x86_64-efi --locales= --fonts= --themes= \
  --install-modules='normal configfile linux echo test search search_fs_uuid part_gpt part_msdos fat ext2 efi_gop all_video' \
  --modules='part_gpt ext2' -o "$WORK/BOOTX64.EFI" "boot/grub/grub.cfg=$WORK/grub-efi.cfg"
mkfs.vfat -C -F 32 -S 512 -s 1 -n EFI -i "$ESP_VOLID" "$WORK/esp.fat" $((ESP_MIB * 1024)) >/dev/null
mmd -i "$WORK/esp.fat" ::/EFI ::/EFI/BOOT
mcopy -i "$WORK/esp.fat" "$WORK/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
uefi="$WORK/good-uefi.raw"
ROOT_START=$(((1 + ESP_MIB) * 2048))
truncate -s $(((ROOT_START + FS_MIB * 2048 + 2048) * 512)) "$uefi"
sfdisk -q --no-reread --no-tell-kernel "$uefi" <<EOF
label: gpt
label-id: $GPT_ID
unit: sectors
first-lba: 2048
start=2048, size=$((ESP_MIB * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$ESP_PART_UUID, name="EFI System Partition"
start=$ROOT_START, size=$((FS_MIB * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$ROOT_PART_UUID, name="$ROOT_LABEL"
EOF
dd if="$WORK/esp.fat" of="$uefi" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$WORK/root.ext4" of="$uefi" bs=1M seek=$((1 + ESP_MIB)) conv=notrunc,sparse status=none

# --- manifest -------------------------------------------------------------------------------------
say "manifest: sha256 of every file"
files=(good.raw zeroed-mbr.raw zeroed-superblock.raw wrong-root.raw good.qcow2 good.vmdk good.vhdx good.vhd good-uefi.raw)
[ -f "$WORK/good.raw.zst" ] && files+=(good.raw.zst)
(cd "$WORK" && printf '%s\0' "${files[@]}" | xargs -0 -n 1 -P "$(nproc)" sha256sum) >"$WORK/sha256sums"
describe() { # name -> format|firmware|expect|description
  case "$1" in
  good.raw) echo "raw|bios|login|MBR, ext4 root at 1 MiB, GRUB i386-pc; boots to '$HOSTNAME_GUEST login:' on tty1 and ttyS0" ;;
  zeroed-mbr.raw) echo "raw|bios|no-bootable-device|good.raw with its first 512 bytes zeroed (no boot code, no partition table)" ;;
  zeroed-superblock.raw) echo "raw|bios|grub-rescue|good.raw with the ext4 primary superblock (partition bytes 1024..2047) zeroed; GRUB cannot read /boot/grub" ;;
  wrong-root.raw) echo "raw|bios|initramfs-shell|good.raw whose grub.cfg gives the kernel root=$WRONG_ROOT; the initramfs gives up" ;;
  good.qcow2) echo "qcow2|bios|login|good.raw converted with qemu-img" ;;
  good.vmdk) echo "vmdk|bios|login|good.raw converted with qemu-img, subformat=streamOptimized" ;;
  good.vhdx) echo "vhdx|bios|login|good.raw converted with qemu-img" ;;
  good.vhd) echo "vpc|bios|login|good.raw converted with qemu-img -O vpc (VHD, dynamic, force_size)" ;;
  good.raw.zst) echo "raw|bios|login|good.raw compressed with zstd -3 (decompress before use)" ;;
  good-uefi.raw) echo "raw|uefi|login|GPT, FAT32 EFI system partition with EFI/BOOT/BOOTX64.EFI (standalone GRUB), the same ext4 root as partition 2" ;;
  esac
}
{
  printf '{\n  "scriptSha256": "%s",\n  "builtAt": "%s",\n' "$SCRIPT_SHA" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf '  "suite": "%s",\n  "kernel": "%s",\n  "hostname": "%s",\n  "loginPrompt": "%s login:",\n' "$SUITE" "$KVER" "$HOSTNAME_GUEST" "$HOSTNAME_GUEST"
  printf '  "rootUuid": "%s",\n  "wrongRoot": "%s",\n  "kernelCmdline": "%s",\n' "$ROOT_UUID" "$WRONG_ROOT" "$KCMD_GOOD"
  printf '  "files": {\n'
  n=0
  for name in "${files[@]}"; do
    n=$((n + 1))
    IFS='|' read -r format firmware expect description < <(describe "$name")
    sha="$(awk -v n="$name" '$2 == n { print $1 }' "$WORK/sha256sums")"
    size="$(stat -c %s "$WORK/$name")"
    disk="$(($(stat -c %b "$WORK/$name") * $(stat -c %B "$WORK/$name")))"
    compression=none
    case "$name" in
    *.zst) compression=zstd vsize="$(stat -c %s "$raw")" ;;
    *) vsize="$(qemu-img info -f "$format" --output=json "$WORK/$name" | sed -n 's/^    "virtual-size": \([0-9]*\),*$/\1/p')" ;;
    esac
    sep=','
    [ "$n" = "${#files[@]}" ] && sep=''
    printf '    "%s": { "sha256": "%s", "size": %s, "diskUsage": %s, "virtualSize": %s, "format": "%s", "compression": "%s", "firmware": "%s", "expect": "%s", "description": "%s" }%s\n' \
      "$name" "$sha" "$size" "$disk" "$vsize" "$format" "$compression" "$firmware" "$expect" "$description" "$sep"
  done
  printf '  }\n}\n'
} >"$WORK/manifest.json"

for name in "${files[@]}" manifest.json; do mv -f "$WORK/$name" "$OUT/$name"; done
{
  echo "$SCRIPT_SHA"
  printf '%s\n' "${files[@]}" manifest.json
} >"$STAMP"
say "done: ${files[*]} in $OUT"
