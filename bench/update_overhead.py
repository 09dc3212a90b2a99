"""Benchmark: the host-side cost of one update, the floor under any device's update rate.

    python bench/update_overhead.py             # AM and GCBC, batch 2, 64x64, CPU, one thread
    python bench/update_overhead.py --updates 20 --no-save

At batch 2 an update does almost no arithmetic, so its wall time is the Python, dispatch and
optimiser bookkeeping that a GPU update pays as well. On an H200 an AM update took 10.8 ms at
batch 32 and 15.8 ms at batch 512 (``pretrain_speed_cuda_1threads.json``): a cost that hardly
grows with the work is this floor. cProfile splits it into the optimiser step, backward, the
Polyak averages (target network and acting average), gradient clipping, and the rest (the
loss's forward pass, host-to-device copies, diagnostics); torch's profiler counts the aten ops
an update dispatches. Prints a table and writes docs/benchmarks/update_overhead.md.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
OUT = REPO / "docs" / "benchmarks" / "update_overhead.md"

# (file name suffix, function name) -> phase; cumulative times, each counted once per update
PHASES = {
    ("adam.py", "step"): "optimiser",
    ("_tensor.py", "backward"): "backward",
    ("losses.py", "polyak_update"): "averaging",
    ("clip_grad.py", "clip_grad_norm_"): "clipping",
}


def phase_ms(stats: pstats.Stats, updates: int) -> dict[str, float]:
    """Milliseconds per update in each PHASES entry, from a cProfile of ``updates`` updates."""
    out = dict.fromkeys(PHASES.values(), 0.0)
    for (path, _line, func), row in stats.stats.items():  # type: ignore[attr-defined]
        for (suffix, name), phase in PHASES.items():
            if func == name and path.endswith(suffix):
                out[phase] += row[3] * 1e3 / updates  # row[3]: cumulative seconds
    return out


def aten_ops(update, batch: dict[str, np.ndarray]) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        update(batch)
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))


def measure(kind: str, batch_size: int, image: int, updates: int) -> dict[str, Any]:
    from pretrain import make_agent, synthetic_batch

    agent = make_agent(kind, image, "cpu")
    batch = synthetic_batch(np.random.default_rng(0), batch_size, image)
    for _ in range(3):  # first updates allocate optimiser state and warm caches
        agent.update(batch)
    times = []
    for _ in range(updates):
        t0 = time.perf_counter()
        agent.update(batch)
        times.append((time.perf_counter() - t0) * 1e3)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(updates):
        agent.update(batch)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt * 1e3 / updates  # type: ignore[attr-defined]
    phases = phase_ms(stats, updates)
    return {
        "agent": kind, "batch": batch_size, "image": image,
        "ms_per_update": statistics.median(times), "aten_ops": aten_ops(agent.update, batch),
        "profiled_ms": total, **phases, "rest": total - sum(phases.values()),
    }


def table(rows: list[dict[str, Any]]) -> list[str]:
    cols = ["optimiser", "backward", "averaging", "clipping", "rest"]
    lines = [
        "| agent | batch | image | ms/update (median) | aten ops | "
        + " | ".join(f"{c} (ms)" for c in cols) + " |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(cols),
    ]
    for r in rows:
        lines.append(
            f"| {r['agent']} | {r['batch']} | {r['image']} | {r['ms_per_update']:.1f} | "
            f"{r['aten_ops']} | " + " | ".join(f"{r[c]:.2f}" for c in cols) + " |"
        )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--image", type=int, default=64)
    p.add_argument("--updates", type=int, default=50)
    p.add_argument("--no-save", action="store_true", help="print only")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = [measure(kind, args.batch, args.image, args.updates) for kind in ("am", "gcbc")]
    lines = [
        "# Host-side cost of one update",
        "",
        f"`python bench/update_overhead.py --batch {args.batch} --image {args.image} "
        f"--updates {args.updates}` on {platform.machine()} with {os.cpu_count()} cores, one "
        f"torch thread, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}. Default AM and "
        "GCBC agents (bench/pretrain.py's speed part), synthetic batches. The phase columns "
        "come from cProfile (which slows Python a little); 'rest' is the loss's forward pass, "
        "host-to-device copies and diagnostics.",
        "",
        *table(rows),
        "",
    ]
    print("\n".join(lines))
    if not args.no_save:
        tmp = OUT.with_suffix(".md.tmp")
        tmp.write_text("\n".join(lines))
        os.replace(tmp, OUT)
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
