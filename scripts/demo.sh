#!/usr/bin/env bash
# Sets up goalrl and runs the main job on a small built-in default: collect a few episodes
# of scripted play in the Push scene and write a contact sheet of them.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$repo/scripts/venv.sh")
out=${1:-$repo/runs/demo}
"$venv/bin/goalrl" collect env=goalrl/Push-v0 episodes=8 workers=2 out="$out/data"
"$venv/bin/goalrl" data show path="$out/data" out="$out/episodes.png"
echo "demo outputs in $out: data/contact_sheet.png (start, goal, end), episodes.png"
