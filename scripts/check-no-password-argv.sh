#!/usr/bin/env bash
# Fails when a database password could reach a command line, where `ps`
# shows it to every user of the machine.
#
#   scripts/check-no-password-argv.sh
#
# 1. The helpers of scripts/lib/ (ensure_postgres, pg_run, scratch_database,
#    pg_drop_stale_test_databases) run with URLs carrying a password (in the
#    user info, percent-encoded, and as a `password=` parameter) against
#    psql/pg_dump/pgbench/createdb stand-ins put first on PATH, which record
#    their argv and the PGPASSWORD they were given. The password must never
#    be in an argv, must reach each tool through PGPASSWORD, and the rest of
#    the URL must arrive intact.
# 2. No script under scripts/ runs psql, pg_dump, pg_restore, pgbench,
#    createdb or dropdb other than through pg_run.
# Needs bash only: no database, no build.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# --- 1. the helpers, against recording stand-ins ------------------------------
mkdir "$work/bin"
for tool in psql pg_dump pg_restore pgbench createdb dropdb; do
  cat >"$work/bin/$tool" <<'EOF'
#!/usr/bin/env bash
# Records one line per call: the tool, PGPASSWORD, then each argument.
{
  printf '%s\tPGPASSWORD=%s' "$(basename "$0")" "${PGPASSWORD-<unset>}"
  printf '\t%s' "$@"
  printf '\n'
} >>"$CHECK_ARGV_LOG"
# The stale-database sweep lists databases: give it one to drop.
case "$*" in *"SELECT datname"*) echo vs_test_gone ;; esac
exit 0
EOF
  chmod +x "$work/bin/$tool"
done
export CHECK_ARGV_LOG=$work/argv.log

password='s3cr:t@/pw'
encoded='s3cr%3At%40%2Fpw'
run_helpers() { # URL: every helper that talks to a server, once
  (
    PATH=$work/bin:$PATH
    unset PGPASSWORD
    source "$root/scripts/lib/postgres.sh"
    source "$root/scripts/lib/scratch.sh"
    ensure_postgres "$1"
    pg_drop_stale_test_databases "$1"
    # `echo` stands in for vibee-sessions (keygen, migrate): only psql matters here.
    scratch_database "$1" vs_check_argv echo
    pg_run psql "$DATABASE_URL" -XAtqc 'SELECT 1'
    pg_run pgbench -n -T 1 "$1"
    pg_run pg_dump --no-owner "--dbname=$1"
    pg_run createdb -T template0 vs_check_argv_2 "$1"
  ) >/dev/null
}

for url in \
  "postgres://vs_user:$encoded@127.0.0.1:5432/postgres?sslmode=disable" \
  "postgresql://vs_user@127.0.0.1:5432/postgres?password=$encoded&sslmode=disable"; do
  : >"$CHECK_ARGV_LOG"
  run_helpers "$url" || bad "the helpers failed with $url"
  calls=$(wc -l <"$CHECK_ARGV_LOG")
  [ "$calls" -ge 8 ] || bad "only $calls tool calls recorded for $url"
  # Column 2 is the environment; the rest is argv.
  if leaked=$(cut -f1,3- "$CHECK_ARGV_LOG" | grep -F -e "$password" -e "$encoded" -e s3cr); then
    bad "a password reached argv: $leaked"
  fi
  while IFS=$'\t' read -r tool pw rest; do
    [ "$pw" = "PGPASSWORD=$password" ] || bad "$tool got ${pw%%=*} '${pw#*=}', not the decoded password"
    case $rest in
      *vs_user@127.0.0.1:5432/*sslmode=disable*) ;;
      *) bad "$tool lost part of the URL: $rest" ;;
    esac
  done <"$CHECK_ARGV_LOG"
done

# A URL with no password: PGPASSWORD of the caller, if any, is left alone.
: >"$CHECK_ARGV_LOG"
(
  PATH=$work/bin:$PATH
  source "$root/scripts/lib/postgres.sh"
  PGPASSWORD=from-env pg_run psql postgres://vs_user@127.0.0.1/postgres -c 'SELECT 1'
) >/dev/null
grep -q $'^psql\tPGPASSWORD=from-env\tpostgres://vs_user@127.0.0.1/postgres\t' "$CHECK_ARGV_LOG" ||
  bad "a URL without a password changed PGPASSWORD or the URL: $(cat "$CHECK_ARGV_LOG")"

# --- 2. every call in scripts/ goes through pg_run ------------------------------
# A libpq tool in command position (line start, after ; & | ( { $( then do else)
# on a line that is not a comment or a message and does not go through pg_run.
tools='psql|pg_dump|pg_restore|pgbench|createdb|dropdb'
# scripts/start.sh's direct psql calls use the fixed passwordless local URL
# (postgres://postgres@127.0.0.1:5432/postgres); its DATABASE_URL goes
# through ensure_postgres.
direct=$(grep -rnE --include='*.sh' "(^|[;&|({]|\\\$\\(|then|do|else)[[:space:]]*($tools)([[:space:]]|\$)" scripts .ci |
  grep -vE '^[^:]+:[0-9]+:[[:space:]]*(#|(echo|say|pg_say|printf)[[:space:]])' | grep -v 'pg_run' |
  grep -vE '^scripts/start\.sh:[0-9]+:.*"\$admin_url"' || true)
if [ -n "$direct" ]; then
  bad "libpq tools run without pg_run (a password in the URL would be on their command line):"
  printf '%s\n' "$direct"
fi

[ "$fail" = 0 ] && echo "no password on a command line: helpers checked with 2 password URLs, scripts/ uses pg_run throughout"
exit $fail
