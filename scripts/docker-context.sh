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
# With BACKPROOF_DEPS_CACHE set (the tests set it), the production node_modules of a given
# package-lock.json is kept there and copied (about 120 MB, plain JavaScript: nothing is built).
cache="${BACKPROOF_DEPS_CACHE:-}"
key="$(sha256sum package-lock.json | cut -c1-16)"
[ -z "$cache" ] || { mkdir -p "$cache"; exec 9>"$cache/.lock"; flock 9; }
if [ -n "$cache" ] && [ -d "$cache/$key/node_modules" ]; then
  cp -a "$cache/$key/node_modules" "$out/app/"
else
  # --ignore-scripts: no dependency needs its install script (ssh2's optional native speed-up is skipped).
  (cd "$out/app" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error >&2)
  if [ -n "$cache" ]; then
    tmp="$(mktemp -d "$cache/.new.XXXXXX")"
    cp -a "$out/app/node_modules" "$tmp/"
    # Only the current lock file's: older ones go.
    find "$cache" -mindepth 1 -maxdepth 1 ! -name "$(basename "$tmp")" ! -name .lock -exec rm -rf {} +
    mv "$tmp" "$cache/$key" 2>/dev/null || rm -rf "$tmp"
  fi
fi
cp scripts/docker-healthcheck.mjs "$out/app/"
# The image runs as an unprivileged user: whatever this host's umask, everything is readable.
chmod -R a+rX "$out/app"
cp Dockerfile "$out/"
echo "$out"
