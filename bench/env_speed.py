"""Steps/s of every goalrl scene at 64x64, physics and rendering included.

One core: a single env stepped with random actions in this process (torch is not
involved). Two workers: ``gymnasium.vector.AsyncVectorEnv`` with two processes, counted
as total env steps/s. Writes docs/benchmarks/env_speed.md.

    python bench/env_speed.py [--steps 1000] [--image-size 64]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import goalrl

TARGET_ONE_CORE = 150.0  # Rearrange-v0 steps/s on one core
TARGET_SPEEDUP = 1.8  # two workers vs one


def one_core(env_id: str, steps: int, image_size: int) -> float:
    env = gym.make(env_id, image_size=image_size)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def _make(env_id: str, image_size: int):
    def thunk() -> gym.Env:
        os.environ["OMP_NUM_THREADS"] = "1"
        return gym.make(env_id, image_size=image_size)

    return thunk


def two_workers(env_id: str, steps: int, image_size: int) -> float:
    envs = gym.vector.AsyncVectorEnv([_make(env_id, image_size) for _ in range(2)])
    rng = np.random.default_rng(0)
    envs.reset(seed=[0, 1])
    per_env = steps // 2
    start = time.perf_counter()
    for _ in range(per_env):  # autoreset handles episode ends
        envs.step(rng.uniform(-1, 1, (2, 4)).astype(np.float32))
    rate = 2 * per_env / (time.perf_counter() - start)
    envs.close()
    return rate


def independent_pair(env_id: str, steps: int, image_size: int) -> float:
    """Two separate processes each stepping its own env, no IPC: the machine's ceiling."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(2) as pool:
        rates = pool.starmap(one_core, [(env_id, steps, image_size)] * 2)
    return sum(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--out", default="docs/benchmarks/env_speed.md")
    args = parser.parse_args()
    rows = []
    for env_id in goalrl.ENV_IDS:
        one = one_core(env_id, args.steps, args.image_size)
        two = two_workers(env_id, args.steps, args.image_size)
        pair = independent_pair(env_id, args.steps, args.image_size)
        rows.append((env_id, one, two, two / one, pair, pair / one))
    header = (
        "| scene | steps/s, 1 core | steps/s, 2 workers (AsyncVectorEnv) | speed-up "
        "| steps/s, 2 independent processes | speed-up |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|"]
    lines += [
        f"| {e} | {a:.0f} | {b:.0f} | {s:.2f}x | {p:.0f} | {q:.2f}x |" for e, a, b, s, p, q in rows
    ]
    table = "\n".join(lines)
    print(table)
    rearrange = next(r for r in rows if r[0] == "goalrl/Rearrange-v0")
    verdict = (
        f"Rearrange-v0: {rearrange[1]:.0f} steps/s on one core (target >= {TARGET_ONE_CORE:.0f}); "
        f"two workers: {rearrange[5]:.2f}x as independent processes, {rearrange[3]:.2f}x through "
        f"AsyncVectorEnv (target >= {TARGET_SPEEDUP}x)."
    )
    print(verdict)
    doc = f"""# Scene speed

`python bench/env_speed.py --steps {args.steps} --image-size {args.image_size}` on
{platform.machine()} with {os.cpu_count()} cores, {time.strftime("%Y-%m-%d")}.
Random actions, {args.image_size}x{args.image_size} images (TinyRenderer), 24 physics
substeps per step; resets included where episodes end (in Push and Rearrange a
reset also simulates the scripted skill whose end state is the goal).

{table}

{verdict}

"2 independent processes" runs two unconnected processes, each stepping its own env, at
the same time: no vector-env IPC and no lockstep, which is how `goalrl collect workers=2`
works (each worker runs whole episodes). `AsyncVectorEnv` steps both envs in lockstep and
passes observations through pipes, so a third process (the caller) shares the two cores.
Figures move with machine load: run on an idle machine.
"""
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(doc)


if __name__ == "__main__":
    main()
