#!/usr/bin/env bash
# Moves a legacy .env client (TELEGRAM_SESSION_ID, TELEGRAM_API_ID,
# TELEGRAM_API_HASH, USER_ID, TELEGRAM_PHONE, TELEGRAM_USERNAME) into the
# encrypted store, then shows what the agent will be started with (secrets
# hidden).
#
#   scripts/migrate-env-to-db.sh [--env-file PATH]     (default: .env)
#
# Needs DATABASE_URL and the master key (MASTER_KEY, MASTER_KEY_FILE,
# MASTER_PASSPHRASE or keys/master.key). Running it twice is harmless. Exits
# non-zero, having changed nothing, when the file is malformed.
set -euo pipefail
source "$(dirname "$0")/lib/bin.sh"

env_file=.env
while [ $# -gt 0 ]; do
  case "$1" in
    --env-file) env_file=${2:?--env-file needs a path}; shift 2 ;;
    --env-file=*) env_file=${1#--env-file=}; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ ! -f "$env_file" ]; then
  echo "no such file: $env_file" >&2
  exit 1
fi

bin=$(vibee_sessions_bin)
# The store's schema first (a no-op when it is up to date).
"$bin" migrate >/dev/null
# import-env reads only the file: the shell never sources it, so nothing in
# it is executed and no secret reaches a command line.
result=$("$bin" import-env --env-file "$env_file")
echo "$result"
user_id=$(printf '%s\n' "$result" | sed -n 's/^[a-z]*: user_id \([^ ]*\) .*/\1/p')
"$bin" session get "$user_id"
echo
echo "start the agent from the store with:"
echo "  vibee-sessions boot --user-id $user_id --exec -- <agent command>"
