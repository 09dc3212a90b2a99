"""Pure loss pieces: hand-computed targets, stable BCE, negative sampling statistics, Polyak."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from goalrl.agents.losses import (
    PolyakAverage,
    bce_q_loss,
    ema_rate,
    gaussian_nll,
    hindsight_floor,
    negative_candidates,
    negative_loss,
    q_targets,
    select_negatives,
)


def test_q_targets_hand_computed() -> None:
    # rows: reached, bootstrapped hindsight, chained (reached False), bootstrapped with Q = 0
    reached = torch.tensor([True, False, False, False])
    next_q = torch.tensor([0.3, 0.5, 0.8, 0.0])
    y = q_targets(reached, next_q, gamma=0.9)
    torch.testing.assert_close(y, torch.tensor([1.0, 0.45, 0.72, 0.0]))


def test_hindsight_floor_hand_computed() -> None:
    offset = torch.tensor([1, 2, 5, -1])  # next frame, 2 and 5 steps ahead, chained
    floor = hindsight_floor(offset, 0.8)
    torch.testing.assert_close(floor, torch.tensor([1.0, 0.8, 0.8**4, 0.0]))


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
def test_polyak_average(tau: float) -> None:
    torch.manual_seed(0)
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.clone() for p in target.parameters()]
    PolyakAverage(target, online)(tau)
    for b, t, o in zip(before, target.parameters(), online.parameters(), strict=True):
        torch.testing.assert_close(t, (1 - tau) * b + tau * o)


def test_polyak_average_follows_in_place_changes_of_the_listed_tensors() -> None:
    # The lists are taken once: an optimiser step and a load_state_dict (both in place) must
    # still be seen, and an integer buffer is copied rather than averaged.
    torch.manual_seed(0)
    online, target = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    average = PolyakAverage(target, online)
    with torch.no_grad():
        online.weight.add_(1.0)
    online.load_state_dict({**online.state_dict(), "bias": torch.full((3,), 4.0)})
    online.num_batches_tracked.fill_(7)
    average(0.5)
    torch.testing.assert_close(target.weight, torch.full((3,), 1.5))  # (1 + 2) / 2
    torch.testing.assert_close(target.bias, torch.full((3,), 2.0))  # (0 + 4) / 2
    assert int(target.num_batches_tracked) == 7
    with pytest.raises(ValueError, match="target has 1 tensors, online has 2"):
        PolyakAverage([torch.zeros(1)], [torch.zeros(1), torch.zeros(1)])


def test_polyak_average_with_a_tensor_rate_matches_the_float_rate() -> None:
    # the CUDA-graph path reads the rate from a 0-d tensor; it must average identically
    torch.manual_seed(0)
    online, a, b = nn.Linear(3, 2), nn.Linear(3, 2), nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    PolyakAverage(a, online)(0.3)
    PolyakAverage(b, online)(torch.tensor(0.3))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)


def test_ema_rate_hand_computed() -> None:
    assert ema_rate(0, 0.01) == 1.0  # the first call copies the online weights
    assert ema_rate(10, 0.01) == 0.5  # warm-up: 10 / (step + 10)
    assert ema_rate(90, 0.01) == 0.1
    assert ema_rate(990, 0.01) == 0.01  # from 10 / tau on, the floor tau
    assert ema_rate(10**6, 0.01) == 0.01
    for bad_step, bad_tau in [(-1, 0.01), (5, 0.0), (5, 1.5)]:
        with pytest.raises(ValueError, match="ema_rate"):
            ema_rate(bad_step, bad_tau)


def test_polyak_average_on_tensor_lists() -> None:
    t, o = [torch.zeros(3)], [torch.ones(3)]
    PolyakAverage(t, o)(0.1)
    torch.testing.assert_close(t[0], torch.full((3,), 0.1))


def _distinct_actions(rows: int) -> torch.Tensor:
    """(rows, 4) actions whose first entry names the row; gripper exactly +-1 as in play data."""
    a = torch.zeros(rows, 4)
    a[:, 0] = torch.linspace(-0.9, 0.9, rows)
    a[:, 3] = torch.where(torch.arange(rows) % 2 == 0, 1.0, -1.0)
    return a


def test_batch_negatives_are_other_rows_data_actions() -> None:
    actions = _distinct_actions(8)
    cands = negative_candidates(actions, 2000, "batch", torch.Generator().manual_seed(0))
    assert cands.shape == (8, 2000, 4)
    # every candidate is some row's action, never the row's own
    match = (cands[:, :, None, :] == actions[None, None]).all(-1)  # (B, N, B)
    assert match.sum(-1).eq(1).all()
    owner = match.float().argmax(-1)  # (B, N)
    assert not (owner == torch.arange(8)[:, None]).any()
    # all 7 other rows drawn about equally often: within 35% of 2000/7 (about 6 sigma)
    counts = torch.stack([torch.bincount(owner[r], minlength=8) for r in range(8)])
    others = counts[~torch.eye(8, dtype=torch.bool)]
    assert others.min() > 0.65 * 2000 / 7 and others.max() < 1.35 * 2000 / 7


def test_uniform_and_mixed_negatives() -> None:
    actions = _distinct_actions(16)
    gen = torch.Generator().manual_seed(1)
    uni = negative_candidates(actions, 64, "uniform", gen)
    assert uni.shape == (16, 64, 4) and uni.abs().max() <= 1.0
    # uniform candidates almost never carry a data gripper value (the shortcut batch ones close)
    assert (uni[..., 3].abs() == 1.0).float().mean() < 0.01
    assert uni.std() > 0.5  # spread over the box, not copies of the data
    mixed = negative_candidates(actions, 5, "mixed", gen)
    assert mixed.shape == (16, 5, 4)
    assert (mixed[:, :3, 3].abs() == 1.0).all()  # first ceil(N/2) from the batch
    assert (mixed[:, 3:, 3].abs() < 1.0).all()


def test_swap_negatives_are_near_misses_built_from_data_values() -> None:
    g = torch.Generator().manual_seed(2)
    actions = torch.rand(8, 4, generator=g) * 2 - 1  # (B, A), all values distinct
    actions[:, 3] = torch.where(torch.arange(8) % 2 == 0, 1.0, -1.0)  # binary gripper
    cands = negative_candidates(actions, 4000, "swap", torch.Generator().manual_seed(3))
    assert cands.shape == (8, 4000, 4)
    own = cands == actions[:, None]  # (B, N, A): dimension kept from the row's own action
    assert not own.all(-1).any()  # never the data action itself
    assert (cands[..., 3].abs() == 1.0).all()  # the gripper stays binary
    # every dimension holds a value some row of the batch takes in that dimension
    in_data = (cands[..., None, :] == actions[None, None]).any(-2)  # (B, N, A)
    assert in_data.all()
    # each continuous dimension is replaced about half the time (no-swap draws forced to one)
    replaced = (~own[..., :3]).float().mean()
    assert 0.45 < replaced < 0.6
    # near misses: most candidates keep at least one dimension of the data action
    assert own.any(-1).float().mean() > 0.85
    with pytest.raises(ValueError, match="agent.neg_source"):
        negative_candidates(actions, 4, "swapped")


def test_negative_candidates_edge_cases() -> None:
    for source in ("batch", "swap"):  # a single row has no other row: uniform instead
        one = negative_candidates(_distinct_actions(1), 4, source, torch.Generator().manual_seed(0))
        assert one.shape == (1, 4, 4) and (one[..., 3].abs() < 1.0).all()
    with pytest.raises(ValueError, match="agent.neg_source"):
        negative_candidates(_distinct_actions(4), 4, "policy")
    a = negative_candidates(_distinct_actions(6), 8, "mixed", torch.Generator().manual_seed(5))
    b = negative_candidates(_distinct_actions(6), 8, "mixed", torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)


def test_beta_nll_gives_the_mean_a_squared_error_gradient() -> None:
    g = torch.Generator().manual_seed(0)
    a, mu0 = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    log_std = torch.randn(6, 3, generator=g)  # very different stds per sample

    def mean_grad(beta: float) -> torch.Tensor:
        mu = mu0.clone().requires_grad_(True)
        gaussian_nll(a, mu, log_std, beta).sum().backward()
        return mu.grad

    torch.testing.assert_close(mean_grad(1.0), mu0 - a)  # d/dmu of 0.5 (a - mu)^2: no 1/var
    torch.testing.assert_close(mean_grad(0.0), (mu0 - a) * torch.exp(-2 * log_std))
    # beta 0 is the plain NLL, the default
    torch.testing.assert_close(gaussian_nll(a, mu0, log_std, 0.0), gaussian_nll(a, mu0, log_std))
