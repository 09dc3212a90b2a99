"""Checkpoints round-trip through safetensors + JSON and give identical outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from goalrl.agents import AMAgent, AMConfig, EncoderConfig
from goalrl.agents.registry import load_agent
from goalrl.checkpoint import (
    CheckpointError,
    checkpoint_hash,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)

TINY = dict(encoder=EncoderConfig(conv_channels=[8, 8], embed_dim=16, fusion_dim=32),
            head_hidden_dim=16)


def batch(seed: int = 0, b: int = 8) -> dict:
    rng = np.random.default_rng(seed)
    img = lambda: rng.integers(0, 255, (b, 16, 16, 3), dtype=np.uint8)  # noqa: E731
    out = {
        "obs_image": img(),
        "next_obs_image": img(),
        "goal_image": img(),
        "action": rng.uniform(-1, 1, (b, 4)).astype(np.float32),
        "reached": rng.random(b) < 0.3,
        "chained": rng.random(b) < 0.2,
    }
    out["offset"] = np.select([out["chained"], out["reached"]], [-1, 1], 3)
    return out


def test_saved_agent_gives_identical_outputs_and_training(tmp_path) -> None:
    agent = AMAgent(AMConfig(**TINY), (16, 16, 3), 4, seed=1)
    for i in range(3):
        agent.update(batch(i))
    path = save_checkpoint(tmp_path, 3, {"agent": agent.state_dict()}, {"note": "x"})
    state, meta = load_checkpoint(tmp_path)  # the run folder resolves to its latest
    assert meta["step"] == 3 and meta["note"] == "x" and meta["path"] == str(path)
    other = AMAgent(AMConfig(**TINY), (16, 16, 3), 4, seed=99)
    other.load_state_dict(state["agent"])
    b = batch(7)
    actions = np.random.default_rng(0).uniform(-1, 1, (8, 4)).astype(np.float32)
    np.testing.assert_array_equal(
        agent.q_values(b["obs_image"], b["goal_image"], actions),
        other.q_values(b["obs_image"], b["goal_image"], actions),
    )
    # optimiser moments and RNG came back too: the next update is the same
    assert agent.update(batch(8)) == other.update(batch(8))


def test_state_json_holds_no_tensors_and_int_keys_survive(tmp_path) -> None:
    state = {"opt": {0: {"m": torch.ones(2)}, 1: {"m": torch.zeros(2)}}, "t": (1, "a"), "x": None}
    path = save_checkpoint(tmp_path, 1, state, {})
    tree = json.loads((path / "state.json").read_text())
    assert "tensor" in json.dumps(tree)
    restored, _ = load_checkpoint(path)
    assert set(restored["opt"]) == {0, 1} and restored["t"] == (1, "a") and restored["x"] is None
    assert torch.equal(restored["opt"][1]["m"], torch.zeros(2))


def test_latest_points_at_the_newest_and_hash_changes(tmp_path) -> None:
    save_checkpoint(tmp_path, 1, {"w": torch.zeros(3)}, {})
    second = save_checkpoint(tmp_path, 2, {"w": torch.ones(3)}, {})
    assert resolve_checkpoint(tmp_path) == second
    assert checkpoint_hash(tmp_path / "checkpoints" / "step_0000001") != checkpoint_hash(second)


def test_bad_checkpoints_are_named_in_errors(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a goalrl checkpoint"):
        load_checkpoint(tmp_path / "empty")
    path = save_checkpoint(tmp_path / "run", 1, {"w": torch.zeros(3)}, {})
    (path / "tensors.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(path)


# agent_config as checkpoints wrote it before the nested encoder: flat encoder fields, the run's
# amp, and options since removed at their old defaults
OLD_FLAT_AM = {
    "gamma": 0.9, "lr": 3e-4, "tau": 0.02, "neg_source": "batch", "policy_negative_state": "next",
    "prior_adv_beta": 0.0, "prior_adv_max": 20.0, "act_rule": "cem", "act_prior_samples": 32,
    "conv_channels": [8, 8], "stem_stride": None, "keypoints": 0, "embed_dim": 16,
    "proprio_embed_dim": 32, "fusion_dim": 32, "head_hidden_dim": 16, "use_proprio": False,
    "amp": True,
}


def old_checkpoint(tmp_path, **changes) -> tuple[AMAgent, object]:
    agent = AMAgent(AMConfig(**TINY), (16, 16, 3), 4, seed=1)
    agent.update(batch(0))
    meta = {"agent": "am", "agent_config": {**OLD_FLAT_AM, **changes}, "image_shape": [16, 16, 3],
            "action_dim": 4, "proprio_dim": None, "env_id": "goalrl/Reach-v0"}
    return agent, save_checkpoint(tmp_path, 1, {"agent": agent.state_dict()}, meta)


def test_checkpoint_of_the_old_flat_layout_loads_and_acts_the_same(tmp_path) -> None:
    agent, path = old_checkpoint(tmp_path)
    loaded, meta = load_agent(path)
    assert loaded.cfg.encoder.embed_dim == 16 and loaded.cfg.head_hidden_dim == 16
    assert loaded.amp is True  # the run trained under autocast: acting does too (on CUDA)
    b = batch(3)
    actions = np.random.default_rng(0).uniform(-1, 1, (8, 4)).astype(np.float32)
    np.testing.assert_array_equal(agent.q_values(b["obs_image"], b["goal_image"], actions),
                                  loaded.q_values(b["obs_image"], b["goal_image"], actions))
    with pytest.raises(ValueError, match="act_rule=prior_best was removed"):
        load_agent(old_checkpoint(tmp_path / "best", act_rule="prior_best")[1])


# ---- crafted tensors are refused by name (issue 39, defect 1) ------------------------------
def checkpoint_of_am(tmp_path):
    agent = AMAgent(AMConfig(**TINY), (16, 16, 3), 4, seed=1)
    agent.update(batch(0))  # optimiser moments exist
    meta = {"agent": "am", "agent_config": agent.state_dict()["config"],
            "image_shape": [16, 16, 3], "action_dim": 4, "proprio_dim": None}
    return agent, save_checkpoint(tmp_path, 1, {"agent": agent.state_dict()}, meta)


def rewrite_tensor(step_dir, key, change) -> None:
    """Replace one tensor of a checkpoint's safetensors file (no pickle involved: a crafted
    file that passes every format check)."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(step_dir / "tensors.safetensors"))
    tensors[key] = change(tensors[key]).contiguous()
    save_file(tensors, str(step_dir / "tensors.safetensors"))


EXP_AVG = "agent/optimizer/state/0/exp_avg"
CRAFTED = {
    "smaller optimiser moment": (EXP_AVG, lambda t: t.flatten()[:-1], r"\[\d+\]"),
    "larger optimiser moment": (EXP_AVG, lambda t: torch.cat([t, t]), r"\[\d+, "),
    "optimiser step not a scalar": ("agent/optimizer/state/0/step", lambda t: t.reshape(1),
                                    r"shape \[1\]"),
    "model weight of another dtype": (None, lambda t: t.double(), "dtype float64"),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_crafted_tensor_of_wrong_shape_or_dtype_is_refused_by_name(tmp_path, case) -> None:
    _, path = checkpoint_of_am(tmp_path)
    key, change, found = CRAFTED[case]
    if key is None:  # the first weight of the Q network
        from safetensors import safe_open

        with safe_open(str(path / "tensors.safetensors"), "pt") as f:
            key = next(k for k in f.keys() if k.startswith("agent/q/") and k.endswith("weight"))
    rewrite_tensor(path, key, change)
    with pytest.raises(CheckpointError, match=f"{key}: expected shape .* found .*{found}"):
        load_agent(path)


def test_param_groups_and_unknown_tensors_are_refused(tmp_path) -> None:
    from goalrl.agents.registry import load_agent_state

    agent, _ = checkpoint_of_am(tmp_path)
    state = agent.state_dict()
    groups = state["optimizer"]["param_groups"]
    fresh = AMAgent(AMConfig(**TINY), (16, 16, 3), 4, seed=2)
    with pytest.raises(CheckpointError, match="param_groups: 2 parameter groups, expected 1"):
        load_agent_state(fresh, {**state, "optimizer": {**state["optimizer"],
                                                        "param_groups": groups * 2}}, "x")
    short = [{**groups[0], "params": groups[0]["params"][:-1]}]
    with pytest.raises(CheckpointError, match="param_groups/0: .* parameters, expected"):
        load_agent_state(fresh, {**state, "optimizer": {**state["optimizer"],
                                                        "param_groups": short}}, "x")
    extra = {**state["optimizer"]["state"], 9999: state["optimizer"]["state"][0]}
    with pytest.raises(CheckpointError, match="state/9999: no parameter of id 9999"):
        load_agent_state(fresh, {**state, "optimizer": {**state["optimizer"], "state": extra}},
                         "x")
    weights = dict(state["q"])
    name = next(iter(weights))
    del weights[name]
    with pytest.raises(CheckpointError, match=f"agent/q: tensor '{name}' .* is missing"):
        load_agent_state(fresh, {**state, "q": weights}, "x")
    with pytest.raises(CheckpointError, match="holds 'spare', which this agent does not have"):
        load_agent_state(fresh, {**state, "spare": {"w": torch.zeros(2)}}, "x")
    load_agent_state(fresh, state, "x")  # the untouched state loads, and the update matches
    assert fresh.update(batch(5)) == agent.update(batch(5))


@pytest.mark.parametrize("key", [EXP_AVG, "agent/q/encoder.fusion.0.weight"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_by_name(tmp_path, key, bad) -> None:
    # a broken net would evaluate to success 0.0 as if it were a trained one
    _, path = checkpoint_of_am(tmp_path)
    rewrite_tensor(path, key, lambda t: t.index_fill(0, torch.tensor([0]), bad))
    with pytest.raises(CheckpointError, match=f"tensor '{key}' holds NaN or infinite"):
        load_agent(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"agent": "nope"}, r"field 'agent' is 'nope'; it must be one of am, gcbc, task"),
     ({"image_shape": "abc"}, r"field 'image_shape' is 'abc'; it must be \[height, width"),
     ({"action_dim": None}, r"field 'action_dim' is None"),
     ({"agent_config": {"num_q_heads": 0, "conv_channels": [8, 8], "embed_dim": 16,
                        "fusion_dim": 32, "head_hidden_dim": 16}},
      r"step_0000001: agent.num_q_heads=0: must be")],
)
def test_meta_an_agent_cannot_be_built_from_is_named(tmp_path, change, message) -> None:
    # `goalrl eval` and `goalrl command` print a CheckpointError as one line
    _, path = checkpoint_of_am(tmp_path)
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, **change}))
    with pytest.raises(CheckpointError, match=message):
        load_agent(path)


def test_binary_meta_is_a_checkpoint_error(tmp_path) -> None:
    _, path = checkpoint_of_am(tmp_path)
    (path / "meta.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CheckpointError, match="meta.json is not valid JSON"):
        load_agent(path)
