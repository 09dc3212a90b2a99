"""Collection throughput: frames/s written by ``goalrl collect`` with 1 and 2 workers.

Runs the real command path (scripted play, rendering, dataset appends) into a temp folder
and writes docs/benchmarks/collect.md.

    python bench/collect_speed.py [--env goalrl/Rearrange-v0] [--episodes 16]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from goalrl.commands.collect import CollectConfig, collect


def measure(env: str, episodes: int, workers: int, image_size: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = CollectConfig(
            env=env,
            episodes=episodes,
            out=str(Path(tmp) / "ds"),
            workers=workers,
            image_size=image_size,
            sheet=False,
        )
        start = time.perf_counter()
        summary = collect(cfg)
        elapsed = time.perf_counter() - start
    return summary["frames_added"] / elapsed, summary["episodes_added"] / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="goalrl/Rearrange-v0")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--out", default="docs/benchmarks/collect.md")
    args = parser.parse_args()
    rows = []
    for workers in (1, 2):
        fps, eps = measure(args.env, args.episodes, workers, args.image_size)
        rows.append((workers, fps, eps))
    lines = ["| workers | frames/s | episodes/s | speed-up |", "|---:|---:|---:|---:|"]
    lines += [f"| {w} | {f:.0f} | {e:.2f} | {f / rows[0][1]:.2f}x |" for w, f, e in rows]
    table = "\n".join(lines)
    print(table)
    doc = f"""# Collection speed

`python bench/collect_speed.py --env {args.env} --episodes {args.episodes}
--image-size {args.image_size}` on {platform.machine()} with {os.cpu_count()} cores,
{time.strftime("%Y-%m-%d")}: the real `goalrl collect` path (scripted play,
{args.image_size}x{args.image_size} rendering, atomic dataset appends), worker start-up
included. Push and Rearrange resets simulate the goal's scripted skill, so those scenes
collect more slowly than their step rate alone would give.

{table}
"""
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(doc)


if __name__ == "__main__":
    main()
