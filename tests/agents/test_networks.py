"""Networks: shapes over image sizes, the encode/fuse/head decomposition, state flattening."""

from __future__ import annotations

import pytest
import torch

from goalrl.agents.config import EncoderConfig
from goalrl.agents.networks import (
    ConvTrunk,
    GaussianPolicyNetwork,
    GoalQNetwork,
)

TINY = dict(encoder=EncoderConfig(conv_channels=[8, 16], embed_dim=16, fusion_dim=32))


def _images(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, h, w, 3), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("size", [16, 32, 48, 64, 96, 128])
def test_trunk_maps_every_size_to_a_small_grid(size: int) -> None:
    trunk = ConvTrunk((size, size, 3), channels=(8, 16, 16))
    out = trunk(_images(2, size, size))
    assert out.shape == (2, *trunk.out_shape)
    assert 3 <= trunk.out_shape[1] <= 5 and 3 <= trunk.out_shape[2] <= 5


@pytest.mark.parametrize(
    "size", [(16, 16), (32, 32), (48, 48), (64, 64), (96, 96), (128, 128), (48, 64)]
)
@pytest.mark.parametrize("proprio_dim", [None, 5])
def test_q_network_shapes(size: tuple[int, int], proprio_dim: int | None) -> None:
    b, n, a = 3, 7, 4
    net = GoalQNetwork((*size, 3), a, proprio_dim=proprio_dim, head_hidden_dim=16, **TINY)
    obs, goal = _images(b, *size, seed=1), _images(b, *size, seed=2)
    prop = torch.randn(b, proprio_dim) if proprio_dim else None
    h = net.encode_obs(obs, prop)
    z = net.encode_goal(goal)
    assert h.shape == (b, 16 + (32 if proprio_dim else 0)) and z.shape == (b, 16)
    assert z.abs().max() < 1.0  # tanh-bounded, so a learned task embedding can stand in
    e = net.fuse(h, z)
    assert e.shape == (b, 32)
    logits = net.head(e, torch.rand(b, n, a) * 2 - 1)
    assert logits.shape == (b, n, 2)
    torch.testing.assert_close(net.encode(obs, goal, prop), e)  # batched path == separate path
    assert net(obs, goal, torch.zeros(b, a), prop).shape == (b, 2)


@pytest.mark.parametrize("proprio_dim", [None, 5])
def test_encode_stacked_observations_reuses_each_goal(proprio_dim: int | None) -> None:
    """obs (2B) for B goals == encoding each half against the goals separately."""
    b = 3
    net = GoalQNetwork((16, 16, 3), 4, proprio_dim=proprio_dim, head_hidden_dim=16, **TINY)
    o1, o2, goal = _images(b, 16, 16, seed=1), _images(b, 16, 16, seed=2), _images(b, 16, 16, 3)
    p1 = torch.randn(b, proprio_dim) if proprio_dim else None
    p2 = torch.randn(b, proprio_dim) if proprio_dim else None
    both = net.encode(torch.cat([o1, o2]), goal, None if p1 is None else torch.cat([p1, p2]))
    separate = torch.cat([net.encode(o1, goal, p1), net.encode(o2, goal, p2)])
    torch.testing.assert_close(both, separate)
    with pytest.raises(ValueError, match="multiple of goal rows"):
        net.encode(o1[:2], goal)


def test_head_evaluates_each_action_independently() -> None:
    net = GoalQNetwork((16, 16, 3), 2, head_hidden_dim=16, num_heads=3, **TINY)
    e = net.encode(_images(4, 16, 16), _images(4, 16, 16, seed=1))
    actions = torch.rand(4, 5, 2) * 2 - 1  # (B, N, A)
    together = net.head(e, actions)  # (B, N, K)
    assert together.shape == (4, 5, 3)
    for j in range(5):
        torch.testing.assert_close(net.head(e, actions[:, j : j + 1])[:, 0], together[:, j])
    # Rows do not mix: row 0's logits do not depend on row 1's embedding.
    e2 = e.clone()
    e2[1] += 1.0
    torch.testing.assert_close(net.head(e2, actions)[0], together[0])


def test_heads_are_independent_and_action_matters() -> None:
    net = GoalQNetwork((16, 16, 3), 2, head_hidden_dim=16, **TINY)
    e = net.encode(_images(2, 16, 16), _images(2, 16, 16, seed=1))
    logits = net.head(e, torch.rand(2, 50, 2) * 2 - 1)
    assert not torch.allclose(logits[..., 0], logits[..., 1])
    assert logits.std(dim=1).min() > 1e-4


def test_siamese_encoder_identical_obs_and_goal() -> None:
    net = GoalQNetwork((32, 32, 3), 2, **TINY)
    x = _images(2, 32, 32)
    torch.testing.assert_close(net.encode_obs(x), net.encode_goal(x))


def test_gradients_reach_the_encoder() -> None:
    net = GoalQNetwork((16, 16, 3), 2, head_hidden_dim=16, **TINY)
    logits = net(_images(2, 16, 16), _images(2, 16, 16, seed=1), torch.zeros(2, 2))
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_proprio_required_when_configured() -> None:
    net = GoalQNetwork((16, 16, 3), 2, proprio_dim=3, **TINY)
    with pytest.raises(ValueError):
        net.encode_obs(_images(1, 16, 16))


def test_policy_network_bounds() -> None:
    net = GaussianPolicyNetwork(
        (32, 32, 3), 3, proprio_dim=2, log_std_min=-4.0, log_std_max=0.5, **TINY
    )
    mean, log_std = net(_images(5, 32, 32), _images(5, 32, 32, seed=1), torch.randn(5, 2))
    assert mean.shape == (5, 3) and log_std.shape == (5, 3)
    assert mean.abs().max() < 1.0
    assert log_std.min() >= -4.0 and log_std.max() <= 0.5


def test_float_images_accepted() -> None:
    net = GoalQNetwork((16, 16, 3), 2, **TINY)
    u8 = _images(2, 16, 16)
    torch.testing.assert_close(net.encode_goal(u8.float() / 255.0), net.encode_goal(u8))
