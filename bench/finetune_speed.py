"""Speed runs behind bench/finetune.py's state-cpu plan: CPU seconds per update of every stage
and per rollout, one thread, on the profile's own networks and batch size.

    OMP_NUM_THREADS=1 .venv/bin/python bench/finetune_speed.py --task grasp --updates 300

Collects a small play set and a small labeled set of the task at the profile's image size (the
state variants) under ``--workdir``, then times real agents on real batches: AM and GCBC
pretraining updates, the task Q update with its auxiliary goal-reaching batch (the same cost
with or without an init checkpoint, and with Cal-QL's floor), task behaviour cloning; and
rollouts of the task scene acting on the env's state: CEM on a task Q (what AM's zero-shot
rollouts and the online episodes of a task Q cost too) and a policy's mean (GCBC, task BC).
Collection is timed per episode. Figures are process CPU time, so a machine shared with other
jobs gives what one free core would; wall time is longer under load. The row of (profile, task)
replaces its old one in docs/benchmarks/finetune_speed.json, which bench/finetune_plan.py reads
to size its plan, and docs/benchmarks/finetune_speed.md is rewritten from it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import yaml
from finetune_plan import PROFILES, SPEED_FIELDS, SPEEDS_FILE, TASKS, load_speeds

from goalrl.data.storage.files import atomic_write


def with_fields(cfg: Any, overrides: list[str]) -> Any:
    """``cfg`` with dotted ``field=value`` overrides (bench/finetune_plan.py's net fields)."""
    for item in overrides:
        name, value = item.split("=", 1)
        *parents, leaf = name.split(".")
        cfg = _set(cfg, parents, leaf, yaml.safe_load(value))
    return cfg


def _set(cfg: Any, parents: list[str], leaf: str, value: Any) -> Any:
    if not parents:
        return replace(cfg, **{leaf: value})
    child = getattr(cfg, parents[0])
    return replace(cfg, **{parents[0]: _set(child, parents[1:], leaf, value)})


def cpu_seconds(fn: Any, n: int) -> float:
    """CPU seconds per call of ``fn`` over ``n`` calls, after two warm-up calls."""
    for _ in range(2):
        fn()
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n


def collect(work: Path, task: str, size: int, play: int, labeled: int) -> tuple[Any, Any, float]:
    """(play, labeled) datasets of ``task``, collected afresh under ``work``, and the CPU
    seconds per collected episode."""
    from goalrl.commands.collect import CollectConfig
    from goalrl.commands.collect import collect as run_collect
    from goalrl.data.storage import EpisodeDataset

    env, policy, noise = TASKS[task]
    shutil.rmtree(work, ignore_errors=True)  # timed afresh every run
    start = time.process_time()
    for name, n, kw in (("play", play, {}), ("labeled", labeled,
                                             dict(policy=policy, waypoint_noise=noise))):
        run_collect(CollectConfig(env=env, episodes=n, image_size=size, sheet=False,
                                  out=str(work / name), seed=0 if name == "play" else n, **kw))
    per_episode = (time.process_time() - start) / (play + labeled)
    return EpisodeDataset(work / "play"), EpisodeDataset(work / "labeled"), per_episode


def measure(profile: str, task: str, work: Path, updates: int, episodes: int) -> dict[str, Any]:
    from goalrl.agents import AMConfig, GCBCConfig
    from goalrl.agents.registry import agent_policy, build_agent
    from goalrl.agents.task_bc import TaskBCConfig
    from goalrl.agents.task_q import TaskQConfig
    from goalrl.data.sampler import GoalBatchSampler, state_vectors
    from goalrl.data.task import TaskBatchSampler
    from goalrl.evaluate import evaluate_policy

    torch.set_num_threads(1)
    p = PROFILES[profile]
    play, labeled, collect_s = collect(work / task, task, p["image_size"], 30, 10)
    net = list(p["net"]) + [f"encoder.state_dim={state_vectors(play).shape[1]}"]
    am_cfg = with_fields(AMConfig(), net + p["am"])
    gcbc_cfg = with_fields(GCBCConfig(), net)
    task_cfg = with_fields(TaskQConfig(am=am_cfg), p["task"])
    shape, b = play.image_shape, p["batch"]
    kind = p["net"][0].split("=")[1]  # encoder.kind=...

    def build(name: str, cfg: Any) -> Any:
        return build_agent(name, cfg, shape, play.action_dim, play.proprio_dim, "cpu")

    goals = GoalBatchSampler(play, b, p_chain=0.2, observation=kind)
    tasks = TaskBatchSampler(labeled, b, gamma=0.9, observation=kind)
    good = TaskBatchSampler(labeled, b, gamma=0.9, observation=kind, successful_only=True)
    am, gcbc = build("am", am_cfg), build("gcbc", gcbc_cfg)
    task_q, task_bc = build("task", task_cfg), build("task_bc", TaskBCConfig(gcbc=gcbc_cfg))
    out: dict[str, Any] = {"batch": b, "updates": updates, "rollouts": episodes,
                           "threads": torch.get_num_threads(), "collect_episode": collect_s}
    timed = {"pretrain_am": lambda: am.update(goals.sample()),
             "pretrain_gcbc": lambda: gcbc.update(goals.sample()),
             "task_q": lambda: task_q.update(tasks.sample(), goals.sample()),
             "task_bc": lambda: task_bc.update(good.sample())}
    for name, fn in timed.items():
        out[name] = cpu_seconds(fn, updates)  # CPU s per update
        print(f"{name}: {1 / out[name]:.2f} updates/s", flush=True)
    env = TASKS[task][0]
    for name, agent in (("rollout_cem", task_q), ("rollout_policy", task_bc)):
        start = time.process_time()
        evaluate_policy(env, agent_policy(agent), episodes, image_size=p["image_size"],
                        observation=kind, progress=False)
        out[name] = (time.process_time() - start) / episodes  # CPU s per rollout
        print(f"{name}: {out[name]:.2f} s per rollout", flush=True)
    return out


def write(speeds: dict[str, Any], json_path: Path) -> Path:
    """``speeds`` to ``json_path`` and its table to the .md beside it, each atomically."""
    md = json_path.with_suffix(".md")
    lines = ["# CPU time of the fine-tuning benchmark's stages", "",
             "Written by `bench/finetune_speed.py` (its docstring says what each column times); "
             "bench/finetune_plan.py sizes its CPU profiles from these figures. Process CPU "
             "seconds, one torch thread; updates at the profile's batch size.", "",
             "| profile | task | measured | " + " | ".join(SPEED_FIELDS) + " |",
             "|---|---|---|" + "---:|" * len(SPEED_FIELDS)]
    for profile, tasks in sorted(speeds.items()):
        for task, row in sorted(tasks.items()):
            cells = " | ".join(f"{row[f]:.4f}" for f in SPEED_FIELDS)
            lines.append(f"| {profile} | {task} | {row.get('measured', '–')} | {cells} |")
    lines += ["", "Columns: CPU seconds per collected episode, per update (pretraining AM and "
              "GCBC, the task Q with its auxiliary batch, task behaviour cloning) and per "
              "rollout of the task scene (CEM on a Q; a policy's mean)."]
    atomic_write(json_path, (json.dumps(speeds, indent=2) + "\n").encode(), durable=False)
    atomic_write(md, ("\n".join(lines) + "\n").encode(), durable=False)
    return md


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", choices=sorted(PROFILES), default="state-cpu")
    ap.add_argument("--task", choices=list(TASKS), default="grasp")
    ap.add_argument("--updates", type=int, default=300, help="timed updates per stage")
    ap.add_argument("--episodes", type=int, default=5, help="timed rollouts per kind")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/goalrl_finetune_speed"))
    ap.add_argument("--out", type=Path, default=SPEEDS_FILE, help="the speeds JSON to update")
    args = ap.parse_args(argv)
    row = measure(args.profile, args.task, args.workdir, args.updates, args.episodes)
    row["measured"] = (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}, "
                       f"{os.cpu_count()} cores {platform.machine()}, "
                       f"load {os.getloadavg()[0]:.1f}")
    speeds = load_speeds(args.out)
    speeds.setdefault(args.profile, {})[args.task] = row
    md = write(speeds, args.out)
    print(json.dumps(row))
    print(f"wrote {args.out} and {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
