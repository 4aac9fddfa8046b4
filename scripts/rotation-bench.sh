#!/usr/bin/env bash
# Rotation throughput: seeds ROWS sessions (default 100000) into a throw-away
# database through the real store, then runs `vibee-sessions rotate` on them
# and prints its summary (rows, seconds, rows/s).
#
#   scripts/rotation-bench.sh [ROWS]          # debug build
#   PROFILE=release scripts/rotation-bench.sh # optimised build
#   BATCH=1000 scripts/rotation-bench.sh      # another batch size
#
# The server: TEST_DATABASE_URL, else DATABASE_URL, else the local PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh

rows=${1:-100000}
profile=${PROFILE:-debug}
batch=${BATCH:-500}
admin_url=${TEST_DATABASE_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
ensure_postgres "$admin_url"

flags=()
[ "$profile" = release ] && flags=(--release)
cargo build "${flags[@]}" --bin vibee-sessions --example seed_sessions
bin=target/$profile/vibee-sessions

source scripts/lib/scratch.sh
scratch_database "$admin_url" "vs_bench_rotation_$$" "$bin"
"target/$profile/examples/seed_sessions" "$rows"
# No replica runs against this database, so no grace period is needed.
${ROTATE_WRAP:-} env RUST_LOG=${RUST_LOG:-warn} "$bin" rotate --grace-ms 0 --batch-size "$batch" </dev/null
