"""goalrl.agents.dynamics: the ensemble's loss alone, and that it learns a known system."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from goalrl.agents.dynamics import (
    DynamicsConfig,
    DynamicsEnsemble,
    dynamics_loss,
    train_dynamics,
)

CFG = DynamicsConfig(members=3, hidden=32, layers=2, lr=3e-3)


def test_loss_is_zero_for_a_perfect_prediction_and_grows_with_the_error() -> None:
    model = DynamicsEnsemble(2, 1, CFG)
    with torch.no_grad():  # a model that predicts "no change" in every member
        model.layers[-1].weight.zero_()
        model.layers[-1].bias.zero_()
    s = torch.randn(3, 8, 2)
    a = torch.randn(3, 8, 1)
    still, _ = dynamics_loss(model, s, a, s)
    assert float(still.detach()) == pytest.approx(0.0, abs=1e-12)
    near, _ = dynamics_loss(model, s, a, s + 0.1)
    far, info = dynamics_loss(model, s, a, s + 1.0)
    assert 0 < float(near.detach()) < float(far.detach())
    assert float(far.detach()) == pytest.approx(1.0)  # unit delta_std: in standard deviations
    assert info["dynamics/loss"] == pytest.approx(float(far.detach()))


def test_statistics_set_the_units_of_the_loss() -> None:
    model = DynamicsEnsemble(2, 1, CFG)
    with torch.no_grad():
        model.layers[-1].weight.zero_()
        model.layers[-1].bias.zero_()
    model.set_statistics(np.zeros((4, 2), np.float32),
                         np.array([[0, 0], [0, 0], [2, 2], [2, 2]], np.float32))
    s = torch.zeros(3, 5, 2)
    loss, _ = dynamics_loss(model, s, torch.zeros(3, 5, 1), s + 1.0)  # the mean change
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-10)


def test_learns_a_push_like_system_and_its_members_differ() -> None:
    rng = np.random.default_rng(0)
    s = rng.uniform(-1, 1, (4000, 2)).astype(np.float32)
    a = rng.uniform(-1, 1, (4000, 1)).astype(np.float32)
    # the first coordinate follows the action; the second moves only when pushed from x > 0
    nxt = s + np.concatenate([0.1 * a, 0.1 * a * (s[:, :1] > 0)], axis=1)
    model = train_dynamics(s[:3500], a[:3500], nxt[:3500], CFG, steps=1500, batch=128)
    pred = model.predict(torch.as_tensor(s[3500:]), torch.as_tensor(a[3500:]))  # (E, B, S)
    assert pred.shape == (3, 500, 2)
    err = (pred.mean(0).numpy() - nxt[3500:]).__abs__().mean()
    assert err < 0.2 * np.abs(nxt[3500:] - s[3500:]).mean()  # far better than "no change"
    assert float(pred.std(0).mean()) > 0  # independent members

