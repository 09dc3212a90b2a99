#!/usr/bin/env bash
# Creates (or reuses) the virtual environment goalrl runs in and prints its path.
# GOALRL_VENV picks the folder (default: .venv in the repository). A venv is reused only
# when it was built from the same pyproject.toml (a hash stamp inside it says so).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${GOALRL_VENV:-$repo/.venv}
stamp=$(sha256sum "$repo/pyproject.toml" | cut -c1-16)
if [ ! -f "$venv/.goalrl-stamp" ] || [ "$(cat "$venv/.goalrl-stamp")" != "$stamp" ]; then
  echo "setting up $venv (first time: a few minutes, torch is large)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q -e "$repo[dev]" >&2
  echo "$stamp" > "$venv/.goalrl-stamp"
else
  # the venv is current; make sure this checkout is the one installed (cheap, no deps)
  "$venv/bin/pip" install -q --no-deps -e "$repo" >&2
fi
echo "$venv"
