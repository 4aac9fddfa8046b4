#!/usr/bin/env bash
# The suites that run `serve` (tests/api.rs, tests/leases.rs,
# tests/fencing.rs) once more, every test server's DATABASE_URL
# going through a real PgBouncer in transaction mode (Debian's package,
# installed when missing) with DATABASE_PREPARED_STATEMENTS=off and
# DATABASE_DIRECT_URL at the test database (tests/common/server.rs reads
# TEST_PGBOUNCER_PORT). scripts/test.sh runs it; alone:
#
#   scripts/pgbouncer-test.sh [cargo test arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
source scripts/lib/server.sh
source scripts/lib/pgbouncer.sh

export TEST_DATABASE_URL=${TEST_DATABASE_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
ensure_postgres "$TEST_DATABASE_URL"
# Where the server really is (a socket URL answers NULL: loopback then).
read -r pg_host pg_port < <(pg_run psql "$TEST_DATABASE_URL" -XAtqF ' ' \
  -c "SELECT coalesce(host(inet_server_addr()), '127.0.0.1'), coalesce(inet_server_port(), 5432)")
dir=$PWD/target/pgbouncer-api-$$
trap 'pgbouncer_stop; rm -rf "$dir"' EXIT
pgbouncer_start "$dir" "$pg_host" "$pg_port"
echo "tests/{api,leases,fencing}.rs through PgBouncer $("$(pgbouncer_bin)" --version | head -1 | awk '{print $2}') (transaction mode) on 127.0.0.1:$pgbouncer_port"
TEST_PGBOUNCER_PORT=$pgbouncer_port cargo test --locked --test api --test leases --test fencing "$@"
