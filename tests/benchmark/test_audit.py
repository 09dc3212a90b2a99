"""The stitch audit: pairs that one training episode shows, found where they are and only there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from goalrl.benchmark.audit import AuditError, audit_dataset, episodes_with_pair
from goalrl.benchmark.goals import eval_goals
from goalrl.data.storage import DatasetWriter, EpisodeData
from goalrl.envs.tasks import TASKS


def test_a_start_frame_must_come_before_or_at_a_goal_frame_of_the_same_episode() -> None:
    starts, lengths = np.array([0, 4, 8]), np.array([4, 4, 3])
    start_ok = np.zeros(11, dtype=bool)
    goal_ok = np.zeros(11, dtype=bool)
    start_ok[[1, 6, 8]] = True  # episode 0: start at 1; episode 1: at 6; episode 2: at 8
    goal_ok[[3, 5, 8]] = True  # episode 0: goal at 3 (after); episode 1: at 5 (before); 2: same
    assert episodes_with_pair(start_ok, goal_ok, starts, lengths).tolist() == [True, False, True]
    # a start in episode 0 never pairs with a goal in episode 1
    start_ok[:] = False
    goal_ok[:] = False
    start_ok[3], goal_ok[5] = True, True
    assert not episodes_with_pair(start_ok, goal_ok, starts, lengths).any()


def write_push_dataset(root: Path, paths: list[np.ndarray]) -> Path:
    """A Push dataset whose episode i moves the cube along ``paths[i]`` ((T+1, 3) positions)."""
    with DatasetWriter(root, image_shape=(8, 8, 3), action_dim=4, proprio_dim=5, goal_dim=3,
                       env_id="goalrl/Push-v0", durable=False) as writer:
        for i, path in enumerate(paths):
            frames = len(path)
            writer.append(EpisodeData(
                images=np.zeros((frames, 8, 8, 3), np.uint8),
                actions=np.zeros((frames - 1, 4), np.float32),
                proprio=np.zeros((frames, 5), np.float32),
                achieved_goal=np.asarray(path, np.float32),
                seed=i,
            ))
    return root


def line(a: np.ndarray, b: np.ndarray, steps: int = 20) -> np.ndarray:
    return np.linspace(a, b, steps + 1)  # (steps + 1, 3)


def push_pair(goals: str) -> tuple[np.ndarray, np.ndarray]:
    g = eval_goals("Push", goals, 1)[0]
    return TASKS["Push"].goal_vector(g.start), TASKS["Push"].goal_vector(g.goal)


def test_the_audit_finds_episodes_that_go_from_an_eval_start_to_its_goal(tmp_path: Path) -> None:
    s1, g1 = push_pair("test/task1")
    sr, gr = push_pair("test/random")
    detour = np.array([0.0, 0.0, 0.02])
    root = write_push_dataset(tmp_path / "d", [
        line(s1 + [0.02, 0, 0], g1 - [0.02, 0, 0]),  # task1, within 2 cm at both ends
        np.concatenate([line(sr, detour), line(detour, gr)]),  # the random goal, via a detour
        line(g1, s1),  # task1 backwards: goal first, so it does not count
    ])
    result = audit_dataset(root, goals="test", per_task=4)
    assert result["by_task"]["task1"] == {"pairs": 4, "in_one_episode": 4}  # 4 arm jitters
    assert result["by_task"]["random"]["in_one_episode"] >= 1  # the first random goal
    assert result["examples"][0] == {"task": "task1", "seed": eval_goals(
        "Push", "test/task1", 1)[0].seed, "episodes": [0]}
    for task in ("task2", "task3", "task4", "task5"):
        assert result["by_task"][task]["in_one_episode"] == 0
    assert result["pairs"] == 24
    assert result["pairs_in_one_episode"] == sum(
        r["in_one_episode"] for r in result["by_task"].values())


def test_the_audit_finds_nothing_in_single_pushes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    paths = []
    for _ in range(200):  # short straight pushes from everywhere, in every direction
        start = np.array([*rng.uniform([-0.15, -0.21], [0.17, 0.21]), 0.02])
        heading = rng.uniform(-np.pi, np.pi)
        paths.append(line(start, start + 0.15 * np.array([np.cos(heading), np.sin(heading), 0])))
    root = write_push_dataset(tmp_path / "d", paths)
    for goals in ("test", "val"):
        result = audit_dataset(root, goals=goals, per_task=5)
        assert result["pairs"] == 30 and result["pairs_in_one_episode"] == 0


def test_a_looser_tolerance_finds_a_near_miss_and_the_arm_can_be_asked_to_match(tmp_path) -> None:
    s1, g1 = push_pair("test/task1")
    root = write_push_dataset(tmp_path / "d", [line(s1 + [0.07, 0, 0], g1)])
    assert audit_dataset(root, goals="task1", per_task=1)["pairs_in_one_episode"] == 0
    assert audit_dataset(root, goals="task1", per_task=1, tolerance=0.08)[
        "pairs_in_one_episode"] == 1
    # the dataset's tcp rests at the origin, far from the pictured arm
    assert audit_dataset(root, goals="task1", per_task=1, tolerance=0.08,
                         arm_tolerance=0.05)["pairs_in_one_episode"] == 0


def test_a_dataset_of_another_scene_is_refused_by_name(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "g", image_shape=(8, 8, 3), action_dim=4, goal_dim=2,
                       env_id="goalrl/Grasp-v0", durable=False) as writer:
        writer.append(EpisodeData(images=np.zeros((2, 8, 8, 3), np.uint8),
                                  actions=np.zeros((1, 4), np.float32),
                                  achieved_goal=np.zeros((2, 2), np.float32)))
    with pytest.raises(AuditError, match=r"g: env 'goalrl/Grasp-v0' has no benchmark goals"):
        audit_dataset(tmp_path / "g")


def test_the_command_prints_the_audit_and_records_it_in_the_card(tmp_path: Path) -> None:
    s1, g1 = push_pair("test/task1")
    root = write_push_dataset(tmp_path / "d", [line(s1, g1)])
    proc = subprocess.run(
        [sys.executable, "-m", "goalrl.cli", "data", "audit", f"path={root}", "goals=task1",
         "per_task=2"], capture_output=True, text=True, timeout=300, check=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["pairs"] == 2 and result["pairs_in_one_episode"] == 2
    meta = json.loads((root / "meta.json").read_text())
    assert meta["extra"]["audit"]["pairs_in_one_episode"] == 2
    assert '"pairs_in_one_episode": 2' in (root / "README.md").read_text()
