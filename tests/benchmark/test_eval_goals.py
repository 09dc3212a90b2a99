"""``evaluate_policy(goals=...)``: one rollout per benchmark goal, from its start, tagged."""

from __future__ import annotations

import numpy as np
import pytest

from goalrl.benchmark.goals import eval_goals
from goalrl.evaluate import evaluate_policy


def still(obs, goal, proprio):
    """Hold the arm where it is: a policy that never reaches a goal."""
    return np.array([0.0, 0.0, 0.0, 1.0], np.float32), None


def test_rollouts_start_from_each_goal_and_carry_its_split_and_task() -> None:
    goals = eval_goals("goalrl/Reach-v0", "val/task4", 2) + eval_goals("Reach", "test/random", 1)
    result = evaluate_policy("goalrl/Reach-v0", still, 99, image_size=8, progress=False,
                             goals=goals, env_kwargs={"max_episode_steps": 2})
    rows = result["rollouts"]
    assert result["episodes"] == 3  # one per goal; `episodes` is not used
    assert [(r["seed"], r["goal_split"], r["task"]) for r in rows] == [
        (g.seed, g.split, g.task) for g in goals]
    assert result["by_task"] == {"task4": {"episodes": 2, "success_rate": 0.0},
                                 "random": {"episodes": 1, "success_rate": 0.0}}
    for row, g in zip(rows, goals, strict=True):  # reset put the arm at the goal's start
        expected = np.linalg.norm(g.start.tcp - g.goal.tcp)
        assert abs(row["start_distance"] - expected) < 0.01


def test_env_seeded_evaluation_rows_stay_untagged() -> None:
    result = evaluate_policy("goalrl/Reach-v0", still, 1, image_size=8, progress=False,
                             env_kwargs={"max_episode_steps": 2})
    assert "by_task" not in result and "task" not in result["rollouts"][0]


def test_goalrl_eval_with_goals_rolls_out_each_task_and_stores_split_and_task(
    tmp_path, tmp_path_factory
) -> None:
    from tiny_reacher import tiny_checkpoint

    from goalrl.commands.evaluate import EvalConfig, run
    from goalrl.results import read_rows

    store = tmp_path / "results.jsonl"
    summary = run(EvalConfig(ckpt=str(tiny_checkpoint(tmp_path_factory)), episodes=1, videos=0,
                             out=str(tmp_path / "eval"), device="cpu", goals="val",
                             results=str(store), env_kwargs={"max_episode_steps": 2}))
    expected = [(g.seed, g.task) for g in eval_goals("goalrl/Push-v0", "val", 1)]
    assert [(r["seed"], r["task"]) for r in summary["rollouts"]] == expected
    assert list(summary["by_task"]) == ["task1", "task2", "task3", "task4", "task5", "random"]
    rows = read_rows(store)
    assert [(r["env_seed"], r["goal_split"], r["task"]) for r in rows] == [
        (seed, "val", task) for seed, task in expected]


def test_goalrl_eval_refuses_an_unknown_goal_set(tmp_path, tmp_path_factory) -> None:
    from tiny_reacher import tiny_checkpoint

    from goalrl.benchmark.goals import GoalSpecError
    from goalrl.commands.evaluate import EvalConfig, run

    with pytest.raises(GoalSpecError, match="goals='hard'"):
        run(EvalConfig(ckpt=str(tiny_checkpoint(tmp_path_factory)), episodes=1, videos=0,
                       out=str(tmp_path / "eval"), device="cpu", goals="hard"))


def test_goalrl_eval_with_goals_rolls_out_the_benchmark_steps_unless_told(
    tmp_path, tmp_path_factory
) -> None:
    from tiny_reacher import tiny_checkpoint

    from goalrl.benchmark.goals import EVAL_STEPS
    from goalrl.commands.evaluate import EvalConfig, run

    ckpt = str(tiny_checkpoint(tmp_path_factory))
    summary = run(EvalConfig(ckpt=ckpt, episodes=1, videos=0, out=str(tmp_path / "eval"),
                             device="cpu", goals="test/task1"))
    assert summary["env_kwargs"] == {"max_episode_steps": EVAL_STEPS["Push"]}
    assert summary["rollouts"][0]["steps"] == EVAL_STEPS["Push"]
