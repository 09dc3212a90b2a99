"""goalrl ogbench generate: OGBench's environments and oracles write OGBench's .npz layout."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from goalrl.errors import UserError


def test_generated_files_hold_ogbench_layout(generated) -> None:
    path, summary = generated["path"], generated["summary"]
    steps = summary["settings"]["max_episode_steps"]
    train, val = np.load(path), np.load(path.with_name("cube-single-play-v0-val.npz"))
    assert sorted(train.files) == ["actions", "observations", "qpos", "qvel", "terminals"]
    assert train["observations"].shape == (2 * steps, 28)  # cube-single's state vector
    assert train["observations"].dtype == np.float32
    assert train["actions"].shape == (2 * steps, 5) and train["terminals"].dtype == bool
    assert np.flatnonzero(train["terminals"]).tolist() == [steps - 1, 2 * steps - 1]
    assert np.abs(train["actions"]).max() <= 1.0
    assert val["observations"].shape == (steps, 28)
    assert summary["files"]["val"]["episodes"] == 1 and summary["frames"] == 3 * steps
    # qpos is the state each action was taken in: the arm moves between consecutive rows
    assert not np.allclose(train["qpos"][0], train["qpos"][steps - 1])
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["files"]["train"]["content_sha256"] == summary["files"]["train"][
        "content_sha256"]
    assert record["versions"]["ogbench"] and record["env_steps_per_s"] > 0


def test_ogbench_reads_the_generated_file(generated) -> None:
    ogbench = pytest.importorskip("ogbench")
    steps = generated["summary"]["settings"]["max_episode_steps"]
    data = ogbench.load_dataset(str(generated["path"]))
    assert data["observations"].shape == (2 * (steps - 1), 28)  # the last frames have no next
    assert data["terminals"].sum() == 2


def test_same_seed_same_data_other_seed_other_data(generated, tmp_path) -> None:
    from goalrl.ogbench.generate import GenerateSettings, generate_dataset

    settings = generated["summary"]["settings"]
    again = generate_dataset(tmp_path / "again.npz", GenerateSettings(**settings),
                             progress=False)
    other = generate_dataset(tmp_path / "other.npz", GenerateSettings(
        **{**settings, "seed": 7, "val_episodes": 0}), progress=False)
    first = generated["summary"]["files"]["train"]["content_sha256"]
    assert again["files"]["train"]["content_sha256"] == first
    assert other["files"]["train"]["content_sha256"] != first
    assert not (tmp_path / "other-val.npz").exists()


def test_noisy_uses_the_markov_oracle_with_random_actions(tmp_path) -> None:
    pytest.importorskip("ogbench")
    from goalrl.ogbench.generate import GenerateSettings, generate_dataset

    summary = generate_dataset(tmp_path / "noisy.npz", GenerateSettings(
        env="cube-single-v0", dataset_type="noisy", episodes=1, val_episodes=0,
        max_episode_steps=20), progress=False)
    assert summary["settings"]["p_random_action"] == 0.1  # OGBench's cube noisy sets
    assert np.load(tmp_path / "noisy.npz")["observations"].shape == (20, 28)


@pytest.mark.parametrize("change, field", [
    ({"env": "antmaze-large-v0"}, "expert policies"),
    ({"dataset_type": "stitch"}, "dataset_type"),
    ({"episodes": 0}, "episodes"),
    ({"p_random_action": 1.5}, "p_random_action"),
])
def test_bad_settings_are_refused_by_name(change, field, tmp_path) -> None:
    from goalrl.ogbench.generate import GenerateSettings, generate_dataset

    settings = GenerateSettings(**{"env": "cube-single-v0", "episodes": 1, **change})
    with pytest.raises(UserError, match=field):
        generate_dataset(tmp_path / "x.npz", settings, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_files_are_kept_without_overwrite(generated) -> None:
    from goalrl.ogbench.generate import GenerateSettings, generate_dataset

    before = generated["path"].read_bytes()
    with pytest.raises(UserError, match="overwrite=true"):
        generate_dataset(generated["path"], GenerateSettings(env="cube-single-v0",
                                                             episodes=1), progress=False)
    assert generated["path"].read_bytes() == before


def test_cli_prints_one_json_line_and_nothing_on_stderr(tmp_path) -> None:
    pytest.importorskip("ogbench")
    out = tmp_path / "cube-single-noisy-v0.npz"
    proc = subprocess.run(
        [sys.executable, "-m", "goalrl.cli", "ogbench", "generate", f"out={out}", "episodes=1",
         "max_episode_steps=10", "dataset_type=noisy"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no glfw or gymnasium warnings
    summary = json.loads(proc.stdout)
    assert summary["frames"] == 10 and out.is_file()


@pytest.mark.parametrize("env, state_dim, buttons", [("scene-v0", 40, 2),
                                                     ("puzzle-3x3-v0", 55, 9)])
def test_scene_and_puzzle_record_their_button_states(env, state_dim, buttons, tmp_path) -> None:
    pytest.importorskip("ogbench")
    from goalrl.ogbench.generate import GenerateSettings, generate_dataset

    generate_dataset(tmp_path / "x.npz", GenerateSettings(env=env, episodes=1, val_episodes=0,
                                                          max_episode_steps=10), progress=False)
    data = np.load(tmp_path / "x.npz")
    assert data["observations"].shape == (10, state_dim)
    assert data["button_states"].shape == (10, buttons)
    assert data["button_states"].dtype == np.int64


def test_noisy_defaults_and_scene_health_check() -> None:
    from goalrl.ogbench.generate import GenerateSettings, scene_episode_healthy

    noisy = {"dataset_type": "noisy", "episodes": 10}
    assert GenerateSettings(env="puzzle-4x4-v0", **noisy).validated().p_random_action == 0.2
    assert GenerateSettings(env="visual-scene-v0", **noisy).validated().p_random_action == 0.1
    assert GenerateSettings(env="cube-single-v0", episodes=25).validated().val_episodes == 2
    qpos = np.zeros((3, 25))
    qpos[:, 14:17] = [0.4, 0.0, 0.02]  # the cube on the table, in view
    assert scene_episode_healthy(qpos)
    qpos[1, 15] = 0.3  # too far right
    assert not scene_episode_healthy(qpos)
    qpos[1, 15:17] = [-0.32, 0.07]  # left, inside the drawer: fine
    assert scene_episode_healthy(qpos)
    qpos[1, 16] = 0.02  # left, on the table beside the drawer
    assert not scene_episode_healthy(qpos)
