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


def test_act_rule_prior_best_takes_the_q_best_draw_from_the_prior() -> None:
    agent = prior_agent(act_rule="prior_best", act_prior_samples=48)
    pin_prior(agent, mean=0.0, std=0.3)
    b = make_batch(4)
    draws: list[torch.Tensor] = []
    head = agent.acting_q.head

    def scored_head(e: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        draws.append(actions)
        return head(e, actions)

    agent.acting_q.head = scored_head  # instance attribute: records what act() scores
    actions, q = agent.act(b[K.OBS_IMAGE], b[K.GOAL_IMAGE], return_q=True)  # (B, A), (B,)
    del agent.acting_q.head
    cands = draws[0]  # (B, N, A)
    assert cands.shape == (4, 48, A)
    np.testing.assert_allclose(cands[:, 0].numpy(), 0.0, atol=1e-6)  # the mean is a candidate
    assert 0.2 < float(cands[:, 1:].std()) < 0.4  # the rest are drawn at the prior's std
    all_q = agent.q_values(b[K.OBS_IMAGE], b[K.GOAL_IMAGE], cands.numpy())  # (B, N)
    np.testing.assert_allclose(q, all_q.max(axis=1), rtol=1e-5)
    np.testing.assert_allclose(
        actions, cands.numpy()[np.arange(4), all_q.argmax(axis=1)], atol=1e-6)
    # the Q-best draw scores at least as high as the prior's mean alone
    agent.set_act_rule("prior_mean")
    _, q_mean = agent.act(b[K.OBS_IMAGE], b[K.GOAL_IMAGE], return_q=True)
    assert (q >= q_mean - 1e-6).all()


def test_bad_act_rules_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="act_rule"):
        prior_agent(act_rule="greedy")
    for rule in ("prior_mean", "prior_best"):
        with pytest.raises(ValueError, match=f"act_rule={rule} needs agent.behaviour_prior"):
            AMAgent(tiny_cfg(act_rule=rule), (SIZE, SIZE, 3), A)
    with pytest.raises(ValueError, match="act_prior_samples=0"):
        prior_agent(act_rule="prior_best", act_prior_samples=0)
    with pytest.raises(ValueError, match="act_prior_samples=0"):
        prior_agent().set_act_rule("prior_best", 0)


def test_fine_tuning_keeps_the_prior_but_not_the_act_rule() -> None:
    from dataclasses import asdict

    from goalrl.agents.am import AMConfig
    from goalrl.finetune import merge_am_config

    pretrained = asdict(tiny_cfg(behaviour_prior=True, act_rule="prior_mean"))
    merged = merge_am_config(AMConfig(), pretrained, "ckpt")
    assert merged.behaviour_prior and merged.act_rule == "cem"  # the task Q chooses actions
    asked = merge_am_config(AMConfig(act_rule="prior_mean"), pretrained, "ckpt")
    assert asked.act_rule == "prior_mean"  # unless the user asks for the prior's mean


def test_advantage_weighted_prior_weighs_rows_by_the_target_q() -> None:
    """prior/nll is the NLL of the data actions averaged with weights exp(beta * A), A from the
    target network at (o, g): the data action's log Q against the prior mean's."""
    from goalrl.agents.base import to_tensor
    from goalrl.agents.losses import advantage_weights, gaussian_nll

    agent = prior_agent(augment=False, prior_adv_beta=5.0, prior_adv_max=3.0)
    for i in range(3):  # move the target net off the online one a little
        agent.update(make_batch(8, seed=i))
    batch = make_batch(8, seed=7)
    _, stats = agent.loss(batch)
    with torch.no_grad():
        obs, goal = (to_tensor(batch[k], agent.device) for k in (K.OBS_IMAGE, K.GOAL_IMAGE))
        action = torch.as_tensor(batch[K.ACTION])
        e_t = agent.q_target.encode(obs, goal)
        logit = lambda a: agent.q_target.head(e_t, a[:, None])[:, 0].min(-1).values  # noqa: E731
        q_data, q_mean = logit(action), logit(agent.q_target.prior(e_t)[0])
        w = advantage_weights(q_data, q_mean, 5.0, 3.0) * torch.as_tensor(~batch[K.CHAINED])
        mean, log_std = agent.q.prior(agent.q.encode(obs, goal))
        nll = gaussian_nll(action, mean, log_std, beta=1.0)
    assert len(set(w[w > 0].tolist())) > 1  # rows really are weighted unequally
    expected = (w * nll).sum() / w.sum()
    torch.testing.assert_close(stats["prior/nll"], expected, rtol=1e-4, atol=1e-5)
    assert 0 < stats["prior/weight_ess"].item() <= 1


def test_advantage_weighting_moves_the_prior_toward_actions_q_prefers() -> None:
    """Data actions uniform in the box, a Q that peaks at +0.5: the plain prior's mean stays
    near the data mean 0, the advantage-weighted one moves toward +0.5."""
    means = {}
    for beta in (0.0, 5.0):
        agent = prior_agent(augment=False, negatives=False, prior_adv_beta=beta, lr=3e-3)
        # logit -4 |a - 0.5|^2: Q peaks at +0.5 in every dimension, the same for every (o, g)
        agent._score_fn = lambda _net, _e: (  # type: ignore[method-assign]
            lambda a: -4.0 * (a - 0.5).square().sum(-1)
        )
        rng = np.random.default_rng(0)
        for _ in range(150):
            batch = make_batch(32, seed=int(rng.integers(1 << 30)))
            agent.update(batch)
        probe = make_batch(64, seed=12345)
        with torch.no_grad():
            e = agent.q.encode(*(torch.as_tensor(probe[k]) for k in (K.OBS_IMAGE, K.GOAL_IMAGE)))
            means[beta] = agent.q.prior(e)[0].mean().item()
    assert abs(means[0.0]) < 0.15, means
    assert means[5.0] > 0.25, means


def test_advantage_weighting_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="prior_adv_beta"):
        AMAgent(tiny_cfg(prior_adv_beta=1.0), (SIZE, SIZE, 3), A)
    with pytest.raises(ValueError, match="prior_adv_beta=-1.0"):
        prior_agent(prior_adv_beta=-1.0)
    with pytest.raises(ValueError, match="prior_adv_max=0"):
        prior_agent(prior_adv_beta=1.0, prior_adv_max=0.0)
