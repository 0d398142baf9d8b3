#!/usr/bin/env bash
# Usage: scripts/docker-context.sh [OUT]   (default: .docker-context in this checkout)
# Makes the build context of backproof's Docker image from the npm package this checkout packs
# (npm pack of the built dist/: run `npm run build` first), so that `docker build` only copies
# and runs nothing that needs a network:
#   OUT/app                     the unpacked package plus its production dependencies at
#                               package-lock.json's versions (npm ci --omit=dev; npm's cache first)
#                               and the image's HEALTHCHECK, docker-healthcheck.mjs
#   OUT/Dockerfile
# then: docker build -t backproof OUT   (see the Dockerfile's header for BASE_IMAGE and running it)
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:-.docker-context}")"
[ -f dist/build-info.json ] || { echo "docker-context: dist/ is not built: run npm run build first" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out/pack"
tgz="$(npm pack --silent --pack-destination "$out/pack")"
tar -xzf "$out/pack/$tgz" -C "$out"
mv "$out/package" "$out/app"
rm -rf "$out/pack"
cp package-lock.json "$out/app/"
# --ignore-scripts: no dependency needs its install script (ssh2's optional native speed-up is skipped).
(cd "$out/app" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error >&2)
cp scripts/docker-healthcheck.mjs "$out/app/"
cp Dockerfile "$out/"
echo "$out"
