#!/usr/bin/env bash
# Usage: scripts/build-base-image.sh [NODE_VERSION]   (default 24, the current LTS)
# Prints the tag of a base for backproof's Dockerfile (docker build --build-arg BASE_IMAGE=<tag>)
# built without an image registry, as the sandbox images are: Debian bookworm packages by
# mmdebstrap (minbase) plus the npm registry's Node.js binary (scripts/node-runtime.sh) in
# /usr/local/bin, as the official node images have it, then `docker import`. It carries what
# backproof runs on the host side: restic (driver: restic), zstd/xz/bzip2 (the first bytes of a
# compressed backup are checked on the host when these are there), ca-certificates (TLS to S3 and
# restic repositories); the Dockerfile then needs no network.
# Tagged backproof-base:node<major>-<recipe hash> (the hash covers this script, the packages and the
# Node.js version): reused while it exists, so a second CI run costs nothing. Needs root and dockerd.
set -euo pipefail
self="$(realpath "$0")"
cd "$(dirname "$self")/.."
version="${1:-24}"
node_bin="$(scripts/node-runtime.sh "$version")"
node_version="$("$node_bin" --version)"
packages=ca-certificates,restic,zstd,xz-utils,bzip2,libstdc++6
suite=bookworm
recipe_hash="$( (cat "$self"; echo "$packages $suite $node_version") | sha256sum | cut -c1-12)"
major="${node_version#v}"
tag="backproof-base:node${major%%.*}-$recipe_hash"

cache="${BACKPROOF_TEST_CACHE:-/var/cache/backproof-test}"
mkdir -p "$cache"
exec 9>"$cache/.base-image.lock"
flock 9
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi
echo "build-base-image: building $tag: Debian $suite ($packages) + Node.js $node_version (mmdebstrap, about a minute)" >&2
tar="$(mktemp "$cache/base-image.XXXXXX.tar")"
trap 'rm -f "$tar"' EXIT
mmdebstrap --variant=minbase --mode=auto --quiet --include="$packages" \
  --customize-hook="cp '$node_bin' \"\$1\"/usr/local/bin/node" \
  --customize-hook='chroot "$1" /usr/local/bin/node -e "process.exit(0)"' \
  --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/* "$1"/usr/share/doc "$1"/usr/share/man' \
  "$suite" "$tar" >&2
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "LABEL org.opencontainers.image.vendor=backproof backproof.base.recipe=$recipe_hash backproof.base.node=$node_version" \
  "$tar" "$tag" >/dev/null
echo "build-base-image: built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1048576}'))" >&2
echo "$tag"
