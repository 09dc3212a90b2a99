"""QRL (goalrl.agents.qrl): the IQE quasimetric and QRL's losses alone on tiny tensors, then the
agent: diagnostics, an actor that trains nothing else, its dual variable, every field, learning
the point task, save/load, exact resume, the CLI and the preset."""

from __future__ import annotations

import copy
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import point_task
import pytest
import test_config
import torch
from omegaconf import OmegaConf
from test_config import STATE_ENCODER_FIELDS, _differs, _encoder_cases, _leaf_fields, _set
from test_crl import (
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
from goalrl.agents.qrl import (
    DualVariable,
    QRLAgent,
    QRLConfig,
    constrained_value_loss,
    iqe_components,
    iqe_distance,
    latent_dynamics_loss,
    push_loss,
    step_violation,
)
from goalrl.checkpoint import load_checkpoint, save_checkpoint
from goalrl.cli import CONFIG_DIR
from goalrl.data import keys as K
from goalrl.data.storage import EpisodeDataset


@pytest.fixture(scope="module")
def points(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return point_task.write_point_dataset(tmp_path_factory.mktemp("points") / "data")


def qrl_state_cfg(**overrides: Any) -> QRLConfig:
    return state_cfg(QRLConfig, latent_dim=overrides.pop("latent_dim", 64), **overrides)


def qrl_image_cfg(**overrides: Any) -> QRLConfig:
    return tiny_image_cfg(QRLConfig, latent_dim=overrides.pop("latent_dim", 16), **overrides)


# --- the quasimetric alone --------------------------------------------------------------------


def union_length(lo: list[float], hi: list[float]) -> float:
    """Length of the union of intervals [lo_i, hi_i] (empty where hi <= lo), by a plain sweep."""
    spans = sorted((a, b) for a, b in zip(lo, hi, strict=True) if b > a)
    total, reach = 0.0, -np.inf
    for a, b in spans:
        total += max(0.0, b - max(a, reach))
        reach = max(reach, b)
    return total


def test_iqe_component_is_the_length_of_a_union_of_intervals() -> None:
    def comp(x: list[float], y: list[float]) -> float:
        return float(iqe_components(torch.tensor(x), torch.tensor(y), len(x)))

    assert comp([0.0, 1.0], [2.0, 3.0]) == 3.0  # [0, 2] and [1, 3] overlap: [0, 3]
    assert comp([0.0, 2.0], [1.0, 3.0]) == 2.0  # [0, 1] and [2, 3] apart
    assert comp([0.0, 1.0], [5.0, 2.0]) == 5.0  # [1, 2] inside [0, 5]
    assert comp([1.0, 1.0], [0.0, 0.0]) == 0.0  # y below x: empty intervals
    rng = np.random.default_rng(0)
    for _ in range(50):
        x, y = rng.normal(size=(2, 3, 5))  # 3 components of 5 coordinates
        got = iqe_components(torch.tensor(x.ravel()), torch.tensor(y.ravel()), 5)
        want = [union_length(list(a), list(np.maximum(a, b))) for a, b in zip(x, y, strict=True)]
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mean_weight", [0.0, 0.5, 1.0])
def test_iqe_is_a_quasimetric_on_random_points(mean_weight: float) -> None:
    gen = torch.Generator().manual_seed(0)
    x, y, z = torch.randn(3, 2000, 16, generator=gen)

    def d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return iqe_distance(a, b, 4, mean_weight)

    assert torch.equal(d(x, x), torch.zeros(2000))  # identity
    assert (d(x, y) >= 0).all()
    assert (d(x, z) <= d(x, y) + d(y, z) + 1e-5).all()  # triangle inequality
    assert not torch.allclose(d(x, y), d(y, x))  # asymmetric in general
    one, two = torch.tensor([[0.0]]), torch.tensor([[1.0]])
    assert iqe_distance(one, two, 1, mean_weight) == 1.0  # up one unit costs 1 ...
    assert iqe_distance(two, one, 1, mean_weight) == 0.0  # ... and down nothing


def test_iqe_mixes_the_mean_and_the_max_of_its_components() -> None:
    x, y = torch.zeros(4), torch.tensor([1.0, 0.0, 3.0, 0.0])  # components 1 and 3
    assert iqe_distance(x, y, 2, 0.0) == 3.0
    assert iqe_distance(x, y, 2, 1.0) == 2.0
    assert iqe_distance(x, y, 2, 0.25) == 0.25 * 2.0 + 0.75 * 3.0


def test_iqe_gradient_is_the_derivative_of_the_union_length() -> None:
    """Its coefficients are found without gradient; away from ties they are the true slopes."""
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(2, 6, 12, generator=gen, dtype=torch.float64)
    x.requires_grad_(True)
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b: iqe_components(a, b, 4), (x, y), eps=1e-6, atol=1e-4
    )


def test_iqe_gradients_are_finite_at_ties_and_move_the_ends() -> None:
    x = torch.tensor([0.0, 0.0, 1.0, 1.0], requires_grad=True)
    y = torch.tensor([0.0, 2.0, 1.0, 0.5], requires_grad=True)
    iqe_distance(x, y, 4, 0.5).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()
    assert y.grad[1] > 0 and x.grad[0] < 0  # the covering interval [0, 2] grows with its ends


# --- QRL's losses alone -----------------------------------------------------------------------


def test_push_loss_pushes_distances_up_and_less_past_the_offset() -> None:
    d = torch.tensor([0.0, 5.0, 10.0, 20.0, 40.0], requires_grad=True)
    per_pair = [push_loss(v[None], offset=10.0, scale=2.0) for v in d]
    assert all(a > b for a, b in zip(per_pair, per_pair[1:], strict=False))  # decreasing in d
    push_loss(d, offset=10.0, scale=2.0).backward()
    assert (d.grad < 0).all()  # descent raises every distance
    assert d.grad[0] < d.grad[3] < d.grad[4] < 0  # less and less past the offset
    assert torch.isclose(push_loss(torch.tensor([0.0]), 0.0, 1.0), torch.log(torch.tensor(2.0)))


def test_the_constraint_term_shortens_only_transitions_longer_than_one_step() -> None:
    d = torch.tensor([0.5, 1.0, 1.5, 3.0], requires_grad=True)
    violation = step_violation(d)
    assert torch.isclose(violation, torch.tensor((0.25 + 4.0) / 4))
    lam = torch.tensor(2.0, requires_grad=True)
    value, _ = constrained_value_loss(torch.tensor(0.0), violation, lam, epsilon=0.1)
    value.backward()
    assert d.grad[0] == 0 and d.grad[1] == 0  # within one step: untouched
    assert d.grad[2] > 0 and d.grad[3] > d.grad[2]  # descent shortens the long ones, more so
    assert lam.grad is None  # lambda is a constant in the value loss
    assert step_violation(torch.tensor([0.2, 0.9])) == 0


@pytest.mark.parametrize(("violation", "rises"), [(0.5, True), (0.01, False)])
def test_the_dual_variable_rises_while_the_constraint_is_violated(
    violation: float, rises: bool
) -> None:
    dual = DualVariable(1.0)
    opt = torch.optim.SGD(dual.parameters(), lr=0.1)
    v = torch.tensor(violation, requires_grad=True)
    value, dual_loss = constrained_value_loss(torch.tensor(0.0), v, dual(), epsilon=0.05)
    torch.testing.assert_close(dual_loss, torch.tensor(0.05 - violation))  # lambda = 1
    dual_loss.backward()
    assert v.grad is None  # the dual loss never moves the value
    opt.step()
    assert (float(dual().detach()) > 1.0) is rises


def test_latent_dynamics_loss_is_the_mean_of_both_directions() -> None:
    assert latent_dynamics_loss(torch.zeros(3), torch.zeros(3)) == 0
    loss = latent_dynamics_loss(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 2.0]))
    assert loss == 1.5


# --- the agent --------------------------------------------------------------------------------


@pytest.mark.parametrize("obs", ["image", "state"])
@pytest.mark.parametrize("actor_loss", ["ddpgbc", "awr"])
def test_update_reports_prefixed_finite_diagnostics_and_acts(obs: str, actor_loss: str) -> None:
    cfg = qrl_image_cfg(actor_loss=actor_loss)
    if obs == "state":
        cfg = replace(cfg, encoder=point_task.tiny_encoder("state"))
    agent = QRLAgent(cfg, (SIZE, SIZE, 3), point_task.A, seed=0)
    batch = point_task.frames_batch(obs)
    stats = dict(agent.update(batch))
    prefixes = {"value", "actor"} | ({"dynamics"} if actor_loss == "ddpgbc" else set())
    assert {k.split("/")[0] for k in stats if "/" in k} == prefixes
    assert all(np.isfinite(v) for v in stats.values()), stats
    assert ("dynamics" in agent.state_dict()) is (actor_loss == "ddpgbc")
    o, g = ((batch[K.OBS_STATE], batch[K.GOAL_STATE]) if obs == "state"
            else (batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE]))
    actions = agent.act(o, g)
    assert actions.shape == (8, point_task.A) and np.abs(actions).max() <= 1
    assert agent.act(o[0], g[0]).shape == (point_task.A,)


def test_the_value_is_zero_from_a_frame_to_itself_and_never_negative() -> None:
    agent = QRLAgent(qrl_image_cfg(), (SIZE, SIZE, 3), A)
    batch = image_batch()
    obs, goal = (torch.as_tensor(batch[k]) for k in (K.OBS_IMAGE, K.GOAL_IMAGE))
    with torch.no_grad():
        assert torch.equal(agent.value(obs, obs), torch.zeros(8))
        assert (agent.value(obs, goal) >= 0).all()


def test_the_actor_loss_trains_only_the_actor() -> None:
    agent = QRLAgent(qrl_image_cfg(), (SIZE, SIZE, 3), A)
    batch = image_batch()
    f, x = agent.frames(batch, agent.frame_names), agent.batch_inputs(batch)
    names = ("obs", "next_obs", "goal", "actor_goal")
    z = dict(zip(names, agent.value.embed(torch.cat([f[n] for n in names])).chunk(4),
                 strict=True))
    loss, info = agent.actor_loss(f, z, x)
    loss.backward()
    for net in (agent.value, agent.dynamics, agent.dual):
        assert all(p.grad is None for p in net.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.policy.parameters())
    assert {"actor/loss", "actor/q", "actor/nll"} <= set(info)
    assert info["actor/q"] <= 0  # Q = -d


@pytest.mark.parametrize(("epsilon", "rises"), [(1e-6, True), (1e3, False)])
def test_the_agents_lambda_follows_its_constraint(points: Path, epsilon: float,
                                                  rises: bool) -> None:
    """The push term stretches transitions past one step early on (violation > 1e-6), while a
    bound of 1000 is never reached."""
    agent = QRLAgent(qrl_state_cfg(epsilon=epsilon, lr=1e-2), point_task.IMAGE_SHAPE, 2)
    sampler = point_task.point_sampler(agent.cfg, EpisodeDataset(points), 64)
    for _ in range(20):
        stats = agent.update(sampler.sample())
    assert (stats["value/lambda"] > 1.0) is rises, dict(stats)


def test_bad_settings_are_refused_by_name() -> None:
    with pytest.raises(AgentConfigError, match=r"agent.actor_loss='sac'"):
        QRLConfig(actor_loss="sac")
    with pytest.raises(AgentConfigError, match=r"agent.latent_dim=20 .* agent.iqe_dim=8"):
        QRLConfig(latent_dim=20)
    with pytest.raises(AgentConfigError, match=r"agent.epsilon=0"):
        QRLConfig(epsilon=0)
    with pytest.raises(AgentConfigError, match=r"agent.iqe_dim=0"):
        QRLConfig(iqe_dim=0)
    with pytest.raises(AgentConfigError, match=r"agent.encoder.use_proprio=true"):
        QRLAgent(qrl_image_cfg(use_proprio=True), (SIZE, SIZE, 3), A, proprio_dim=4)


def test_config_round_trips_through_a_checkpoints_dict() -> None:
    cfg = qrl_state_cfg(alpha=0.3, actor_loss="awr", push_offset=15.0)
    assert QRLConfig.from_dict(asdict(cfg)) == cfg


# --- every field changes behaviour ------------------------------------------------------------

QRL_CASES: list[tuple[str, Any, dict[str, Any]]] = [
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
    ("actor_loss", "awr", {}),
    ("max_weight", 0.5, {"actor_loss": "awr"}),
    ("latent_dim", 8, {}),
    ("iqe_dim", 4, {}),
    ("push_offset", 1.0, {}),
    ("push_scale", 1.0, {}),
    ("epsilon", 10.0, {}),
    ("lambda_init", 5.0, {}),
    # proprio is refused (test_bad_settings_are_refused_by_name), so its widths change nothing
    *[case for case in _encoder_cases() if case[0] not in (
        "encoder.stem_stride", "encoder.use_proprio", "encoder.proprio_embed_dim")],
    ("encoder.stem_stride", 4, {}),  # 16x16 images: the default stride is already 1
]


def test_every_qrl_field_has_a_behaviour_case() -> None:
    covered = {name for name, _, _ in QRL_CASES} | sampler_fields(QRLConfig, "gamma")
    refused = {"encoder.use_proprio", "encoder.proprio_embed_dim"}
    assert covered | refused | STATE_ENCODER_FIELDS == _leaf_fields(QRLConfig)


@pytest.mark.parametrize(("name", "value", "base"), QRL_CASES, ids=[c[0] for c in QRL_CASES])
def test_changing_a_qrl_field_changes_behaviour(name: str, value: Any, base: dict) -> None:
    cfg = qrl_image_cfg()
    for key, v in base.items():
        cfg = _set(cfg, key, v)
    changed = _set(cfg, name, value)
    assert changed != cfg, "the case must change the field"
    assert _differs(brief_run(QRLAgent, cfg), brief_run(QRLAgent, changed))


def test_the_same_qrl_config_runs_identically() -> None:
    assert not _differs(brief_run(QRLAgent, qrl_image_cfg()), brief_run(QRLAgent, qrl_image_cfg()))


def test_every_qrl_field_has_a_comment() -> None:
    """--help shows each field's comment (the fields this config adds or re-defaults)."""
    test_config.test_every_field_has_a_comment(QRLConfig)


# --- learning, save/load, resume, the CLI -----------------------------------------------------


@pytest.mark.parametrize(("actor_loss", "alpha"), [("ddpgbc", 0.003), ("awr", 3.0)])
def test_qrl_reaches_point_goals_far_above_chance(
    points: Path, one_thread: None, actor_loss: str, alpha: float
) -> None:
    """Seeds 0, 1, 2 with DDPG+BC: 64 of 64 goals after 300 updates of batch 256 at lr 1e-3;
    AWR seed 0: 64 of 64 after 400 (random actions: 11%)."""
    cfg = qrl_state_cfg(lr=1e-3, actor_loss=actor_loss, alpha=alpha)
    agent = QRLAgent(cfg, point_task.IMAGE_SHAPE, 2, seed=0)
    steps = 300 if actor_loss == "ddpgbc" else 400
    rate = point_task.success_rate(point_task.train_on_points(agent, points, steps).act)
    chance = point_task.success_rate(point_task.random_policy())
    assert chance < 0.25
    assert rate > 0.6, f"QRL ({actor_loss}) reached {rate:.0%} of goals (random {chance:.0%})"


@pytest.mark.slow
def test_qrl_learns_the_dot_task_from_images(tmp_path: Path) -> None:
    """Images end to end (random shift, the conv frame encoder under phi). Seed 0: 100% of pairs
    improved after 500 updates of batch 128 (random actions: 46%)."""
    cfg = QRLConfig(encoder=DOTS_ENCODER, pad=1, lr=1e-3, head_hidden_dim=64, latent_dim=64)
    agent = QRLAgent(cfg, (16, 16, 3), 2, seed=0)
    rate, chance = image_learning_rate(agent, dots_dataset(tmp_path / "dots"), 500)
    assert chance < 0.55
    assert rate > 0.75, f"QRL improves the distance from {rate:.0%} of states"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp", [False, True])
@pytest.mark.parametrize("actor_loss", ["ddpgbc", "awr"])
def test_cuda_update_and_act(amp: bool, actor_loss: str) -> None:
    """QRL updates and acts on CUDA, under bfloat16 autocast too (distances in float32)."""
    agent = QRLAgent(qrl_image_cfg(actor_loss=actor_loss), (SIZE, SIZE, 3), A, device="cuda",
                     amp=amp)
    batch = image_batch()
    for _ in range(2):
        stats = agent.update(batch)
    assert all(np.isfinite(v) for v in stats.values())
    action = agent.act(batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE])
    assert action.shape == (8, A) and np.isfinite(action).all()


def test_checkpoint_round_trip_acts_the_same(points: Path, tmp_path: Path) -> None:
    agent = QRLAgent(qrl_state_cfg(), point_task.IMAGE_SHAPE, 2, seed=0)
    sampler = point_task.point_sampler(agent.cfg, EpisodeDataset(points), 32)
    for _ in range(3):
        agent.update(sampler.sample())
    path = save_checkpoint(tmp_path, 3, {"agent": agent.state_dict()}, {"agent": "qrl"})
    state, _ = load_checkpoint(path)
    loaded = QRLAgent(qrl_state_cfg(), point_task.IMAGE_SHAPE, 2, seed=5)
    loaded.load_state_dict(state["agent"])
    s = np.random.default_rng(0).uniform(-1, 1, (6, 2)).astype(np.float32)
    np.testing.assert_array_equal(agent.act(s, np.roll(s, 1, 0)), loaded.act(s, np.roll(s, 1, 0)))
    assert loaded.step == 3 and torch.equal(loaded.dual(), agent.dual())


def test_resume_is_bit_exact() -> None:
    """Image batches, so the random shifts must continue from the saved generator too."""
    batches = [image_batch(8, seed=i) for i in range(4)]

    def agent(seed: int) -> QRLAgent:
        return QRLAgent(qrl_image_cfg(), (SIZE, SIZE, 3), A, seed=seed)

    full = agent(0)
    for b in batches:
        full.update(b)
    first = agent(0)
    for b in batches[:2]:
        first.update(b)
    resumed = agent(9)
    resumed.load_state_dict(copy.deepcopy(first.state_dict()))
    for b in batches[2:]:
        resumed.update(b)
    want, got = full.state_dict(), resumed.state_dict()
    for name in [*full.nets, "policy", "policy_ema"]:
        for key, value in want[name].items():
            torch.testing.assert_close(value, got[name][key], rtol=0, atol=0, msg=f"{name}.{key}")
    assert got["step"] == 4 and torch.equal(want["rng"], got["rng"])


def test_pretrain_cli_trains_resumes_and_loads_qrl(tmp_path: Path) -> None:
    from goalrl.agents.registry import load_agent

    data = point_task.write_point_dataset(tmp_path / "data", episodes=6, length=12)
    assert pretrain_cli("qrl", data, tmp_path / "run", "agent.latent_dim=16")["agent"] == "qrl"
    summary = pretrain_cli("qrl", data, tmp_path / "run", "agent.latent_dim=16", "steps=6",
                           "resume=true")
    assert summary["steps"] == 6
    agent, meta = load_agent(tmp_path / "run")
    assert isinstance(agent, QRLAgent) and agent.step == 6 and meta["agent"] == "qrl"
    assert agent.cfg.latent_dim == 16
    assert agent.act(np.zeros(2, np.float32), np.ones(2, np.float32)).shape == (2,)


def test_the_preset_lists_every_qrl_field_at_its_default() -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.config_store import ConfigStore

    from goalrl.agents.registry import agent_kind
    from goalrl.commands.pretrain import PretrainConfig, register_configs

    ConfigStore.instance().store(name="pretrain_schema", node=PretrainConfig)
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("pretrain", overrides=["data=d", "out=o", "agent=qrl"])
    composed = OmegaConf.to_object(cfg).agent
    assert type(composed) is QRLConfig and agent_kind(composed) == "qrl"
    assert composed == QRLConfig()
    preset = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "agent" / "qrl.yaml"))
    listed = {
        f"{k}.{sub}" if isinstance(v, dict) else k
        for k, v in preset.items() if k != "defaults"
        for sub in (v if isinstance(v, dict) else [None])
    }
    # the encoder's fields are every agent's (EncoderConfig), documented there
    assert listed == {f for f in _leaf_fields(QRLConfig) if not f.startswith("encoder.")}
