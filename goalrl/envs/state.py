"""The low-dim state observation: arm and scene coordinates, for state-based agents.

The state is ``proprio`` (tcp xyz, gripper opening, tcp yaw) followed by the scene's
coordinates (``Task.scene_vector``: each object's xyz, then the tray's xy where there is one;
the tcp's xyz in Reach). A collected dataset records it per frame (field ``state``), so every
dataset carries its own state variant: the same episodes, read without images. The goal
vector is not enough: Grasp's holds only the objects' heights and no goal holds the tray,
so a policy reading it would not see where to reach. Data recorded before the field existed
(and imported data) stand in proprio and achieved_goal side by side, the same numbers in
Reach and Push. No simulator is loaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from goalrl.errors import UserError

STATE_KEY = "state"  # env observation key: (S,) state now
GOAL_STATE_KEY = "desired_goal_state"  # env observation key: (S,) state of the goal layout
PROPRIO_DIM = 5  # tcp x, y, z, gripper opening, tcp yaw


def state_vector(proprio: np.ndarray, scene: np.ndarray) -> np.ndarray:
    """(..., 5 + C) float32: ``proprio`` (..., 5) then the scene's coordinates (..., C)."""
    proprio = np.asarray(proprio, dtype=np.float32)
    scene = np.asarray(scene, dtype=np.float32)
    if proprio.shape[-1] != PROPRIO_DIM:
        raise ValueError(
            f"proprio must end in {PROPRIO_DIM} values (tcp xyz, opening, yaw), "
            f"got shape {proprio.shape}"
        )
    if proprio.shape[:-1] != scene.shape[:-1]:
        raise ValueError(
            f"proprio {proprio.shape} and scene coordinates {scene.shape} must share "
            f"their leading (batch) shape"
        )
    return np.concatenate([proprio, scene], axis=-1)


def state_dim(scene_dim: int) -> int:
    """Length of the state vector of a scene with ``scene_dim`` coordinates."""
    return PROPRIO_DIM + int(scene_dim)


def state_width(data: Any) -> int:
    """Width of the state vectors of a dataset (an EpisodeDataset) or a scene's spec dict: its
    recorded ``state`` field, else proprio and achieved_goal side by side; 0 when neither."""
    get = data.get if isinstance(data, dict) else lambda name: getattr(data, name, None)
    return get("state_dim") or (get("proprio_dim") or 0) + (get("goal_dim") or 0)


def state_vectors(dataset: Any) -> np.ndarray:
    """Low-dim state of every frame (N, S) float32: the recorded ``state`` field, or for data
    recorded without it proprio and achieved_goal side by side (module doc). UserError
    for a goalrl scene whose goal vector leaves coordinates out (Grasp, Rearrange)."""
    if dataset.state is not None:
        return dataset.state
    from goalrl.envs.registration import scene_task

    task = scene_task(dataset.meta.get("env_id"))
    if task is not None and not task.goal_shows_scene:
        raise UserError(
            f"{dataset.root}: no field 'state' (recorded before goalrl kept it), and its "
            f"proprio and achieved_goal leave out where {task.name}'s objects"
            f"{' and tray' if task.container else ''} are, so a state-based agent would act "
            "blind; collect the data again with `goalrl collect` or train on images "
            "(agent.encoder.kind=image)"
        )
    parts = [a for a in (dataset.proprio, dataset.achieved_goal) if a is not None]
    if not parts:
        raise UserError(
            f"{dataset.root}: no state vectors (neither proprio nor achieved_goal recorded); "
            "train on images (agent.encoder.kind=image)"
        )
    return np.concatenate(parts, axis=1).astype(np.float32, copy=False)  # (N, S)
