# Shared by scripts/demo.sh and scripts/test.sh: find Python >= 3.11, make .venv, install
# the project, and install the system packages NexaPod needs when they are missing.
# Sourced, not run. Reinstalls only when pyproject.toml changes.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

say() { printf '\033[1m[nexapod]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[nexapod] error:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@";
  else return 1; fi
}

APT_UPDATED=0
apt_install() {
  # apt_install PACKAGE... : install Debian/Ubuntu packages non-interactively, if we may.
  command -v apt-get >/dev/null 2>&1 || return 1
  if [ "$APT_UPDATED" = 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || return 1
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

find_python() {
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

ensure_bubblewrap() {
  command -v bwrap >/dev/null 2>&1 && return 0
  say "installing bubblewrap (the node sandbox)…"
  apt_install bubblewrap && return 0
  say "could not install bubblewrap: run 'sudo apt-get install bubblewrap' (units run sandboxed by it)"
  return 1
}

ensure_postgresql() {
  if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
    return 0
  fi
  say "installing PostgreSQL (the tests run on it as well as on SQLite)…"
  if apt_install postgresql; then
    # Debian starts a cluster on install; the tests start their own throwaway servers.
    return 0
  fi
  say "could not install PostgreSQL: run 'sudo apt-get install postgresql'"
  return 1
}

ensure_go() {
  # The ledger's log is cross-checked by a third-party implementation of the specs
  # (Go's golang.org/x/mod/sumdb/note and tlog, from Debian: no module download).
  if command -v go >/dev/null 2>&1 && [ -d /usr/share/gocode/src/golang.org/x/mod ]; then
    return 0
  fi
  say "installing Go and golang.org/x/mod (a third-party check of the ledger's log)…"
  apt_install golang-go golang-golang-x-mod-dev && return 0
  say "could not install Go: run 'sudo apt-get install golang-go golang-golang-x-mod-dev'"
  return 1
}

ensure_venv() {
  # ensure_venv EXTRAS : .venv with the project installed (editable) with those extras.
  local extras="$1" python stamp want
  python="$(find_python)" || die "NexaPod needs Python 3.11 or newer: install python3 (>= 3.11) and try again"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV with $python"
    if ! "$python" -m venv "$VENV" 2>/dev/null; then
      rm -rf "$VENV"
      say "python's venv module is missing; installing python3-venv…"
      apt_install python3-venv || die "run 'sudo apt-get install python3-venv' and try again"
      "$python" -m venv "$VENV"
    fi
  fi
  stamp="$VENV/.nexapod-installed"
  want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)-$extras"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing NexaPod and its dependencies into .venv (first run takes a minute)…"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[$extras]"
    echo "$want" > "$stamp"
  fi
}
