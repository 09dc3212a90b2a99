"""Roll a goal-image policy out in a scene: success rate with a 95% interval, final
distance, and videos of the camera beside the goal image."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from einops import rearrange, repeat

from goalrl.data.sheets import draw_label, write_video

if TYPE_CHECKING:  # the benchmark (and the simulator it imports) loads only when used
    from goalrl.benchmark.goals import EvalGoal

EVAL_SEED_OFFSET = 1_000_000  # evaluation seeds start here; collection seeds stay below
# what a policy reads, by the agent's observation kind (agent.encoder.kind): the env
# observation key of the current view and of the goal
OBSERVATION_KEYS = {
    "image": ("image", "desired_goal_image"),  # (H, W, 3) uint8 each
    "state": ("state", "desired_goal_state"),  # (S,) float32 each (goalrl.envs.state)
}

# policy(obs_image (H, W, 3) uint8, goal_image (H, W, 3) uint8, proprio (P,)) -> action (A,),
# and optionally the Q-value of that action (for the trace in videos)
Policy = Callable[[np.ndarray, np.ndarray, np.ndarray], "tuple[np.ndarray, float | None]"]


@dataclass
class Rollout:
    seed: int
    success: bool  # goal met at the last step
    final_distance: float  # goal distance at the last step (m)
    steps: int
    # tcp to the arm pose pictured in the goal image at the last step (m); None when the env
    # does not report it. Low arm and high goal distance: the policy copied the arm only.
    final_arm_distance: float | None = None
    objects_off_table: int = 0  # objects fallen off the table by the last step
    start_distance: float | None = None  # goal distance at reset (m): how far the goal was
    # closest the goal came at any step, reset included (m), and the first step whose info
    # said is_success (0 = at reset; None = never): a rollout that reached the goal and then
    # left it has a first_success_step but success False, a near miss only a low min_distance
    min_distance: float | None = None
    first_success_step: int | None = None
    frames: list[np.ndarray] = field(default_factory=list)  # camera images, (H, W, 3) each
    goal_image: np.ndarray | None = None
    q_values: list[float] = field(default_factory=list)
    # benchmark goals (goalrl.benchmark.goals): the split (val | test) and the task (task1..task5
    # | random) of this rollout's goal; None for env-seeded goals
    goal_split: str | None = None
    task: str | None = None


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (sane at 0% and 100%, unlike +-1.96 se)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def run_rollout(
    env: Any,
    policy: Policy,
    seed: int,
    keep_frames: bool = False,
    goal_image: np.ndarray | None = None,
    max_steps: int | None = None,
    observation: str = "image",
    options: dict[str, Any] | None = None,
) -> Rollout:
    """One episode toward the env's goal for ``seed`` (or toward ``goal_image`` if given);
    ``options`` go to ``env.reset`` (a benchmark goal's start and goal layouts).

    ``observation``: "image" (the policy gets camera and goal images) or "state" (the state
    vectors of now and of the goal, for agents with ``encoder.kind=state``); frames and the
    goal picture in videos are images either way."""
    obs_key, goal_key = OBSERVATION_KEYS[observation]
    # options only when given: test doubles and older envs take reset(seed) alone
    obs, info = env.reset(seed=seed, **({"options": options} if options is not None else {}))
    goal_picture = obs["desired_goal_image"] if goal_image is None else goal_image
    goal = goal_picture if observation == "image" else obs[goal_key]
    result = Rollout(
        seed=seed, success=bool(info["is_success"]), final_distance=info["distance"], steps=0,
        start_distance=float(info["distance"]), min_distance=float(info["distance"]),
        first_success_step=0 if info["is_success"] else None,
    )
    result.goal_image = goal_picture
    if keep_frames:
        result.frames.append(obs["image"])
    done = False
    while not done and (max_steps is None or result.steps < max_steps):
        action, q = policy(obs[obs_key], goal, obs["observation"])
        obs, _, terminated, truncated, info = env.step(action)
        result.steps += 1
        result.min_distance = min(result.min_distance, float(info["distance"]))
        if info["is_success"] and result.first_success_step is None:
            result.first_success_step = result.steps
        if q is not None:
            result.q_values.append(float(q))
        if keep_frames:
            result.frames.append(obs["image"])
        done = terminated or truncated
    result.success = bool(info["is_success"])
    result.final_distance = float(info["distance"])
    result.final_arm_distance = info.get("arm_distance")
    result.objects_off_table = int(info.get("objects_off_table", 0))
    return result


def evaluate_policy(
    env_id: str,
    policy: Policy,
    episodes: int,
    *,
    image_size: int = 64,
    seed_start: int = EVAL_SEED_OFFSET,
    videos: int = 0,
    video_dir: str | Path | None = None,
    progress: bool = True,
    env_kwargs: dict[str, Any] | None = None,
    observation: str = "image",
    goals: Sequence[EvalGoal] | None = None,
) -> dict[str, Any]:
    """Success rate, its 95% interval and mean final distance over ``episodes`` seeds.

    ``env_kwargs`` go to ``gym.make`` (e.g. ``max_episode_steps``, ``skills_per_goal``).
    ``observation``: what the policy reads, "image" or "state" (see ``run_rollout``).
    ``goals``: benchmark goals (``goalrl.benchmark.goals.eval_goals``), one rollout each from
    its own seed, start and goal, instead of ``episodes`` env-seeded goals from ``seed_start``.
    """
    import gymnasium as gym
    from tqdm import tqdm

    import goalrl  # noqa: F401
    from goalrl.errors import UserError

    if observation not in OBSERVATION_KEYS:
        raise UserError(
            f"observation must be one of {sorted(OBSERVATION_KEYS)}, not {observation!r}"
        )
    env = gym.make(env_id, image_size=image_size, **(env_kwargs or {}))
    missing = [k for k in OBSERVATION_KEYS[observation] if k not in env.observation_space.spaces]
    if missing:
        env.close()
        raise UserError(
            f"agent.encoder.kind={observation}: scene {env_id} does not observe {missing}; "
            "evaluate a state agent in a goalrl scene that reports states"
        )
    rollouts = []
    video_paths = []
    # (seed, benchmark goal or None) of each rollout
    plan = ([(seed_start + i, None) for i in range(episodes)] if goals is None
            else [(g.seed, g) for g in goals])
    try:
        for i, (seed, goal) in enumerate(
            tqdm(plan, desc=f"eval {env_id}", disable=not progress or None)
        ):
            r = run_rollout(
                env, policy, seed, keep_frames=i < videos, observation=observation,
                options=None if goal is None else goal.reset_options(),
            )
            if goal is not None:
                r.goal_split, r.task = goal.split, goal.task
            if i < videos and video_dir is not None:
                path = Path(video_dir) / f"rollout_seed{r.seed}.mp4"
                write_rollout_video(path, r)
                video_paths.append(str(path))
            r.frames = []
            rollouts.append(r)
    finally:
        env.close()
    return {**summarize_rollouts(env_id, rollouts), "videos": video_paths}


def summarize_rollouts(env_id: str, rollouts: list[Rollout]) -> dict[str, Any]:
    """Success rate with its 95% interval, final distances, and one row per rollout.

    The median distance is there because one object knocked off the table keeps falling
    (metres below it by the last step) and alone can set the mean; ``episodes_object_off_table``
    counts such rollouts and the per-rollout rows name them.
    """
    successes = sum(r.success for r in rollouts)
    low, high = wilson_interval(successes, len(rollouts))
    seeds = [r.seed for r in rollouts]
    distances = [r.final_distance for r in rollouts]
    reached_any = [r.first_success_step is not None for r in rollouts]
    return {
        "env": env_id,
        "episodes": len(rollouts),
        "seeds": [min(seeds), max(seeds)] if seeds else [],
        "success_rate": successes / max(1, len(rollouts)),
        "ci95": [low, high],
        # goal met at some step, not necessarily the last: the gap to success_rate counts
        # rollouts that reached the goal and then moved the object away again
        "success_any_step_rate": sum(reached_any) / max(1, len(rollouts)),
        "mean_final_distance": float(np.mean(distances)),
        "median_final_distance": float(np.median(distances)),
        "mean_final_arm_distance": mean_or_none([r.final_arm_distance for r in rollouts]),
        "episodes_object_off_table": sum(r.objects_off_table > 0 for r in rollouts),
        **({"by_task": success_by_task(rollouts)} if any(r.task for r in rollouts) else {}),
        "rollouts": [rollout_row(r) for r in rollouts],
    }


def success_by_task(rollouts: list[Rollout]) -> dict[str, dict[str, Any]]:
    """Per benchmark task (in order of first appearance): rollouts and success rate."""
    tasks: dict[str, list[bool]] = {}
    for r in rollouts:
        tasks.setdefault(str(r.task), []).append(r.success)
    return {t: {"episodes": len(s), "success_rate": sum(s) / len(s)} for t, s in tasks.items()}


def rollout_row(r: Rollout) -> dict[str, Any]:
    """One rollout's outcome as plain JSON values (no frames)."""
    return {
        "seed": r.seed,
        **({"goal_split": r.goal_split, "task": r.task} if r.task is not None else {}),
        "success": r.success,
        "start_distance": r.start_distance,
        "final_distance": r.final_distance,
        "min_distance": r.min_distance,
        "first_success_step": r.first_success_step,
        "final_arm_distance": r.final_arm_distance,
        "objects_off_table": r.objects_off_table,
        "steps": r.steps,
    }


def mean_or_none(values: list[float | None]) -> float | None:
    """Mean of the values, or None when any is missing (an env that does not report it)."""
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))


# ---- videos -------------------------------------------------------------------------------
def rollout_panels(rollout: Rollout, scale: int = 4, plot_height: int = 48) -> list[np.ndarray]:
    """Per step: camera | goal side by side (upscaled), with the Q-value trace below."""
    goal = rollout.goal_image
    panels = []
    for t, frame in enumerate(rollout.frames):
        top = rearrange([frame, goal], "n h w c -> h (n w) c")  # (H, 2W, 3)
        top = repeat(top, "h w c -> (h sh) (w sw) c", sh=scale, sw=scale)
        trace = q_trace(rollout.q_values[:t], len(rollout.frames) - 1, top.shape[1], plot_height)
        panel = np.concatenate([top, trace], axis=0)
        draw_label(panel, f"t={t}", (2, 2))
        draw_label(panel, "goal", (top.shape[1] // 2 + 2, 2))
        panels.append(panel)
    return panels


TRACE_AXIS_W = 26  # left margin of the Q trace: the axis name and its 0 / 1 ticks
TRACE_MARGIN = 7  # rows between the strip's edges and the Q = 1 / Q = 0 lines


def q_trace(values: list[float], horizon: int, width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8 strip plotting Q over the episode so far, on a fixed
    0..1 axis (ticks and grid lines at 0 and 1), the latest value written at the right."""
    strip = np.full((height, width, 3), 30, dtype=np.uint8)
    y_one, y_zero = TRACE_MARGIN, height - 1 - TRACE_MARGIN
    text = (200, 200, 200)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(strip, "Q", (3, (y_one + y_zero) // 2 + 4), font, 0.4, text, 1, cv2.LINE_AA)
    for tick, y in (("1", y_one), ("0", y_zero)):
        cv2.line(strip, (TRACE_AXIS_W, y), (width - 1, y), (75, 75, 75), 1)
        cv2.putText(strip, tick, (TRACE_AXIS_W - 10, y + 4), font, 0.35, text, 1, cv2.LINE_AA)
    cv2.line(strip, (TRACE_AXIS_W, y_one), (TRACE_AXIS_W, y_zero), (150, 150, 150), 1)
    if len(values) >= 2:
        xs = np.linspace(TRACE_AXIS_W, width - 1, max(horizon, 2))[: len(values)]
        ys = y_zero - np.clip(values, 0, 1) * (y_zero - y_one)
        pts = np.stack([xs, ys], axis=1).astype(np.int32)[:, None, :]  # (T, 1, 2) x, y
        cv2.polylines(strip, [pts], False, (80, 220, 120), 1, cv2.LINE_AA)
    if values:
        label = f"Q={values[-1]:.2f}"
        label_w = cv2.getTextSize(label, font, 0.35, 1)[0][0] + 4
        draw_label(strip, label, (width - label_w - 2, 1), scale=0.35, box=(30, 30, 30))
    return strip


def write_rollout_video(path: str | Path, rollout: Rollout, fps: float = 10.0) -> Path:
    return write_video(path, rollout_panels(rollout), fps)
