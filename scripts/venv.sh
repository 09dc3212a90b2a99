#!/usr/bin/env bash
# Creates (or reuses) the virtual environment goalrl runs in and prints its path.
# GOALRL_VENV picks the folder (default: .venv in the repository). A venv is reused only
# when it was built from the same pyproject.toml (a hash stamp inside it says so).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${GOALRL_VENV:-$repo/.venv}
stamp=$(sha256sum "$repo/pyproject.toml" | cut -c1-16)
# pip with its output (setuptools' editable-install banner included) shown only on failure
quiet_pip() {
  local log
  log=$(mktemp)
  "$venv/bin/pip" "$@" >"$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; exit 1; }
  rm -f "$log"
}
if [ ! -f "$venv/.goalrl-stamp" ] || [ "$(cat "$venv/.goalrl-stamp")" != "$stamp" ]; then
  echo "setting up $venv (first time: a few minutes, torch is large)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  quiet_pip install -q --upgrade pip
  quiet_pip install -q -e "$repo[dev,ogbench]"
  echo "$stamp" > "$venv/.goalrl-stamp"
else
  # the venv is current; reinstall (no deps) only when another checkout is the one installed,
  # since every editable install prints setuptools' banner. find_spec reads the editable
  # finder's mapping without importing goalrl; -I keeps the current folder off sys.path.
  installed=$("$venv/bin/python" -I -c 'import importlib.util as u
s = u.find_spec("goalrl")
print(s.origin if s else "")')
  if [ "$installed" != "$repo/goalrl/__init__.py" ]; then
    quiet_pip install -q --no-deps -e "$repo"
  fi
fi
echo "$venv"
