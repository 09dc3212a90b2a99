"""What GCIVL and GCIQL share, on image and state observations: the update's diagnostics, act,
save/load, bit-exact resume, the state encoder's fields, and `goalrl pretrain agent=...`."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from point_task import SIZE, A, P, S, frames_batch, tiny_encoder

from goalrl.agents.gciql import GCIQLAgent, GCIQLConfig
from goalrl.agents.gcivl import GCIVLAgent, GCIVLConfig
from goalrl.agents.registry import config_from_dict, load_agent
from goalrl.data import keys as K

AGENTS = {"gcivl": (GCIVLAgent, GCIVLConfig), "gciql": (GCIQLAgent, GCIQLConfig)}
CASES = [(kind, obs) for kind in AGENTS for obs in ("image", "state")]


def make_agent(kind: str, obs: str, seed: int = 0, **overrides):
    cls, cfg_cls = AGENTS[kind]
    values = {"encoder": tiny_encoder(obs), "head_hidden_dim": 16, "pad": 2, **overrides}
    cfg = cfg_cls(**values)
    return cls(cfg, (SIZE, SIZE, 3), A, proprio_dim=P, seed=seed)


def frames(obs: str, batch: dict) -> tuple:
    if obs == "state":
        return batch[K.OBS_STATE], batch[K.GOAL_STATE]
    return batch[K.OBS_IMAGE], batch[K.GOAL_IMAGE]


@pytest.mark.parametrize(("kind", "obs"), CASES)
def test_update_reports_prefixed_finite_diagnostics_and_acts(kind: str, obs: str) -> None:
    agent = make_agent(kind, obs)
    info = dict(agent.update(frames_batch(obs)))
    prefixes = {"gcivl": {"value", "actor"}, "gciql": {"value", "critic", "actor"}}[kind]
    assert {k.split("/")[0] for k in info if "/" in k} == prefixes
    assert all(np.isfinite(v) for v in info.values()), info
    o, g = frames(obs, frames_batch(obs, b=5, seed=1))
    actions = agent.act(o, g)
    assert actions.shape == (5, A) and np.all(np.abs(actions) <= 1)
    assert agent.act(o[0], g[0]).shape == (A,)  # one unbatched observation


@pytest.mark.parametrize(("kind", "obs"), CASES)
def test_state_dict_round_trip_acts_the_same(kind: str, obs: str) -> None:
    agent = make_agent(kind, obs, ema_tau=0.0)
    agent.update(frames_batch(obs))
    other = make_agent(kind, obs, seed=7, ema_tau=0.0)
    o, g = frames(obs, frames_batch(obs, seed=3))
    assert not np.allclose(agent.act(o, g), other.act(o, g))
    other.load_state_dict(agent.state_dict())
    np.testing.assert_array_equal(agent.act(o, g), other.act(o, g))


@pytest.mark.parametrize("kind", list(AGENTS))
def test_resume_is_bit_exact(kind: str) -> None:
    batches = [frames_batch("image", seed=i) for i in range(4)]
    full = make_agent(kind, "image")
    for b in batches:
        full.update(b)
    first = make_agent(kind, "image")
    for b in batches[:2]:
        first.update(b)
    resumed = make_agent(kind, "image", seed=5)
    resumed.load_state_dict(first.state_dict())
    for b in batches[2:]:
        resumed.update(b)  # the random shifts continue from the saved generator
    want, got = full.state_dict(), resumed.state_dict()
    for name in [*full.nets, "policy", "policy_ema"]:
        for key, value in want[name].items():
            torch.testing.assert_close(value, got[name][key], rtol=0, atol=0, msg=f"{name}.{key}")
    assert got["step"] == 4 and torch.equal(want["rng"], got["rng"])


@pytest.mark.parametrize("kind", list(AGENTS))
def test_config_reads_back_from_a_checkpoint_dict(kind: str) -> None:
    from dataclasses import asdict

    from goalrl.data.sampler import GoalMixture

    cfg = AGENTS[kind][1](value_goals=GoalMixture(0.1, 0.6, 0.3, "uniform"),
                          encoder=tiny_encoder("state"))
    assert config_from_dict(kind, asdict(cfg)) == cfg
    assert cfg.act_rule == "actor" and "act_rule" not in asdict(cfg)  # what eval reports


@pytest.mark.parametrize(("field", "value"), [("state_hidden", [16, 16]), ("state_dim", S + 1)])
def test_state_encoder_fields_change_the_network(field: str, value) -> None:
    base = make_agent("gcivl", "state")
    changed = make_agent("gcivl", "state", encoder=replace(tiny_encoder("state"),
                                                           **{field: value}))
    shapes = lambda a: {k: v.shape for k, v in a.value.state_dict().items()}  # noqa: E731
    assert shapes(base) != shapes(changed)
    assert any(k.startswith("encoder.state.") for k in shapes(base))


def test_encoder_kind_changes_what_the_agent_reads() -> None:
    state_agent = make_agent("gcivl", "state")
    with pytest.raises(KeyError, match="obs_state"):
        state_agent.update(frames_batch("image"))
    from goalrl.agents.config import AgentConfigError, EncoderConfig

    with pytest.raises(AgentConfigError, match="agent.encoder.kind='pixels'"):
        EncoderConfig(kind="pixels")


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory) -> Path:
    """Three 8-frame episodes of 16x16 images, with proprio and achieved_goal (for states)."""
    from goalrl.data.storage import DatasetWriter, EpisodeData

    root = tmp_path_factory.mktemp("value_agents") / "data"
    rng = np.random.default_rng(0)
    with DatasetWriter(root, image_shape=(16, 16, 3), action_dim=3, proprio_dim=2, goal_dim=3,
                       durable=False) as writer:
        for _ in range(3):
            writer.append(EpisodeData(
                images=rng.integers(0, 255, (8, 16, 16, 3), dtype=np.uint8),
                actions=rng.uniform(-1, 1, (7, 3)).astype(np.float32),
                proprio=rng.normal(size=(8, 2)).astype(np.float32),
                achieved_goal=rng.normal(size=(8, 3)).astype(np.float32),
            ))
    return root


@pytest.mark.parametrize(("kind", "obs"), [*CASES, ("gcbc", "state")])
def test_pretrain_cli_smoke_run(tiny_images, tmp_path, kind: str, obs: str) -> None:
    out = tmp_path / "run"
    proc = subprocess.run([
        sys.executable, "-m", "goalrl.cli", "pretrain", f"data={tiny_images}", f"out={out}",
        f"agent={kind}", "steps=4", "batch_size=8", "eval_episodes=0", "videos=0",
        "save_every=2", "log_every=2",
        "device=cpu", f"agent.encoder.kind={obs}", "agent.encoder.conv_channels=[8,8]",
        "agent.encoder.embed_dim=16", "agent.encoder.fusion_dim=32",
        *(["agent.head_hidden_dim=16"] if kind != "gcbc" else []),
    ], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["agent"] == kind and summary["steps"] == 4
    agent, meta = load_agent(out)
    assert type(agent).__name__.lower().startswith(kind) and agent.step == 4
    if obs == "state":
        assert meta["agent_config"]["encoder"]["state_dim"] == 5  # proprio 2 + achieved_goal 3
        action = agent.act(np.zeros(5, np.float32), np.ones(5, np.float32))
    else:
        action = agent.act(np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.uint8))
    assert action.shape == (3,)


def test_torchrun_two_processes_gciql(tiny_images, tmp_path) -> None:
    """DistributedDataParallel wraps GCIQL's critic, value and actor as one module."""
    from goalrl.checkpoint import load_checkpoint

    out = tmp_path / "ddp"
    proc = subprocess.run([
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        "--master_port=29547", "-m", "goalrl.cli", "pretrain", f"data={tiny_images}",
        f"out={out}", "agent=gciql", "steps=4", "batch_size=8", "eval_episodes=0",
        "save_every=2", "device=cpu", "threads=1", "agent.encoder.conv_channels=[8,8]",
        "agent.encoder.embed_dim=16", "agent.encoder.fusion_dim=32", "agent.head_hidden_dim=16",
    ], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state, meta = load_checkpoint(out)
    assert meta["step"] == 4 and [s["rank"] for s in state["samplers"]] == [0, 1]


def test_pretrain_resume_on_states_with_goal_mixtures_is_bit_exact(tiny_images, tmp_path) -> None:
    """A GCIVL run on states split in two (the sampler's mixture stream resumed) ends with the
    weights of the uninterrupted run."""
    from goalrl.training import PretrainConfig, pretrain

    def run(out: Path, steps: int, resume: bool = False) -> None:
        cfg = GCIVLConfig(encoder=tiny_encoder("state"), head_hidden_dim=16)
        cfg.encoder.state_dim = None  # filled in from the dataset (2 + 3)
        pretrain(PretrainConfig(data=str(tiny_images), out=str(out), agent=cfg, steps=steps,
                                batch_size=8, eval_episodes=0, videos=0, save_every=2,
                                log_every=2, prefetch=2, device="cpu", resume=resume))

    run(tmp_path / "full", 4)
    run(tmp_path / "split", 2)
    run(tmp_path / "split", 4, resume=True)
    full, _ = load_agent(tmp_path / "full")
    split, _ = load_agent(tmp_path / "split")
    for name in ("value", "target_value", "policy"):
        want, got = full.state_dict()[name], split.state_dict()[name]
        for key, value in want.items():
            torch.testing.assert_close(value, got[key], rtol=0, atol=0, msg=f"{name}.{key}")
