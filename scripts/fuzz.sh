#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer) of the ciphertext parser
# and opener, the wrapped-key unwrapper, and request decoding + validation:
# each target runs for SECONDS (default 60), one after the other.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     targets: stored_field wrapped_key request_body
#
# Works on the stable toolchain: `-s none` builds libFuzzer's coverage
# instrumentation (-Cpasses=sancov-module, stable flags) without a sanitizer
# (AddressSanitizer needs nightly's -Zsanitizer). Safe Rust has no memory
# errors for ASan to find; panics, failed assertions, overflows (debug
# assertions are on) and timeouts are all caught. Installs cargo-fuzz from
# crates.io when missing. The first build compiles the dependency tree in
# release mode with instrumentation: about 7 minutes on 2 busy cores.
#
# A crash is saved under fuzz/artifacts/TARGET/; reproduce it with
#   cd fuzz && cargo fuzz run -s none -O TARGET artifacts/TARGET/crash-...
# and make it a regression test beside the code it exercises (e.g. a #[test]
# in src/crypto/tests.rs feeding the saved input to the same function).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(stored_field wrapped_key request_body)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz (cargo install cargo-fuzz --locked) ..." >&2
  cargo install cargo-fuzz --locked
fi

status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log=$(mktemp)
  echo "== $t: ${seconds}s"
  if cargo fuzz run -s none -O "$t" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1)
    echo "   $t: ${runs:-?} executions in ${seconds}s, $cov, no crash"
  else
    status=1
    echo "   $t: CRASH or build failure:"
    grep -E "panicked|ERROR|SUMMARY|artifact|error" "$log" | head -20
  fi
  rm -f "$log"
done
exit $status
