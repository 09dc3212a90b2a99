"""One scripted skill per episode, for "stitch" datasets.

Every episode of a stitch dataset performs exactly one skill (one push of one object, one
pick-and-place) from a random start and ends when the skill does, so no episode shows two
skills in sequence: evaluation goals that need two or more can only be reached by stitching
pieces of different episodes together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from goalrl.envs.goal_env import TabletopGoalEnv
from goalrl.envs.play import PlayPolicy


@dataclass(frozen=True)
class OneSkillReach:
    """How far one skill may move the objects in a stitch episode.

    At most ``free_objects`` objects may travel farther than ``bound`` metres (the diameter of
    their path); the others stay within it. A scripted push sometimes flings the cube on
    contact (up to 0.33 m measured where 0.15 m was asked), so stitch collection redraws an
    episode that breaks this; evaluation goals that need two skills lie beyond it by twice the
    success radius, so no stitch episode can contain one (goalrl.benchmark.goals).
    """

    bound: float  # m
    free_objects: int  # objects the skill may carry anywhere (a pick-and-place: one)


ONE_SKILL: dict[str, OneSkillReach] = {
    "Push": OneSkillReach(bound=0.18, free_objects=0),  # one push: 5-15 cm asked, slides
    "Rearrange": OneSkillReach(bound=0.05, free_objects=1),  # one object moved, others nudged
}


def path_diameters(achieved: np.ndarray) -> np.ndarray:
    """(n_objects,) largest distance (m) between two frames of each object's path;
    ``achieved`` (T+1, 3 n_objects)."""
    paths = np.asarray(achieved, dtype=np.float64).reshape(len(achieved), -1, 3)  # (T+1, n, 3)
    pairwise = np.linalg.norm(paths[:, None] - paths[None], axis=-1)  # (T+1, T+1, n)
    return pairwise.max(axis=(0, 1))


def within_one_skill(scene: str, achieved: np.ndarray) -> bool:
    """Whether an episode's object paths ``achieved`` (T+1, G) keep ``ONE_SKILL[scene]``
    (always, in a scene without a bound)."""
    reach = ONE_SKILL.get(scene)
    if reach is None:
        return True
    return int(np.sum(path_diameters(achieved) > reach.bound)) <= reach.free_objects


def single_skill_mix(env: TabletopGoalEnv) -> dict[str, float]:
    """The skills a scene's goals are made of (Push: push; Rearrange: pick-and-place or push);
    Reach, which has none, reaches."""
    return dict(env.task.goal_skills) or {"reach": 1.0}


class SingleSkillPolicy(PlayPolicy):
    """Noisy scripted play that runs one skill of the mix, then reports ``finished``.

    ``EndWithSkill`` ends the episode at that point. The next clean action is computed one
    step early (after each env step) to know whether the skill has any left.
    """

    def __init__(
        self,
        env: TabletopGoalEnv,
        seed: int | list[int] | None = None,
        skill_weights: dict[str, float] | None = None,
        **play: Any,  # the other PlayPolicy settings (noise, waypoint noise, ...)
    ) -> None:
        super().__init__(env, seed, skill_weights=skill_weights or single_skill_mix(env), **play)
        self._pending: np.ndarray | None = None
        self.finished = False

    def reset(self) -> None:
        super().reset()
        self._pending = None
        self.finished = False

    def __call__(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        if self.finished:
            raise RuntimeError("this episode's one skill has ended; reset() before the next")
        if self._skill is None:
            self._skill = self.draw_skill()
        action = self._pending if self._pending is not None else self._next_clean()
        self._pending = None
        if action is None:  # the skill had nothing to do (already there): one still step
            self.finished = True
            action = self._full_action(np.zeros(3), 1.0)
        return self.add_noise(action)

    def skill_finished(self) -> bool:
        """After an env step: True when the skill has no action left for the new state."""
        if not self.finished and self._pending is None and self._skill is not None:
            self._pending = self._next_clean()
            self.finished = self._pending is None
        return self.finished

    def _next_clean(self) -> np.ndarray | None:
        try:
            return next(self._skill)
        except StopIteration:
            return None


class EndWithSkill(gym.Wrapper):
    """Truncates the episode at the step after which ``policy``'s one skill has ended."""

    def __init__(self, env: gym.Env, policy: SingleSkillPolicy) -> None:
        super().__init__(env)
        self.policy = policy

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated or self.policy.skill_finished(), info
