"""Evaluation goals: named tasks and random held-out goals, in a validation and a test split.

``eval_goals(scene, "test")`` lists (split, task, seed, start, goal) items; a rollout resets
the scene with ``env.reset(seed=g.seed, options=g.reset_options())``. The splits never share
a seed, and their named tasks are mirror images of each other (goalrl.benchmark.tasks), so
nothing chosen on validation goals (a checkpoint, an act rule, a hyper-parameter) has seen a
test goal. Training data must use seeds below ``COLLECT_SEED_LIMIT``.

Seed ranges (disjoint):
  collection             [0, 1_000_000)
  test random goals      [1_000_000, 1_100_000)    test task k: 1_100_000 + 10_000 (k - 1) + i
  val random goals       [2_000_000, 2_100_000)    val task k:  2_100_000 + 10_000 (k - 1) + i
A named task's seed only jitters the arm's start (up to 2 cm); its objects are fixed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from goalrl.benchmark.tasks import TASK_NAMES, task_layouts
from goalrl.envs.single_skill import ONE_SKILL
from goalrl.envs.tasks import TASKS, Layout, Task
from goalrl.errors import UserError

SPLITS = ("val", "test")
RANDOM = "random"  # the task name of random held-out goals
COLLECT_SEED_LIMIT = 1_000_000  # training episodes use env seeds below this
SPLIT_SEED_BASE = {"test": 1_000_000, "val": 2_000_000}
TASK_SEED_OFFSET = 100_000  # named tasks' seeds start this far above the split's base
SEEDS_PER_TASK = 10_000
ARM_JITTER = 0.02  # m: a named task's start tcp moves up to this much per seed and axis
SUCCESS_THRESHOLD = 0.05  # the scenes' default success radius (TabletopGoalEnv)
MAX_DRAWS = 1000  # draws of a random start and goal before giving up on a seed
# Rollout length of benchmark goals: twice a data episode, because every Push and Rearrange
# goal needs two or three skills. At Push's 50 data steps the scripted pusher solved task3 in
# 0 of 20 test episodes; at 100 every task is solvable (docs/benchmarks/oracle.md).
EVAL_STEPS = {"Reach": 30, "Push": 100, "Rearrange": 160}


class GoalSpecError(UserError, ValueError):
    """A goal set that does not exist (an unknown split, task or scene)."""


@dataclass(frozen=True)
class EvalGoal:
    """One evaluation episode: reset the scene to ``start`` with goal ``goal``."""

    split: str  # val | test
    task: str  # task1..task5 | random
    seed: int  # env seed of the episode
    start: Layout
    goal: Layout

    def reset_options(self) -> dict[str, Any]:
        """``env.reset(seed=self.seed, options=...)`` puts the scene in start, goal set."""
        return {"layout": self.start.copy(), "goal_layout": self.goal.copy()}


def scene_name(env: str) -> str:
    """``goalrl/Push-v0`` or ``Push`` -> ``Push``; GoalSpecError for a scene without goals."""
    name = env.removeprefix("goalrl/").removesuffix("-v0")
    if name not in ("Reach", "Push", "Rearrange"):
        raise GoalSpecError(
            f"env {env!r} has no benchmark goals; choose goalrl/Reach-v0, goalrl/Push-v0 or "
            f"goalrl/Rearrange-v0"
        )
    return name


def eval_steps(env: str) -> int:
    """Steps of one benchmark rollout in ``env`` (``EVAL_STEPS``)."""
    return EVAL_STEPS[scene_name(env)]


def parse_goals(goals: str) -> tuple[str, tuple[str, ...]]:
    """``test`` | ``val`` | ``task3`` | ``test/task3`` | ``val/random`` -> (split, tasks)."""
    split, _, task = goals.partition("/")
    if split in TASK_NAMES or split == RANDOM:  # a bare task name means its test version
        split, task = "test", split
    if split not in SPLITS or (task and task not in (*TASK_NAMES, RANDOM)):
        raise GoalSpecError(
            f"goals={goals!r}: expected val, test, task1..task5, random or split/task "
            f"(e.g. val/task2, test/random)"
        )
    return split, (task,) if task else (*TASK_NAMES, RANDOM)


def eval_goals(env: str, goals: str = "test", per_task: int = 10) -> list[EvalGoal]:
    """The evaluation episodes of ``goals`` (see ``parse_goals``): ``per_task`` of each named
    task and ``per_task`` random held-out goals, in a fixed order."""
    if per_task < 1 or per_task > SEEDS_PER_TASK:
        raise GoalSpecError(f"episodes per task (audit's per_task, eval's episodes) must be in "
                            f"1..{SEEDS_PER_TASK}, got {per_task}")
    scene = scene_name(env)
    split, tasks = parse_goals(goals)
    return [goal for task in tasks for goal in _task_goals(scene, split, task, per_task)]


def _task_goals(scene: str, split: str, task: str, count: int) -> Iterator[EvalGoal]:
    base = SPLIT_SEED_BASE[split]
    for i in range(count):
        if task == RANDOM:
            yield random_goal(scene, split, base + i)
            continue
        seed = base + TASK_SEED_OFFSET + SEEDS_PER_TASK * TASK_NAMES.index(task) + i
        jitter = np.random.default_rng(seed).uniform(-ARM_JITTER, ARM_JITTER, size=3)
        start, goal = task_layouts(scene, task, mirror=split == "val", arm_jitter=jitter)
        yield EvalGoal(split, task, seed, start, goal)


def random_goal(scene: str, split: str, seed: int) -> EvalGoal:
    """A random start and a goal drawn for it (``Task.sample_goal``) from ``seed``, both
    redrawn until the goal needs two skills (Push, Rearrange; Reach takes the first draw); no
    simulation. (A Push start near the table's centre has no goal 0.28 m away.)"""
    task = TASKS[scene]
    rng = np.random.default_rng(seed)
    for _ in range(MAX_DRAWS):
        start = task.sample_layout(rng)
        goal = task.sample_goal(rng, start)
        if task.name not in ONE_SKILL or needs_two_skills(task, start, goal):
            return EvalGoal(split, RANDOM, seed, start, goal)
    raise RuntimeError(f"{scene}: no goal needing two skills in {MAX_DRAWS} draws (seed {seed})")


def object_moves(start: Layout, goal: Layout) -> np.ndarray:
    """(n_objects,) how far (m, in x-y-z) each object lies from its start in the goal."""
    return np.array([np.linalg.norm(goal.objects[k][:3] - start.objects[k][:3])
                     for k in start.objects])


def needs_two_skills(task: Task, start: Layout, goal: Layout) -> bool:
    """Whether no single skill of a stitch dataset takes ``start`` to ``goal``.

    More objects than one skill may carry (``ONE_SKILL``) lie farther from their start than
    its ``bound`` plus the success radius at both ends; an episode showing the pair would
    move each of them farther than ``bound``, which stitch collection does not keep. Never in
    Reach: one reach meets any of its goals, so it has no stitch dataset.
    """
    reach = ONE_SKILL.get(task.name)
    if reach is None:
        return False
    far = object_moves(start, goal) >= reach.bound + 2 * SUCCESS_THRESHOLD
    return int(np.sum(far)) > reach.free_objects
