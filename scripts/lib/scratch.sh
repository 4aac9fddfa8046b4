# shellcheck shell=bash
# A throw-away database for a script's own run, with a fresh master key.
#
#   source scripts/lib/postgres.sh
#   source scripts/lib/scratch.sh
#   scratch_database "$admin_url" NAME "$bin"
#
# Creates NAME on the server of admin_url (dropping a leftover of that name),
# exports DATABASE_URL for it and a fresh MASTER_KEY (other master key
# variables unset), applies the migrations, and on exit stops $server_pid
# (when the script set one), runs the script's own `scratch_cleanup` when it
# defines one, and drops the database.
declare -F pg_run >/dev/null || source "$(dirname "${BASH_SOURCE[0]}")/postgres.sh"
server_pid=
scratch_database() {
  scratch_admin_url=$1
  scratch_db=$2
  local bin=$3
  trap scratch_exit EXIT
  pg_run psql "$scratch_admin_url" -XAtqc "DROP DATABASE IF EXISTS $scratch_db WITH (FORCE)" >/dev/null
  pg_run psql "$scratch_admin_url" -XAtqc "CREATE DATABASE $scratch_db" >/dev/null
  # The same server, our database: replace the URL's path, keep its query.
  DATABASE_URL=$(printf '%s' "$scratch_admin_url" | sed -E "s#^([a-z]+://[^/?]*)(/[^?]*)?#\1/$scratch_db#")
  MASTER_KEY=$("$bin" keygen)
  export DATABASE_URL MASTER_KEY
  unset MASTER_KEY_FILE MASTER_PASSPHRASE MASTER_KEY_PREVIOUS MASTER_KEY_PREVIOUS_FILE
  "$bin" migrate >/dev/null
}

scratch_exit() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  if declare -F scratch_cleanup >/dev/null; then scratch_cleanup; fi
  pg_run psql "$scratch_admin_url" -XAtqc "DROP DATABASE IF EXISTS $scratch_db WITH (FORCE)" >/dev/null 2>&1 || true
}
