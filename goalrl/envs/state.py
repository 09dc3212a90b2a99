"""The low-dim state observation: arm and object coordinates, for state-based agents.

A goalrl dataset stores per frame ``proprio`` (tcp xyz, gripper opening, tcp yaw) and
``achieved_goal`` (each object's xyz; the tcp's xyz in Reach), so the state is their
concatenation and every dataset carries its own state variant: the same episodes, read
without images. Pure numpy: no simulator is loaded.
"""

from __future__ import annotations

import numpy as np

STATE_KEY = "state"  # env observation key: (S,) state now
GOAL_STATE_KEY = "desired_goal_state"  # env observation key: (S,) state of the goal layout
PROPRIO_DIM = 5  # tcp x, y, z, gripper opening, tcp yaw


def state_vector(proprio: np.ndarray, achieved_goal: np.ndarray) -> np.ndarray:
    """(..., 5 + G) float32: ``proprio`` (..., 5) then ``achieved_goal`` (..., G)."""
    proprio = np.asarray(proprio, dtype=np.float32)
    achieved_goal = np.asarray(achieved_goal, dtype=np.float32)
    if proprio.shape[-1] != PROPRIO_DIM:
        raise ValueError(
            f"proprio must end in {PROPRIO_DIM} values (tcp xyz, opening, yaw), "
            f"got shape {proprio.shape}"
        )
    if proprio.shape[:-1] != achieved_goal.shape[:-1]:
        raise ValueError(
            f"proprio {proprio.shape} and achieved_goal {achieved_goal.shape} must share "
            f"their leading (batch) shape"
        )
    return np.concatenate([proprio, achieved_goal], axis=-1)


def state_dim(goal_dim: int) -> int:
    """Length of the state vector of a scene whose goal vector has ``goal_dim`` values."""
    return PROPRIO_DIM + int(goal_dim)
