"""Checkpoints round-trip through safetensors + JSON and give identical outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from goalrl.agents import AMAgent, AMConfig
from goalrl.checkpoint import (
    CheckpointError,
    checkpoint_hash,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)

TINY = dict(conv_channels=[8, 8], embed_dim=16, fusion_dim=32, head_hidden_dim=16)


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


@pytest.mark.parametrize("keypoints", [0, 4])
def test_saved_agent_gives_identical_outputs_and_training(tmp_path, keypoints: int) -> None:
    agent = AMAgent(AMConfig(**TINY, keypoints=keypoints), (16, 16, 3), 4, seed=1)
    for i in range(3):
        agent.update(batch(i))
    path = save_checkpoint(tmp_path, 3, {"agent": agent.state_dict()}, {"note": "x"})
    state, meta = load_checkpoint(tmp_path)  # the run folder resolves to its latest
    assert meta["step"] == 3 and meta["note"] == "x" and meta["path"] == str(path)
    other = AMAgent(AMConfig(**TINY, keypoints=keypoints), (16, 16, 3), 4, seed=99)
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
