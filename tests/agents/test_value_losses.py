"""Pure value-side losses on tiny tensors: expectile asymmetry, AWR weights, DDPG+BC gradients."""

from __future__ import annotations

import math

import pytest
import torch

from goalrl.agents.value_losses import awr_weights, ddpg_bc_actor_loss, expectile_loss


def test_expectile_loss_hand_computed_and_asymmetric() -> None:
    diff = torch.tensor([2.0, -2.0, 0.0])
    loss = expectile_loss(diff, tau=0.9)
    torch.testing.assert_close(loss, torch.tensor([0.9 * 4.0, 0.1 * 4.0, 0.0]))
    # tau = 0.5 is symmetric (half the squared error)
    torch.testing.assert_close(expectile_loss(diff, 0.5), 0.5 * diff.square())


def test_expectile_minimiser_sits_above_mean_for_high_tau() -> None:
    targets = torch.tensor([0.0, 0.0, 0.0, 1.0])
    v = torch.zeros((), requires_grad=True)
    opt = torch.optim.SGD([v], lr=0.5)
    for _ in range(500):
        opt.zero_grad()
        expectile_loss(targets - v, 0.9).mean().backward()
        opt.step()
    # the 0.9-expectile of {0,0,0,1}: 0.9 (1 - v) = 0.1 * 3 v  ->  v = 0.75
    assert v.item() == pytest.approx(0.75, abs=1e-3)
    assert v.item() > targets.mean().item()


def test_expectile_loss_rejects_bad_tau() -> None:
    with pytest.raises(ValueError, match="tau"):
        expectile_loss(torch.zeros(2), 1.0)


def test_awr_weights_monotonic_clipped_and_detached() -> None:
    adv = torch.tensor([-1.0, 0.0, 1.0, 100.0], requires_grad=True)
    w = awr_weights(adv, alpha=2.0, max_weight=50.0)
    assert not w.requires_grad
    torch.testing.assert_close(w[:3], torch.tensor([math.exp(-2.0), 1.0, math.exp(2.0)]))
    assert w[3].item() == pytest.approx(50.0)
    assert torch.all(w[1:] >= w[:-1])
    assert torch.isfinite(awr_weights(torch.tensor([1e6]), 10.0)).all()


def test_ddpg_bc_gradient_raises_q_and_pulls_toward_data() -> None:
    # a one-dim "actor output" a; Q(a) = a increases with a; the data action is at 0
    a = torch.tensor([0.5], requires_grad=True)
    data_action = torch.tensor([0.0])
    q = 2.0 * a
    loss = ddpg_bc_actor_loss(q, torch.zeros(1), alpha=0.0)
    (grad,) = torch.autograd.grad(loss, a)
    assert grad.item() < 0  # gradient descent moves a up: higher Q lowers the loss
    a2 = torch.tensor([0.5], requires_grad=True)
    loss_bc = ddpg_bc_actor_loss(torch.zeros(1) * a2, (a2 - data_action).square(), alpha=1.0)
    (grad_bc,) = torch.autograd.grad(loss_bc, a2)
    assert grad_bc.item() > 0  # descent moves a toward the data action at 0


def test_ddpg_bc_q_term_is_scale_free() -> None:
    q = torch.tensor([1.0, 3.0])
    small = ddpg_bc_actor_loss(q, torch.zeros(2), 0.0)
    large = ddpg_bc_actor_loss(100.0 * q, torch.zeros(2), 0.0)
    torch.testing.assert_close(small, large)
    torch.testing.assert_close(small, torch.tensor(-1.0))
