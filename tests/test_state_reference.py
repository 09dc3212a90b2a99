"""bench/state_reference.py: the privileged-state GCBC reference reads the same features in
training (from a dataset) as in the simulator (from the env), and refuses data without state."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from bench_modules import load_bench

import goalrl  # noqa: F401
from goalrl.data.recording import record_rollout
from goalrl.data.storage import DatasetWriter, EpisodeData, EpisodeDataset

state_reference = load_bench("state_reference")


def _push_dataset(root: Path, episodes: int = 2) -> EpisodeDataset:
    env = gym.make("goalrl/Push-v0", image_size=16, max_episode_steps=6)
    rng = np.random.default_rng(0)
    with DatasetWriter(root, image_shape=(16, 16, 3), action_dim=4, proprio_dim=5, goal_dim=3,
                       env_id="goalrl/Push-v0", durable=False) as writer:
        for seed in range(episodes):
            episode, _ = record_rollout(
                env, lambda obs: rng.uniform(-1, 1, 4).astype(np.float32), seed
            )
            writer.append(episode)
    env.close()
    return EpisodeDataset(root)


def test_dataset_and_env_features_agree(tmp_path) -> None:
    with _push_dataset(tmp_path / "push") as ds:
        states, goals = state_reference.state_features(ds)
        net = state_reference.train_state_gcbc(ds, steps=3, batch_size=8)
    assert states.shape == (ds.num_frames, 5 + 3) and goals.shape == (ds.num_frames, 3 + 3)
    env = gym.make("goalrl/Push-v0", image_size=16)
    u = env.unwrapped
    obs, _ = env.reset(seed=0)  # the dataset's first episode starts here
    np.testing.assert_allclose(states[0], np.concatenate([obs["observation"],
                                                          obs["achieved_goal"]]), atol=1e-6)
    # the env's goal is built like a goal frame: pictured tcp, then the objects
    np.testing.assert_allclose(state_reference.goal_features(u)[:3], u.goal_layout.tcp,
                               atol=1e-6)
    np.testing.assert_allclose(state_reference.goal_features(u)[3:], obs["desired_goal"])
    action, _ = state_reference.state_policy(net, u)(obs["image"], None, None)
    assert action.shape == (4,) and np.all(np.abs(action) <= 1.0)
    env.close()
    summary = state_reference.evaluate_state_gcbc(net, "goalrl/Push-v0", episodes=1,
                                                  image_size=16)
    assert summary["episodes"] == 1 and summary["seeds"] == [1_000_000, 1_000_000]


def test_dataset_without_state_is_refused(tmp_path) -> None:
    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "plain", image_shape=(16, 16, 3), action_dim=4,
                       durable=False) as writer:
        writer.append(EpisodeData(images=rng.integers(0, 255, (4, 16, 16, 3), dtype=np.uint8),
                                  actions=rng.uniform(-1, 1, (3, 4)).astype(np.float32)))
    with EpisodeDataset(tmp_path / "plain") as ds, pytest.raises(ValueError, match="plain"):
        state_reference.train_state_gcbc(ds, steps=1, batch_size=2)


def test_out_file_is_an_eval_summary_goal_overlap_reads(tmp_path, monkeypatch, capsys) -> None:
    """--out writes what `goalrl eval` writes (per-rollout rows on the asked seeds), so the
    privileged learner pairs with image learners in bench/goal_overlap.py."""
    _push_dataset(tmp_path / "push").close()
    out = tmp_path / "reports" / "state.json"
    monkeypatch.setattr("sys.argv", [
        "state_reference.py", "--data", str(tmp_path / "push"), "--steps", "2",
        "--batch-size", "4", "--episodes", "2", "--eval-seed", "7", "--out", str(out),
    ])
    state_reference.main()
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    written = json.loads(out.read_text())
    assert written == printed and written["out"] == str(out)
    scene, outcomes = load_bench("goal_overlap").outcomes_of(written, str(out))
    assert scene == "goalrl/Push-v0" and sorted(outcomes) == [7, 8]
