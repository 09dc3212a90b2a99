"""A reward-defined task on the Rearrange scene: put any object into the tray.

``goalrl/RearrangeTray-v0`` is the Rearrange scene (three objects and the tray) with one
change: success, and the reward of 1, is *any* object resting inside the tray, whichever
it is and wherever the others are (``objects_in_tray``). It is the second task of issue 42's
fine-tuning benchmark, beside Grasp-v0: a task defined by its reward, which fine-tuning learns
from reward labels and the simulator's reward, not from a goal picture.

The scene still shows a goal image (the start with one random object moved into the tray),
so the pretrained goal reacher can be measured on it zero-shot; a reward-only agent never
reads it. ``TrayAttemptPolicy`` records the labeled data (``goalrl collect policy=tray``):
one noisy scripted pick-and-place of a random object into the tray per episode, which
misses part of the time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from goalrl.envs.goal_env import TabletopGoalEnv
from goalrl.envs.play import PlayPolicy
from goalrl.envs.tasks import TRAY_FLOOR, TRAY_HALF, Layout, ObjectSpec

ENV_ID = "goalrl/RearrangeTray-v0"
TRAY_WALL = 0.012  # m: an object's centre this far inside the tray's outer edge is within it
RESTING_ABOVE_FLOOR = 0.05  # m: a centre higher than this above the tray floor is held or on top


def objects_in_tray(positions: np.ndarray, tray_xy: np.ndarray) -> np.ndarray:
    """(..., n) bool: object centres (..., n, 3) inside the tray walls around ``tray_xy`` (2,)
    or (..., 2), and low enough to rest on its floor (not carried above it)."""
    p = np.asarray(positions, dtype=np.float64)
    centre = np.asarray(tray_xy, dtype=np.float64)[..., None, :]  # (..., 1, 2)
    inside = np.all(np.abs(p[..., :2] - centre) < TRAY_HALF - TRAY_WALL, axis=-1)
    return inside & (p[..., 2] < TRAY_FLOOR + RESTING_ABOVE_FLOOR)


def tray_success(achieved_goal: np.ndarray, tray_xy: np.ndarray) -> np.ndarray:
    """(...,) bool: any object of a flat achieved goal (..., 3n) is in the tray."""
    a = np.asarray(achieved_goal, dtype=np.float64)
    return objects_in_tray(a.reshape(*a.shape[:-1], -1, 3), tray_xy).any(axis=-1)


def tray_distance(achieved_goal: np.ndarray, tray_xy: np.ndarray) -> np.ndarray:
    """(...,) metres from the tray centre to the nearest object (in the table plane)."""
    a = np.asarray(achieved_goal, dtype=np.float64)
    xy = a.reshape(*a.shape[:-1], -1, 3)[..., :2]
    centre = np.asarray(tray_xy, dtype=np.float64)[..., None, :]
    return np.linalg.norm(xy - centre, axis=-1).min(axis=-1)


class TrayTaskEnv(TabletopGoalEnv):
    """Rearrange with the reward "any object in the tray" (see the module docstring)."""

    def __init__(self, image_size: int = 64, **kwargs: Any) -> None:
        kwargs.setdefault("goal_source", "layout")  # goals: this class's, never play's
        super().__init__(task="Rearrange", image_size=image_size, **kwargs)

    def _tray_xy(self) -> np.ndarray:
        return np.asarray(self.scene.position("tray"))[:2]

    def _sample_goal(self, start: Layout) -> Layout:
        """The start with one random object resting in the tray (the picture zero-shot goal
        reaching is shown; the reward accepts any object)."""
        goal = start.copy()
        spec = self.task.objects[self.np_random.integers(len(self.task.objects))]
        xy = start.tray[:2] + self.np_random.uniform(-0.02, 0.02, size=2)
        goal.objects[spec.name] = np.array([*xy, TRAY_FLOOR + spec.half_height,
                                            self.np_random.uniform(-np.pi, np.pi)])
        goal.tcp = np.array([xy[0], xy[1], 0.14])
        return goal

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray,
                       info: Any) -> Any:
        """1.0 where any object rests in the tray, else 0.0 (``desired_goal`` is not read)."""
        return tray_success(achieved_goal, self._tray_xy()).astype(np.float32)

    def _info(self, obs: dict[str, np.ndarray]) -> dict[str, Any]:
        info = super()._info(obs)
        achieved = obs["achieved_goal"]
        info["is_success"] = bool(tray_success(achieved, self._tray_xy()))
        info["distance"] = float(tray_distance(achieved, self._tray_xy()))
        return info


class TrayAttemptPolicy(PlayPolicy):
    """One noisy scripted pick-and-place of a random object into the tray per episode, then
    hovering with the hand open. Labeled data for ``goalrl/RearrangeTray-v0``
    (``goalrl collect policy=tray``); waypoint noise makes part of the attempts miss."""

    def __init__(self, env: TabletopGoalEnv, seed: int | None = None,
                 action_noise: float = 0.15, waypoint_noise: float = 0.02) -> None:
        if not env.task.container:
            raise ValueError(f"scene {env.task.name} has no tray (policy=tray needs one)")
        super().__init__(env, seed, action_noise, waypoint_noise, {"pick_place": 1.0})
        self._done = False

    def reset(self) -> None:
        super().reset()
        self._done = False

    def _start(self, skill: str) -> Iterator[np.ndarray]:
        if self._done:
            return self._hover()
        self._done = True
        spec = self.env.task.objects[self.rng.integers(len(self.env.task.objects))]
        return self._pick_place(spec)

    def _place_target(self, spec: ObjectSpec) -> tuple[np.ndarray, float]:
        tray = self.env.scene.position("tray")
        return tray[:2] + self.rng.uniform(-0.02, 0.02, size=2), TRAY_FLOOR + spec.half_height

    def _hover(self) -> Iterator[np.ndarray]:
        while True:  # hand open and still: whatever was placed stays where it is
            yield self._full_action(np.zeros(3), -1.0)
