#!/usr/bin/env bash
# The one command to bring the API up, on a fresh machine or an old one.
#
#   scripts/start.sh
#
# - DATABASE_URL when set; else the local PostgreSQL (started when installed
#   but down), database `vibee_sessions` (created when missing).
# - A master key from MASTER_KEY / MASTER_KEY_FILE / MASTER_PASSPHRASE; when
#   none is configured, keys/master.key, generated on first run (a development
#   key: see the warning it prints).
# - An admin token on first run, in keys/admin.token (mode 0600).
# - Builds the release binary when it is missing or older than the sources
#   (VIBEE_BIN=path uses that binary instead), then serves on LISTEN_ADDR
#   (default 127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh

KEYS_DIR=${KEYS_DIR:-keys}
say() { printf '%s\n' "$*" >&2; }

# The binary reads .env itself; the script needs DATABASE_URL from it too.
if [ -z "${DATABASE_URL:-}" ] && [ -f .env ]; then
  DATABASE_URL=$(sed -n 's/^[[:space:]]*\(export[[:space:]]\+\)\?DATABASE_URL=//p' .env | tail -n 1 | sed "s/^[\"']//; s/[\"']\$//")
  [ -n "$DATABASE_URL" ] && export DATABASE_URL
fi

if [ -z "${DATABASE_URL:-}" ]; then
  admin_url=postgres://postgres@127.0.0.1:5432/postgres
  ensure_postgres "$admin_url"
  if [ "$(psql "$admin_url" -XAtqc "SELECT 1 FROM pg_database WHERE datname = 'vibee_sessions'")" != 1 ]; then
    psql "$admin_url" -Xqc 'CREATE DATABASE vibee_sessions'
    say "created database vibee_sessions"
  fi
  export DATABASE_URL=postgres://postgres@127.0.0.1:5432/vibee_sessions
else
  ensure_postgres "$DATABASE_URL"
fi

if [ -n "${VIBEE_BIN:-}" ]; then
  bin=$VIBEE_BIN
else
  bin=target/release/vibee-sessions
  if ! command -v cargo >/dev/null 2>&1; then
    say "cargo is not installed: install Rust with rustup (https://rustup.rs), then run this again."
    exit 1
  fi
  if [ ! -x "$bin" ] || [ -n "$(find src migrations Cargo.toml Cargo.lock -newer "$bin" -print -quit)" ]; then
    say "building the release binary (a few minutes the first time) ..."
    cargo build --release --locked --bin vibee-sessions
  fi
fi

if [ -z "${MASTER_KEY:-}${MASTER_KEY_FILE:-}${MASTER_PASSPHRASE:-}" ]; then
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
