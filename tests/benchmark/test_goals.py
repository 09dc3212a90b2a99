"""Evaluation goals: splits disjoint, named tasks graded and valid, resets put the scene there."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from goalrl.benchmark.goals import (
    COLLECT_SEED_LIMIT,
    RANDOM,
    SUCCESS_THRESHOLD,
    GoalSpecError,
    eval_goals,
    needs_two_skills,
    object_moves,
    parse_goals,
)
from goalrl.benchmark.tasks import IN_TRAY, NAMED_TASKS, TASK_NAMES, named_task
from goalrl.envs.tasks import OBJECT_HIGH, OBJECT_LOW, TASKS, TRAY_HALF

SCENES = ("Reach", "Push", "Rearrange")


def config_distance(scene: str, a, b) -> float:
    """Largest object (or tcp, in Reach) distance between two layouts."""
    task = TASKS[scene]
    diff = (task.goal_vector(a) - task.goal_vector(b)).reshape(-1, 3)
    return float(np.linalg.norm(diff, axis=1).max())


@pytest.mark.parametrize("scene", SCENES)
def test_val_and_test_share_no_seed_and_stay_above_collection_seeds(scene: str) -> None:
    test = eval_goals(scene, "test", per_task=30)
    val = eval_goals(scene, "val", per_task=30)
    test_seeds, val_seeds = {g.seed for g in test}, {g.seed for g in val}
    assert len(test_seeds) == len(test) and len(val_seeds) == len(val)  # no seed used twice
    assert not test_seeds & val_seeds
    assert min(test_seeds | val_seeds) >= COLLECT_SEED_LIMIT
    assert {g.split for g in test} == {"test"} and {g.split for g in val} == {"val"}


@pytest.mark.parametrize("scene", SCENES)
def test_no_validation_task_pair_lies_within_tolerance_of_a_test_task_pair(scene: str) -> None:
    named = lambda split: [g for g in eval_goals(scene, split, 1) if g.task != RANDOM]  # noqa: E731
    for v, t in itertools.product(named("val"), named("test")):
        close_start = config_distance(scene, v.start, t.start) < SUCCESS_THRESHOLD
        close_goal = config_distance(scene, v.goal, t.goal) < SUCCESS_THRESHOLD
        assert not (close_start and close_goal), (v.task, t.task)
        assert config_distance(scene, v.goal, t.goal) >= SUCCESS_THRESHOLD, (v.task, t.task)


@pytest.mark.parametrize("scene", SCENES)
def test_goal_sets_are_the_same_on_every_call_and_named_task_goals_fixed(scene: str) -> None:
    a, b = eval_goals(scene, "test", 5), eval_goals(scene, "test", 5)
    for x, y in zip(a, b, strict=True):
        assert (x.task, x.seed) == (y.task, y.seed)
        assert config_distance(scene, x.goal, y.goal) == 0.0
        assert np.array_equal(x.start.tcp, y.start.tcp)
    for task in TASK_NAMES:  # the seed jitters the arm's start only
        goals = [g for g in a if g.task == task]
        assert all(config_distance(scene, g.goal, goals[0].goal) == 0.0 for g in goals)
        assert len({tuple(g.start.tcp) for g in goals}) == len(goals)


@pytest.mark.parametrize("scene", ("Push", "Rearrange"))
def test_every_test_and_val_goal_needs_two_skills(scene: str) -> None:
    for g in eval_goals(scene, "test", 20) + eval_goals(scene, "val", 20):
        assert needs_two_skills(TASKS[scene], g.start, g.goal), (g.task, g.seed)


def test_named_tasks_are_graded_by_how_far_the_cube_or_the_tcp_moves() -> None:
    moved = [object_moves(*_layouts("Push", t)).sum() for t in TASK_NAMES]
    assert moved == sorted(moved)
    reach = [np.linalg.norm(np.subtract(*_layouts("Reach", t))) for t in TASK_NAMES]
    assert reach == sorted(reach)


def _layouts(scene: str, task: str):
    """(start, goal) layouts of a test task; Reach: its (start tcp, goal tcp)."""
    goal = eval_goals(scene, f"test/{task}", 1)[0]
    if scene == "Reach":
        return goal.start.tcp, goal.goal.tcp
    return goal.start, goal.goal


@pytest.mark.parametrize("scene", ("Push", "Rearrange"))
@pytest.mark.parametrize("split", ("test", "val"))
def test_named_task_layouts_are_on_the_table_apart_and_clear_of_the_tray(scene, split) -> None:
    for task in TASK_NAMES:
        g = eval_goals(scene, f"{split}/{task}", 1)[0]
        in_tray = {k for k, w in named_task(scene, task).goal.items() if w[-1] == IN_TRAY}
        for layout, tray_ok in ((g.start, set()), (g.goal, in_tray)):
            table = {k: v[:2] for k, v in layout.objects.items() if k not in tray_ok}
            for xy in table.values():
                assert np.all(xy >= OBJECT_LOW) and np.all(xy <= OBJECT_HIGH), (task, xy)
                if layout.tray is not None:
                    assert np.linalg.norm(xy - layout.tray[:2]) >= TRAY_HALF + 0.01 + 0.045
            for a, b in itertools.combinations(table.values(), 2):
                assert np.linalg.norm(a - b) >= 0.09, (task, a, b)
            for name in tray_ok:
                assert np.abs(layout.objects[name][:2] - layout.tray[:2]).max() < TRAY_HALF


def test_every_scene_has_five_named_tasks() -> None:
    for scene in SCENES:
        assert tuple(t.name for t in NAMED_TASKS[scene]) == TASK_NAMES


@pytest.mark.parametrize(("spec", "expected"), [
    ("test", ("test", (*TASK_NAMES, RANDOM))),
    ("val", ("val", (*TASK_NAMES, RANDOM))),
    ("task3", ("test", ("task3",))),
    ("random", ("test", (RANDOM,))),
    ("val/task2", ("val", ("task2",))),
    ("test/random", ("test", (RANDOM,))),
])
def test_parse_goals(spec: str, expected) -> None:
    assert parse_goals(spec) == expected


@pytest.mark.parametrize("spec", ["train", "task6", "val/task9", "", "test/"])
def test_unknown_goal_sets_are_refused_by_name(spec: str) -> None:
    if spec == "test/":  # an empty task after the slash is the whole split
        assert parse_goals(spec)[0] == "test"
        return
    with pytest.raises(GoalSpecError, match="goals="):
        parse_goals(spec)


def test_a_scene_without_goals_or_a_bad_count_is_refused() -> None:
    with pytest.raises(GoalSpecError, match="goalrl/Grasp-v0"):
        eval_goals("goalrl/Grasp-v0")
    with pytest.raises(GoalSpecError, match="episodes per task .* got 0"):
        eval_goals("goalrl/Push-v0", "test", per_task=0)


@pytest.mark.parametrize("scene", ("Push", "Rearrange", "Reach"))
def test_reset_options_put_the_scene_in_the_start_with_the_goal_set(scene: str) -> None:
    import gymnasium as gym

    import goalrl  # noqa: F401

    env = gym.make(f"goalrl/{scene}-v0", image_size=8)
    try:
        for g in eval_goals(scene, "test/task2", 1) + eval_goals(scene, "val/random", 1):
            obs, info = env.reset(seed=g.seed, options=g.reset_options())
            task = TASKS[scene]
            np.testing.assert_allclose(obs["desired_goal"], task.goal_vector(g.goal), atol=1e-6)
            if scene != "Reach":  # objects rest where the start puts them
                np.testing.assert_allclose(obs["achieved_goal"], task.goal_vector(g.start),
                                           atol=0.01)
            assert not info["is_success"]
    finally:
        env.close()
