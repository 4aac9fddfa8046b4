# shellcheck shell=bash
# A private PostgreSQL primary with a synchronous streaming standby, on free
# ports of 127.0.0.1, for failover tests and chaos scenarios. Never the
# shared server.
#
#   source scripts/lib/standby.sh
#   standby_create DIR        primary (DIR/primary) + standby (DIR/standby):
#                             pg_basebackup -R, then synchronous_standby_names
#                             and synchronous_commit=on on the primary; sets
#                             standby_primary_port and standby_standby_port
#   standby_sql PORT SQL      psql -XAtq as postgres on 127.0.0.1:PORT
#   standby_stop_primary [MODE]   pg_ctl stop -m MODE (default immediate)
#   standby_promote           pg_ctl promote -w; returns once it takes writes
#   standby_destroy           stops both servers, removes DIR
#
# Needs the PostgreSQL 15 server binaries (PG_BIN, default
# /usr/lib/postgresql/15/bin; Debian: apt-get install postgresql-15) and psql;
# as root the servers run as `postgres` (runuser), as initdb demands.
# STANDBY_FSYNC=off trades crash safety of the host for speed (tests).
#
# The standby is a copy taken before the primary is told to wait for it, so
# it does not inherit synchronous_standby_names: once promoted, with no
# standby of its own, it commits without waiting for one.

source "$(dirname "${BASH_SOURCE[0]}")/postgres.sh"
source "$(dirname "${BASH_SOURCE[0]}")/server.sh"

standby_say() { printf '[standby %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

standby_as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# standby_check_binaries: says what is missing (exit status 1) or nothing.
standby_check_binaries() {
  local bin=${PG_BIN:-/usr/lib/postgresql/15/bin} p
  for p in initdb pg_ctl pg_basebackup postgres; do
    if [ ! -x "$bin/$p" ]; then
      standby_say "missing $bin/$p: install the PostgreSQL 15 server (apt-get install postgresql-15) or set PG_BIN"
      return 1
    fi
  done
  command -v psql >/dev/null 2>&1 || { standby_say "missing psql (apt-get install postgresql-client)"; return 1; }
  [ "$(id -u)" != 0 ] || command -v runuser >/dev/null 2>&1 || { standby_say "missing runuser (util-linux)"; return 1; }
}

standby_sql() {
  pg_run psql "postgres://postgres@127.0.0.1:$1/postgres" -XAtq -v ON_ERROR_STOP=1 -c "$2"
}

_standby_start() { # NAME PORT
  standby_as_pg "$PG_BIN/pg_ctl" -D "$standby_dir/$1" -l "$standby_dir/$1.log" -w -t 60 \
    -o "-p $2 -k $standby_dir -c listen_addresses=127.0.0.1 -c max_connections=100 -c fsync=${STANDBY_FSYNC:-on}" \
    start >/dev/null
}

standby_create() {
  standby_dir=$1
  PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
  standby_check_binaries || return 1
  mkdir -p "$standby_dir"
  chmod 755 "$standby_dir"
  [ "$(id -u)" = 0 ] && chown postgres "$standby_dir"
  standby_primary_port=$(free_port)
  standby_standby_port=$(free_port)
  while [ "$standby_standby_port" = "$standby_primary_port" ]; do standby_standby_port=$(free_port); done

  standby_as_pg "$PG_BIN/initdb" -D "$standby_dir/primary" -U postgres --auth=trust \
    --no-instructions >"$standby_dir/initdb.out" 2>&1 ||
    { standby_say "initdb failed: $(tail -3 "$standby_dir/initdb.out")"; return 1; }
  _standby_start primary "$standby_primary_port" ||
    { standby_say "the primary did not start: $(tail -5 "$standby_dir/primary.log")"; return 1; }

  # -R: standby.signal and primary_conninfo; the WAL streamed alongside.
  standby_as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$standby_primary_port" -U postgres \
    -D "$standby_dir/standby" -R -X stream -c fast >"$standby_dir/basebackup.out" 2>&1 ||
    { standby_say "pg_basebackup failed: $(tail -3 "$standby_dir/basebackup.out")"; return 1; }
  _standby_start standby "$standby_standby_port" ||
    { standby_say "the standby did not start: $(tail -5 "$standby_dir/standby.log")"; return 1; }

  # Every commit on the primary now waits until the standby has flushed it.
  standby_sql "$standby_primary_port" "ALTER SYSTEM SET synchronous_standby_names = '*'" >/dev/null
  standby_sql "$standby_primary_port" "ALTER SYSTEM SET synchronous_commit = 'on'" >/dev/null
  standby_sql "$standby_primary_port" "SELECT pg_reload_conf()" >/dev/null
  local i state
  for i in $(seq 1 100); do
    state=$(standby_sql "$standby_primary_port" "SELECT sync_state FROM pg_stat_replication" 2>/dev/null || true)
    [ "$state" = sync ] && break
    sleep 0.1
  done
  [ "$state" = sync ] || { standby_say "the standby is not a synchronous standby ($state)"; return 1; }
  standby_say "primary 127.0.0.1:$standby_primary_port, synchronous standby 127.0.0.1:$standby_standby_port ($standby_dir)"
}

standby_stop_primary() {
  standby_as_pg "$PG_BIN/pg_ctl" -D "$standby_dir/primary" -m "${1:-immediate}" -w -t 30 stop >/dev/null
}

standby_promote() {
  standby_as_pg "$PG_BIN/pg_ctl" -D "$standby_dir/standby" -w -t 60 promote >/dev/null || return 1
  local i
  for i in $(seq 1 100); do
    [ "$(standby_sql "$standby_standby_port" "SELECT pg_is_in_recovery()" 2>/dev/null)" = f ] && return 0
    sleep 0.1
  done
  standby_say "the standby still is in recovery after promotion"
  return 1
}

standby_destroy() {
  [ -n "${standby_dir:-}" ] || return 0
  local node
  for node in standby primary; do
    [ -f "$standby_dir/$node/postmaster.pid" ] &&
      standby_as_pg "$PG_BIN/pg_ctl" -D "$standby_dir/$node" -m immediate -w -t 30 stop >/dev/null 2>&1
  done
  rm -rf "$standby_dir"
  standby_dir=
}
