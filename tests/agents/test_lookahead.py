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


def tiny_state_am(actor: bool):
    from point_task import S, tiny_encoder

    from goalrl.agents.am import AMAgent, AMConfig

    cfg = AMConfig(encoder=tiny_encoder("state"), head_hidden_dim=16, num_q_heads=2, actor=actor,
                   act_rule="cem")
    return AMAgent(cfg, (8, 8, 3), 4, seed=0), S


def test_ams_value_is_its_q_at_its_actors_action_per_head() -> None:
    from goalrl.agents.lookahead import ActorQValue, state_values

    am, s_dim = tiny_state_am(actor=True)
    value = ActorQValue(am)
    assert am.cfg.act_rule == "actor"  # the lookahead's centre is the actor's action
    rng = np.random.default_rng(0)
    states = rng.normal(size=(6, s_dim)).astype(np.float32)
    goal = rng.normal(size=s_dim).astype(np.float32)
    own = am.act(states, goal)  # (6, 4): the actor's actions
    q = am.q_values(states, goal, own, reduce="none")  # (6, 2): Q of them per head
    heads = value.value(torch.as_tensor(states), torch.as_tensor(goal).expand(6, -1), None)
    assert heads.shape == (6, 2) and np.allclose(heads.numpy(), q, atol=1e-6)
    assert np.allclose(state_values(value, states, goal), q.mean(1), atol=1e-6)
    # another action scores differently: the value is read at the actor's action, not any
    assert not np.allclose(am.q_values(states, goal, -own, reduce="none"), q)

    class Pushes:  # the arm's four dims of the state move by 0.1 a
        def predict(self, s, a):
            return (s + 0.1 * torch.nn.functional.pad(a, (0, s_dim - 4)))[None]  # (1, N, S)

    policy = ModelLookahead(value, Pushes(), candidates=4, seed=0)
    action, score = policy(states[0], goal, None)
    assert action.shape == (4,) and 0.0 <= score <= 1.0


def test_am_without_an_actor_has_no_value_to_look_ahead_on() -> None:
    from goalrl.agents.lookahead import ActorQValue

    with pytest.raises(ValueError, match="agent.actor=true"):
        ActorQValue(tiny_state_am(actor=False)[0])
