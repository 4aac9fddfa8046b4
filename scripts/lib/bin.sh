# The vibee-sessions binary for the scripts: $VIBEE_SESSIONS_BIN when set;
# else, in a checkout with cargo, its release build (built when missing or
# older than the sources); else one on PATH.
vibee_sessions_bin() {
  if [ -n "${VIBEE_SESSIONS_BIN:-}" ]; then
    printf '%s\n' "$VIBEE_SESSIONS_BIN"
    return
  fi
  local root bin target_dir
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  if [ -f "$root/Cargo.toml" ] && command -v cargo >/dev/null 2>&1; then
    # Where cargo puts its builds: CARGO_TARGET_DIR, .cargo/config.toml, or
    # target/ (cargo says; a hard-coded target/ missed the first two).
    target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
      sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    bin="${target_dir:-$root/target}/release/vibee-sessions"
    if [ ! -x "$bin" ] || [ -n "$(cd "$root" && find src migrations Cargo.toml Cargo.lock -newer "$bin" -print -quit)" ]; then
      echo "building vibee-sessions (cargo build --release; a few minutes the first time) ..." >&2
      (cd "$root" && cargo build --release --locked --bin vibee-sessions) >&2
    fi
    printf '%s\n' "$bin"
    return
  fi
  if command -v vibee-sessions >/dev/null 2>&1; then
    command -v vibee-sessions
    return
  fi
  echo "vibee-sessions is not built and cargo is not installed: install Rust with rustup (https://rustup.rs) and run this again." >&2
  return 1
}
