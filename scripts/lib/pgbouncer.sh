# shellcheck shell=bash
# A scratch PgBouncer (Debian's package, 1.18 on bookworm) in transaction
# mode in front of a PostgreSQL server, for tests, chaos and bench scripts.
#
#   source scripts/lib/pgbouncer.sh
#   pgbouncer_start DIR PG_HOST PG_PORT [USER...]   # sets pgbouncer_port, pgbouncer_pid
#   pgbouncer_url URL                # URL with its host:port replaced by the bouncer's
#   pgbouncer_restart                # stop (immediate) and start again on the same port
#   pgbouncer_stop
#
# pgbouncer_start installs the package when it is missing (apt-get), writes
# DIR/pgbouncer.ini (every database of PG_HOST:PG_PORT under its own name,
# `auth_type = trust` for the USERs given, postgres always), and starts it on
# a free port of 127.0.0.1. PgBouncer refuses to run as root: as root it runs
# as the `postgres` user (`-u`), which then owns DIR. Nothing here listens
# beyond loopback or outlives the caller's `pgbouncer_stop`.

pgbouncer_say() { printf '%s\n' "$*" >&2; }

pgbouncer_bin() {
  local bin
  for bin in pgbouncer /usr/sbin/pgbouncer; do
    command -v "$bin" >/dev/null 2>&1 && { command -v "$bin"; return 0; }
  done
  return 1
}

pgbouncer_install() {
  pgbouncer_bin >/dev/null && return 0
  # Tests start bouncers in parallel: one installs while the others wait for
  # it (two apt-gets at once fail on dpkg's lock).
  local lock
  exec {lock}>"${TMPDIR:-/tmp}/vibee-sessions-pgbouncer-install.lock"
  flock "$lock"
  if ! pgbouncer_bin >/dev/null; then
    pgbouncer_say "pgbouncer is not installed; installing the Debian package ..."
    if command -v apt-get >/dev/null 2>&1; then
      local sudo=()
      [ "$(id -u)" -ne 0 ] && sudo=(sudo)
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y pgbouncer >/dev/null 2>&1 ||
        { "${sudo[@]}" apt-get update >/dev/null 2>&1 &&
          "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y pgbouncer >/dev/null 2>&1; }
    fi
  fi
  exec {lock}>&-
  pgbouncer_bin >/dev/null && return 0
  pgbouncer_say "pgbouncer is needed and could not be installed: run apt-get install pgbouncer"
  return 1
}

pgbouncer_start() {
  pgbouncer_dir=$1
  local pg_host=$2 pg_port=$3 user
  shift 3
  pgbouncer_install || return 1
  mkdir -p "$pgbouncer_dir"
  pgbouncer_port=${pgbouncer_port:-$(free_port)}
  {
    printf '"postgres" ""\n'
    for user in "$@"; do printf '"%s" ""\n' "$user"; done
  } >"$pgbouncer_dir/userlist.txt"
  cat >"$pgbouncer_dir/pgbouncer.ini" <<EOF
[databases]
* = host=$pg_host port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pgbouncer_port
unix_socket_dir =
auth_type = trust
auth_file = $pgbouncer_dir/userlist.txt
pool_mode = transaction
; tokio-postgres sends \`options\` for statement_timeout/lock_timeout: 1.18
; cannot pass it on, so it is dropped (docs/DEPLOYMENT.md: the role's
; defaults carry the timeouts instead).
ignore_startup_parameters = extra_float_digits,options
max_client_conn = 2000
default_pool_size = ${PGBOUNCER_POOL_SIZE:-20}
server_reset_query =
; A query waiting for a server connection fails after 5 s instead of 120:
; with the database down, requests answer 503 rather than hang until the
; HTTP timeout (docs/DEPLOYMENT.md).
query_wait_timeout = 5
server_login_retry = 1
logfile = $pgbouncer_dir/pgbouncer.log
pidfile = $pgbouncer_dir/pgbouncer.pid
admin_users = postgres
EOF
  if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres "$pgbouncer_dir"
    runuser -u postgres -- test -w "$pgbouncer_dir" || {
      pgbouncer_say "pgbouncer runs as postgres, which cannot reach $pgbouncer_dir (a parent is private): use a directory under target/"
      return 1
    }
  fi
  pgbouncer_launch
}

# Starts the daemon on the written config; waits until it accepts connections.
pgbouncer_launch() {
  local as_user=() i
  [ "$(id -u)" -eq 0 ] && as_user=(-u postgres)
  rm -f "$pgbouncer_dir/pgbouncer.pid"
  "$(pgbouncer_bin)" -d "${as_user[@]}" "$pgbouncer_dir/pgbouncer.ini" >>"$pgbouncer_dir/start.log" 2>&1 || {
    pgbouncer_say "pgbouncer did not start; the end of its logs:"
    tail -n 20 "$pgbouncer_dir/start.log" "$pgbouncer_dir/pgbouncer.log" >&2 2>/dev/null
    return 1
  }
  for i in $(seq 1 50); do
    if [ -s "$pgbouncer_dir/pgbouncer.pid" ] &&
      (exec 3<>"/dev/tcp/127.0.0.1/$pgbouncer_port") 2>/dev/null; then
      pgbouncer_pid=$(cat "$pgbouncer_dir/pgbouncer.pid")
      return 0
    fi
    sleep 0.1
  done
  pgbouncer_say "pgbouncer did not listen on 127.0.0.1:$pgbouncer_port within 5 s; its log:"
  tail -n 20 "$pgbouncer_dir/pgbouncer.log" >&2
  return 1
}

# pgbouncer_url URL: URL with its host[:port] replaced by the bouncer's.
pgbouncer_url() {
  printf '%s' "$1" | sed -E "s#^([a-z]+://([^@/?]*@)?)[^/?]*#\1127.0.0.1:$pgbouncer_port#"
}

pgbouncer_stop() {
  [ -n "${pgbouncer_pid:-}" ] || return 0
  kill -TERM "$pgbouncer_pid" 2>/dev/null || true
  local i
  for i in $(seq 1 50); do
    kill -0 "$pgbouncer_pid" 2>/dev/null || break
    sleep 0.1
  done
  pgbouncer_pid=
}

# Immediate shutdown (SIGTERM: open transactions are cut off) and a start on
# the same port, as an operator's restart or a crash-and-respawn would.
pgbouncer_restart() {
  pgbouncer_stop
  pgbouncer_launch
}
