#!/usr/bin/env bash
# How long `cargo test --no-run` takes with the integration tests as one
# binary per file (the tree as it is) and as one binary (crates.io's layout:
# tests/all/main.rs with a module per file), side by side on this machine.
#
#   scripts/test-build-layouts.sh [ROUNDS]     (default 2)
#
# Makes the one-binary copy of HEAD under target/test-layouts/one (git
# archive; every tests/X.rs becomes tests/all/X.rs, `mod common;` becomes
# `use crate::common;`), shares target/ with the tree (dependencies are
# built once), and for each layout and round times:
#   clean  the package's own artifacts removed (cargo clean -p), dependencies kept;
#   lib    after touching src/lib.rs (what a change in src/ costs);
#   test   after touching tests/store.rs (what a change in one test costs).
# Each line says the load average, which on a shared machine moves the
# figures more than anything: compare rounds run back to back.
# Not run by CI: it rebuilds the package several times.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rounds=${1:-2}
out=$root/target/test-layouts
one=$out/one
mkdir -p "$out"

say() { printf 'test-build-layouts: %s\n' "$*" >&2; }

rm -rf "$one"
mkdir -p "$one"
git archive HEAD | tar -x -C "$one"
mkdir -p "$one/tests/all"
mods=""
for f in "$one"/tests/*.rs; do
  n=$(basename "$f" .rs)
  sed -e 's/^mod common;$/use crate::common;/' "$f" >"$one/tests/all/$n.rs"
  rm "$f"
  mods="$mods"$'\n'"mod $n;"
done
mv "$one/tests/common" "$one/tests/all/common"
[ -d "$one/tests/transit_support" ] && mv "$one/tests/transit_support" "$one/tests/all/"
printf '//! Every integration test in one binary.\n\nmod common;%s\n' "$mods" >"$one/tests/all/main.rs"

# Seconds taken by `cargo test --no-run` in $1.
build() {
  local dir=$1 start end
  start=$(date +%s.%N)
  (cd "$dir" && CARGO_TARGET_DIR=$root/target cargo test --no-run --locked >/dev/null 2>"$out/last.err") || {
    say "the build in $dir failed:"
    tail -20 "$out/last.err" >&2
    exit 1
  }
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

line() { printf '%-6s %-5s round %s: %7.1f s   (load %s)\n' "$1" "$2" "$3" "$4" "$(cut -d' ' -f1-3 /proc/loadavg)"; }

say "warming up both layouts ..."
build "$root" >/dev/null
build "$one" >/dev/null
for r in $(seq "$rounds"); do
  for layout in many one; do
    dir=$root test_file=tests/store.rs
    [ "$layout" = one ] && dir=$one test_file=tests/all/store.rs
    (cd "$dir" && CARGO_TARGET_DIR=$root/target cargo clean -p vibee-sessions >/dev/null 2>&1)
    line "$layout" clean "$r" "$(build "$dir")"
    touch "$dir/src/lib.rs"
    line "$layout" lib "$r" "$(build "$dir")"
    touch "$dir/$test_file"
    line "$layout" test "$r" "$(build "$dir")"
  done
done
# Leave the tree's own artifacts current (the copy's build replaced
# target/debug/vibee-sessions).
touch "$root/src/main.rs"
build "$root" >/dev/null
