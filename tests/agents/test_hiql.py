"""HIQL (goalrl.agents.hiql): the AWR loss alone, the value's goal representation shared by both
levels, acting through the subgoal, learning the point task, save/load and exact resume."""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import point_task
import pytest
import test_config
import torch
from test_config import STATE_ENCODER_FIELDS, _differs, _leaf_fields, _set
from test_crl import (
    CRL_CASES,
    DOTS_ENCODER,
    SIZE,
    A,
    brief_run,
    dots_dataset,
    image_batch,
    image_learning_rate,
    pretrain_cli,
    sampler_fields,
    state_cfg,
    tiny_image_cfg,
)

from goalrl.agents.config import AgentConfigError
from goalrl.agents.hiql import HIQLAgent, HIQLConfig, awr_gaussian_loss
from goalrl.checkpoint import load_checkpoint, save_checkpoint
from goalrl.data import keys as K
from goalrl.data.storage import EpisodeDataset


@pytest.fixture(scope="module")
def points(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return point_task.write_point_dataset(tmp_path_factory.mktemp("points") / "data")


def image_agent(**overrides) -> HIQLAgent:
    return HIQLAgent(tiny_image_cfg(HIQLConfig, **overrides), (SIZE, SIZE, 3), A, seed=0)


# --- the loss alone ---------------------------------------------------------------------------


def test_awr_pulls_the_mean_toward_the_high_advantage_target() -> None:
    """Two rows, same input, targets -1 and +1: the higher advantage wins the mean's gradient."""
    mean = torch.zeros(2, 1, requires_grad=True)
    log_std = torch.zeros(2, 1)
    target = torch.tensor([[-1.0], [1.0]])
    adv = torch.tensor([0.0, 1.0])
    loss, info = awr_gaussian_loss(
        mean, log_std, target, adv, 3.0, max_weight=100.0, beta=0.0, prefix="x"
    )
    loss.backward()
    shared = mean.grad.sum()  # the gradient a mean shared by both rows would get
    assert shared < 0  # descent moves the shared mean toward +1, the high-advantage target
    assert torch.isclose(info["x/weight"], (1 + torch.exp(torch.tensor(3.0))) / 2)
    assert set(info) == {"x/loss", "x/adv", "x/weight", "x/mse", "x/std"}


def test_awr_with_equal_advantages_is_plain_likelihood() -> None:
    mean, log_std = torch.randn(4, 2), torch.zeros(4, 2)
    target = torch.randn(4, 2)
    same, _ = awr_gaussian_loss(
        mean, log_std, target, torch.full((4,), 0.0), 1.0, max_weight=100.0, beta=0.0, prefix="x"
    )
    nll = (0.5 * (target - mean) ** 2).sum(-1).mean() + np.log(2 * np.pi)
    assert torch.isclose(same, nll)


# --- the agent --------------------------------------------------------------------------------


def test_the_subgoal_representation_is_the_values_goal_embedding() -> None:
    agent = image_agent(augment=False)
    f = agent.frames(image_batch(), agent.frame_names)
    a = agent.advantages(f)
    with torch.no_grad():
        z = agent.value.encode_goal(f["subgoal"])
    assert torch.allclose(a["subgoal_rep"], z)
    assert a["low_adv"].shape == a["high_adv"].shape == (8,)


def test_only_the_value_loss_trains_the_value() -> None:
    """Both levels read the representation and the advantages detached: the value's gradients
    from the whole loss are those of its own loss."""
    agent = image_agent(augment=False)
    batch = image_batch()
    f, x = agent.frames(batch, agent.frame_names), agent.batch_inputs(batch)
    total, info = agent.losses(f, x)
    grads = torch.autograd.grad(total, list(agent.value.parameters()), allow_unused=True)
    value_loss, _ = agent.value_loss(f, x)
    own = torch.autograd.grad(value_loss, list(agent.value.parameters()), allow_unused=True)
    for g, h in zip(grads, own, strict=True):
        assert (g is None and h is None) or torch.allclose(g, h)
    assert {"value/loss", "actor_low/loss", "actor_high/loss", "actor_high/adv"} <= set(info)


def test_an_update_moves_value_and_both_levels() -> None:
    agent = image_agent()
    before = copy.deepcopy(agent.state_dict())
    stats = agent.update(image_batch())
    assert all(np.isfinite(v) for v in stats.values())
    for net in ("value", "policy", "high_policy", "high_policy_ema"):
        moved = [not torch.equal(v, before[net][k]) for k, v in agent.state_dict()[net].items()]
        assert any(moved), net


def test_act_is_the_low_level_toward_the_high_levels_subgoal() -> None:
    agent = image_agent(ema_tau=0.0)
    head = agent.high_policy.out
    with torch.no_grad():  # the high level proposes w = (0.5, ..., 0.5) everywhere
        head.weight.zero_()
        head.bias.zero_()
        head.bias[: head.out_features // 2] = float(np.arctanh(0.5))
    batch = image_batch(4)
    action = agent.act(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE])
    obs = torch.as_tensor(batch[K.OBS_IMAGE])
    rep = torch.full((4, agent.cfg.encoder.embed_dim), 0.5)
    with torch.no_grad():
        low = agent.policy  # the low level: its own obs embedding fused with w
        expected, _ = low.dist_params(low.fuse(low.encode_obs(obs), rep))
    np.testing.assert_allclose(action, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert agent.act(batch[K.OBS_IMAGE][0], batch[K.GOAL_IMAGE][0]).shape == (A,)


def test_bad_settings_are_refused_naming_the_field() -> None:
    with pytest.raises(AgentConfigError, match="agent.subgoal_steps=0"):
        HIQLConfig(subgoal_steps=0)
    with pytest.raises(AgentConfigError, match="agent.encoder.use_proprio=true"):
        HIQLAgent(tiny_image_cfg(HIQLConfig, use_proprio=True), (SIZE, SIZE, 3), A, proprio_dim=4)


def test_config_round_trips_through_a_checkpoints_dict() -> None:
    cfg = state_cfg(HIQLConfig, subgoal_steps=7, high_alpha=1.5)
    assert HIQLConfig.from_dict(asdict(cfg)) == cfg


# --- every field changes behaviour -------------------------------------------------------------

HIQL_CASES: list[tuple[str, Any, dict[str, Any]]] = [
    *[
        case
        for case in CRL_CASES
        if case[0]
        not in ("rep_dim", "num_heads", "encoder.use_proprio", "encoder.proprio_embed_dim")
    ],
    ("gamma", 0.5, {}),
    ("expectile", 0.5, {}),
    ("max_weight", 0.5, {}),  # below the untrained exp(alpha * A) of about 1
    ("tau", 0.5, {}),
    ("high_alpha", 0.5, {}),
]
# HIQL refuses proprio (test_bad_settings_are_refused_naming_the_field), so these two have no
# behaviour to change
NO_PROPRIO = {"encoder.use_proprio", "encoder.proprio_embed_dim"}


def test_every_hiql_field_has_a_behaviour_case() -> None:
    covered = {name for name, _, _ in HIQL_CASES} | sampler_fields(HIQLConfig, "subgoal_steps")
    assert covered | STATE_ENCODER_FIELDS | NO_PROPRIO == _leaf_fields(HIQLConfig)


@pytest.mark.parametrize(("name", "value", "base"), HIQL_CASES, ids=[c[0] for c in HIQL_CASES])
def test_changing_a_hiql_field_changes_behaviour(name: str, value: Any, base: dict) -> None:
    cfg = tiny_image_cfg(HIQLConfig)
    for key, v in base.items():
        cfg = _set(cfg, key, v)
    changed = _set(cfg, name, value)
    assert changed != cfg, "the case must change the field"
    assert _differs(brief_run(HIQLAgent, cfg), brief_run(HIQLAgent, changed))


# --- learning, save/load, resume ---------------------------------------------------------------


def test_hiql_reaches_point_goals_far_above_chance(points: Path, one_thread: None) -> None:
    """Seeds 0 and 1: 98% and 100% of 64 goals after 400 updates of batch 256 at lr 1e-3
    (random actions: 11%)."""
    agent = HIQLAgent(state_cfg(HIQLConfig, lr=1e-3, subgoal_steps=5), point_task.IMAGE_SHAPE, 2)
    rate = point_task.success_rate(point_task.train_on_points(agent, points, 400).act)
    chance = point_task.success_rate(point_task.random_policy())
    assert rate > 0.6, f"HIQL reached {rate:.0%} of goals (random actions {chance:.0%})"


@pytest.mark.slow
def test_hiql_learns_the_dot_task_from_images(tmp_path: Path) -> None:
    """Images end to end (random shift shared by the five frames of a sample). Seed 0: 83% of
    pairs improved after 500 updates with subgoals 3 steps ahead (random actions: 46%)."""
    cfg = HIQLConfig(encoder=DOTS_ENCODER, pad=1, lr=1e-3, head_hidden_dim=64, subgoal_steps=3)
    agent = HIQLAgent(cfg, (16, 16, 3), 2, seed=0)
    rate, chance = image_learning_rate(agent, dots_dataset(tmp_path / "dots"), 500)
    assert chance < 0.55
    assert rate > 0.7, f"HIQL improves the distance from {rate:.0%} of states"


def test_checkpoint_round_trip_acts_the_same(points: Path, tmp_path: Path) -> None:
    agent = HIQLAgent(state_cfg(HIQLConfig), point_task.IMAGE_SHAPE, 2, seed=0)
    sampler = point_task.point_sampler(agent.cfg, EpisodeDataset(points), 32)
    for _ in range(3):
        agent.update(sampler.sample())
    path = save_checkpoint(tmp_path, 3, {"agent": agent.state_dict()}, {"agent": "hiql"})
    state, _ = load_checkpoint(path)
    loaded = HIQLAgent(state_cfg(HIQLConfig), point_task.IMAGE_SHAPE, 2, seed=5)
    loaded.load_state_dict(state["agent"])
    s = np.random.default_rng(0).uniform(-1, 1, (6, 2)).astype(np.float32)
    np.testing.assert_array_equal(agent.act(s, np.roll(s, 1, 0)), loaded.act(s, np.roll(s, 1, 0)))


def test_resume_continues_exactly(points: Path) -> None:
    agent = HIQLAgent(state_cfg(HIQLConfig), point_task.IMAGE_SHAPE, 2, seed=1)
    sampler = point_task.point_sampler(agent.cfg, EpisodeDataset(points), 32)
    batches = [sampler.sample() for _ in range(4)]
    for b in batches[:2]:
        agent.update(b)
    state = copy.deepcopy(agent.state_dict())
    stats = [dict(agent.update(b)) for b in batches[2:]]
    resumed = HIQLAgent(state_cfg(HIQLConfig), point_task.IMAGE_SHAPE, 2, seed=9)
    resumed.load_state_dict(state)
    assert [dict(resumed.update(b)) for b in batches[2:]] == stats
    for net in ("high_policy", "high_policy_ema", "value"):
        for name, value in agent.state_dict()[net].items():
            assert torch.equal(value, resumed.state_dict()[net][name]), (net, name)


def test_pretrain_cli_trains_and_loads_hiql(tmp_path: Path) -> None:
    """agent=hiql builds HIQL (not GCIVL, whose config HIQL's extends), its sampler gives it
    subgoals, and the checkpoint loads back as HIQL."""
    from goalrl.agents.registry import load_agent

    data = point_task.write_point_dataset(tmp_path / "data", episodes=6, length=12)
    summary = pretrain_cli("hiql", data, tmp_path / "run", "agent.subgoal_steps=3")
    assert summary["agent"] == "hiql" and summary["steps"] == 4
    agent, _ = load_agent(tmp_path / "run")
    assert isinstance(agent, HIQLAgent) and agent.cfg.subgoal_steps == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", ["crl", "hiql", "am_actor"])
@pytest.mark.parametrize("amp", [False, True])
def test_cuda_update_and_act(kind: str, amp: bool) -> None:
    """CRL, HIQL and AM's actor update and act on CUDA, under bfloat16 autocast too."""
    from test_am import make_batch
    from test_am import tiny_cfg as am_cfg

    from goalrl.agents.am import AMAgent
    from goalrl.agents.crl import CRLAgent, CRLConfig

    if kind == "am_actor":
        agent = AMAgent(
            am_cfg(actor=True, act_rule="actor"), (16, 16, 3), 3, device="cuda", amp=amp
        )
        batch = make_batch(8)
    else:
        cls, cfg_cls = (CRLAgent, CRLConfig) if kind == "crl" else (HIQLAgent, HIQLConfig)
        agent = cls(tiny_image_cfg(cfg_cls), (SIZE, SIZE, 3), A, device="cuda", amp=amp)
        batch = image_batch()
    for _ in range(2):
        stats = agent.update(batch)
    assert all(np.isfinite(v) for v in stats.values())
    action = agent.act(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE])
    assert action.shape[0] == 8 and np.isfinite(action).all()


def test_every_hiql_field_has_a_comment() -> None:
    """--help shows each field's comment (the fields this config adds or re-defaults)."""
    test_config.test_every_field_has_a_comment(HIQLConfig)
