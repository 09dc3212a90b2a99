#!/usr/bin/env bash
# Sets up goalrl's environment and runs the test suite (slow tests deselected; add -m slow).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$repo/scripts/venv.sh")
cd "$repo"
"$venv/bin/ruff" check goalrl tests bench
exec "$venv/bin/pytest" -q "$@"
