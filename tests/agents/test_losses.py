"""Pure loss pieces: hand-computed targets, stable BCE, negative sampling statistics, Polyak."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from goalrl.agents.losses import (
    bce_q_loss,
    gaussian_nll,
    negative_loss,
    polyak_update,
    q_targets,
    select_negatives,
)


def test_q_targets_hand_computed() -> None:
    # rows: reached, bootstrapped hindsight, chained (reached False), bootstrapped with Q = 0
    reached = torch.tensor([True, False, False, False])
    next_q = torch.tensor([0.3, 0.5, 0.8, 0.0])
    y = q_targets(reached, next_q, gamma=0.9)
    torch.testing.assert_close(y, torch.tensor([1.0, 0.45, 0.72, 0.0]))


def test_q_targets_detach_and_dtype() -> None:
    next_q = torch.tensor([0.5, 0.5], requires_grad=True)
    y = q_targets(torch.tensor([1, 0]), next_q.half(), 0.5)
    assert not y.requires_grad and y.dtype == torch.float32
    torch.testing.assert_close(y, torch.tensor([1.0, 0.25]))


def test_bce_matches_definition_and_is_stable() -> None:
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.5]])
    targets = torch.tensor([[1.0], [0.3]])  # broadcast over two heads
    p = torch.sigmoid(logits)
    t = targets.expand_as(logits)
    manual = -(t * p.log() + (1 - t) * (1 - p).log()).mean()
    torch.testing.assert_close(bce_q_loss(logits, targets), manual)
    big = torch.tensor([100.0, -100.0], requires_grad=True)
    loss = bce_q_loss(big, torch.tensor([0.0, 1.0]))
    loss.backward()
    assert math.isclose(loss.item(), 100.0, rel_tol=1e-5)
    assert torch.isfinite(big.grad).all()


def test_bce_weights() -> None:
    logits = torch.tensor([0.0, 3.0])
    targets = torch.tensor([1.0, 0.0])
    full = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    w = torch.tensor([0.0, 2.0])
    torch.testing.assert_close(bce_q_loss(logits, targets, w), (full * w).mean())


def test_negative_loss_pushes_toward_zero() -> None:
    logits = torch.tensor([[0.0, 1.0]], requires_grad=True)
    loss = negative_loss(logits, lambda_neg=0.5)
    expected = 0.5 * nn.functional.softplus(torch.tensor([0.0, 1.0])).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert (logits.grad > 0).all()  # gradient descent lowers the logits


def test_select_negatives_frequencies_match_softmax_of_q() -> None:
    rows = 40_000
    logits = torch.tensor([-3.0, 0.0, 1.0, 4.0])
    expected = torch.softmax(torch.sigmoid(logits), dim=0)  # p ∝ exp(Q), Q = sigmoid(logit)
    idx = select_negatives(logits.expand(rows, 4), torch.Generator().manual_seed(0))
    assert idx.shape == (rows,) and idx.dtype == torch.int64
    freq = torch.bincount(idx, minlength=4).float() / rows
    # 5 standard errors of a binomial proportion with p <= 0.5
    assert (freq - expected).abs().max() < 5 * math.sqrt(0.25 / rows)


def test_select_negatives_temperature_and_heads() -> None:
    rows = 20_000
    logits = torch.tensor([[-2.0, -2.0], [2.0, 0.0], [4.0, 4.0]])  # (N=3, K=2)
    q = torch.sigmoid(logits).mean(-1)
    expected = torch.softmax(q / 0.2, dim=0)
    idx = select_negatives(
        logits.expand(rows, 3, 2), torch.Generator().manual_seed(1), temperature=0.2
    )
    freq = torch.bincount(idx, minlength=3).float() / rows
    assert (freq - expected).abs().max() < 5 * math.sqrt(0.25 / rows)


def test_select_negatives_is_reproducible() -> None:
    logits = torch.randn(50, 8)
    a = select_negatives(logits, torch.Generator().manual_seed(3))
    b = select_negatives(logits, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_gaussian_nll_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    a, mu, log_std = (torch.randn(6, 3, generator=g) for _ in range(3))
    ref = -torch.distributions.Normal(mu, log_std.exp()).log_prob(a).sum(-1)
    torch.testing.assert_close(gaussian_nll(a, mu, log_std), ref)


@pytest.mark.parametrize("tau", [0.0, 0.25, 1.0])
def test_polyak_update(tau: float) -> None:
    torch.manual_seed(0)
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.clone() for p in target.parameters()]
    polyak_update(target, online, tau)
    for b, t, o in zip(before, target.parameters(), online.parameters(), strict=True):
        torch.testing.assert_close(t, (1 - tau) * b + tau * o)


def test_polyak_update_on_tensor_lists() -> None:
    t, o = [torch.zeros(3)], [torch.ones(3)]
    polyak_update(t, o, 0.1)
    torch.testing.assert_close(t[0], torch.full((3,), 0.1))
