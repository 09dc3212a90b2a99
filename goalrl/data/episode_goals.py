"""The goal image each recorded episode was collected toward, re-rendered from its env seed.

A goalrl dataset stores every episode's env seed but not the env's ``desired_goal_image``
(it would be one more image per episode that pretraining never reads). The scenes are
deterministic given the seed, so ``env.reset(seed=s)`` draws the same start layout and the
same goal again. ``GoalImageRenderer.goal_images`` does that for every episode and checks the
re-rendered first camera frame against the recorded one, so a dataset from another scene,
image size or simulator version is refused instead of silently paired with the wrong goals.

Used by goal-image task fine-tuning (``agent.task_input=goal_image``): the task Q is
conditioned on the scene's goal image, as the pretrained goal-reaching Q was.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from goalrl.data.storage import DatasetError

# The re-rendered first frame must match the recorded one this closely (mean |diff| in
# 0..255 units): the same seed renders identically; another layout differs by far more.
MAX_FIRST_FRAME_DIFF = 1.0


class GoalImageRenderer:
    """One env of ``env_id`` that re-renders episode goals by seed, with a cache by seed.

    ``close()`` it, or use it as a context manager."""

    def __init__(self, env_id: str, image_size: int) -> None:
        import gymnasium as gym

        import goalrl  # noqa: F401  (registers the scene ids)

        self.env_id = env_id
        self.env = gym.make(env_id, image_size=image_size)
        self.cache: dict[int, np.ndarray] = {}  # seed -> (H, W, 3) uint8 goal image

    def goal_images(self, dataset: Any) -> np.ndarray:
        """(E, H, W, 3) uint8: the goal image of every episode of ``dataset``.

        Only episodes whose seed is not cached yet are read and rendered, so calling this again
        on a grown dataset (the online phase, after every new episode) renders just the new ones.
        """
        seeds = [int(s) for s in dataset.seeds]  # (E,)
        if not seeds:
            return np.zeros((0, *dataset.image_shape), dtype=np.uint8)
        new = [i for i, s in enumerate(seeds) if s not in self.cache]
        if new:
            starts = np.asarray(dataset.episode_starts, dtype=np.int64)[new]
            for i, first in zip(new, dataset.images(starts), strict=True):
                self.cache[seeds[i]] = self._goal(seeds[i], first, f"{dataset.root}: episode {i}")
        return np.stack([self.cache[s] for s in seeds])

    def _goal(self, seed: int, first_frame: np.ndarray, where: str) -> np.ndarray:
        if seed < 0:
            raise DatasetError(
                f"{where} has no env seed, so its goal image cannot be re-rendered; goal-image "
                "fine-tuning needs episodes recorded with seeds (`goalrl collect` records them); "
                "agent.task_input=embedding needs none"
            )
        obs, _ = self.env.reset(seed=seed)
        diff = np.abs(obs["image"].astype(np.int16) - first_frame.astype(np.int16)).mean()
        if diff > MAX_FIRST_FRAME_DIFF:
            raise DatasetError(
                f"{where}: {self.env_id} reset with the episode's seed {seed} does not "
                f"reproduce its first frame (mean pixel difference {diff:.1f}), so the "
                "episode was not recorded in this scene; its goal image is unknown "
                "(agent.task_input=embedding does not need it)"
            )
        return obs["desired_goal_image"].copy()

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> GoalImageRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
