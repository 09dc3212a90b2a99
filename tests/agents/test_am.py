"""AMAgent: update diagnostics, no input mutation, acting, resume, chaining semantics."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from goalrl.agents.am import AMAgent, AMConfig
from goalrl.agents.config import ENCODER_FIELDS, EncoderConfig
from goalrl.data import keys as K

SIZE, A, P = 16, 3, 4


def flat_config(cls, **values):
    """``cls`` with the encoder's fields given flat, beside the others (unknown names raise)."""
    encoder = {k: values.pop(k) for k in ENCODER_FIELDS if k in values}
    return cls(encoder=EncoderConfig(**encoder), **values)


def tiny_cfg(**overrides) -> AMConfig:
    base = dict(
        conv_channels=[8, 16],
        embed_dim=16,
        fusion_dim=32,
        head_hidden_dim=16,
        cem_samples=16,
        cem_elites=4,
        act_cem_samples=32,
        act_cem_elites=4,
        num_negatives=4,
        pad=2,
    )
    base.update(overrides)
    return flat_config(AMConfig, **base)


def make_batch(b: int = 8, seed: int = 0, proprio: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    img = lambda: rng.integers(0, 256, (b, SIZE, SIZE, 3), dtype=np.uint8)  # noqa: E731
    batch = {
        K.OBS_IMAGE: img(),
        K.NEXT_OBS_IMAGE: img(),
        K.GOAL_IMAGE: img(),
        K.ACTION: rng.uniform(-1, 1, (b, A)).astype(np.float32),
        K.REACHED: np.arange(b) % 4 == 0,
        K.CHAINED: np.arange(b) % 4 == 1,
        # as the sampler: 1 for the next frame, -1 for chained goals, k >= 2 otherwise
        K.OFFSET: np.select([np.arange(b) % 4 == 0, np.arange(b) % 4 == 1], [1, -1], 3),
    }
    if proprio:
        batch[K.OBS_PROPRIO] = rng.normal(size=(b, P)).astype(np.float32)
        batch[K.NEXT_OBS_PROPRIO] = rng.normal(size=(b, P)).astype(np.float32)
    return batch


EXPECTED_KEYS = {
    "critic/loss",
    "critic/loss_td",
    "critic/loss_negatives",
    "critic/q_pos",
    "critic/q_neg",
    "critic/q_random",
    "critic/q_greedy",
    "critic/q_reached",
    "critic/q_bootstrap",
    "critic/q_chained",
    "critic/target_mean",
    "critic/target_bootstrap",
    "critic/target_chained",
    "critic/next_q",
    "critic/frac_reached",
    "critic/frac_chained",
    "critic/grad_norm",
}


@pytest.mark.parametrize("use_proprio", [False, True])
def test_update_returns_finite_prefixed_floats(use_proprio: bool) -> None:
    agent = AMAgent(tiny_cfg(use_proprio=use_proprio), (SIZE, SIZE, 3), A, proprio_dim=P)
    info = agent.update(make_batch(proprio=use_proprio))
    assert set(info) == EXPECTED_KEYS
    assert all(isinstance(v, float) and np.isfinite(v) for v in info.values())
    assert info["critic/frac_reached"] == 0.25 and info["critic/frac_chained"] == 0.25
    assert agent.step == 1


@pytest.mark.parametrize(
    "overrides", [dict(negatives=False), dict(augment=False), dict(max_grad_norm=1.0)]
)
def test_update_variants(overrides: dict) -> None:
    agent = AMAgent(tiny_cfg(**overrides), (SIZE, SIZE, 3), A)
    info = agent.update(make_batch())
    assert np.isfinite(info["critic/loss"])
    if overrides.get("negatives") is False:
        assert info["critic/loss_negatives"] == 0.0 and "critic/q_neg" not in info


@pytest.mark.parametrize("kind", ["numpy", "tensor", "readonly"])
def test_update_does_not_mutate_batch(kind: str) -> None:
    batch = make_batch(proprio=True)
    if kind == "tensor":
        batch = {k: torch.as_tensor(v) for k, v in batch.items()}
    elif kind == "readonly":  # e.g. views of a read-only memory map
        for v in batch.values():
            v.flags.writeable = False
    before = copy.deepcopy(batch)
    AMAgent(tiny_cfg(use_proprio=True), (SIZE, SIZE, 3), A, proprio_dim=P).update(batch)
    assert batch.keys() == before.keys()
    for k in batch:
        assert np.array_equal(np.asarray(batch[k]), np.asarray(before[k])), k


def test_targets_reached_chained_bootstrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reached rows target 1; others gamma * next Q; chained rows bootstrap even if flagged."""
    import goalrl.agents.am as am_module

    def fake_cem(score_fn, batch_size, action_dim, **kwargs):
        # every row: best action 0 with target logit 0, i.e. next Q = 0.5
        return torch.zeros(batch_size, action_dim), torch.zeros(batch_size)

    monkeypatch.setattr(am_module, "cem_maximize", fake_cem)
    cfg = tiny_cfg(negatives=False, augment=False, gamma=0.8, mc_floor=False)
    agent = AMAgent(cfg, (SIZE, SIZE, 3), A)
    batch = make_batch(4)
    batch[K.REACHED] = np.array([True, True, False, False])
    batch[K.CHAINED] = np.array([False, True, True, False])
    info = agent.update(batch)
    assert info["critic/frac_reached"] == 0.25  # the chained + reached row is bootstrap-only
    assert info["critic/next_q"] == pytest.approx(0.5)
    assert info["critic/target_mean"] == pytest.approx((1.0 + 3 * 0.4) / 4)
    assert info["critic/target_chained"] == pytest.approx(0.4)
    assert info["critic/target_bootstrap"] == pytest.approx(0.4)


@pytest.mark.parametrize("use_proprio", [False, True])
def test_policy_negative_offers_the_greedy_action(
    monkeypatch: pytest.MonkeyPatch, use_proprio: bool
) -> None:
    """One CEM call on the (o', g) rows sets the TD target, and its action joins the negative
    candidates (last column)."""
    import goalrl.agents.am as am_module

    b = 4
    calls = []

    def fake_cem(score_fn, batch_size, action_dim, **kwargs):
        calls.append(batch_size)
        rows = torch.arange(batch_size, dtype=torch.float32)
        best = (rows[:, None] / 10).expand(batch_size, action_dim).clone()  # row i -> i / 10
        return best, torch.zeros(batch_size)  # Q 0.5

    monkeypatch.setattr(am_module, "cem_maximize", fake_cem)
    cfg = tiny_cfg(
        policy_negative=True, augment=False, gamma=0.8, use_proprio=use_proprio, mc_floor=False,
    )
    agent = AMAgent(cfg, (SIZE, SIZE, 3), A, proprio_dim=P)
    seen = []
    net = agent.train_net
    agent.train_net = lambda obs, goal, actions, prop, **kw: seen.append(actions) or net(  # type: ignore[assignment]
        obs, goal, actions, prop, **kw
    )
    batch = make_batch(b, proprio=use_proprio)
    batch[K.REACHED] = np.zeros(b, bool)
    info = agent.update(batch)
    assert calls == [b]
    assert info["critic/target_bootstrap"] == pytest.approx(0.8 * 0.5)
    actions = seen[0]  # (B, 1 + N + 1, A)
    assert actions.shape == (b, 1 + cfg.num_negatives + 1, A)
    expected = (torch.arange(b).float() / 10)[:, None].expand(b, A)
    torch.testing.assert_close(actions[:, -1], expected)
    assert "critic/q_greedy" in info and np.isfinite(info["critic/q_greedy"])


def test_mc_floor_raises_hindsight_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    """With mc_floor a goal k steps ahead targets max(gamma * next Q, gamma^(k-1)); chained
    goals keep the bootstrap; a batch without offsets is refused by name."""
    import goalrl.agents.am as am_module

    def fake_cem(score_fn, batch_size, action_dim, **kwargs):
        return torch.zeros(batch_size, action_dim), torch.zeros(batch_size)  # next Q = 0.5

    monkeypatch.setattr(am_module, "cem_maximize", fake_cem)
    agent = AMAgent(tiny_cfg(negatives=False, gamma=0.8, mc_floor=True), (SIZE, SIZE, 3), A)
    batch = make_batch(4)
    batch[K.REACHED] = np.array([True, False, False, False])
    batch[K.CHAINED] = np.array([False, False, False, True])
    batch[K.OFFSET] = np.array([1, 2, 5, -1])
    _, stats = agent.loss(batch)
    # targets: 1 (reached), max(0.4, 0.8) = 0.8, max(0.4, 0.8^4 = 0.4096), 0.4 (chained)
    assert float(stats["critic/target_bootstrap"]) == pytest.approx((0.8 + 0.8**4) / 2)
    assert float(stats["critic/target_chained"]) == pytest.approx(0.4)
    del batch[K.OFFSET]
    with pytest.raises(KeyError, match=K.OFFSET):
        agent.loss(batch)


def test_target_network_follows_by_polyak() -> None:
    agent = AMAgent(tiny_cfg(tau=0.5), (SIZE, SIZE, 3), A)
    q0 = [p.clone() for p in agent.q_target.parameters()]
    for a, b in zip(agent.q.parameters(), agent.q_target.parameters(), strict=True):
        assert torch.equal(a, b)  # starts as a copy
    agent.update(make_batch())
    for old, t, o in zip(q0, agent.q_target.parameters(), agent.q.parameters(), strict=True):
        torch.testing.assert_close(t, 0.5 * old + 0.5 * o)
    assert all(not p.requires_grad for p in agent.q_target.parameters())


def test_act_shapes_bounds_and_noise() -> None:
    agent = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A)
    batch = make_batch(5)
    a = agent.act(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE])
    assert a.shape == (5, A) and a.dtype == np.float32
    assert np.abs(a).max() <= 1.0
    single = agent.act(batch[K.OBS_IMAGE][0], batch[K.GOAL_IMAGE][0])
    assert single.shape == (A,)
    broadcast = agent.act(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE][0])  # one goal for all
    assert broadcast.shape == (5, A)
    noisy = agent.act(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE], explore_std=0.5)
    assert np.abs(noisy).max() <= 1.0 and not np.allclose(noisy, a)


def test_act_maximises_q() -> None:
    agent = AMAgent(tiny_cfg(act_cem_iterations=4, act_cem_samples=64), (SIZE, SIZE, 3), A)
    batch = make_batch(4)
    obs, goal = batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE]
    best = agent.act(obs, goal)
    q_best = agent.q_values(obs, goal, best)
    rand = np.random.default_rng(0).uniform(-1, 1, (4, 256, A)).astype(np.float32)
    q_rand = agent.q_values(obs, goal, rand)  # (B, N)
    assert q_best.shape == (4,) and q_rand.shape == (4, 256)
    assert (q_best >= np.quantile(q_rand, 0.95, axis=1)).all()


def test_q_values_reductions() -> None:
    agent = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A)
    batch = make_batch(3)
    obs, goal, act = batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE], batch[K.ACTION]
    both = agent.q_values(obs, goal, act, reduce="none")
    assert both.shape == (3, 2) and ((both > 0) & (both < 1)).all()
    np.testing.assert_allclose(agent.q_values(obs, goal, act), both.min(-1), rtol=1e-6)
    np.testing.assert_allclose(agent.q_values(obs, goal, act, reduce="mean"), both.mean(-1))
    assert np.ndim(agent.q_values(obs[0], goal[0], act[0])) == 0
    many = np.stack([act[0], act[1]])  # (N=2, A) candidates for one unbatched obs
    np.testing.assert_allclose(
        agent.q_values(obs[0], goal[0], many), agent.q_values(obs[:1], goal[:1], many[None])[0]
    )
    with pytest.raises(ValueError):
        agent.q_values(obs, goal, act, reduce="max")


def test_seeded_agents_are_deterministic() -> None:
    a1 = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A, seed=3)
    a2 = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A, seed=3)
    assert a1.update(make_batch()) == a2.update(make_batch())
    other = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A, seed=4)
    assert not torch.equal(next(other.q.parameters()), next(a1.q.parameters()))


def test_auto_device() -> None:
    agent = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A, device="auto")
    assert agent.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_construction_leaves_global_rng_alone() -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A)
    assert torch.equal(torch.rand(3), expected)


def test_state_dict_resume_continues_exactly() -> None:
    """Train 2 steps, snapshot, train 2 more; a fresh agent loaded from the snapshot matches."""
    agent = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A, seed=1)
    for s in range(2):
        agent.update(make_batch(seed=s))
    state = copy.deepcopy(agent.state_dict())
    infos = [agent.update(make_batch(seed=10 + s)) for s in range(2)]

    resumed = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A, seed=99)
    resumed.load_state_dict(state)
    assert resumed.step == 2
    infos_resumed = [resumed.update(make_batch(seed=10 + s)) for s in range(2)]
    assert infos == infos_resumed
    for p, q in zip(agent.q_target.parameters(), resumed.q_target.parameters(), strict=True):
        assert torch.equal(p, q)


def test_rng_state_roundtrip() -> None:
    agent = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A)
    batch = make_batch(2)
    state = agent.get_rng_state()
    a1 = agent.act(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE], explore_std=0.3)
    agent.set_rng_state(state)
    a2 = agent.act(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE], explore_std=0.3)
    np.testing.assert_array_equal(a1, a2)
    agent.seed(5)
    state5 = agent.get_rng_state()
    agent.seed(5)
    assert torch.equal(agent.get_rng_state(), state5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp", [False, True])
def test_cuda_update_and_act(amp: bool) -> None:
    agent = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A, device="cuda", amp=amp)
    assert agent.amp is amp
    info = agent.update(make_batch())
    assert np.isfinite(info["critic/loss"])
    batch = make_batch(2)
    assert agent.act(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE]).shape == (2, A)


def test_rng_state_from_another_device_type_reseeds_with_warning() -> None:
    agent = AMAgent(tiny_cfg(), (SIZE, SIZE, 3), A)
    state = agent.state_dict()
    state["rng"] = torch.zeros(16, dtype=torch.uint8)  # the size of a CUDA generator state
    with pytest.warns(UserWarning, match="another device type"):
        agent.load_state_dict(state)


def test_act_returns_the_q_value_of_its_action() -> None:
    encoder = EncoderConfig(conv_channels=[8, 8], embed_dim=16, fusion_dim=32)
    agent = AMAgent(AMConfig(encoder=encoder, head_hidden_dim=16), (16, 16, 3), 4, seed=0)
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    goal = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    action, q = agent.act(obs, goal, return_q=True)
    assert action.shape == (4,) and np.ndim(q) == 0
    expected = agent.q_values(obs, goal, action[None], reduce="min")
    np.testing.assert_allclose(q, np.asarray(expected).reshape(-1)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("source", ["policy", "mixed"])
def test_unknown_negative_source_is_refused_when_the_agent_is_built(source: str) -> None:
    """"mixed" (half batch, half uniform) stays for task fine-tuning only."""
    with pytest.raises(ValueError, match=f"agent.neg_source.*'{source}'"):
        AMAgent(tiny_cfg(neg_source=source), (SIZE, SIZE, 3), A)
