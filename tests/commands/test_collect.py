"""``goalrl collect`` end to end on a tiny budget: data, summary, contact sheet, resume."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import last_json, run_goalrl

from goalrl.data.storage import EpisodeDataset


def collect(out: Path, *extra: str) -> dict:
    proc = run_goalrl("collect", "env=goalrl/Reach-v0", "image_size=16", f"out={out}", *extra)
    return last_json(proc)


def test_help_lists_the_subcommands() -> None:
    out = run_goalrl("--help").stdout
    for name in ("collect", "pretrain", "eval", "data info", "data import"):
        assert name in out
    fields = run_goalrl("collect", "--help").stdout
    assert "episodes" in fields and "workers" in fields


def test_collect_writes_a_dataset_summary_and_contact_sheet(tmp_path: Path) -> None:
    out = tmp_path / "reach"
    summary = collect(out, "episodes=2")
    assert summary["episodes_added"] == 2 and summary["seeds"] == [0, 1]
    assert json.loads((out / "summary.json").read_text()) == summary
    ds = EpisodeDataset(out)
    assert ds.num_episodes == 2 and ds.image_shape == (16, 16, 3)
    assert list(ds.seeds) == [0, 1]
    assert ds.meta["env_id"] == "goalrl/Reach-v0"
    import cv2

    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 2 * 16  # two rows of upscaled frames
    assert sheet.shape[1] > 3 * (2 * 16 + 2)  # and a column of episode / seed labels
    assert summary["skills"]["reach"]["attempts"] >= 1


def test_collect_resumes_to_the_requested_total(tmp_path: Path) -> None:
    out = tmp_path / "reach"
    collect(out, "episodes=1")
    summary = collect(out, "episodes=3")
    assert summary["episodes_added"] == 2 and summary["seeds"] == [1, 2]
    assert list(EpisodeDataset(out).seeds) == [0, 1, 2]


def test_two_workers_collect_the_same_episodes_as_one(tmp_path: Path) -> None:
    collect(tmp_path / "one", "episodes=2", "workers=1")
    collect(tmp_path / "two", "episodes=2", "workers=2")
    a, b = EpisodeDataset(tmp_path / "one"), EpisodeDataset(tmp_path / "two")
    idx = np.arange(a.num_frames)
    np.testing.assert_array_equal(a.images(idx), b.images(idx))
    np.testing.assert_array_equal(a.actions, b.actions)


def test_skill_weights_set_the_play_mix_and_are_recorded(tmp_path: Path) -> None:
    # Reach's own mix is reach 0.7 / random 0.3; all random: no reach attempts at all
    summary = collect(tmp_path / "r", "episodes=2", "+skill_weights.random=1.0",
                      "+skill_weights.reach=0.0")
    assert set(summary["skills"]) == {"random"} and summary["skills"]["random"]["attempts"] >= 2
    info = EpisodeDataset(tmp_path / "r").episode_info(0)
    assert info["skill_weights"] == {"random": 1.0, "reach": 0.0}


@pytest.mark.parametrize(("override", "message"), [
    ("+skill_weights.juggle=1.0", "skill_weights.juggle: unknown skill"),
    ("+skill_weights.random=-1.0", r"skill_weights.random=-1.0: expected a weight >= 0"),
    ("+skill_weights.push=1.0", "no play skill of the mix {'push': 1.0} can run in Reach"),
])
def test_bad_skill_weights_are_refused_by_name(tmp_path: Path, override: str, message: str):
    proc = run_goalrl("collect", "env=goalrl/Reach-v0", "image_size=16", "episodes=1",
                      f"out={tmp_path / 'r'}", override, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "r").exists() or EpisodeDataset(tmp_path / "r").num_episodes == 0


def test_misspelled_override_is_an_error(tmp_path: Path) -> None:
    proc = run_goalrl("collect", "episdes=2", f"out={tmp_path}", check=False)
    assert proc.returncode != 0
    assert "episdes" in proc.stderr + proc.stdout


def test_unknown_env_is_refused_by_name(tmp_path: Path) -> None:
    proc = run_goalrl("collect", "env=goalrl/Nope-v0", f"out={tmp_path}", check=False)
    assert proc.returncode != 0
    assert "goalrl/Nope-v0" in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_collection_keeps_finished_episodes(tmp_path: Path, sig: int) -> None:
    out = tmp_path / "push"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "goalrl.cli",
            "collect",
            "env=goalrl/Push-v0",
            "image_size=16",
            "episodes=200",
            f"out={out}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until at least two episodes are committed
        meta = out / "meta.json"
        if meta.is_file() and json.loads(meta.read_text()).get("num_episodes", 0) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    kept = EpisodeDataset(out).num_episodes
    assert 2 <= kept < 200
    summary = collect_push(out, kept + 1)
    assert summary["episodes_added"] == 1 and summary["seeds"] == [kept, kept]


def collect_push(out: Path, total: int) -> dict:
    proc = run_goalrl(
        "collect", "env=goalrl/Push-v0", "image_size=16", f"episodes={total}", f"out={out}"
    )
    return last_json(proc)


@pytest.mark.parametrize(("env_id", "policy"), [
    ("goalrl/Reach-v0", "play"), ("goalrl/Push-v0", "play"), ("goalrl/PickPlace-v0", "play"),
    ("goalrl/Rearrange-v0", "play"), ("goalrl/Grasp-v0", "grasp"), ("goalrl/Push-v0", "random"),
    ("goalrl/Push-v0", "stitch"), ("goalrl/Rearrange-v0", "stitch"),
])
def test_an_episode_is_the_same_on_a_reused_simulator(env_id: str, policy: str) -> None:
    """collect keeps one simulator per process across episodes; episode s must not depend on
    which episodes ran on it before."""
    from goalrl.data.collect import close_scenes, run_episode, scene

    def episode(seed: int):
        return run_episode(env_id, seed, 16, policy, action_noise=0.15)

    close_scenes()
    fresh = episode(4)
    episode(1)  # moves objects, grasps, leaves the arm elsewhere
    sim = scene(env_id, 16)
    reused = episode(4)
    assert scene(env_id, 16) is sim  # one simulator served both episodes
    close_scenes()
    for a, b in ((fresh.episode.images, reused.episode.images),
                 (fresh.episode.actions, reused.episode.actions),
                 (fresh.episode.proprio, reused.episode.proprio),
                 (fresh.episode.achieved_goal, reused.episode.achieved_goal),
                 (fresh.goal_image, reused.goal_image)):
        np.testing.assert_array_equal(a, b)
    assert fresh.episode.info == reused.episode.info


# ---- benchmark presets (dataset=<name>, configs/dataset/) ------------------------------------
PRESETS = sorted(p.stem for p in (Path(__file__).parents[2] / "configs" / "dataset").glob("*.yaml"))


def test_every_scene_has_play_and_noisy_and_push_and_rearrange_have_stitch() -> None:
    assert {"push-play", "push-noisy", "push-stitch", "rearrange-play", "rearrange-noisy",
            "rearrange-stitch", "reach-play", "reach-noisy"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_collects_a_dataset_whose_card_carries_the_audit(tmp_path: Path,
                                                                      preset: str) -> None:
    out = tmp_path / preset
    summary = last_json(run_goalrl("collect", f"dataset={preset}", "episodes=1", "image_size=8",
                                   "audit_per_task=2", "sheet=false", f"out={out}"))
    assert summary["benchmark"] == preset and summary["episodes_total"] == 1
    meta = json.loads((out / "meta.json").read_text())
    assert meta["extra"]["collect"]["benchmark"] == preset
    audit = meta["extra"]["audit"]
    assert audit["goals"] == "test" and audit["pairs"] == 12  # 5 tasks + random, 2 each
    assert audit["pairs_in_one_episode"] == summary["audit"]["pairs_in_one_episode"]
    if preset.endswith("stitch"):
        assert audit["pairs_in_one_episode"] == 0
    assert '"pairs_in_one_episode"' in (out / "README.md").read_text()
    ds = EpisodeDataset(out)  # its state variant: arm and object coordinates in every frame
    assert ds.proprio.shape[1] == 5 and ds.achieved_goal.shape[0] == ds.num_frames


def test_stitch_episodes_hold_one_skill_each_and_end_with_it(tmp_path: Path) -> None:
    out = tmp_path / "stitch"
    summary = collect(out, "dataset=push-stitch", "env=goalrl/Push-v0", "episodes=3",
                      "audit_goals=null")
    assert summary["skills"]["push"]["attempts"] == 3 and summary["audit"] is None
    ds = EpisodeDataset(out)
    for i in range(3):
        info = ds.episode_info(i)
        assert info["policy"] == "stitch" and info["attempts"] >= 1
        assert sum(s["attempts"] for s in info["skills"].values()) == 1
    assert ds.episode_lengths.max() - 1 < 50  # Push's time limit: each ended with its skill


def test_a_preset_field_given_on_the_command_line_wins(tmp_path: Path) -> None:
    summary = collect(tmp_path / "n", "dataset=reach-noisy", "episodes=1", "noise=gaussian",
                      "audit_goals=null")
    info = EpisodeDataset(tmp_path / "n").episode_info(0)
    assert summary["benchmark"] == "reach-noisy" and "noise" not in info  # gaussian: not noted
    assert info["skill_weights"] == {"reach": 0.6, "random": 0.4}  # the preset's own mix


@pytest.mark.parametrize(("override", "message"), [
    ("seed=999999", r"seed=999999, episodes=2: training episodes must use env seeds in"),
    ("noise=pink", r"noise='pink': choose one of \['gaussian', 'ou'\]"),
    ("noise_theta=0", r"noise_theta=0.0: expected a value in \(0, 1\]"),
    ("random_steps=[5,5]", r"random_steps=\[5, 5\]: expected \[low, high\]"),
    ("policy=juggle", r"policy='juggle': choose one of"),
    ("image_size=100000", r"image_size=100000: expected 8..512 pixels"),  # not a 28 GiB array
])
def test_bad_collection_settings_are_refused_by_name(tmp_path: Path, override: str,
                                                     message: str) -> None:
    proc = run_goalrl("collect", "env=goalrl/Reach-v0", "episodes=2", f"out={tmp_path / 'x'}",
                      override, check=False)
    assert proc.returncode == 2
    assert re.search(message, proc.stderr), proc.stderr


def test_a_state_variant_at_a_tiny_image_size_holds_the_same_episodes(tmp_path: Path) -> None:
    """The policy never reads the camera, so image_size=8 (the disk-light state variant) and
    a full-size collection of one preset are the same episodes, frame for frame."""
    for size in (8, 24):
        collect(tmp_path / f"s{size}", "dataset=push-stitch", "env=goalrl/Push-v0",
                "episodes=2", f"image_size={size}", "audit_goals=null", "sheet=false")
    small, large = EpisodeDataset(tmp_path / "s8"), EpisodeDataset(tmp_path / "s24")
    assert small.image_shape == (8, 8, 3) and large.image_shape == (24, 24, 3)
    for name in ("actions", "proprio", "achieved_goal"):
        np.testing.assert_array_equal(getattr(small, name), getattr(large, name))


def test_env_spec_reports_the_action_bounds() -> None:
    from goalrl.data.collect import env_spec

    spec = env_spec("goalrl/Push-v0", 8)
    assert spec["action_low"] == [-1.0] * 4 and spec["action_high"] == [1.0] * 4
    assert spec["action_dim"] == 4 and spec["goal_dim"] == 3


def test_no_more_worker_processes_than_episodes(monkeypatch) -> None:
    import multiprocessing as mp

    from goalrl.data import collect as lib

    sizes: list[int] = []

    class FakePool:  # records the pool size; runs the jobs in this process
        def __init__(self, n: int) -> None:
            sizes.append(n)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            return None

        def imap(self, fn, items, chunksize: int = 1):
            return map(fn, items)

    class FakeContext:
        Pool = FakePool

    monkeypatch.setattr(mp, "get_context", lambda method: FakeContext())
    jobs = [("goalrl/Reach-v0", 0, {"image_size": 8})]
    monkeypatch.setattr(lib, "_run_episode_args", lambda args: args, raising=False)
    list(lib.iter_episodes(jobs, workers=12))
    assert sizes == [1]  # one episode: one process, not twelve
