#!/usr/bin/env bash
# Quick start, command 1: run `nexapod demo` on the embedded SQLite store.
# Extra arguments go to `nexapod demo` (try --help).
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
ensure_venv "demo"
ensure_bubblewrap || die "the demo runs units in the bubblewrap sandbox; or pass --executor process (no isolation)"
exec "$VENV/bin/nexapod" demo "$@"
