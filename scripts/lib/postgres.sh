# shellcheck shell=bash
# Shared by the scripts: find a PostgreSQL server to use, starting the local
# one when it is installed but down, and run libpq's tools on it without the
# password on their command line. Source it, then call `ensure_postgres URL`
# and `pg_run psql|pg_dump|pgbench|createdb|... ARGS...`.

pg_say() { printf '%s\n' "$*" >&2; }

# pg_split_url URL: sets pg_public_url (URL without its password, from the
# user info or a `password=` query parameter) and pg_url_password (the
# password, percent-decoded, or empty).
pg_split_url() {
  local url=$1 userinfo_re='^(postgres(ql)?://)([^@/?#]*)@(.*)$' query_re='^([^?]*)\?(.*)$'
  local scheme userinfo rest base param kept=() IFS
  pg_public_url=$url
  pg_url_password=
  if [[ $url =~ $userinfo_re ]]; then
    scheme=${BASH_REMATCH[1]} userinfo=${BASH_REMATCH[3]} rest=${BASH_REMATCH[4]}
    if [[ $userinfo == *:* ]]; then
      pg_url_password=${userinfo#*:}
      pg_public_url=$scheme${userinfo%%:*}@$rest
    fi
  fi
  if [[ $pg_public_url =~ $query_re ]]; then
    base=${BASH_REMATCH[1]}
    IFS='&'
    for param in ${BASH_REMATCH[2]}; do
      case $param in
        password=*) pg_url_password=${param#password=} ;;
        *) kept+=("$param") ;;
      esac
    done
    pg_public_url=$base${kept[*]:+?${kept[*]}}
  fi
  # libpq percent-decodes URLs; PGPASSWORD is taken as is.
  pg_url_password=${pg_url_password//\\/\\\\}
  printf -v pg_url_password '%b' "${pg_url_password//%/\\x}"
}

# pg_run TOOL ARGS...: runs TOOL (psql, pg_dump, pgbench, createdb, ...) with
# every postgres:// URL among ARGS (also as --dbname=URL) stripped of its
# password, which goes to TOOL through PGPASSWORD in its environment instead:
# `ps` shows a command line to every user, never another user's environment.
pg_run() {
  local tool=$1 arg password='' args=()
  shift
  for arg in "$@"; do
    case $arg in
      postgres://*|postgresql://*)
        pg_split_url "$arg"
        arg=$pg_public_url
        [ -n "$pg_url_password" ] && password=$pg_url_password
        ;;
      --dbname=postgres://*|--dbname=postgresql://*)
        pg_split_url "${arg#--dbname=}"
        arg=--dbname=$pg_public_url
        [ -n "$pg_url_password" ] && password=$pg_url_password
        ;;
    esac
    args+=("$arg")
  done
  if [ -n "$password" ]; then
    PGPASSWORD=$password "$tool" "${args[@]}"
  else
    "$tool" "${args[@]}"
  fi
}

# True when a server answers at the given URL.
pg_reachable() {
  pg_run psql "$1" -XAtqc 'SELECT 1' >/dev/null 2>&1
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
  pg_say "cannot reach PostgreSQL: $(pg_run psql "$url" -XAtqc 'SELECT 1' 2>&1 | head -n 3 | sed -E 's#://([^:@/]+):[^@/]*@#://\1:***@#g')"
  pg_missing_help
  return 1
}

# pg_drop_stale_test_databases URL: drops the databases left by test
# processes that were killed before they could drop them (named
# vs_test_<pid>_...; a live pid's databases are left alone).
pg_drop_stale_test_databases() {
  local url=$1 db pid
  pg_run psql "$url" -XAtqc "SELECT datname FROM pg_database WHERE datname LIKE 'vs\\_test\\_%'" |
    while read -r db; do
      pid=$(printf '%s' "$db" | sed -n 's/^vs_test_\([0-9]\+\)_.*/\1/p')
      if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        pg_run psql "$url" -XAtqc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
      fi
    done
}
