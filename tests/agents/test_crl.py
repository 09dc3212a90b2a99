"""CRL (goalrl.agents.crl): binary NCE alone, the critic's logits, an actor that never trains the
critic, learning the point task, save/load and exact resume, image batches."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import point_task
import pytest
import test_config
import torch
import torch.nn.functional as F
from test_config import STATE_ENCODER_FIELDS, _differs, _encoder_cases, _leaf_fields, _set

from goalrl.agents.config import AgentConfigError, EncoderConfig
from goalrl.agents.crl import CRLAgent, CRLConfig, binary_nce_loss
from goalrl.checkpoint import load_checkpoint, save_checkpoint
from goalrl.data import keys as K
from goalrl.data.sampler import GoalBatchSampler, GoalMixture
from goalrl.data.storage import EpisodeDataset

STATE_ENCODER = dict(kind="state", state_dim=2, embed_dim=32, state_hidden=[64], fusion_dim=64)
SIZE, A = 16, 3


def state_cfg(cls: type = CRLConfig, **overrides: Any) -> Any:
    return cls(encoder=EncoderConfig(**STATE_ENCODER), head_hidden_dim=64, **overrides)


def pretrain_cli(kind: str, data: Path, out: Path, *overrides: str) -> dict[str, Any]:
    """``goalrl pretrain agent=<kind>`` on state frames in a subprocess, as a user runs it; its
    summary (the last stdout line)."""
    args = [
        f"data={data}",
        f"out={out}",
        f"agent={kind}",
        "agent.encoder.kind=state",
        "agent.encoder.embed_dim=16",
        "agent.encoder.state_hidden=[32]",
        "agent.head_hidden_dim=16",
        "steps=4",
        "batch_size=16",
        "eval_episodes=0",
        "videos=0",
        "save_every=2",
        *overrides,
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "goalrl.cli", "pretrain", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def points(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return point_task.write_point_dataset(tmp_path_factory.mktemp("points") / "data")


def image_batch(b: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Random images and actions with the keys of a goal-mixture batch."""
    rng = np.random.default_rng(seed)
    img = lambda: rng.integers(0, 256, (b, SIZE, SIZE, 3), dtype=np.uint8)  # noqa: E731
    frame = np.arange(b)
    return {
        K.OBS_IMAGE: img(),
        K.NEXT_OBS_IMAGE: img(),
        K.GOAL_IMAGE: img(),
        K.ACTOR_GOAL_IMAGE: img(),
        K.SUBGOAL_IMAGE: img(),
        K.ACTION: rng.uniform(-1, 1, (b, A)).astype(np.float32),
        K.FRAME_INDEX: frame,
        K.GOAL_INDEX: frame + (frame % 3),
        K.ACTOR_GOAL_INDEX: frame + 2,
        K.OBS_PROPRIO: rng.normal(size=(b, 4)).astype(np.float32),
        K.NEXT_OBS_PROPRIO: rng.normal(size=(b, 4)).astype(np.float32),
    }


def tiny_image_cfg(cls: type = CRLConfig, **overrides: Any) -> Any:
    encoder = EncoderConfig(
        conv_channels=[8, 16],
        embed_dim=16,
        fusion_dim=32,
        use_proprio=overrides.pop("use_proprio", False),
    )
    return cls(encoder=encoder, head_hidden_dim=16, pad=2, **overrides)


# --- the loss alone ---------------------------------------------------------------------------


def test_binary_nce_is_log_2_for_zero_logits_and_falls_as_the_diagonal_grows() -> None:
    b = 6
    assert torch.isclose(binary_nce_loss(torch.zeros(b, b)), torch.tensor(math.log(2.0)))
    # positives up and negatives down together drive it to 0
    losses = [binary_nce_loss(torch.eye(b) * 2 * d - d) for d in (0.0, 1.0, 3.0, 10.0)]
    assert all(x > y for x, y in zip(losses, losses[1:], strict=False))
    assert losses[-1] < 1e-3
    # a negative's logit growing makes it worse
    wrong = torch.zeros(b, b)
    wrong[0, 1] = 5.0
    assert binary_nce_loss(wrong) > binary_nce_loss(torch.zeros(b, b))


def test_binary_nce_matches_the_sigmoid_cross_entropy_of_each_entry() -> None:
    logits = torch.randn(5, 5, generator=torch.Generator().manual_seed(0))
    eye = torch.eye(5, dtype=torch.bool)
    expected = torch.where(eye, -F.logsigmoid(logits), -F.logsigmoid(-logits)).mean()
    assert torch.isclose(binary_nce_loss(logits), expected)


def test_binary_nce_is_calibrated_across_rows_unlike_a_softmax() -> None:
    """A constant added to one row changes the loss (a row's logits are not free up to a
    constant, as under InfoNCE), so logits compare across (s, a)."""
    logits = torch.randn(4, 4, generator=torch.Generator().manual_seed(1))
    shifted = logits.clone()
    shifted[0] += 3.0
    assert not torch.isclose(binary_nce_loss(logits), binary_nce_loss(shifted))


def test_binary_nce_gradient_raises_the_positives_and_lowers_the_negatives() -> None:
    logits = torch.zeros(4, 4, requires_grad=True)
    binary_nce_loss(logits).backward()
    grad = logits.grad
    assert (grad.diagonal() < 0).all()  # descent raises the diagonal
    assert (grad[~torch.eye(4, dtype=torch.bool)] > 0).all()


# --- the networks and losses of the agent -----------------------------------------------------


def test_critic_logits_are_phi_dot_psi_per_head() -> None:
    agent = CRLAgent(tiny_image_cfg(num_heads=3, rep_dim=8), (SIZE, SIZE, 3), A)
    batch = image_batch(5)
    obs, goal = (torch.as_tensor(batch[k]) for k in (K.OBS_IMAGE, K.GOAL_IMAGE))
    action = torch.as_tensor(batch[K.ACTION])
    logits = agent.critic(obs, action, goal)
    assert logits.shape == (3, 5, 5)
    h, psi = agent.critic.embed(obs, goal, None)
    phi = agent.critic.phi_of(h, action)  # (K, B, R)
    expected = phi[1, 2] @ psi[1, 4] / math.sqrt(8)
    assert torch.isclose(logits[1, 2, 4], expected, atol=1e-5)


def test_the_actor_loss_never_trains_the_critic() -> None:
    agent = CRLAgent(tiny_image_cfg(), (SIZE, SIZE, 3), A)
    batch = image_batch()
    f = agent.frames(batch, agent.frame_names)
    loss, info = agent.actor_loss(f, agent.batch_inputs(batch))
    loss.backward()
    assert all(p.grad is None for p in agent.critic.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.policy.parameters())
    assert {"actor/loss", "actor/q", "actor/nll"} <= set(info)


def test_an_update_reports_prefixed_diagnostics_and_moves_both_networks() -> None:
    agent = CRLAgent(tiny_image_cfg(use_proprio=True), (SIZE, SIZE, 3), A, proprio_dim=4)
    before = copy.deepcopy(agent.state_dict())
    batch = image_batch()
    stats = agent.update(batch)
    assert {"critic/loss", "critic/accuracy", "actor/loss", "grad_norm"} <= set(stats)
    assert all(k.startswith(("critic/", "actor/")) or k == "grad_norm" for k in stats)
    assert all(np.isfinite(v) for v in stats.values())
    for net in ("critic", "policy"):
        moved = [not torch.equal(v, before[net][k]) for k, v in agent.state_dict()[net].items()]
        assert any(moved), net
    action = agent.act(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE], batch[K.OBS_PROPRIO])
    assert action.shape == (8, A) and np.abs(action).max() <= 1
    assert agent.act(
        batch[K.OBS_IMAGE][0], batch[K.GOAL_IMAGE][0], batch[K.OBS_PROPRIO][0]
    ).shape == (A,)


def test_random_value_goals_are_refused() -> None:
    with pytest.raises(AgentConfigError, match=r"agent.value_goals.p_random=0.3"):
        CRLConfig(value_goals=GoalMixture())


def test_config_round_trips_through_a_checkpoints_dict() -> None:
    cfg = state_cfg(alpha=0.5, actor_goals=GoalMixture(0.0, 0.5, 0.5, "uniform"))
    assert CRLConfig.from_dict(asdict(cfg)) == cfg


# --- every field changes behaviour (as tests/agents/test_config.py for AM and GCBC) ---------------


def brief_run(cls: type, cfg: Any) -> dict[str, Any]:
    """Two updates on image batches (proprio included) and one action: what a field can change."""
    agent = cls(cfg, (SIZE, SIZE, 3), A, proprio_dim=4, seed=0)
    batches = [image_batch(8, seed=i) for i in range(2)]
    stats = [dict(agent.update(b)) for b in batches]
    probe = batches[0]
    act = agent.act(probe[K.OBS_IMAGE][:4], probe[K.GOAL_IMAGE][:4], probe[K.OBS_PROPRIO][:4])
    state = agent.state_dict()
    weights = {
        f"{net}.{name}": t
        for net, values in state.items()
        if net not in ("optimizer", "rng", "config") and isinstance(values, dict)
        for name, t in values.items()
    }
    return {"stats": stats, "act": np.asarray(act), "weights": weights}


def sampler_fields(cls: type, *extra: str) -> set[str]:
    """Fields only the sampler reads (goal mixtures and ``extra``): pretrain passes them on
    (goalrl/training/pretrain.py), the agent itself never does."""
    return {f for f in _leaf_fields(cls) if f.startswith(("value_goals.", "actor_goals."))} | {
        *extra
    }


CRL_CASES: list[tuple[str, Any, dict[str, Any]]] = [
    ("lr", 1e-2, {}),
    ("weight_decay", 0.5, {}),
    ("max_grad_norm", 1e-3, {}),
    ("alpha", 5.0, {}),
    ("ema_tau", 0.0, {}),
    ("augment", False, {}),
    ("pad", 1, {}),
    ("log_std_min", -2.0, {}),
    ("log_std_max", 0.5, {}),
    ("nll_beta", 0.0, {}),
    ("head_hidden_dim", 8, {}),
    ("rep_dim", 4, {}),
    ("num_heads", 3, {}),
    *[case for case in _encoder_cases() if case[0] != "encoder.stem_stride"],
    ("encoder.stem_stride", 4, {}),  # 16x16 images: the default stride is already 1
]


def test_every_crl_field_has_a_behaviour_case() -> None:
    covered = {name for name, _, _ in CRL_CASES} | sampler_fields(CRLConfig, "gamma")
    assert covered | STATE_ENCODER_FIELDS == _leaf_fields(CRLConfig)


@pytest.mark.parametrize(("name", "value", "base"), CRL_CASES, ids=[c[0] for c in CRL_CASES])
def test_changing_a_crl_field_changes_behaviour(name: str, value: Any, base: dict) -> None:
    cfg = tiny_image_cfg()
    for key, v in base.items():
        cfg = _set(cfg, key, v)
    changed = _set(cfg, name, value)
    assert changed != cfg, "the case must change the field"
    assert _differs(brief_run(CRLAgent, cfg), brief_run(CRLAgent, changed))


def test_the_same_crl_config_runs_identically() -> None:
    assert not _differs(
        brief_run(CRLAgent, tiny_image_cfg()), brief_run(CRLAgent, tiny_image_cfg())
    )


# --- learning, save/load, resume ---------------------------------------------------------------


def test_crl_reaches_point_goals_far_above_chance(points: Path, one_thread: None) -> None:
    """Seeds 0, 1, 2: 77%, 83%, 95% of 64 goals after 400 updates of batch 256 at lr 1e-3
    (random actions: 11%)."""
    agent = CRLAgent(state_cfg(lr=1e-3), point_task.IMAGE_SHAPE, 2, seed=0)
    rate = point_task.success_rate(point_task.train_on_points(agent, points, 400).act)
    chance = point_task.success_rate(point_task.random_policy())
    assert chance < 0.25
    assert rate > 0.6, f"CRL reached {rate:.0%} of goals (random actions {chance:.0%})"


def dots_dataset(root: Path) -> EpisodeDataset:
    """test_learning's dot task (a dot on a 7x7 grid in 16x16 images, random-walk episodes)
    written as a goalrl dataset, so the real sampler draws goal mixtures and subgoals from it."""
    import agent_dots as dots

    from goalrl.data.storage import DatasetWriter, EpisodeData

    states, actions = dots.collect(1000, 16, np.random.default_rng(0))
    with DatasetWriter(root, image_shape=(16, 16, 3), action_dim=2, durable=False) as writer:
        for episode_states, episode_actions in zip(states, actions, strict=True):
            writer.append(EpisodeData(images=dots.render(episode_states), actions=episode_actions))
    return EpisodeDataset(root)


def image_learning_rate(agent: Any, data: EpisodeDataset, steps: int) -> tuple[float, float]:
    """``steps`` updates of batch 128 on the dot images; the fraction of random (state, goal)
    pairs whose greedy action shortens the distance, and the same for random actions."""
    import agent_dots as dots

    cfg = agent.cfg
    sampler = GoalBatchSampler(
        data,
        128,
        gamma=cfg.gamma,
        value_goals=cfg.value_goals,
        actor_goals=cfg.actor_goals,
        subgoal_steps=getattr(cfg, "subgoal_steps", 0),
        seed=0,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(steps):
            agent.update(sampler.sample())
    finally:
        torch.set_num_threads(threads)
    s, g = dots.eval_pairs(np.random.default_rng(1000), 400)
    rate = dots.improvement_rate(s, g, agent.act(dots.render(s), dots.render(g)))
    chance = dots.improvement_rate(s, g, np.random.default_rng(0).uniform(-1, 1, s.shape))
    return rate, chance


DOTS_ENCODER = EncoderConfig(conv_channels=[16, 32], embed_dim=64, fusion_dim=128)


@pytest.mark.slow
def test_crl_learns_the_dot_task_from_images(tmp_path: Path) -> None:
    """Images end to end (random shift, Siamese frame encoder). Seed 0: 97% of pairs improved
    after 500 updates (random actions: 46%)."""
    cfg = CRLConfig(encoder=DOTS_ENCODER, pad=1, lr=1e-3, head_hidden_dim=64)
    agent = CRLAgent(cfg, (16, 16, 3), 2, seed=0)
    rate, chance = image_learning_rate(agent, dots_dataset(tmp_path / "dots"), 500)
    assert chance < 0.55
    assert rate > 0.75, f"CRL improves the distance from {rate:.0%} of states"


def test_checkpoint_round_trip_acts_the_same(points: Path, tmp_path: Path) -> None:
    agent = CRLAgent(state_cfg(), point_task.IMAGE_SHAPE, 2, seed=0)
    sampler = point_task.point_sampler(agent.cfg, EpisodeDataset(points), 32)
    for _ in range(3):
        agent.update(sampler.sample())
    path = save_checkpoint(tmp_path, 3, {"agent": agent.state_dict()}, {"agent": "crl"})
    state, _ = load_checkpoint(path)
    loaded = CRLAgent(state_cfg(), point_task.IMAGE_SHAPE, 2, seed=5)
    loaded.load_state_dict(state["agent"])
    s = np.random.default_rng(0).uniform(-1, 1, (6, 2)).astype(np.float32)
    np.testing.assert_array_equal(agent.act(s, np.roll(s, 1, 0)), loaded.act(s, np.roll(s, 1, 0)))
    assert loaded.step == 3


def test_resume_continues_exactly(points: Path) -> None:
    agent = CRLAgent(state_cfg(), point_task.IMAGE_SHAPE, 2, seed=1)
    sampler = point_task.point_sampler(agent.cfg, EpisodeDataset(points), 32)
    batches = [sampler.sample() for _ in range(4)]
    for b in batches[:2]:
        agent.update(b)
    state = copy.deepcopy(agent.state_dict())
    stats = [dict(agent.update(b)) for b in batches[2:]]
    resumed = CRLAgent(state_cfg(), point_task.IMAGE_SHAPE, 2, seed=9)
    resumed.load_state_dict(state)
    assert [dict(resumed.update(b)) for b in batches[2:]] == stats
    for name, value in agent.state_dict()["policy"].items():
        assert torch.equal(value, resumed.state_dict()["policy"][name]), name


def test_pretrain_cli_trains_resumes_and_loads_crl(tmp_path: Path) -> None:
    from goalrl.agents.registry import load_agent

    data = point_task.write_point_dataset(tmp_path / "data", episodes=6, length=12)
    assert pretrain_cli("crl", data, tmp_path / "run")["agent"] == "crl"
    summary = pretrain_cli("crl", data, tmp_path / "run", "steps=6", "resume=true")
    assert summary["steps"] == 6
    agent, meta = load_agent(tmp_path / "run")
    assert isinstance(agent, CRLAgent) and agent.step == 6 and meta["agent"] == "crl"
    assert agent.act(np.zeros(2, np.float32), np.ones(2, np.float32)).shape == (2,)


def test_every_crl_field_has_a_comment() -> None:
    """--help shows each field's comment (the fields this config adds or re-defaults)."""
    test_config.test_every_field_has_a_comment(CRLConfig)
