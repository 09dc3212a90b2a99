"""goalrl.agents.lookahead: the action whose predicted next states the value rates best."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from goalrl.agents.lookahead import SPREAD, ModelLookahead, StateSpace


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
    scores = StateSpace(DistanceValue()).scores(torch.as_tensor(nexts), goal)
    assert scores == pytest.approx([-1.0, -1.75])  # the first is best on average


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


def tiny_image_gcivl(seed: int = 0):
    from point_task import SIZE, A, P, tiny_encoder

    from goalrl.agents.gcivl import GCIVLAgent, GCIVLConfig

    cfg = GCIVLConfig(encoder=tiny_encoder("image"), head_hidden_dim=16)
    return GCIVLAgent(cfg, (SIZE, SIZE, 3), A, proprio_dim=P, seed=seed), SIZE, P


def test_a_latent_space_scores_an_embedding_as_v_scores_the_frame_it_embeds() -> None:
    from goalrl.agents.lookahead import LatentSpace

    agent, size, p = tiny_image_gcivl()
    space = LatentSpace(agent)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    proprio = rng.normal(size=(3, p)).astype(np.float32)
    goal = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    h = space.embed(frames, proprio)  # (3, H): image and proprio embedding
    assert h.shape == (3, agent.value.encoder.obs_dim)
    # two members that predict the same embeddings: the scores are V of those frames
    scores = space.scores(torch.stack([h, h]), goal)  # (3,)
    with torch.no_grad():
        v = agent.value(torch.as_tensor(frames), torch.as_tensor(goal)[None].expand(3, -1, -1, -1),
                        torch.as_tensor(proprio)).mean(-1).numpy()
    np.testing.assert_allclose(scores, v, rtol=1e-5, atol=1e-5)
    # one frame's embedding, the members averaged: the mean of the two frames' values
    mixed = space.scores(torch.stack([h[:1], h[1:2]]), goal)
    assert mixed == pytest.approx([(v[0] + v[1]) / 2], abs=1e-5)


def test_the_latent_digest_names_the_weights_not_the_object() -> None:
    from goalrl.agents.lookahead import LatentSpace

    a, b = LatentSpace(tiny_image_gcivl(0)[0]), LatentSpace(tiny_image_gcivl(0)[0])
    assert a.digest() == b.digest() and len(a.digest()) == 16
    assert LatentSpace(tiny_image_gcivl(1)[0]).digest() != a.digest()


def test_a_latent_lookahead_takes_the_action_whose_embedding_v_rates_best() -> None:
    from goalrl.agents.lookahead import LatentSpace

    agent, size, p = tiny_image_gcivl()
    space = LatentSpace(agent)
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    proprio = np.zeros((2, p), np.float32)
    goal = frames[1]
    h = space.embed(frames, proprio)  # (2, H)
    rated = space.scores(h[None], goal)  # (2,): one member, the two frames as candidates
    near, far = (h[1], h[0]) if rated[1] > rated[0] else (h[0], h[1])

    class ToNearWhenRight:  # the action's first value > 0 leads to the better-rated frame
        def predict(self, x, actions):
            return torch.where(actions[:, :1] > 0, near, far)[None]  # (1, N, H)

    policy = ModelLookahead(agent, ToNearWhenRight(), candidates=32, seed=0, space=space)
    action, score = policy(frames[0], goal, proprio[0])
    assert action[0] > 0
    assert score == pytest.approx(float(space.scores(near[None, None], goal)[0]), abs=1e-5)


def test_agents_without_a_value_network_have_no_latent_space() -> None:
    from point_task import SIZE, A, tiny_encoder

    from goalrl.agents.gcbc import GCBCAgent, GCBCConfig
    from goalrl.agents.lookahead import LatentSpace

    gcbc = GCBCAgent(GCBCConfig(encoder=tiny_encoder("image")), (SIZE, SIZE, 3), A)
    with pytest.raises(ValueError, match="reads a value network with a frame embedding"):
        LatentSpace(gcbc)


def test_ams_latent_value_is_its_q_at_its_actors_action() -> None:
    from point_task import SIZE, tiny_encoder

    from goalrl.agents.am import AMAgent, AMConfig
    from goalrl.agents.lookahead import ActorQValue, LatentSpace

    cfg = AMConfig(encoder=tiny_encoder("image"), head_hidden_dim=16, num_q_heads=2, actor=True,
                   act_rule="cem")
    am = AMAgent(cfg, (SIZE, SIZE, 3), 4, seed=0)
    space = LatentSpace(ActorQValue(am))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    goal = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    scores = space.scores(space.embed(frames, None)[None], goal)  # (3,)
    q = am.q_values(frames, goal, am.act(frames, goal), reduce="none").mean(1)  # (3,)
    np.testing.assert_allclose(scores, q, atol=1e-5)
