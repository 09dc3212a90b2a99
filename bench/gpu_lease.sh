#!/usr/bin/env bash
# One short GPU lease, end to end, for a GPU machine that has the learning stack (torch,
# torchvision, einops, safetensors, tensorboard, opencv) but no simulator:
#   1. the CUDA speed part of bench/pretrain.py (updates/s, CEM latency, scaling, CUDA-graph
#      rows), bench/update_overhead.py at batch 256 (host time and host reads per update),
#      and the CUDA-only tests of tests/agents/test_update_plumbing.py;
#   2. the GPU profile's training runs, without evaluation (`success --train-only`), all at
#      once on the one GPU, stopped at a deadline; checkpoints every 5,000 updates;
#   3. each run's last checkpoint step shared by every run of its scene, packed as one tar per
#      run into $OUT, for `bench/pretrain.py evaluate` on a machine with pybullet.
#
#   OUT=dir bench/gpu_lease.sh DEADLINE_S SCENE=ARCHIVE.tar.xz@METHODS...
#
# ARCHIVE holds one goalrl dataset folder (tar c DIR | xz); METHODS is bench/pretrain.py's
# ';'-separated --methods. Wheels for missing pure-Python packages (gymnasium) may sit in
# .whl/. Every stage runs even when an earlier one failed. DEVICE=cpu PROFILE=smoke
# SPEED_SECONDS=0.5 make a dry run of the whole script on a CPU-only machine; CUDA_GRAPH=1
# trains with cuda_graph=true. The device
# tool brings back at most 8 files of 16 MiB: one tar per run plus meta.tar, so at most 7
# runs in all.
set -u
out=${OUT:?set OUT to the folder for results}
deadline=${1:?deadline in seconds}
shift
archives=("$@")
device=${DEVICE:-cuda} profile=${PROFILE:-gpu}
repo=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONUNBUFFERED=1 PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$out/meta"
# the log goes into meta.tar: a loose file in $OUT would count against the 8 that come back
exec > >(tee -a "$out/meta/lease.log") 2>&1

echo "== $(date -u +%FT%TZ) setup"
if ls "$repo"/.whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$repo"/.whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
nvidia-smi > "$out/meta/nvidia-smi.txt" 2>&1
python3 -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
data_args="" unpacking=()
for item in "${archives[@]}"; do  # unpack in parallel: lzma is single-threaded
  scene=${item%%=*}; file=${item#*=}; file=${file%%@*}
  python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall('/tmp/data')" "$file" &
  unpacking+=($!)
  name=$(basename "$file" .tar.xz)
  data_args+="${data_args:+,}$scene=/tmp/data/$name"
done
wait "${unpacking[@]}"  # not a bare wait: that also waits on the tee above, forever
echo "data: $data_args"

echo "== $(date -u +%FT%TZ) speed"
python3 "$repo/bench/pretrain.py" speed --device "$device" --no-peer --seconds "${SPEED_SECONDS:-4}" \
  && cp "$repo"/docs/benchmarks/pretrain_speed_"$device"_*.json "$out/meta/"
# host time, wall time and values read back per update, at the speed target's batch
python3 "$repo/bench/update_overhead.py" --device "$device" --batch 256 --updates 30 \
  && cp "$repo/docs/benchmarks/update_overhead_$device.json" "$out/meta/"

echo "== $(date -u +%FT%TZ) cuda tests"  # the tests CPU CI skips (pytest may come in .whl/)
python3 -m pytest -q -p no:cacheprovider "$repo/tests/agents/test_update_plumbing.py" \
  > "$out/meta/cuda-tests.log" 2>&1; tail -3 "$out/meta/cuda-tests.log"

echo "== $(date -u +%FT%TZ) training, deadline ${deadline}s"
pids=()
for item in "${archives[@]}"; do  # one workdir per scene, so each has its own trained json
  scene=${item%%=*}; methods=${item#*@}; jobs=$(awk -F';' '{print NF}' <<< "$methods")
  # its own process group (setsid), so the deadline stops it and its pool workers, nothing else
  setsid python3 "$repo/bench/pretrain.py" success --train-only --profile "$profile" --device "$device" \
    --scenes "$scene" --methods "$methods" --data "$data_args" --jobs "$jobs" \
    --workdir "/tmp/work-$scene" ${CUDA_GRAPH:+--cuda-graph} > "$out/meta/train-$scene.log" 2>&1 &
  pids+=($!)
done
end=$((SECONDS + deadline))
alive() { for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while [ $SECONDS -lt $end ] && alive; do sleep 5; done
for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done; sleep 5
for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done
nvidia-smi --query-gpu=name,memory.used --format=csv >> "$out/meta/nvidia-smi.txt" 2>&1

echo "== $(date -u +%FT%TZ) pack"
for item in "${archives[@]}"; do
  scene=${item%%=*}; work=/tmp/work-$scene
  cp "$work/trained_$profile.json" "$out/meta/trained_${profile}_$scene.json"
  # the last step every run of this scene reached keeps the methods on one budget
  runs=("$work/runs-$profile"/*/)
  # names are zero-padded (step_0005000): the last one listed by every run is the largest
  step=$(for run in "${runs[@]}"; do ls "$run/checkpoints" 2>/dev/null | grep '^step_'; done \
    | sort | uniq -c | awk -v n=${#runs[@]} '$1 == n {s = $2} END {print s}')
  echo "$scene: shared checkpoint ${step:-none}"
  [ -n "$step" ] || continue
  for run in "$work/runs-$profile"/*/; do
    name=$(basename "$run")  # e.g. push-am-+-behaviour-prior: the tool takes [A-Za-z0-9._-]
    tar cf "$out/$(tr -c 'A-Za-z0-9._\n-' '_' <<< "$name").tar" -C "$work" \
      "runs-$profile/$name/checkpoints/$step" "runs-$profile/$name/tb"
  done
done
tail -n 3 "$out"/meta/train-*.log
ls -la "$out"
echo "== $(date -u +%FT%TZ) done"
tar cf "$out/meta.tar" -C "$out" meta && rm -rf "$out/meta"
