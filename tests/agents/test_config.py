"""Agent configs: old checkpoints' flat layout reads back, removed options are refused by name,
every field carries a comment, and changing any field changes what the agent does."""

from __future__ import annotations

import ast
import inspect
from dataclasses import asdict, fields, is_dataclass, replace
from typing import Any

import numpy as np
import pytest
import test_am
import test_gcbc
import test_task_q
import torch

from goalrl.agents.am import AMAgent, AMConfig
from goalrl.agents.config import EncoderConfig
from goalrl.agents.gcbc import GCBCAgent, GCBCConfig
from goalrl.agents.task_q import TaskQAgent, TaskQConfig
from goalrl.data import keys as K

# an AMConfig as goalrl wrote it into checkpoints before the nested encoder: flat encoder
# fields, amp, and the options removed since, at their defaults
OLD_FLAT_AM = {
    "gamma": 0.8, "neg_source": "swap", "behaviour_prior": True, "act_rule": "prior_mean",
    "conv_channels": [8, 16], "stem_stride": 2, "keypoints": 0, "embed_dim": 16,
    "proprio_embed_dim": 8, "fusion_dim": 32, "head_hidden_dim": 16, "use_proprio": True,
    "amp": True, "prior_adv_beta": 0.0, "prior_adv_max": 20.0, "act_prior_samples": 32,
    "policy_negative_state": "next", "a_field_from_the_future": 1,
}
OLD_ENCODER = EncoderConfig(
    conv_channels=[8, 16], stem_stride=2, embed_dim=16, proprio_embed_dim=8, fusion_dim=32,
    use_proprio=True,
)


def test_from_dict_reads_old_flat_checkpoints() -> None:
    am = AMConfig.from_dict(OLD_FLAT_AM)
    assert am == AMConfig(
        gamma=0.8, neg_source="swap", behaviour_prior=True, act_rule="prior_mean",
        encoder=OLD_ENCODER, head_hidden_dim=16,
    )
    flat_gcbc = {"nll_beta": 0.5, "keypoints": 0, "amp": False, **asdict(OLD_ENCODER)}
    assert GCBCConfig.from_dict(flat_gcbc) == GCBCConfig(nll_beta=0.5, encoder=OLD_ENCODER)
    task = TaskQConfig.from_dict({"z_lr": 0.01, "neg_source": "mixed", "am": OLD_FLAT_AM})
    assert task == TaskQConfig(z_lr=0.01, neg_source="mixed", am=am)  # mixed stays for tasks


@pytest.mark.parametrize("cls", [AMConfig, GCBCConfig, TaskQConfig])
def test_from_dict_round_trips_the_nested_layout(cls) -> None:
    cfg = cls()
    changed = {"am": replace(cfg.am, encoder=OLD_ENCODER)} if cls is TaskQConfig else {
        "encoder": OLD_ENCODER
    }
    cfg = replace(cfg, **changed)
    assert cls.from_dict(asdict(cfg)) == cfg


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"act_rule": "prior_best"}, "agent.act_rule=prior_best was removed"),
        ({"act_prior_samples": 8}, "agent.act_prior_samples=8 was removed"),
        ({"prior_adv_beta": 3.0}, "agent.prior_adv_beta=3.0 was removed"),
        ({"prior_adv_max": 5.0}, "agent.prior_adv_max=5.0 was removed"),
        ({"policy_negative_state": "current"}, "agent.policy_negative_state=current was removed"),
        ({"keypoints": 32}, "agent.keypoints=32 was removed"),
        ({"neg_source": "mixed"}, "agent.neg_source=mixed was removed"),
    ],
)
def test_from_dict_refuses_removed_options_a_config_relied_on(values, message) -> None:
    with pytest.raises(ValueError, match=message):
        AMConfig.from_dict(values)
    with pytest.raises(ValueError, match=message.replace("agent.", "agent.am.")):
        TaskQConfig.from_dict({"am": values})
    if "keypoints" in values:
        with pytest.raises(ValueError, match=message):
            GCBCConfig.from_dict(values)


@pytest.mark.parametrize("cls", [AMConfig, GCBCConfig, TaskQConfig, EncoderConfig])
def test_every_field_has_a_comment(cls) -> None:
    """A comment on the field's line or on the lines just above it (--help shows them)."""
    lines = inspect.getsource(cls).splitlines()
    body = ast.parse(inspect.getsource(cls)).body[0].body
    for node in body:
        if isinstance(node, ast.AnnAssign):
            own = lines[node.lineno - 1]
            above = lines[node.lineno - 2].strip()
            assert "#" in own or above.startswith("#"), f"{cls.__name__}.{node.target.id}"


# --- every field changes behaviour ------------------------------------------------------------


def _set(cfg: Any, path: str, value: Any) -> Any:
    """``cfg`` with the (dotted) field ``path`` set to ``value``."""
    head, _, rest = path.partition(".")
    return replace(cfg, **{head: _set(getattr(cfg, head), rest, value) if rest else value})


def _run(kind: str, cfg: Any) -> dict[str, Any]:
    """Two updates and one action: what a field can change (shape, losses, weights, act)."""
    if kind == "am":
        agent = AMAgent(cfg, (test_am.SIZE,) * 2 + (3,), test_am.A, test_am.P, seed=0)
        batches = [(test_am.make_batch(8, seed=i, proprio=True),) for i in range(2)]
    elif kind == "gcbc":
        agent = GCBCAgent(cfg, (test_gcbc.SIZE,) * 2 + (3,), test_gcbc.A, test_gcbc.P, seed=0)
        batches = [(test_gcbc.make_batch(8, seed=i, proprio=True),) for i in range(2)]
    else:
        agent = TaskQAgent(cfg, (test_task_q.SIZE,) * 2 + (3,), test_task_q.A, test_task_q.P)
        batches = []
        for i in range(2):
            labeled = test_task_q.task_batch(8, seed=i)
            labeled[K.GOAL_IMAGE] = test_task_q.images(8, seed=20 + i)
            batches.append((labeled, test_task_q.goal_batch(8, seed=10 + i)))
    stats = [dict(agent.update(*b)) for b in batches]
    probe = batches[0][0]
    prop = probe.get(K.OBS_PROPRIO)
    action = agent.act(probe[K.OBS_IMAGE][:4], probe[K.GOAL_IMAGE][:4], prop[:4])
    state = {k: v for k, v in agent.state_dict().items() if k not in ("optimizer", "rng", "config")}
    weights = {
        f"{k}.{name}": t for k, v in state.items() if isinstance(v, dict) for name, t in v.items()
    }
    weights.update({k: v for k, v in state.items() if isinstance(v, torch.Tensor)})
    return {"stats": stats, "act": np.asarray(action), "weights": weights}


def _differs(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["weights"].keys() != b["weights"].keys():
        return True
    if any(x.shape != b["weights"][k].shape for k, x in a["weights"].items()):
        return True  # another network shape
    if any(x.keys() != y.keys() for x, y in zip(a["stats"], b["stats"], strict=True)):
        return True
    for x, y in zip(a["stats"], b["stats"], strict=True):
        if any(not np.isclose(x[k], y[k], rtol=1e-5, atol=1e-7) for k in x):
            return True
    if not np.allclose(a["act"], b["act"], rtol=1e-5, atol=1e-6):
        return True
    return any(
        not torch.allclose(x.float(), b["weights"][k].float(), rtol=1e-5, atol=1e-6)
        for k, x in a["weights"].items()
    )


def _encoder_cases(prefix: str = "") -> list[tuple[str, Any, dict[str, Any]]]:
    p = prefix + "encoder."
    return [
        (p + "conv_channels", [8, 8], {}),
        (p + "stem_stride", 2, {}),
        (p + "embed_dim", 8, {}),
        (p + "proprio_embed_dim", 8, {p + "use_proprio": True}),
        (p + "fusion_dim", 16, {}),
        (p + "use_proprio", True, {}),
    ]


# (field, changed value, other fields set in both runs) per agent kind; the base configs are the
# tiny ones of the agents' own tests
CASES: dict[str, list[tuple[str, Any, dict[str, Any]]]] = {
    "am": [
        ("gamma", 0.5, {}),
        ("lr", 1e-2, {}),
        ("weight_decay", 0.5, {}),
        ("max_grad_norm", 1e-3, {}),
        ("tau", 0.5, {}),
        ("ema_tau", 0.0, {}),  # acts with the latest weights, not the average
        ("negatives", False, {}),
        ("num_negatives", 8, {}),
        ("neg_source", "uniform", {}),
        ("lambda_neg", 2.0, {}),
        ("neg_temperature", 1.0, {}),
        ("policy_negative", False, {}),
        ("mc_floor", False, {}),
        ("behaviour_prior", True, {}),
        ("prior_weight", 3.0, {"behaviour_prior": True}),
        ("act_rule", "prior_mean", {"behaviour_prior": True}),
        ("act_rule", "actor", {"actor": True}),
        ("actor", True, {}),
        ("actor_alpha", 3.0, {"actor": True}),
        ("augment", False, {}),
        ("pad", 1, {}),
        ("cem_iterations", 1, {}),
        ("cem_samples", 8, {}),
        ("cem_elites", 2, {}),
        ("act_cem_iterations", 1, {}),
        ("act_cem_samples", 16, {}),
        ("act_cem_elites", 2, {}),
        ("head_hidden_dim", 8, {}),
        ("num_q_heads", 3, {}),
        *_encoder_cases(),
    ],
    "gcbc": [
        ("lr", 1e-2, {}),
        ("weight_decay", 0.5, {}),
        ("max_grad_norm", 1e-3, {}),
        ("ema_tau", 0.0, {}),
        ("augment", False, {}),
        ("pad", 1, {}),
        ("log_std_min", -2.0, {}),
        ("log_std_max", 0.5, {}),
        ("nll_beta", 0.0, {}),
        *_encoder_cases(),
    ],
    "task": [
        ("gamma", 0.5, {}),
        ("lr", 1e-2, {}),
        ("z_lr", 1e-1, {}),
        ("weight_decay", 0.5, {}),
        ("max_grad_norm", 1e-3, {}),
        ("tau", 0.5, {"act_with_target": True}),
        ("conservative", False, {}),
        ("num_negatives", 8, {}),
        ("neg_source", "uniform", {}),
        ("lambda_neg", 2.0, {}),
        ("neg_temperature", 0.001, {"num_negatives": 16}),
        ("policy_candidates", False, {}),
        ("calibration", "calql", {}),
        ("mc_floor", False, {}),
        ("aux_weight", 0.0, {}),
        ("task_input", "goal_image", {}),
        ("act_with_target", True, {}),
        ("am.num_q_heads", 3, {}),  # the nested AMConfig (its fields: the "am" cases)
    ],
}
BASES = {"am": test_am.tiny_cfg, "gcbc": test_gcbc.tiny_cfg, "task": test_task_q.cfg}
# read by the training loop, not the agent: AMConfig.chaining sets the sampler's p_chain
# (test_chaining_switches_the_samplers_chained_goals)
NOT_READ_BY_THE_AGENT = {"am": {"chaining"}}
# the state encoder's fields change what the agent reads (state batches, not images): their
# cases are in tests/agents/test_gcivl.py (every agent kind on image and state observations)
STATE_ENCODER_FIELDS = {"encoder.kind", "encoder.state_hidden", "encoder.state_dim"}


def _leaf_fields(cls: type, prefix: str = "") -> set[str]:
    names = set()
    for f in fields(cls):
        default = cls().__dict__[f.name]
        if is_dataclass(default) and f.name != "am":
            names |= _leaf_fields(type(default), prefix + f.name + ".")
        else:
            names.add(prefix + f.name)
    return names


@pytest.mark.parametrize(("kind", "cls"), [("am", AMConfig), ("gcbc", GCBCConfig),
                                           ("task", TaskQConfig)])
def test_every_field_has_a_behaviour_case(kind: str, cls: type) -> None:
    # TaskQConfig.am counts as one field: the "am" cases test each of its own
    covered = {"am" if name.startswith("am.") else name for name, _, _ in CASES[kind]}
    covered |= NOT_READ_BY_THE_AGENT.get(kind, set())
    covered |= STATE_ENCODER_FIELDS if kind != "task" else set()
    assert covered == _leaf_fields(cls)


@pytest.mark.parametrize(
    ("kind", "name", "value", "base"),
    [(kind, *case) for kind, cases in CASES.items() for case in cases],
    ids=[f"{kind}-{case[0]}" for kind, cases in CASES.items() for case in cases],
)
def test_changing_a_field_changes_behaviour(kind: str, name: str, value: Any, base: dict) -> None:
    cfg = BASES[kind]()
    for key, v in base.items():
        cfg = _set(cfg, key, v)
    changed = _set(cfg, name, value)
    assert changed != cfg, "the case must change the field"
    assert _differs(_run(kind, cfg), _run(kind, changed))


@pytest.mark.parametrize("kind", list(BASES))
def test_the_same_config_runs_identically(kind: str) -> None:
    """So a difference above is the field's doing, not noise."""
    assert not _differs(_run(kind, BASES[kind]()), _run(kind, BASES[kind]()))


def test_chaining_switches_the_samplers_chained_goals(tmp_path, monkeypatch) -> None:
    """The sampler, not the agent, draws chained goals: with chaining off pretraining asks it
    for none."""
    from goalrl.data import sampler as sampler_module
    from goalrl.data.storage import DatasetWriter, EpisodeData
    from goalrl.training import PretrainConfig, pretrain

    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "data", image_shape=(16, 16, 3), action_dim=3) as writer:
        for _ in range(2):
            images = rng.integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)
            writer.append(EpisodeData(images=images, actions=np.zeros((4, 3), np.float32)))

    asked: list[float] = []

    class Stop(Exception):
        pass

    def record(self, *args, p_chain: float = 0.0, **kwargs) -> None:
        asked.append(p_chain)
        raise Stop

    monkeypatch.setattr(sampler_module.GoalBatchSampler, "__init__", record)
    for chaining in (True, False):
        cfg = PretrainConfig(
            data=str(tmp_path / "data"), out=str(tmp_path / f"run{chaining}"),
            agent=test_am.tiny_cfg(chaining=chaining), p_chain=0.3, eval_episodes=0, videos=0,
        )
        with pytest.raises(Stop):
            pretrain(cfg)
    assert asked == [0.3, 0.0]
