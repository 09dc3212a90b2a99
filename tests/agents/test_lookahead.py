"""goalrl.agents.lookahead: the action whose predicted next states the value rates best."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from goalrl.agents.lookahead import SPREAD, ModelLookahead, best_candidate


class DistanceValue:
    """V(s, g) = -||s - g||; its own action is to stand still."""

    device = torch.device("cpu")
    kind = "state"
    proprio_dim = None
    action_dim = 2

    def value(self, obs, goal, proprio):
        return -(obs - goal).norm(dim=1, keepdim=True)  # (B, 1)

    def act(self, obs, goal, proprio):
        return np.zeros(2, np.float32)


class Moves:
    """Two members: the state moves by 0.1 a; the second member also adds ``bias``."""

    def __init__(self, bias=0.0):
        self.bias = bias

    def predict(self, states, actions):
        step = states + 0.1 * actions  # (B, S)
        return torch.stack([step, step + self.bias])  # (E, B, S)


def test_the_candidate_nearest_the_goal_after_one_step_is_taken() -> None:
    policy = ModelLookahead(DistanceValue(), Moves(), candidates=64, seed=0)
    state, goal = np.zeros(2, np.float32), np.array([1.0, -1.0], np.float32)
    action, score = policy(state, goal, None)
    assert action @ (goal - state) > 0.5  # toward the goal, not standing still
    assert score == pytest.approx(-np.linalg.norm(state + 0.1 * action - goal), abs=1e-6)
    # the best of the same draw: nothing in it is nearer the goal after one step
    policy.rng = np.random.default_rng(0)
    actions = policy.candidate_actions(np.zeros(2, np.float32))
    assert np.linalg.norm(0.1 * actions - goal, axis=1).min() == pytest.approx(-score, abs=1e-6)


def test_candidates_are_the_agents_action_and_perturbations_of_it_inside_the_box() -> None:
    policy = ModelLookahead(DistanceValue(), Moves(), candidates=4000, seed=0)
    own = np.array([0.2, 0.95], np.float32)
    actions = policy.candidate_actions(own)  # (4001, 2)
    assert actions.shape == (4001, 2) and actions[0].tolist() == own.tolist()
    assert np.abs(actions).max() <= 1.0  # clipped to the action box
    free = actions[1:, 0]  # far from the box's edge: unclipped Gaussian around own[0]
    assert free.mean() == pytest.approx(0.2, abs=0.02) and free.std() == pytest.approx(
        SPREAD, abs=0.02)
    assert (actions[1:, 1] == 1.0).mean() > 0.3  # near the edge, many are clipped to it
    # spread=None (the value probe's rule): uniform over the box, whatever the agent's action
    uniform = ModelLookahead(DistanceValue(), Moves(), candidates=4000, spread=None
                             ).candidate_actions(own)[1:]
    assert uniform.min() < -0.95 and uniform.mean(0) == pytest.approx([0.0, 0.0], abs=0.05)


def test_the_score_averages_the_members() -> None:
    goal = np.zeros(2, np.float32)
    nexts = np.array([[[1.0, 0.0], [0.5, 0.0]],  # member 1: the second candidate is nearer
                      [[1.0, 0.0], [3.0, 0.0]]], np.float32)  # member 2: much farther
    best, score = best_candidate(DistanceValue(), goal, nexts)
    assert best == 0 and score == pytest.approx(-1.0)


def test_agents_without_a_state_value_are_refused() -> None:
    class ImageAgent(DistanceValue):
        kind = "image"

    class NoValue:
        kind = "state"

    for agent in (ImageAgent(), NoValue()):
        with pytest.raises(ValueError, match="needs a state agent with a value"):
            ModelLookahead(agent, Moves())
    with pytest.raises(ValueError, match="candidates must be >= 0"):
        ModelLookahead(DistanceValue(), Moves(), candidates=-1)
