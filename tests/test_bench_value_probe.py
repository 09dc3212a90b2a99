"""bench/value_probe.py's lookahead table from store rows: the probe's own rows against the
same checkpoints' actor on the same goals; the benchmark table's rows are never the probe's."""

from __future__ import annotations

import argparse

from bench_modules import load_bench

bench = load_bench("value_probe")


def row(seed: int, env_seed: int, success: bool, **kw) -> dict:
    return {"v": 1, "method": "gcivl", "agent": "gcivl", "dataset": "push-stitch-state",
            "train_seed": seed, "step": 20000, "env": "goalrl/Push-v0",
            "env_kwargs": {"max_episode_steps": 100}, "goal_split": "test", "task": "task1",
            "env_seed": env_seed, "success": success, "checkpoint": f"/c{seed}", **kw}


def test_lookahead_table_pairs_the_probe_with_the_actor_on_its_goals() -> None:
    probe = dict(phase=bench.PHASE, act_rule=bench.LOOKAHEAD)
    actor = dict(phase="pretrain", act_rule="actor")
    store = [row(0, 10, True, **probe), row(0, 11, True, **probe),
             row(1, 10, True, **probe), row(1, 11, False, **probe),
             # the actor: solves nothing on the probe's goals, everything on another goal
             *(row(s, g, False, **actor) for s in (0, 1) for g in (10, 11)),
             row(0, 12, True, **actor),
             # another checkpoint's actor rows are not this probe's baseline
             row(5, 10, True, **{**actor, "checkpoint": "/other"})]
    args = argparse.Namespace(datasets=["push-stitch"])
    lines = bench.lookahead_table(args, store)
    gcivl = next(line for line in lines if "| gcivl |" in line)
    cells = [c.strip() for c in gcivl.split("|")[1:-1]]
    assert cells[:4] == ["push-stitch-state", "gcivl", "2", "2"]
    assert cells[5].startswith("75.0 [")  # mean over 2 seeds x 2 goals
    assert cells[6] == "0.0" and cells[7].startswith("+75.0 [")
