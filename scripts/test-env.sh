#!/usr/bin/env bash
# Prepares a fresh Debian/Ubuntu machine for backproof's tests, as root:
#   - Debian packages: docker.io (engine), mmdebstrap (sandbox images without a registry),
#     postgresql (server binaries: tests start throwaway clusters with initdb on loopback),
#     gzip/zstd/xz-utils/bzip2 (real compressors for format tests), restic, borgbackup, pgbackrest and barman (the restic,
#     borg, pgbackrest and barman drivers' real counterpart: tests make local repositories), zip and tar (file-share archive fixtures),
#     poppler-utils (pdftoppm/pdftotext: report PDFs rendered to PNG pages and read back),
#     chromium (the dashboard's browser tests, driven by playwright-core), jq and openssl (the
#     evidence bundle checked with standard tools, as docs/evidence.md shows), qemu-utils (test images
#     converted between disk formats), openssh-server (a worker driving an engine over ssh://: the
#     tests start their own sshd on loopback), faketime (date tests run a year ahead);
#   - starts dockerd when no engine answers (no bridge, no iptables: sandboxes have no network)
#     and writes its pid to $BACKPROOF_DOCKERD_PIDFILE (default /run/backproof-dockerd.pid);
#   - npm ci, build, and the sandbox images (PostgreSQL 15 and 17, MariaDB, files, QEMU) when
#     their tags are absent or were built from another recipe;
#   - the small bootable Debian disk images kind vm's tests boot (scripts/build-test-vm-images.sh,
#     cached in /var/cache/backproof-test/vm while the script is unchanged);
#   - Node.js 22, 24 and 26 from the npm registry's node package (scripts/node-runtime.sh, cached in
#     /var/cache/backproof-test/node-N), which test/node-runtimes.test.ts runs on, and the Docker
#     image's base from Debian packages plus Node.js 24 (scripts/build-base-image.sh, there is no
#     image registry; reused while its recipe is unchanged) for test/docker-image.test.ts.
# Idempotent: what is there already is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

PIDFILE="${BACKPROOF_DOCKERD_PIDFILE:-/run/backproof-dockerd.pid}"
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
for tool in faketime:faketime gzip:gzip zstd:zstd xz:xz-utils bzip2:bzip2 sha256sum:coreutils restic:restic borg:borgbackup pgbackrest:pgbackrest barman:barman zip:zip 7z:p7zip-full tar:tar pdftoppm:poppler-utils chromium:chromium jq:jq openssl:openssl qemu-img:qemu-utils; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "test-env: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! docker version >/dev/null 2>&1; then
  echo "test-env: starting dockerd"
  nohup dockerd --bridge=none --iptables=false >/tmp/backproof-dockerd.log 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 60); do docker version >/dev/null 2>&1 && break; sleep 1; done
  docker version >/dev/null || { echo "test-env: dockerd did not start; see /tmp/backproof-dockerd.log" >&2; exit 1; }
fi

echo "test-env: npm ci"
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
node bin/backproof.js images build postgres:15 --if-missing --yes
node bin/backproof.js images build postgres:17 --if-missing --yes
node bin/backproof.js images build mariadb --if-missing --yes
node bin/backproof.js images build files --if-missing --yes
node bin/backproof.js images build qemu --if-missing --yes
bash scripts/build-test-vm-images.sh
for v in 22 24 26; do bash scripts/node-runtime.sh "$v" >/dev/null; done
bash scripts/build-base-image.sh 24 >/dev/null
echo "test-env: ready"
