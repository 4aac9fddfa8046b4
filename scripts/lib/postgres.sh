# Shared by the scripts: find a PostgreSQL server to use, starting the local
# one when it is installed but down. Source it, then call `ensure_postgres URL`.

pg_say() { printf '%s\n' "$*" >&2; }

# True when a server answers at the given URL.
pg_reachable() {
  psql "$1" -XAtqc 'SELECT 1' >/dev/null 2>&1
}

# Starts every installed local cluster that is down (Debian's postgresql-common).
pg_start_local() {
  if ! command -v pg_lsclusters >/dev/null 2>&1; then
    return 1
  fi
  local started=1 ver name status
  while read -r ver name _port status _rest; do
    [ "$ver" = "Ver" ] && continue
    if [ "$status" != "online" ]; then
      pg_say "starting the local PostgreSQL cluster $ver/$name ..."
      pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start && started=0
    else
      started=0
    fi
  done < <(pg_lsclusters 2>/dev/null)
  return $started
}

pg_missing_help() {
  pg_say "PostgreSQL is needed and none could be reached or started."
  pg_say "  - On Debian/Ubuntu: apt-get install postgresql postgresql-client, then run this script again"
  pg_say "    (it starts the cluster itself; the tests connect as user postgres over 127.0.0.1 and"
  pg_say "    need trust or a password in the URL)."
  pg_say "  - Or point TEST_DATABASE_URL (tests) / DATABASE_URL at a server where the user may CREATE DATABASE,"
  pg_say "    e.g. postgres://postgres:secret@db.example:5432/postgres"
}

# ensure_postgres URL: makes sure URL answers, starting the local server when
# the URL is local and the server is installed but down.
ensure_postgres() {
  local url=$1
  if ! command -v psql >/dev/null 2>&1; then
    pg_say "psql is not installed (Debian: apt-get install postgresql-client)."
    pg_missing_help
    return 1
  fi
  if pg_reachable "$url"; then
    return 0
  fi
  case "$url" in
    *@127.0.0.1*|*@localhost*|*@\[::1\]*|*//127.0.0.1*|*//localhost*)
      if pg_start_local; then
        for _ in $(seq 1 30); do
          pg_reachable "$url" && return 0
          sleep 1
        done
      fi
      ;;
  esac
  pg_say "cannot reach PostgreSQL: $(psql "$url" -XAtqc 'SELECT 1' 2>&1 | head -n 3 | sed -E 's#://([^:@/]+):[^@/]*@#://\1:***@#g')"
  pg_missing_help
  return 1
}
