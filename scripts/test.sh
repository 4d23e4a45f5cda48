#!/usr/bin/env bash
# Quick start, command 2: lint, type-check and run the whole test suite
# (SQLite and a throwaway PostgreSQL server, the bubblewrap sandbox, real processes).
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
ensure_venv "test"
ensure_bubblewrap || die "the sandbox tests need bubblewrap"
ensure_postgresql || die "the PostgreSQL tests need PostgreSQL's server binaries"
ensure_go || die "the ledger's third-party log check needs Go"
cd "$ROOT"
say "ruff…"
"$VENV/bin/ruff" check src tests bench
"$VENV/bin/ruff" format --check --quiet src tests bench
say "mypy --strict…"
"$VENV/bin/mypy" src
say "pytest, one worker per CPU…"
# Most of the suite's time is spent waiting on real processes (coordinators, node agents,
# sandboxes, PostgreSQL), so one pytest worker per CPU cuts its wall time by about a third;
# each worker starts its own throwaway PostgreSQL server. "-n 0" runs it in one process.
exec "$VENV/bin/pytest" -q -n auto "$@"
