"""goalrl.benchmark.value_probe: the value read along the scripted pusher's paths, for each
kind of value (V, a contrastive critic, AM's Q), and the probe's two measures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from goalrl.agents.registry import build_agent, config_from_dict
from goalrl.benchmark.oracle import oracle_episodes
from goalrl.benchmark.value_probe import (
    path_values,
    preference,
    probe_agent,
    rank_correlation,
)

S, P, A = 8, 5, 4  # Push's state, proprio and action widths


def tiny(kind: str):
    encoder = {"kind": "state", "state_dim": S, "embed_dim": 16, "fusion_dim": 32,
               "state_hidden": [32]}
    cfg = config_from_dict(kind, {"encoder": encoder, "head_hidden_dim": 16})
    return build_agent(kind, cfg, (8, 8, 3), A, P, "cpu", seed=0)


@pytest.fixture(scope="module")
def episodes():
    return list(oracle_episodes("goalrl/Push-v0", "test", per_task=1, record=True))


def test_rank_correlation_and_preference() -> None:
    assert rank_correlation(np.array([0.0, 1.0, 3.0, 7.0])) == pytest.approx(1.0)
    assert rank_correlation(np.array([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    assert np.isnan(rank_correlation(np.ones(5)))
    assert preference(np.array([2.0, 1.0, 1.0, 0.0]), np.array([1.0, 1.0, 2.0, 0.0])) == 0.5
    assert preference(np.array([2.0, 3.0]), np.array([1.0, 1.0])) == 1.0
    assert np.isnan(preference(np.array([]), np.array([])))


@pytest.mark.parametrize("kind", ["gcivl", "crl", "am"])
def test_path_values_read_each_state_with_its_own_action(kind) -> None:
    """Batched over a path, each value is the one of that state, goal and action alone."""
    agent = tiny(kind)
    rng = np.random.default_rng(0)
    states = rng.normal(size=(6, S)).astype(np.float32)
    goal = rng.normal(size=S).astype(np.float32)
    proprio = states[:, :P].copy()
    actions = rng.uniform(-1, 1, size=(6, A)).astype(np.float32)
    values = path_values(agent, kind, states, goal, proprio, actions)
    assert values.shape == (6,)
    alone = [path_values(agent, kind, states[i:i + 1], goal, proprio[i:i + 1],
                         actions[i:i + 1])[0] for i in range(6)]
    np.testing.assert_allclose(values, alone, rtol=1e-5, atol=1e-6)
    assert np.ptp(values) > 0  # the states and actions differ, so do the values


class DistanceValue:
    """A stand-in value agent: minus the distance of the state's slice ``part`` to the goal's."""

    device = torch.device("cpu")
    proprio_dim = None

    def __init__(self, part: slice) -> None:
        self.part = part

    def value(self, obs, goal, proprio):
        return -(obs[:, self.part] - goal[:, self.part]).norm(dim=1, keepdim=True)  # (B, 1)


def test_the_probe_credits_a_value_that_sees_the_cube_and_not_one_that_sees_the_arm(
        episodes) -> None:
    cube = probe_agent(DistanceValue(slice(P, S)), "gcivl", episodes)
    arm = probe_agent(DistanceValue(slice(0, 3)), "gcivl", episodes)
    assert len(cube) == len(arm) == sum(e.success for e in episodes) > 0
    # moving the cube back to its start puts it farther from its goal: always worse
    assert np.nanmean([r["object_credit"] for r in cube]) == 1.0
    assert np.nanmean([r["object_credit"] for r in arm]) == 0.5  # blind to the cube: ties
    assert np.nanmean([r["rho"] for r in cube]) > 0.5
    assert all(r["v_end"] > r["v_start"] for r in cube)
    # the yardstick column is the arm value's own rho
    np.testing.assert_allclose([r["arm_rho"] for r in cube], [r["rho"] for r in arm])


def test_successor_predicts_the_next_state_and_leaves_the_scene_as_it_was() -> None:
    import gymnasium as gym

    from goalrl.benchmark.value_probe import successor
    from goalrl.envs.registration import register_envs

    register_envs()
    env = gym.make("goalrl/Push-v0", image_size=8)
    try:
        obs, _ = env.reset(seed=3)
        action = np.array([0.8, -0.5, 0.0, 1.0], np.float32)
        predicted, proprio = successor(env.unwrapped, action)
        again, _ = successor(env.unwrapped, action)
        np.testing.assert_allclose(again, predicted, atol=1e-6)  # nothing moved in between
        after, *_ = env.step(action)
        np.testing.assert_allclose(after["state"], predicted, atol=1e-4)
        np.testing.assert_allclose(after["observation"], proprio, atol=1e-4)
        assert np.abs(after["state"][:3] - obs["state"][:3]).max() > 0.005  # the arm moved
    finally:
        env.close()


def test_lookahead_rollouts_give_store_rollouts_and_need_a_state_value() -> None:
    from goalrl.benchmark.value_probe import StateDistance, lookahead_rollouts

    rows = lookahead_rollouts(StateDistance(A), "state_distance", "goalrl/Push-v0",
                              "test/task1", per_task=1, candidates=2)
    assert len(rows) == 1 and rows[0]["goal_split"] == "test" and rows[0]["task"] == "task1"
    assert isinstance(rows[0]["success"], bool) and rows[0]["final_distance"] >= 0
    for kind in ("crl", "am"):
        with pytest.raises(ValueError, match="needs a state value"):
            lookahead_rollouts(tiny(kind), kind, "goalrl/Push-v0", "test/task1", per_task=1)
