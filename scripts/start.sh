#!/usr/bin/env bash
# The one command to bring vibee-sessions up, on a fresh machine or an old one.
#
#   scripts/start.sh                      serve the REST API
#   AGENT_CMD='agent --flag' scripts/start.sh   start the agent with its credentials
#
# Serving:
# - DATABASE_URL when set (also read from .env); else the local PostgreSQL
#   (started when installed but down), database `vibee_sessions` (created).
# - A master key from MASTER_KEY / MASTER_KEY_FILE / MASTER_PASSPHRASE; when
#   none is configured, $KEYS_DIR/master.key (default keys/), generated on first
#   run as a development key (with a warning saying so).
# - An admin token on first run, in $KEYS_DIR/admin.token (mode 0600).
# - The release binary, built when missing or older than the sources
#   (VIBEE_SESSIONS_BIN=path uses that one), serving on LISTEN_ADDR
#   (default 127.0.0.1:8080).
#
# With AGENT_CMD, the agent is started through `vibee-sessions boot --exec` in
# the mode the original start script chose: MULTI_TENANT=true -> every active
# session; USER_ID -> that tenant; else the legacy TELEGRAM_* variables (no
# database, no master key). VIBEE_API_URL (+ VIBEE_TOKEN) reads through the
# API instead of the database.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
source scripts/lib/bin.sh

KEYS_DIR=${KEYS_DIR:-keys}
say() { printf '%s\n' "$*" >&2; }

# The binary reads .env itself; this script needs DATABASE_URL from it too.
if [ -z "${DATABASE_URL:-}" ] && [ -f .env ]; then
  DATABASE_URL=$(sed -n 's/^[[:space:]]*\(export[[:space:]]\+\)\?DATABASE_URL=//p' .env | tail -n 1 | sed "s/^[\"']//; s/[\"']\$//")
  [ -n "$DATABASE_URL" ] && export DATABASE_URL
fi

use_database() {
  if [ -z "${DATABASE_URL:-}" ]; then
    local admin_url=postgres://postgres@127.0.0.1:5432/postgres
    ensure_postgres "$admin_url"
    if [ "$(psql "$admin_url" -XAtqc "SELECT 1 FROM pg_database WHERE datname = 'vibee_sessions'")" != 1 ]; then
      psql "$admin_url" -Xqc 'CREATE DATABASE vibee_sessions'
      say "created database vibee_sessions"
    fi
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/vibee_sessions
  else
    ensure_postgres "$DATABASE_URL"
  fi
}

master_key_configured() {
  [ -n "${MASTER_KEY:-}${MASTER_KEY_FILE:-}${MASTER_PASSPHRASE:-}" ]
}

bin=$(vibee_sessions_bin)

if [ -n "${AGENT_CMD:-}" ]; then
  agent=(sh -c "exec $AGENT_CMD")
  if [ "${MULTI_TENANT:-}" != true ] && [ -z "${USER_ID:-}" ]; then
    say "starting the agent in legacy mode (TELEGRAM_* from the environment)"
    exec "$bin" boot --exec -- "${agent[@]}"
  fi
  if [ -z "${VIBEE_API_URL:-}" ]; then
    use_database
    if ! master_key_configured && [ -f "$KEYS_DIR/master.key" ]; then
      export MASTER_KEY_FILE="$KEYS_DIR/master.key"
    fi
  fi
  exec "$bin" boot --exec -- "${agent[@]}"
fi

use_database
if ! master_key_configured; then
  export MASTER_KEY_FILE="$KEYS_DIR/master.key"
  if [ ! -f "$MASTER_KEY_FILE" ]; then
    "$bin" keygen --out "$MASTER_KEY_FILE"
    say ""
    say "************************************************************************"
    say "  DEVELOPMENT KEY: generated $MASTER_KEY_FILE for this machine."
    say "  Every credential stored is encrypted under it: lose it and they are"
    say "  gone. For production, set MASTER_KEY_FILE to a key kept outside this"
    say "  directory and back it up (docs/SECURITY.md)."
    say "************************************************************************"
    say ""
  fi
fi

"$bin" migrate >&2

token_file="$KEYS_DIR/admin.token"
if [ ! -s "$token_file" ]; then
  mkdir -p "$KEYS_DIR"
  name=admin
  if "$bin" token list --json | grep -q '"name": "admin"'; then
    name="admin-$(date +%Y%m%d%H%M%S)"
  fi
  (umask 077 && "$bin" token create --name "$name" --scope admin > "$token_file.tmp" && mv "$token_file.tmp" "$token_file")
  say "created an admin token ($name) in $token_file (mode 0600): use it as"
  say "  Authorization: Bearer \$(cat $token_file)"
fi

exec "$bin" serve --no-migrate
