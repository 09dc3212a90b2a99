"""The benchmark's named Push tasks are solvable within its rollout length."""

from __future__ import annotations

import pytest

from goalrl.benchmark.goals import EVAL_STEPS
from goalrl.benchmark.oracle import oracle_rollouts


def test_the_scripted_pusher_solves_every_push_task_within_the_benchmark_steps() -> None:
    rows = oracle_rollouts("goalrl/Push-v0", "test", per_task=3)
    solved = {row["task"] for row in rows if row["success"]}
    assert solved == {"task1", "task2", "task3", "task4", "task5", "random"}
    assert all(r["first_success_step"] <= EVAL_STEPS["Push"] for r in rows if r["success"])


def test_the_oracle_refuses_a_scene_it_cannot_solve() -> None:
    with pytest.raises(ValueError, match="Push"):
        oracle_rollouts("goalrl/Reach-v0", "test", per_task=1)
