"""Command a simulated arm with goal images: ``GoalReacher``.

>>> from goalrl.reacher import GoalReacher
>>> with GoalReacher("runs/am") as arm:              # checkpoint + the scene it was trained in
...     goal = arm.capture(seed=1_000_003)           # or a path / array / PIL image
...     arm.reset(seed=1_000_003)
...     result = arm.reach(goal)                     # CEM policy, step by step
...     result.success, result.final_distance, result.q_values, len(result.frames)
...     arm.reach("next_goal.png")                   # chained: starts where the last one ended

Success and distance are measured in the scene's state space, which is known for goals
captured from the scene (``capture`` / ``goalrl goal`` PNGs carry the state). For a goal
that is only a picture, the state it shows is unknown: ``success`` and ``final_distance``
are None and ``image_distance`` (mean absolute pixel difference, 0..1, between the final
camera view and the goal image) is the measure left.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from goalrl.checkpoint import CheckpointError
from goalrl.data.sheets import check_video_path, write_video
from goalrl.errors import UserError
from goalrl.evaluate import EVAL_SEED_OFFSET, Rollout, rollout_panels
from goalrl.goal_image import Goal, GoalImageError, load_goal_converted
from goalrl.goal_match import check_goal_can_match, image_distance


class SceneMismatchError(UserError, ValueError):
    """A checkpoint or goal made for another scene than the one asked for."""


@dataclass
class StepInfo:
    """What ``reach`` reports after each step (progress bars, live views)."""

    step: int  # steps taken so far (1-based)
    max_steps: int
    frame: np.ndarray  # (S, S, 3) uint8 camera view after the step
    q: float | None  # Q of the chosen action (None for agents without Q)
    success: bool | None  # goal met now (None when the goal's state is unknown)
    distance: float | None  # goal distance now (m), None when unknown


@dataclass
class ReachResult:
    """One command: the arm moved toward ``goal_image`` for ``steps`` steps."""

    success: bool | None  # goal met at the last step; None when the goal is only a picture
    final_distance: float | None  # metres, at the last step; None when unknown
    start_distance: float | None  # metres, before the first step
    image_distance: float  # mean |final frame - goal image| / 255, in [0, 1]
    start_image_distance: float  # the same before the first step
    steps: int
    reached_at: int | None  # first step at which the goal was met (None: never / unknown)
    stopped: bool  # interrupted by ``should_stop``
    goal_image: np.ndarray  # (S, S, 3) uint8, as the policy saw it
    frames: list[np.ndarray] = field(default_factory=list)  # (S, S, 3) each, start frame first
    q_values: list[float] = field(default_factory=list)  # per step (empty for GCBC)
    action_ms: list[float] = field(default_factory=list)  # action-selection time per step
    seed: int | None = None  # env seed of the episode start (None: continued from before)
    notes: list[str] = field(default_factory=list)  # goal conversions and warnings
    # tcp to the arm pose in the goal image (m), at the last step and before the first;
    # None when the goal is only a picture
    final_arm_distance: float | None = None
    start_arm_distance: float | None = None

    @property
    def goal_state_known(self) -> bool:
        return self.success is not None

    def summary(self) -> dict[str, Any]:
        """JSON-able figures (no frames)."""
        return {
            "success": self.success,
            "final_distance": self.final_distance,
            "start_distance": self.start_distance,
            "final_arm_distance": self.final_arm_distance,
            "start_arm_distance": self.start_arm_distance,
            "image_distance": round(self.image_distance, 5),
            "start_image_distance": round(self.start_image_distance, 5),
            "goal_state_known": self.goal_state_known,
            "steps": self.steps,
            "reached_at": self.reached_at,
            "stopped": self.stopped,
            "final_q": self.q_values[-1] if self.q_values else None,
            "q_values": [round(q, 5) for q in self.q_values],
            "mean_action_ms": float(np.mean(self.action_ms)) if self.action_ms else None,
            "seed": self.seed,
            "notes": list(self.notes),
        }

    def panels(self, scale: int = 4) -> list[np.ndarray]:
        """Video frames: camera | goal side by side, Q-value trace below."""
        if not self.frames:
            raise ValueError("this result kept no frames (reach(..., keep_frames=False))")
        rollout = Rollout(
            seed=self.seed if self.seed is not None else -1,
            success=bool(self.success),
            final_distance=self.final_distance or 0.0,
            steps=self.steps,
            frames=self.frames,
            goal_image=self.goal_image,
            q_values=self.q_values,
        )
        return rollout_panels(rollout, scale=scale)

    def write_video(self, path: str | Path, fps: float = 10.0) -> Path:
        """``panels()`` as MP4 (H.264), WebM (VP8) or GIF by the suffix of ``path``
        (``goalrl.data.sheets.write_video``)."""
        check_video_path(path)  # before drawing the panels
        return write_video(path, self.panels(), fps)


def checkpoint_scenes(meta: dict[str, Any]) -> list[str]:
    """Scenes a checkpoint can drive: the one it was trained (or fine-tuned) for first, then,
    for a fine-tuned checkpoint, the scene its parent was pretrained in (same arm, same
    camera, and fine-tuning keeps goal reaching as an auxiliary loss)."""
    from goalrl.checkpoint import read_meta

    scenes = [v for v in (meta.get("env_id"), meta.get("task")) if _is_scene(v)]
    parent = meta.get("parent_checkpoint")
    if isinstance(parent, str) and Path(parent).exists():
        try:
            scenes += [v for v in (read_meta(parent).get("env_id"),) if _is_scene(v)]
        except CheckpointError:
            pass  # a parent that moved or broke only loses its scene
    return list(dict.fromkeys(scenes))


def checkpoint_scene(meta: dict[str, Any]) -> str | None:
    """The scene a checkpoint was trained (or fine-tuned) for, if it records one."""
    scenes = checkpoint_scenes(meta)
    return scenes[0] if scenes else None


def _is_scene(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("goalrl/")


def goal_conditioned(agent: Any) -> Any:
    """The agent that takes goal images: a fine-tuned task agent carries one (``goal_agent``)
    sharing its network; a pretrained agent is one itself."""
    return getattr(agent, "goal_agent", agent)


def scene_for(ckpt: str | Path, env: str | None, meta: dict[str, Any]) -> str:
    """The scene to run checkpoint ``ckpt`` in: ``env`` if the checkpoint was trained for it
    (or records no goalrl scene), else its own; SceneMismatchError otherwise. One rule for
    ``goalrl command``, ``goal``, ``eval``, ``serve`` and ``GoalReacher``."""
    import gymnasium as gym

    import goalrl  # registers the scenes

    scenes = checkpoint_scenes(meta)
    if env is None and not scenes:
        raise SceneMismatchError(f"checkpoint {ckpt} records no scene; pass env=goalrl/<Scene>-v0")
    if env is not None and scenes and env not in scenes:
        raise SceneMismatchError(
            f"checkpoint {ckpt} was trained for {' and '.join(scenes)}, not {env}; "
            f"use a checkpoint of {env} or leave env unset"
        )
    env_id = env or scenes[0]
    if env_id not in gym.registry:
        raise SceneMismatchError(
            f"unknown scene {env_id!r}; choose one of {', '.join(goalrl.ENV_IDS)}"
        )
    return env_id


def load_checkpoint_agent(path: str | Path, device: Any) -> tuple[Any, dict[str, Any]]:
    """(agent, meta); CheckpointError with the path in the message for every failure
    (a damaged meta.json or state.json raises KeyError, TypeError or UnicodeDecodeError deep
    in the loader: the user gets one line naming the checkpoint, not a traceback)."""
    from goalrl.agents.registry import load_agent

    if not Path(path).expanduser().exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return load_agent(Path(path).expanduser(), device)
    except CheckpointError:
        raise
    except (KeyError, TypeError, RuntimeError, ValueError, IndexError, AttributeError) as err:
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded (its meta.json, state.json or "
            f"tensors.safetensors is damaged or not goalrl's): {type(err).__name__}: {err}"
        ) from err


class GoalReacher:
    """A checkpoint's policy driving its scene toward goal images, one command at a time.

    Not thread-safe (pybullet clients are not): use one instance from one thread.
    """

    def __init__(
        self,
        ckpt: str | Path,
        env: str | None = None,
        *,
        device: str = "auto",
        max_steps: int | None = None,
        stop_on_success: bool = True,
        threads: int | None = 1,
    ) -> None:
        """``threads``: torch CPU threads while acting (None or 0: leave torch's setting).
        One by default: a single image pair and a few hundred CEM samples gain nothing from
        more, and on a CPU shared with other work, intra-op threads waiting on each other
        made a step take 260 ms instead of 2 ms (bench/command.py)."""
        import gymnasium as gym

        import goalrl  # noqa: F401  (registers the scenes)
        from goalrl.distributed import DistInfo, resolve_device

        self.device = resolve_device(device, DistInfo())
        self.threads = threads if self.device.type == "cpu" and threads else None
        self._pin_threads()
        self.agent, self.meta = load_checkpoint_agent(ckpt, self.device)
        self.env_id: str = scene_for(ckpt, env, self.meta)
        self.image_size = int(self.meta["image_shape"][0])
        yaw = int(self.meta["action_dim"]) == 5  # (dx, dy, dz, grip, yaw) checkpoints
        self.env = gym.make(self.env_id, image_size=self.image_size, yaw=yaw)
        self.core = self.env.unwrapped  # stepped directly: chained commands outlive TimeLimit
        try:
            self._check_actions(self.meta, str(ckpt))
        except SceneMismatchError:
            self.env.close()
            raise
        self.max_steps = int(max_steps or self.env.spec.max_episode_steps or 50)
        self.stop_on_success = stop_on_success
        self.seed: int | None = None
        self._obs: dict[str, np.ndarray] | None = None
        self._capture_envs: dict[int, Any] = {}
        self._set_policy()

    # ---- checkpoint -----------------------------------------------------------------------
    @property
    def checkpoint(self) -> str:
        return str(self.meta.get("path"))

    def _check_actions(self, meta: dict[str, Any], ckpt: str) -> None:
        dim = int(self.env.action_space.shape[0])
        if int(meta["action_dim"]) != dim:
            raise SceneMismatchError(
                f"checkpoint {ckpt} outputs {meta['action_dim']}-d actions; "
                f"{self.env_id} takes {dim}-d actions"
            )

    def _pin_threads(self) -> None:
        """torch's thread count is per calling thread under OpenMP: set it where we act."""
        if self.threads is not None:
            import torch

            if torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)

    def _set_policy(self) -> None:
        from goalrl.agents.registry import agent_policy

        self.policy = agent_policy(goal_conditioned(self.agent))

    def load_checkpoint(self, ckpt: str | Path) -> None:
        """Swap in another checkpoint of the same scene and image size (scene state kept)."""
        agent, meta = load_checkpoint_agent(ckpt, self.device)
        scenes = checkpoint_scenes(meta)
        if scenes and self.env_id not in scenes:
            raise SceneMismatchError(
                f"checkpoint {ckpt} was trained for {' and '.join(scenes)}; "
                f"this arm is in {self.env_id}"
            )
        if int(meta["image_shape"][0]) != self.image_size:
            raise SceneMismatchError(
                f"checkpoint {ckpt} sees {meta['image_shape'][0]}px images; this arm's camera "
                f"renders {self.image_size}px (start a new one for that checkpoint)"
            )
        self._check_actions(meta, str(ckpt))
        self.agent, self.meta = agent, meta
        self._set_policy()

    # ---- scene ----------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Put the scene at the start of episode ``seed``; returns the camera view (S, S, 3)."""
        self._obs, _ = self.core.reset(seed=seed)
        self.seed = seed
        return self._obs["image"].copy()

    @property
    def frame(self) -> np.ndarray:
        """The camera view now, (S, S, 3) uint8 (the scene is reset to seed 1,000,000 first)."""
        if self._obs is None:
            self.reset(EVAL_SEED_OFFSET)
        return self._obs["image"].copy()

    def capture(self, seed: int, image_size: int | None = None) -> Goal:
        """The goal of episode ``seed`` (a reachable scene state) as a goal with its state.

        Rendered in a second env so the arm's own scene is left as it is.
        """
        size = int(image_size or self.image_size)
        if size not in self._capture_envs:
            import gymnasium as gym

            yaw = self.core.yaw_control
            self._capture_envs[size] = gym.make(self.env_id, image_size=size, yaw=yaw)
        return capture_from(self._capture_envs[size], self.env_id, seed)

    def goal(self, source: Any, name: str | None = None, *, force: bool = False) -> Goal:
        """``source`` as a Goal at this checkpoint's image size. Refuses other scenes' goals
        and pictures the camera cannot show (``goal_match.check_goal_can_match``: gray,
        see-through, far from the camera view); ``force`` commands those with a warning."""
        label = name or (str(source) if isinstance(source, (str, Path)) else "goal image")
        goal, conv = load_goal_converted(
            source, self.image_size, name=label, refuse_unmatchable=not force
        )
        self.check_goal(goal)
        warnings = check_goal_can_match(goal, conv, self.frame, label, force=force)
        if warnings:
            goal = dataclasses.replace(goal, notes=[*goal.notes, *warnings])
        return goal

    def check_goal(self, goal: Goal) -> None:
        check_goal_fits(goal, self.env_id, [s.name for s in self.core.task.objects])

    # ---- commanding -----------------------------------------------------------------------
    def reach(
        self,
        goal: Any,
        *,
        max_steps: int | None = None,
        keep_frames: bool = True,
        on_step: Callable[[StepInfo], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        force: bool = False,
    ) -> ReachResult:
        """Run the CEM policy toward ``goal`` from the scene's current state.

        Stops after ``max_steps`` (default: the scene's episode length), when ``should_stop()``
        says so, or, with ``stop_on_success`` and a goal of known state, once it is met.
        ``force``: command a picture the camera cannot show (see ``goal``).
        """
        goal = self.goal(goal, force=force)  # converted and checked (a Goal passes as is)
        self._pin_threads()
        limit = int(max_steps or self.max_steps)
        if self._obs is None:
            self.reset(EVAL_SEED_OFFSET)
        notes = list(goal.notes)
        known = goal.layout is not None
        if known:
            notes += self._apply_goal_state(goal)
        obs = self._obs
        frames = [obs["image"].copy()] if keep_frames else []
        start_image_distance = image_distance(obs["image"], goal.image)
        success, distance, arm_distance = self._measure() if known else (None, None, None)
        start_distance, start_arm_distance = distance, arm_distance
        reached_at = 0 if success else None
        q_values: list[float] = []
        action_ms: list[float] = []
        steps, stopped = 0, False
        start_seed = self.seed
        while steps < limit and not (known and success and self.stop_on_success):
            if should_stop is not None and should_stop():
                stopped = True
                break
            t0 = time.perf_counter()
            action, q = self.policy(obs["image"], goal.image, obs["observation"])
            action_ms.append((time.perf_counter() - t0) * 1e3)
            obs, _, _, _, _ = self.core.step(action)
            steps += 1
            if q is not None:
                q_values.append(float(q))
            if keep_frames:
                frames.append(obs["image"].copy())
            if known:
                success, distance, arm_distance = self._measure()
                if success and reached_at is None:
                    reached_at = steps
            if on_step is not None:
                on_step(StepInfo(steps, limit, obs["image"], q, success, distance))
        self._obs = obs
        self.seed = None  # the scene no longer sits at an episode start
        return ReachResult(
            success=success,
            final_distance=distance,
            start_distance=start_distance,
            final_arm_distance=arm_distance,
            start_arm_distance=start_arm_distance,
            image_distance=image_distance(obs["image"], goal.image),
            start_image_distance=start_image_distance,
            steps=steps,
            reached_at=reached_at,
            stopped=stopped,
            goal_image=goal.image,
            frames=frames,
            q_values=q_values,
            action_ms=action_ms,
            seed=start_seed,
            notes=notes,
        )

    def _apply_goal_state(self, goal: Goal) -> list[str]:
        """Make the goal's state the env's goal, so success is measured against it."""
        notes = []
        tray_now = self.core.current_layout().tray
        if goal.layout.tray is not None and tray_now is not None:
            if float(np.linalg.norm(goal.layout.tray - tray_now)) > 0.01:
                notes.append(
                    "the goal's tray stands elsewhere than this scene's tray: objects in the "
                    "pictured tray cannot be matched exactly (reset to the goal's seed)"
                )
        self.core.set_goal(goal.layout)
        return notes

    def _measure(self) -> tuple[bool, float, float | None]:
        """Goal met, goal distance and arm distance to the pictured arm, now."""
        from goalrl.envs.tasks import goal_distance, is_success

        achieved, desired = self.core.achieved_goal(), self.core.goal
        task, threshold = self.core.task, self.core.distance_threshold
        return (
            bool(is_success(task, achieved, desired, threshold)),
            float(goal_distance(task, achieved, desired)),
            self.core.arm_distance(),
        )

    def close(self) -> None:
        for env in self._capture_envs.values():
            env.close()
        self._capture_envs.clear()
        self.env.close()

    def __enter__(self) -> GoalReacher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def capture_from(env: Any, env_id: str, seed: int) -> Goal:
    """Goal of episode ``seed`` in ``env`` (a gym env of ``env_id``), state included."""
    obs, _ = env.unwrapped.reset(seed=int(seed))
    return Goal(
        image=obs["desired_goal_image"],
        layout=env.unwrapped.goal_layout.copy(),
        env_id=env_id,
        seed=int(seed),
        source="capture",
    )


def capture_goal(env_id: str, seed: int, image_size: int = 64) -> Goal:
    """The goal image and state of episode ``seed`` of ``env_id``, rendered at ``image_size``."""
    import gymnasium as gym

    import goalrl  # noqa: F401

    if env_id not in gym.registry:
        raise SceneMismatchError(f"unknown scene {env_id!r}; choose one of {goalrl.ENV_IDS}")
    env = gym.make(env_id, image_size=int(image_size))
    try:
        return capture_from(env, env_id, seed)
    finally:
        env.close()


def check_goal_fits(goal: Goal, env_id: str, object_names: list[str]) -> None:
    """SceneMismatchError / GoalImageError when a goal's recorded state is not of this scene."""
    if goal.env_id is not None and goal.env_id != env_id:
        raise SceneMismatchError(f"this goal was captured in {goal.env_id}; the arm is in {env_id}")
    if goal.layout is not None and set(goal.layout.objects) != set(object_names):
        raise GoalImageError(
            f"the goal's state holds objects {sorted(goal.layout.objects)}, the scene has "
            f"{sorted(object_names)}"
        )
