#!/usr/bin/env bash
# The lease settle run of scripts/bench/leases.sh alone, on a database of
# its own: seeds TENANTS tenants (examples/seed_sessions), starts
# LEASE_LOADERS `boot --all --exec` loaders together, and reports how long
# until every tenant is leased and no loader holds more than its share,
# against the bound: the lease TTL plus one renewal period. Needs psql only
# (no wrk, no server). Run through `scripts/bench.sh --settle`:
#
#   PROFILE=release TENANTS=100000 scripts/bench.sh --settle
#
# Knobs: TENANTS (default 100000), LEASE_LOADERS (3), LEASE_TTL (30),
# RUNS (settle runs over the same tenants, default 1), PROFILE (release),
# VIBEE_SESSIONS_BIN / SEED_BIN, BENCH_DB (vs_settle).
# Exits non-zero when a run did not settle within the bound.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
source scripts/lib/postgres.sh

tenants=${TENANTS:-100000}
profile=${PROFILE:-release}
db=${BENCH_DB:-vs_settle}
runs=${RUNS:-1}
lease_loaders=${LEASE_LOADERS:-3}
lease_ttl=${LEASE_TTL:-30}
admin_url=${TEST_DATABASE_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
say() { printf '[settle %s] %s\n' "$(date +%T)" "$*" >&2; }

bench_tools=psql
source scripts/bench/prepare.sh
work=$(mktemp -d)
scratch_cleanup() { rm -rf "$work"; }
source scripts/lib/scratch.sh
scratch_database "$admin_url" "$db" "$bin"
sql() { pg_run psql "$DATABASE_URL" -XAtq -v ON_ERROR_STOP=1 "$@"; }
source scripts/bench/settle.sh

say "seeding $tenants tenants"
"$seed" "$tenants" 0 2>&1 | sed 's/^/  /' >&2
sql -c "VACUUM ANALYZE"
bound=$((lease_ttl + lease_ttl / 3))
status=0
for run in $(seq 1 "$runs"); do
  : >"$work/settle-trace.txt"
  before=$(cut -d' ' -f1-3 /proc/loadavg)
  say "run $run: $lease_loaders loaders, --lease-ttl ${lease_ttl}s"
  lease_settle "$lease_loaders" "$lease_ttl"
  verdict=$([ -n "$settle_s" ] && awk -v s="$settle_s" -v b="$bound" 'BEGIN {print (s+0 <= b+0) ? "met" : "missed"}' || echo missed)
  echo "run $run: $lease_loaders loaders over $settle_active tenants (share $settle_share): settled in ${settle_s:-(did not settle)} s, bound $bound s: $verdict; load average $before before, $settle_load after, $(nproc) cores"
  # Every few seconds of the run: seconds, leased, the most any loader held.
  awk 'NR == 1 || $1 >= next_at { print "  " $0; next_at = $1 + 2 }' "$work/settle-trace.txt"
  [ "$verdict" = met ] || status=1
  # What the loaders warned about, counted (stderr).
  cat "$work"/lease-loader-*.log | sed -E 's/^[^ ]+ +//' | sort | uniq -c | sort -rn | head -20 >&2 || true
  rm -f "$work"/lease-loader-*.log
done
exit $status
