#!/usr/bin/env bash
# Builds the operator console (console/src -> console/dist) with the
# machine's Node.js and the npm packages pinned by console/package-lock.json.
# The built files are committed and embedded by `cargo build`, so building
# the server needs no Node.js; this script is for changing the console.
#
#   scripts/console-build.sh          # type-check, rebuild console/dist
#   scripts/console-build.sh --check  # type-check, build elsewhere, and fail
#                                     # when console/dist differs from it
set -euo pipefail
cd "$(dirname "$0")/../console"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "Node.js 20+ and npm are needed to build the console (Debian: apt-get install nodejs npm)." >&2
  exit 1
fi
# Installed exactly from the lockfile; no install scripts (esbuild's binary
# comes as its own npm package, @esbuild/linux-x64).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --ignore-scripts --no-audit --no-fund >&2
fi
npx --no-install tsc -p .

if [ "${1:-}" = --check ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  node build.mjs "$out"
  if ! diff -r "$out" dist >/dev/null; then
    echo "console/dist does not match console/src: run scripts/console-build.sh and commit console/dist." >&2
    diff -r "$out" dist | head -20 >&2
    exit 1
  fi
  echo "console/dist matches its sources."
else
  node build.mjs dist
  echo "built console/dist: $(cd dist && ls | tr '\n' ' ')"
fi
