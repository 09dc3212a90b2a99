"""How many evaluation (start, goal) pairs a dataset shows inside one training episode.

A pair counts when some episode has a frame whose objects all lie within ``tolerance`` of the
start's and a later frame (or the same) whose objects all lie within ``tolerance`` of the
goal's: that episode demonstrates the whole task, so reaching the goal needs no stitching.
Objects only by default (the tcp in Reach, whose goal is the tcp); ``arm_tolerance`` also
asks the tcp to match the pictured arm. A stitch dataset must audit 0 on its test goals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from goalrl.benchmark.goals import SUCCESS_THRESHOLD, GoalSpecError, eval_goals, scene_name
from goalrl.envs.tasks import TASKS, Layout, object_distances
from goalrl.errors import UserError


class AuditError(UserError, ValueError):
    """A dataset the audit cannot read against the goals (no scene, no achieved_goal)."""


def frames_matching(achieved: np.ndarray, target: np.ndarray, tolerance: float) -> np.ndarray:
    """(N,) bool: every object (3-d block) of ``achieved`` (N, G) within ``tolerance`` of
    ``target`` (G,)."""
    return np.all(object_distances(achieved, target[None]) < tolerance, axis=-1)


def episodes_with_pair(
    start_ok: np.ndarray, goal_ok: np.ndarray, episode_starts: np.ndarray,
    episode_lengths: np.ndarray,
) -> np.ndarray:
    """(E,) bool: the episode has a start frame at or before a goal frame.

    ``start_ok``, ``goal_ok``: (N,) bool over the dataset's frames, episodes back to back.
    """
    seen = np.cumsum(start_ok)  # (N,) start frames so far, across episodes
    before = np.concatenate([[0], seen])[episode_starts]  # (E,) start frames before each episode
    per_frame_before = np.repeat(before, episode_lengths)  # (N,)
    hit = goal_ok & (seen - per_frame_before > 0)  # (N,) goal frame after a start frame
    frame_episode = np.repeat(np.arange(len(episode_starts)), episode_lengths)  # (N,)
    out = np.zeros(len(episode_starts), dtype=bool)
    out[frame_episode[hit]] = True
    return out


def audit_arrays(
    scene: str,
    achieved: np.ndarray,
    tcp: np.ndarray | None,
    episode_starts: np.ndarray,
    episode_lengths: np.ndarray,
    goals: str = "test",
    per_task: int = 10,
    tolerance: float = SUCCESS_THRESHOLD,
    arm_tolerance: float | None = None,
) -> dict[str, Any]:
    """The audit of frames ``achieved`` (N, G) (and ``tcp`` (N, 3) for ``arm_tolerance``)."""
    task = TASKS[scene]
    by_task: dict[str, dict[str, int]] = {}
    examples: list[dict[str, Any]] = []
    for g in eval_goals(scene, goals, per_task):
        start_ok = frames_matching(achieved, task.goal_vector(g.start), tolerance)
        goal_ok = frames_matching(achieved, task.goal_vector(g.goal), tolerance)
        if arm_tolerance is not None:
            start_ok &= _near(tcp, g.start, arm_tolerance)
            goal_ok &= _near(tcp, g.goal, arm_tolerance)
        hits = episodes_with_pair(start_ok, goal_ok, episode_starts, episode_lengths)
        row = by_task.setdefault(g.task, {"pairs": 0, "in_one_episode": 0})
        row["pairs"] += 1
        row["in_one_episode"] += int(hits.any())
        if hits.any() and len(examples) < 5:
            examples.append({"task": g.task, "seed": g.seed,
                             "episodes": np.flatnonzero(hits)[:5].tolist()})
    return {
        "goals": goals,
        "per_task": per_task,
        "tolerance_m": tolerance,
        "arm_tolerance_m": arm_tolerance,
        "episodes": int(len(episode_starts)),
        "pairs": sum(r["pairs"] for r in by_task.values()),
        "pairs_in_one_episode": sum(r["in_one_episode"] for r in by_task.values()),
        "by_task": by_task,
        "examples": examples,  # up to 5 pairs found, with up to 5 episode indices each
    }


def _near(tcp: np.ndarray, layout: Layout, tolerance: float) -> np.ndarray:
    return np.linalg.norm(tcp - layout.tcp[None], axis=-1) < tolerance


def audit_dataset(
    path: str | Path,
    goals: str = "test",
    per_task: int = 10,
    tolerance: float = SUCCESS_THRESHOLD,
    arm_tolerance: float | None = None,
) -> dict[str, Any]:
    """The audit of the dataset at ``path`` against ``goals`` of its scene."""
    from goalrl.data.storage import EpisodeDataset

    with EpisodeDataset(path, verify_images=False) as ds:
        env_id = ds.meta.get("env_id")
        try:
            scene = scene_name(env_id or "")
        except GoalSpecError as error:
            raise AuditError(f"{path}: {error}") from None
        if ds.achieved_goal is None or ds.achieved_goal.shape[1] != TASKS[scene].goal_dim:
            raise AuditError(
                f"{path}: the audit needs field 'achieved_goal' with {TASKS[scene].goal_dim} "
                f"values per frame ({scene}); the dataset has "
                f"{None if ds.achieved_goal is None else ds.achieved_goal.shape[1]}"
            )
        if arm_tolerance is not None and ds.proprio is None:
            raise AuditError(f"{path}: arm_tolerance needs field 'proprio' (the tcp)")
        tcp = None if ds.proprio is None else ds.proprio[:, :3]
        result = audit_arrays(scene, ds.achieved_goal, tcp, ds.episode_starts,
                              ds.episode_lengths, goals, per_task, tolerance, arm_tolerance)
    return {"path": str(path), "env": env_id, **result}


def record_in_card(path: str | Path, key: str, value: dict[str, Any]) -> None:
    """Store ``value`` under ``extra.<key>`` of the dataset's meta.json; its card (README.md)
    is re-rendered with it."""
    from goalrl.data.storage import DatasetWriter

    DatasetWriter.resume(path, extra_meta={key: value}).close()
