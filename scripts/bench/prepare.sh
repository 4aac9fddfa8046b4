# shellcheck shell=bash
# Shared by scripts/bench.sh and scripts/bench/scale.sh (sourced after `cd`
# to the repository and `source scripts/lib/postgres.sh`, with $profile,
# $admin_url, $root and `say` set): installs the load tools when missing,
# makes sure PostgreSQL runs, builds the binaries. Sets flags, bin, seed.
# --- tools ---------------------------------------------------------------
need_pkgs=()
command -v wrk >/dev/null || need_pkgs+=(wrk)
command -v pgbench >/dev/null || need_pkgs+=(postgresql-contrib)
command -v psql >/dev/null || need_pkgs+=(postgresql-client)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${need_pkgs[*]} from Debian"
    apt-get install -y "${need_pkgs[@]}" >/dev/null 2>&1 \
      || { apt-get update >/dev/null && apt-get install -y "${need_pkgs[@]}" >/dev/null; }
  else
    say "missing tools: install ${need_pkgs[*]} (Debian: sudo apt-get install ${need_pkgs[*]})"
    exit 1
  fi
fi
ensure_postgres "$admin_url"

# --- binaries ------------------------------------------------------------
flags=()
[ "$profile" = release ] && flags=(--release)
if [ -z "${VIBEE_SESSIONS_BIN:-}" ] || [ -z "${SEED_BIN:-}" ]; then
  say "building ($profile) ..."
  cargo build "${flags[@]}" --locked --bin vibee-sessions --example seed_sessions >&2
fi
bin=${VIBEE_SESSIONS_BIN:-$root/target/$profile/vibee-sessions}
seed=${SEED_BIN:-$root/target/$profile/examples/seed_sessions}

