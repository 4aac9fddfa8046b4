#!/usr/bin/env bash
# Do legitimate callers keep their p99 while bogus-token clients hammer the
# server? A fresh database and server, then examples/bogus_flood: legitimate
# credentials reads alone, then under FLOOD bogus-token clients, side by side
# in one run.
#
#   scripts/bench/flood.sh                                  # release, 512 bogus clients
#   PROFILE=debug FLOOD=16 REQUESTS=100 scripts/bench/flood.sh   # a smoke run
#
# Knobs: PROFILE (release), FLOOD (512), REQUESTS (2000), LEGIT (4),
# VIBEE_SESSIONS_BIN (a prebuilt server, e.g. an older one to compare),
# FLOOD_BIN (a prebuilt examples/bogus_flood),
# BENCH_DB (vs_flood). Extra `serve` settings come from the environment
# (TOKEN_MAX_CONCURRENCY, DB_POOL_SIZE, ...).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
source scripts/lib/postgres.sh
profile=${PROFILE:-release}
db=${BENCH_DB:-vs_flood}
admin_url=${TEST_DATABASE_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
say() { printf '[flood %s] %s\n' "$(date +%T)" "$*" >&2; }
source scripts/bench/prepare.sh
flood_bin=${FLOOD_BIN:-$root/target/$profile/examples/bogus_flood}
[ -n "${FLOOD_BIN:-}" ] || cargo build "${flags[@]}" --locked --example bogus_flood >&2

work=$(mktemp -d)
scratch_cleanup() { rm -rf "$work"; }
source scripts/lib/scratch.sh
source scripts/lib/server.sh
scratch_database "$admin_url" "$db" "$bin"
"$seed" 100 0 2>&1 | sed 's/^/  /' >&2
(umask 077 && server_token "$bin" flood-reader sessions:read >"$work/token")
server_start "$bin" "$work/server.log" || { say "the server did not start"; exit 1; }
say "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$flood_bin" --target "$server_url" --token-file "$work/token" --user-id bench0000000 \
  --flood "${FLOOD:-512}" --requests "${REQUESTS:-2000}" --legit "${LEGIT:-4}"
say "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
errors=$(grep -c -E ' ERROR ' "$work/server.log" || true)
say "ERROR lines in the server log: $errors"
