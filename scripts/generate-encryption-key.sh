#!/usr/bin/env bash
# A new master key in a file only its owner can read.
#
#   scripts/generate-encryption-key.sh [--out PATH] [--force]
#
# Default PATH: keys/master.key. An existing file is never replaced without
# --force: data sealed under the old key is unreadable without it.
set -euo pipefail
source "$(dirname "$0")/lib/bin.sh"

out=keys/master.key
force=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?--out needs a path}; shift 2 ;;
    --out=*) out=${1#--out=}; shift ;;
    --force) force=(--force); shift ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

bin=$(vibee_sessions_bin)
exec "$bin" keygen --out "$out" "${force[@]}"
