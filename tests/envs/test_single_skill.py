"""Stitch episodes: one skill each, ending with it, its reach bounded."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from goalrl.data.recording import record_rollout
from goalrl.envs.single_skill import (
    EndWithSkill,
    SingleSkillPolicy,
    path_diameters,
    within_one_skill,
)


@pytest.mark.parametrize(("scene", "skill"), [("Push", "push"), ("Rearrange", None)])
def test_a_stitch_episode_runs_one_skill_and_ends_with_it(scene: str, skill) -> None:
    base = gym.make(f"goalrl/{scene}-v0", image_size=8)
    limit = base.spec.max_episode_steps
    for seed in range(2):
        policy = SingleSkillPolicy(base.unwrapped, seed=seed)
        episode, _ = record_rollout(EndWithSkill(base, policy), policy, seed)
        attempts = {k: v["attempts"] for k, v in policy.stats.summary().items()}
        assert sum(attempts.values()) == 1, attempts  # exactly one skill, and it finished
        if skill:
            assert attempts == {skill: 1}
        assert episode.num_steps < limit  # ended by the skill, not the time limit
        with pytest.raises(RuntimeError, match="one skill has ended"):
            policy(None)
    base.close()


def test_path_diameter_is_the_widest_gap_between_two_frames() -> None:
    path = np.array([[0, 0, 0, 5, 5, 5], [0.1, 0, 0, 5, 5, 5], [-0.05, 0, 0, 5, 5, 5.02]])
    np.testing.assert_allclose(path_diameters(path), [0.15, 0.02])


def test_one_skill_bounds_per_scene() -> None:
    still = np.zeros((3, 9))
    one_far = still.copy()
    one_far[2, :3] = 0.4  # a pick-and-place takes one object anywhere
    two_far = one_far.copy()
    two_far[2, 3:6] = 0.06  # and a second one moved past the nudge bound
    assert within_one_skill("Rearrange", one_far)
    assert not within_one_skill("Rearrange", two_far)
    push = np.zeros((3, 3))
    push[2, 0] = 0.17
    assert within_one_skill("Push", push)
    push[2, 0] = 0.19  # a flung cube
    assert not within_one_skill("Push", push)
    assert within_one_skill("Reach", np.full((3, 3), 9.0))  # no bound there
