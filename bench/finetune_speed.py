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
jobs gives what one free core would; wall time is longer under load. Prints one JSON object,
whose figures go into ``SPEEDS`` in bench/finetune_plan.py.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import yaml
from finetune_plan import PROFILES, TASKS

REPO = Path(__file__).resolve().parents[1]


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
    """(play, labeled) datasets of ``task`` under ``work`` (made once) and CPU s per episode."""
    from goalrl.commands.collect import CollectConfig
    from goalrl.commands.collect import collect as run_collect
    from goalrl.data.storage import EpisodeDataset

    env, policy, noise = TASKS[task]
    start, episodes = time.process_time(), 0
    for name, n, kw in (("play", play, {}), ("labeled", labeled,
                                             dict(policy=policy, waypoint_noise=noise))):
        if not (work / name / "meta.json").is_file():
            run_collect(CollectConfig(env=env, episodes=n, image_size=size, sheet=False,
                                      out=str(work / name), seed=0 if name == "play" else n, **kw))
            episodes += n
    per_episode = (time.process_time() - start) / episodes if episodes else None
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
    out: dict[str, Any] = {"profile": profile, "task": task, "batch": b, "updates": updates,
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", choices=sorted(PROFILES), default="state-cpu")
    ap.add_argument("--task", choices=list(TASKS), default="grasp")
    ap.add_argument("--updates", type=int, default=300, help="timed updates per stage")
    ap.add_argument("--episodes", type=int, default=5, help="timed rollouts per kind")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/goalrl_finetune_speed"))
    args = ap.parse_args(argv)
    result = measure(args.profile, args.task, args.workdir, args.updates, args.episodes)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
