#!/usr/bin/env bash
# Instructions per seal/open, framed vs raw (and raw with the framed value's
# associated data: the GHASH work the format requires), from callgrind:
# counts that do not depend on the machine's load (criterion's medians do).
# Each case runs twice (N1 and N2 operations); (Ir(N2) - Ir(N1)) / (N2 - N1)
# is one operation without the setup and one-time costs. User space only:
# the kernel's side of the nonce pool's `getrandom` (one call per 128
# seals) is not counted; `framing_cost cpu` times it.
#
#   cargo build --release --example framing_cost
#   scripts/bench/framing-callgrind.sh [SIZE...]      (default 32 400 4096)
#
# BIN=path/to/framing_cost measures another build (e.g. a base commit's);
# KEEP=dir keeps the N2 profiles (callgrind_annotate --inclusive=yes FILE).
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=${BIN:-target/release/examples/framing_cost}
n1=${N1:-200}
n2=${N2:-2200}
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(32 400 4096)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

instructions() { # op kind size n -> total Ir
  local out="$tmp/$1-$2-$3-$4.out"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" "$3" "$4" 2>/dev/null
  if [ -n "${KEEP:-}" ] && [ "$4" = "$n2" ]; then
    mkdir -p "$KEEP" && cp "$out" "$KEEP/"
  fi
  sed -n 's/^summary: //p' "$out"
}

echo "| op | size | framed Ir/op | raw+aad Ir/op | raw Ir/op | framed / raw | raw+aad / raw |"
echo "|---|---|---|---|---|---|---|"
for op in seal open; do
  for size in "${sizes[@]}"; do
    declare -A per=()
    for kind in framed raw+aad raw; do
      a=$(instructions "$op" "$kind" "$size" "$n1")
      b=$(instructions "$op" "$kind" "$size" "$n2")
      per[$kind]=$(((b - a) / (n2 - n1)))
    done
    ratios=$(awk -v f="${per[framed]}" -v a="${per[raw+aad]}" -v r="${per[raw]}" \
      'BEGIN { printf "%.2f | %.2f", f / r, a / r }')
    echo "| $op | $size | ${per[framed]} | ${per[raw+aad]} | ${per[raw]} | $ratios |"
  done
done
