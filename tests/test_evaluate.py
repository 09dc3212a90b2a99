"""Evaluation summaries: success, object distance and the arm's distance to the pictured arm."""

from __future__ import annotations

import numpy as np
import pytest

from goalrl.evaluate import evaluate_policy, mean_or_none

IMAGE = 32


def still(obs_image: np.ndarray, goal_image: np.ndarray, proprio: np.ndarray):
    return np.zeros(4, dtype=np.float32), None


def toward(point: np.ndarray):
    """A policy that servos the tcp (proprio[:3]) to a fixed point."""

    def policy(obs_image, goal_image, proprio):
        step = np.clip((point - proprio[:3]) / 0.02, -1.0, 1.0)
        return np.array([*step, 1.0], dtype=np.float32), None

    return policy


def test_arm_distance_on_reach_is_the_goal_distance() -> None:
    res = evaluate_policy("goalrl/Reach-v0", still, 3, image_size=IMAGE, progress=False)
    # Reach's goal is the tcp position itself
    assert res["mean_final_arm_distance"] == pytest.approx(res["mean_final_distance"], abs=1e-6)


def test_arm_distance_tells_arm_motion_from_object_motion() -> None:
    import gymnasium as gym

    import goalrl  # noqa: F401

    env = gym.make("goalrl/Push-v0", image_size=IMAGE)
    env.reset(seed=1_000_000)
    goal_tcp = env.unwrapped.goal_layout.tcp.copy()
    env.close()
    still_res = evaluate_policy("goalrl/Push-v0", still, 1, image_size=IMAGE, progress=False)
    moved = evaluate_policy(
        "goalrl/Push-v0", toward(goal_tcp), 1, image_size=IMAGE, progress=False
    )
    assert moved["mean_final_arm_distance"] < 0.03 < still_res["mean_final_arm_distance"]


def test_mean_or_none() -> None:
    assert mean_or_none([0.1, 0.3]) == pytest.approx(0.2)
    assert mean_or_none([0.1, None]) is None and mean_or_none([]) is None
