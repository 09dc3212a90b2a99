#!/usr/bin/env bash
# Sets up goalrl and runs the main job on a small built-in default, end to end:
#   1. collect unlabeled scripted play in the Reach scene (no task labels),
#   2. pretrain an Actionable Models goal-conditioned Q-function on it,
#   3. evaluate the CEM policy toward held-out goal images (env seeds from 1,000,000 up),
# leaving rollout videos (camera | goal image, Q trace) and summary.json files.
# Under 15 minutes on 2 idle CPU cores once the venv exists (timed: 3.6 min, most of it the
# 6,000 updates). Usage: demo.sh [out_dir]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$repo/scripts/venv.sh")
out=${1:-$repo/runs/demo}
goalrl="$venv/bin/goalrl"
rm -rf "$out/pretrain" "$out/eval"  # a demo run always starts fresh; the data is reused
"$goalrl" collect env=goalrl/Reach-v0 episodes=150 workers=2 out="$out/data"
"$goalrl" pretrain data="$out/data" out="$out/pretrain" steps=6000 batch_size=64 \
  eval_episodes=0 videos=0
"$goalrl" eval ckpt="$out/pretrain" episodes=20 videos=3 out="$out/eval"
echo
echo "demo outputs in $out:"
echo "  data/contact_sheet.png   start frames and goal images of the play data"
echo "  pretrain/                checkpoints/, tb/ (tensorboard --logdir $out), summary.json"
echo "  eval/summary.json        success rate (95% interval) on held-out goal images"
echo "  eval/videos/*.mp4        rollouts: camera view beside the goal image, Q-value trace"
