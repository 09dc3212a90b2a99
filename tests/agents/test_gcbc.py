"""GCBCAgent: update, chained rows ignored, acting, resume, no input mutation."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_am import flat_config

from goalrl.agents.gcbc import GCBCAgent, GCBCConfig
from goalrl.data import keys as K

SIZE, A, P = 16, 2, 3


def tiny_cfg(**overrides) -> GCBCConfig:
    base = dict(conv_channels=[8, 16], embed_dim=16, fusion_dim=32, pad=2)
    base.update(overrides)
    return flat_config(GCBCConfig, **base)


def make_batch(b: int = 8, seed: int = 0, proprio: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    img = lambda: rng.integers(0, 256, (b, SIZE, SIZE, 3), dtype=np.uint8)  # noqa: E731
    batch = {
        K.OBS_IMAGE: img(),
        K.NEXT_OBS_IMAGE: img(),
        K.GOAL_IMAGE: img(),
        K.ACTION: rng.uniform(-1, 1, (b, A)).astype(np.float32),
        K.REACHED: np.zeros(b, dtype=bool),
        K.CHAINED: np.arange(b) % 2 == 1,
    }
    if proprio:
        batch[K.OBS_PROPRIO] = rng.normal(size=(b, P)).astype(np.float32)
    return batch


@pytest.mark.parametrize("use_proprio", [False, True])
def test_update_info(use_proprio: bool) -> None:
    agent = GCBCAgent(tiny_cfg(use_proprio=use_proprio), (SIZE, SIZE, 3), A, proprio_dim=P)
    info = agent.update(make_batch(proprio=use_proprio))
    assert set(info) == {
        "actor/loss",
        "actor/mse",
        "actor/std",
        "actor/frac_used",
        "actor/grad_norm",
    }
    assert all(np.isfinite(v) for v in info.values())
    assert info["actor/frac_used"] == 0.5


def test_chained_rows_do_not_contribute() -> None:
    """Changing the actions of chained rows leaves the loss and the update unchanged."""
    b1 = make_batch()
    b2 = copy.deepcopy(b1)
    b2[K.ACTION][b2[K.CHAINED]] = 0.99
    a1 = GCBCAgent(tiny_cfg(), (SIZE, SIZE, 3), A, seed=0)
    a2 = GCBCAgent(tiny_cfg(), (SIZE, SIZE, 3), A, seed=0)
    assert a1.update(b1)["actor/loss"] == a2.update(b2)["actor/loss"]
    for p, q in zip(a1.policy.parameters(), a2.policy.parameters(), strict=True):
        assert torch.equal(p, q)


def test_update_does_not_mutate_batch() -> None:
    batch = make_batch(proprio=True)
    before = copy.deepcopy(batch)
    GCBCAgent(tiny_cfg(use_proprio=True), (SIZE, SIZE, 3), A, proprio_dim=P).update(batch)
    for k in batch:
        assert np.array_equal(batch[k], before[k]), k


def test_act_shapes_and_bounds() -> None:
    agent = GCBCAgent(tiny_cfg(), (SIZE, SIZE, 3), A)
    batch = make_batch(4)
    a = agent.act(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE])
    assert a.shape == (4, A) and np.abs(a).max() < 1.0
    assert agent.act(batch[K.OBS_IMAGE][0], batch[K.GOAL_IMAGE][0]).shape == (A,)
    noisy = agent.act(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE], explore_std=1.0)
    assert np.abs(noisy).max() <= 1.0 and not np.allclose(noisy, a)


def test_resume_continues_exactly() -> None:
    agent = GCBCAgent(tiny_cfg(), (SIZE, SIZE, 3), A, seed=2)
    agent.update(make_batch(seed=0))
    state = copy.deepcopy(agent.state_dict())
    infos = [agent.update(make_batch(seed=s)) for s in (5, 6)]
    resumed = GCBCAgent(tiny_cfg(), (SIZE, SIZE, 3), A, seed=7)
    resumed.load_state_dict(state)
    assert resumed.step == 1
    assert infos == [resumed.update(make_batch(seed=s)) for s in (5, 6)]


def test_nll_decreases_on_a_fixed_batch() -> None:
    agent = GCBCAgent(tiny_cfg(augment=False, lr=3e-3, nll_beta=0.0), (SIZE, SIZE, 3), A)
    batch = make_batch()
    first = agent.update(batch)["actor/loss"]
    for _ in range(30):
        last = agent.update(batch)["actor/loss"]
    assert last < first - 0.5


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_mean_fits_a_fixed_batch_whatever_the_nll_beta(beta: float) -> None:
    agent = GCBCAgent(tiny_cfg(augment=False, lr=3e-3, nll_beta=beta), (SIZE, SIZE, 3), A)
    batch = make_batch()
    first = agent.update(batch)["actor/mse"]
    for _ in range(30):
        last = agent.update(batch)["actor/mse"]
    assert last < 0.5 * first
