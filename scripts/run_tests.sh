#!/usr/bin/env bash
# The project's test command: format and lint, types, then pytest. Extra arguments go to
# pytest (e.g. `-m slow`). A selection that runs no test is not a failure (pytest's exit 5).
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff format --check . || exit 1
.venv/bin/ruff check . || exit 1
.venv/bin/mypy || exit 1
.venv/bin/python -m pytest --durations=20 "$@"
rc=$?
[ "$rc" -eq 5 ] && { echo "pytest: no tests selected"; rc=0; }
exit "$rc"
