"""AMConfig.behaviour_prior: a Gaussian pi_b(a | o, g) on the fused embedding that seeds CEM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_am import SIZE, A, make_batch, tiny_cfg

from goalrl.agents.am import AMAgent
from goalrl.agents.cem import cem_maximize
from goalrl.agents.networks import PRIOR_LOG_STD_MIN
from goalrl.checkpoint import load_checkpoint, save_checkpoint
from goalrl.data import keys as K


def prior_agent(**overrides) -> AMAgent:
    return AMAgent(tiny_cfg(behaviour_prior=True, **overrides), (SIZE, SIZE, 3), A, seed=3)


def pin_prior(agent: AMAgent, mean: float, std: float) -> None:
    """Make every network's prior N(mean, std) whatever (o, g): zero weights, fixed bias."""
    for net in (agent.q, agent.q_target, agent.q_ema):
        with torch.no_grad():
            net.prior_head.weight.zero_()
            net.prior_head.bias[:A] = math.atanh(mean)
            # invert the log-std squash of networks.gaussian_params
            lo, hi = PRIOR_LOG_STD_MIN, 1.0
            net.prior_head.bias[A:] = math.atanh(2 * (math.log(std) - lo) / (hi - lo) - 1)


def test_cem_takes_a_per_row_initial_std() -> None:
    seen: list[torch.Tensor] = []

    def score(a: torch.Tensor) -> torch.Tensor:  # (B, N, A) -> (B, N), best at +1
        seen.append(a)
        return a.sum(-1)

    mean = torch.tensor([[-0.5, -0.5], [0.5, 0.5]])  # (B, A)
    std = torch.tensor([[0.01, 0.01], [0.2, 0.2]])  # (B, A)
    cem_maximize(score, 2, 2, iterations=1, samples=500, elites=5, init_mean=mean,
                 init_std=std, generator=torch.Generator().manual_seed(0))
    first = seen[0]  # (B, N, A)
    spread = first.std(dim=1)  # (B, A)
    assert torch.allclose(first.mean(dim=1), mean, atol=0.03)
    assert (spread[0] < 0.02).all() and (spread[1] > 0.15).all()


def test_update_fits_the_prior_and_reports_it() -> None:
    agent = prior_agent(augment=False)
    batch = make_batch(16)
    first = agent.update(batch)
    assert {"prior/nll", "prior/mse", "prior/std"} <= set(first)
    for _ in range(150):
        last = agent.update(batch)
    # the prior's mean learns the (fixed) data actions of the non-chained rows
    assert last["prior/mse"] < 0.5 * first["prior/mse"]
    assert all(np.isfinite(v) for v in last.values())


def test_chained_rows_do_not_train_the_prior() -> None:
    agent = prior_agent()
    batch = make_batch(8)
    batch[K.CHAINED] = np.ones(8, bool)  # no row tells which action leads to its goal
    batch[K.REACHED] = np.zeros(8, bool)
    batch[K.OFFSET] = np.full(8, -1)
    agent.optimizer.zero_grad()
    loss, stats = agent.loss(batch)
    loss.backward()
    assert stats["prior/nll"].item() == 0.0
    assert agent.q.prior_head.weight.grad is None or not agent.q.prior_head.weight.grad.any()


@pytest.mark.parametrize("acting", [False, True])
def test_cem_searches_around_the_prior(acting: bool) -> None:
    """A narrow prior at -0.5 keeps CEM near it although Q grows toward +1: the search is
    confined to the behaviour's support; without a prior the same Q gives an action near +1."""
    agent = prior_agent()
    pin_prior(agent, mean=-0.5, std=0.06)
    net = agent.acting_q if acting else agent.q_target
    # Q rises with the sum of the action: a linear score stands in for the head
    agent._score_fn = lambda _net, _e: (lambda a: a.sum(-1))  # type: ignore[method-assign]
    e = torch.zeros(6, net.encoder.feature_dim)
    best, _ = agent.maximize(net, e, acting=acting)  # (B, A)
    assert (best - (-0.5)).abs().max() < 0.35
    plain = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A, seed=3)
    plain._score_fn = agent._score_fn  # type: ignore[method-assign]
    free, _ = plain.maximize(plain.q, e, acting=acting)
    assert free.mean() > 0.5 and (free.sum(-1) > best.sum(-1) + 1.5).all()


def test_act_uses_the_acting_prior() -> None:
    agent = prior_agent(act_cem_iterations=1)
    pin_prior(agent, mean=0.6, std=0.06)
    b = make_batch(4)
    actions = agent.act(b[K.OBS_IMAGE], b[K.GOAL_IMAGE])  # (B, A), one narrow iteration
    assert np.abs(actions - 0.6).max() < 0.25


def test_checkpoint_round_trip_keeps_the_prior(tmp_path) -> None:
    agent = prior_agent()
    for i in range(2):
        agent.update(make_batch(8, seed=i))
    save_checkpoint(tmp_path, 2, {"agent": agent.state_dict()}, {})
    state, _ = load_checkpoint(tmp_path)
    other = AMAgent(tiny_cfg(behaviour_prior=True), (SIZE, SIZE, 3), A, seed=99)
    other.load_state_dict(state["agent"])
    e = torch.randn(3, agent.q.encoder.feature_dim)
    for mine, theirs in zip(agent.q.prior(e), other.q.prior(e)):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)
    assert agent.update(make_batch(8, seed=5)) == other.update(make_batch(8, seed=5))
    plain = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A)
    with pytest.raises(RuntimeError, match="prior_head"):
        plain.load_state_dict(state["agent"])  # a prior checkpoint needs a prior network


def test_act_rule_prior_mean_acts_with_the_mean_and_scores_it() -> None:
    agent = prior_agent(act_rule="prior_mean")
    pin_prior(agent, mean=0.3, std=0.5)  # a wide prior: only its mean is taken
    b = make_batch(4)
    actions, q = agent.act(b[K.OBS_IMAGE], b[K.GOAL_IMAGE], return_q=True)  # (B, A), (B,)
    np.testing.assert_allclose(actions, 0.3, atol=1e-6)
    np.testing.assert_allclose(q, agent.q_values(b[K.OBS_IMAGE], b[K.GOAL_IMAGE], actions),
                               rtol=1e-5)


def test_bad_act_rules_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="act_rule"):
        prior_agent(act_rule="greedy")
    with pytest.raises(ValueError, match="act_rule=prior_mean needs agent.behaviour_prior"):
        AMAgent(tiny_cfg(act_rule="prior_mean"), (SIZE, SIZE, 3), A)
    with pytest.raises(ValueError, match="act_rule='prior_best'"):  # removed
        prior_agent().set_act_rule("prior_best")


def test_fine_tuning_keeps_the_prior_but_not_the_act_rule() -> None:
    from dataclasses import asdict

    from goalrl.agents.am import AMConfig
    from goalrl.training.finetune import merge_am_config

    pretrained = asdict(tiny_cfg(behaviour_prior=True, act_rule="prior_mean"))
    merged = merge_am_config(AMConfig(), pretrained, "ckpt")
    assert merged.behaviour_prior and merged.act_rule == "cem"  # the task Q chooses actions
    asked = merge_am_config(AMConfig(act_rule="prior_mean"), pretrained, "ckpt")
    assert asked.act_rule == "prior_mean"  # unless the user asks for the prior's mean


def test_fine_tuning_does_not_inherit_the_actor_on_q() -> None:
    from dataclasses import asdict

    from goalrl.agents.am import AMConfig
    from goalrl.training.finetune import merge_am_config

    pretrained = asdict(tiny_cfg(actor=True))
    # the task agent neither acts with nor optimises the goal agent's actor: no actor loss
    assert not merge_am_config(AMConfig(), pretrained, "ckpt").actor
