# shellcheck shell=bash
# A scratch `vibee-sessions serve` for a script's own run, on loopback.
#
#   source scripts/lib/server.sh
#   server_start BIN LOG [VAR=VALUE...] [-- SERVE_ARGS...]
#   token=$(server_token BIN NAME)           # an admin token (stdout)
#
# server_start runs `BIN serve SERVE_ARGS` in the background with the
# caller's environment plus VAR=VALUE..., RUST_LOG=warn unless given, and
# LISTEN_ADDR on a free port of 127.0.0.1 ($SERVER_PORT when set, so that a
# restart keeps its address), appending its output to LOG. It returns once
# GET /readyz answers 200 (database reachable, key ring loaded), and sets
# server_pid, server_port and server_url (http://127.0.0.1:PORT). It fails,
# with the end of LOG, when the server exits first or is not ready within
# $SERVER_READY_SECONDS (default 30). SERVER_CLEAN_ENV=1 starts it with an
# empty environment but PATH and the VAR=VALUE given. scripts/lib/scratch.sh
# stops $server_pid when the script exits.

server_say() { printf '%s\n' "$*" >&2; }

# A TCP port of 127.0.0.1 that nothing listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

server_start() {
  local bin=$1 log=$2 envs=(RUST_LOG=warn) clean=()
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    envs+=("$1")
    shift
  done
  [ "${1:-}" = -- ] && shift
  [ "${SERVER_CLEAN_ENV:-0}" = 1 ] && clean=(-i "PATH=$PATH")
  server_port=${SERVER_PORT:-$(free_port)}
  server_url=http://127.0.0.1:$server_port
  env "${clean[@]}" "${envs[@]}" "LISTEN_ADDR=127.0.0.1:$server_port" "$bin" serve "$@" >>"$log" 2>&1 &
  server_pid=$!
  local deadline=$((SECONDS + ${SERVER_READY_SECONDS:-30}))
  while [ "$SECONDS" -lt "$deadline" ]; do
    curl -fsS -o /dev/null "$server_url/readyz" 2>/dev/null && return 0
    if ! kill -0 "$server_pid" 2>/dev/null; then
      server_say "vibee-sessions serve exited before it was ready; the end of $log:"
      tail -n 20 "$log" >&2
      return 1
    fi
    sleep 0.2
  done
  server_say "vibee-sessions serve was not ready (GET $server_url/readyz) within ${SERVER_READY_SECONDS:-30}s; the end of $log:"
  tail -n 20 "$log" >&2
  return 1
}

# server_token BIN NAME [SCOPE...]: creates an API token (default scope
# admin) in the database of $DATABASE_URL and prints it.
server_token() {
  local bin=$1 name=$2 scopes=()
  shift 2
  [ $# -eq 0 ] && set -- admin
  for s in "$@"; do scopes+=(--scope "$s"); done
  "$bin" token create --name "$name" "${scopes[@]}"
}
