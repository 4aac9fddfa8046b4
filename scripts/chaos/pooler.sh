# The chaos scenario `pooler` (sourced by scripts/chaos.sh, which provides
# $bin, $work, $out, $pg_port, $old_key, serve, load, load_wait, verify,
# count_status, say, die and the pids list). A `serve` whose DATABASE_URL is
# a PgBouncer (Debian's, transaction mode, DATABASE_PREPARED_STATEMENTS=off;
# LISTEN and locks on DATABASE_DIRECT_URL, straight to PostgreSQL) takes
# writes at c=64 while PgBouncer is restarted twice (SIGTERM: an immediate
# shutdown that cuts every client and server connection, then a start on
# the same port). Every acknowledged write must be stored and read back.
source scripts/lib/pgbouncer.sh
say "scenario pooler: writes at c=64 through PgBouncer, PgBouncer restarted twice"
pgbouncer_start "$work/pgbouncer" 127.0.0.1 "$pg_port" || die "cannot start pgbouncer"
pids+=("$pgbouncer_pid")
say "  PgBouncer $("$(pgbouncer_bin)" --version | head -1 | awk '{print $2}') on 127.0.0.1:$pgbouncer_port (transaction mode)"
pg_run psql "$admin_url" -XAtqc "CREATE DATABASE chaos_pooler" >/dev/null
direct_url="postgres://postgres@127.0.0.1:$pg_port/chaos_pooler"
pooled_port=$(free_port)
serve pooled "$pooled_port" chaos_pooler \
  DATABASE_URL="$(pgbouncer_url "$direct_url")" DATABASE_DIRECT_URL="$direct_url" \
  DATABASE_PREPARED_STATEMENTS=off
pooled_url="http://127.0.0.1:$pooled_port"
before=${serve_pid[pooled]}
# load/verify read $work/token: this database's, the main one's put back after.
cp "$work/token" "$work/token-main"
DATABASE_URL=$direct_url "$bin" token create --name chaos --scope admin >"$work/token"
ledger_pooler=$work/ledger-pooler
load "$ledger_pooler" pooler 26 64 "$pooled_url"
for at in 7 9; do
  sleep "$at"
  pgbouncer_restart || die "pgbouncer did not start again"
  pids+=("$pgbouncer_pid")
  say "  PgBouncer restarted (SIGTERM, start on the same port)"
done
load_wait pooler
kill -0 "$before" 2>/dev/null || die "serve did not survive the PgBouncer restarts"
n503=$(count_status pooler 503)
say "  503s across the restarts: ${n503:-0}"
echo "pooler: PgBouncer restarted x2 under c=64: 503 answers: ${n503:-0}; $(cat "$work/load-pooler.out")" >>"$out/figures.txt"
verify "$pooled_url" "$ledger_pooler" "pooler: PgBouncer restarted x2 under c=64"
pgbouncer_stop
mv "$work/token-main" "$work/token"
