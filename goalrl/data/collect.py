"""Collecting scripted play episodes from a scene into a dataset.

Episode ``i`` of a dataset uses env seed ``seed + i``, so a collection is the same
whatever the number of workers, and an interrupted one resumes where it stopped:
``episodes`` is the total the dataset should hold, finished episodes are kept.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from goalrl.data.storage import DatasetWriter, EpisodeData
from goalrl.envs.play import SkillStats
from goalrl.errors import UserError

POLICIES = ("play", "random", "grasp")  # valid values of `policy`


class CollectError(UserError, ValueError):
    """Collection settings that cannot work (unknown scene or policy, a bad skill mix)."""


@dataclass
class CollectedEpisode:
    episode: EpisodeData
    goal_image: np.ndarray  # (H, W, 3) uint8 goal image the env drew for this seed
    stats: SkillStats


# This process's simulators, one per (scene, image size), kept across episodes: building a
# pybullet scene (loading its URDFs, about 50 ms) cost Push collection 8-9% of its time
# (docs/lab-notes.md). reset(seed=s) rebuilds everything an episode reads,
# so episode s is the same from a fresh or a reused simulator.
_SCENES: dict[tuple[str, int], Any] = {}


def scene(env_id: str, image_size: int) -> Any:
    """This process's simulator for ``env_id`` at ``image_size``, made on first use."""
    import gymnasium as gym

    import goalrl  # noqa: F401  (registers the ids in worker processes)

    key = (env_id, image_size)
    if key not in _SCENES:
        _SCENES[key] = gym.make(env_id, image_size=image_size)
    return _SCENES[key]


def close_scenes() -> None:
    """Close this process's simulators (worker processes close theirs when they exit)."""
    while _SCENES:
        _SCENES.popitem()[1].close()


def run_episode(
    env_id: str,
    seed: int,
    image_size: int,
    policy: str,
    action_noise: float,
    waypoint_noise: float | None = None,
    skill_weights: dict[str, float] | None = None,
) -> CollectedEpisode:
    """One play episode, recorded frame by frame (T actions, T+1 frames), on this process's
    simulator for the scene (``scene``)."""
    from goalrl.data.recording import record_rollout
    from goalrl.envs.play import GraspAttemptPolicy, PlayPolicy

    env = scene(env_id, image_size)
    noise = {} if waypoint_noise is None else {"waypoint_noise": waypoint_noise}
    if policy == "grasp":
        actor = GraspAttemptPolicy(env.unwrapped, seed=seed, action_noise=action_noise,
                                   **noise)
    else:
        actor = PlayPolicy(env.unwrapped, seed=seed, action_noise=action_noise,
                           skill_weights=skill_weights or None, **noise)

    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        if policy in ("play", "grasp"):
            return actor(obs)
        return actor.rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)

    episode, obs = record_rollout(env, act, seed)
    episode.info = {
        "policy": policy,
        "desired_goal": obs["desired_goal"].tolist(),
        "skills": actor.stats.summary(),
        **({"skill_weights": dict(skill_weights)} if skill_weights else {}),
    }
    return CollectedEpisode(episode, obs["desired_goal_image"], actor.stats)


def _run_episode_args(args: tuple[Any, ...]) -> CollectedEpisode:
    return run_episode(*args)


def iter_episodes(jobs: list[tuple[Any, ...]], workers: int) -> Iterator[CollectedEpisode]:
    """Episodes of ``jobs`` (``run_episode`` argument tuples) in order, from ``workers``
    processes."""
    if workers <= 1:
        try:
            yield from map(_run_episode_args, jobs)
        finally:
            close_scenes()
        return
    # spawn: pybullet clients and threads must not be inherited through fork
    with mp.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(_run_episode_args, jobs, chunksize=1)


def env_spec(env_id: str, image_size: int) -> dict[str, Any]:
    """Action/proprio/goal sizes of a scene, read off one instance."""
    import gymnasium as gym

    import goalrl  # noqa: F401

    env = gym.make(env_id, image_size=image_size)
    try:
        space = env.observation_space
        return {
            "action_dim": int(env.action_space.shape[0]),
            "proprio_dim": int(space["observation"].shape[0]),
            "goal_dim": int(space["achieved_goal"].shape[0]),
            "max_episode_steps": env.spec.max_episode_steps if env.spec else None,
        }
    finally:
        env.close()


def collect_dataset(
    out: str | Path,
    *,
    env: str,
    episodes: int,
    workers: int = 1,
    policy: str = "play",
    image_size: int = 64,
    seed: int = 0,
    action_noise: float = 0.15,
    waypoint_noise: float | None = None,
    skill_weights: dict[str, float] | None = None,
    sheet: bool = True,
    sheet_episodes: int = 8,
) -> dict[str, Any]:
    """Collect until the dataset at ``out`` holds ``episodes`` episodes; return a summary.

    The arguments are those of ``goalrl collect`` (``goalrl.commands.collect.CollectConfig``
    describes each one).
    """
    from tqdm import tqdm

    from goalrl.envs.registration import ENV_IDS

    if env not in ENV_IDS:
        raise CollectError(f"env={env!r} is not a goalrl scene; choose one of {list(ENV_IDS)}")
    if policy not in POLICIES:
        raise CollectError(f"policy={policy!r}: choose play, random or grasp")
    if episodes < 1 or workers < 1:
        raise CollectError(f"episodes and workers must be >= 1, got {episodes}, {workers}")
    skill_weights = dict(skill_weights or {})
    check_skill_weights(skill_weights, policy)
    spec = env_spec(env, image_size)
    out = Path(out)
    stats = SkillStats()
    sheet_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    sheet_labels: list[tuple[str, str]] = []  # (episode, seed) of each sheet row
    with DatasetWriter(
        out,
        image_shape=(image_size, image_size, 3),
        action_dim=spec["action_dim"],
        proprio_dim=spec["proprio_dim"],
        goal_dim=spec["goal_dim"],
        env_id=env,
        source=f"goalrl collect policy={policy}",
        fps=10.0,
    ) as writer:
        start = writer.num_episodes
        seeds = [seed + i for i in range(start, max(start, episodes))]
        jobs = [(env, s, image_size, policy, action_noise, waypoint_noise, dict(skill_weights))
                for s in seeds]
        bar = tqdm(total=len(seeds), desc=f"collect {env}", unit="ep", disable=None)
        frames = 0
        for item in iter_episodes(jobs, workers):
            index = writer.append(item.episode)
            stats.merge(item.stats)
            frames += len(item.episode.images)
            if len(sheet_rows) < sheet_episodes:
                ep = item.episode
                sheet_rows.append((ep.images[0], item.goal_image, ep.images[-1]))
                sheet_labels.append((f"ep {index}", f"seed {ep.seed}"))
            bar.update(1)
        bar.close()
        total = writer.num_episodes
    sheet_path = None
    if sheet and sheet_rows:
        sheet_path = str(out / "contact_sheet.png")
        write_contact_sheet(sheet_path, sheet_rows, ("start", "goal", "end"),
                            row_labels=sheet_labels)
    return {
        "env": env,
        "out": str(out),
        "episodes_added": len(seeds),
        "episodes_total": total,
        "frames_added": frames,
        "seeds": [seeds[0], seeds[-1]] if seeds else [],
        "skills": stats.summary(),
        "contact_sheet": sheet_path,
    }


def check_skill_weights(weights: dict[str, float], policy: str) -> None:
    """CollectError naming the key or value unless ``weights`` is a usable play mix."""
    from goalrl.envs.play import SKILLS

    if not weights:
        return
    if policy != "play":
        raise CollectError(f"skill_weights is a mix of play skills; policy={policy!r} has none")
    for skill, weight in weights.items():
        if skill not in SKILLS:
            raise CollectError(f"skill_weights.{skill}: unknown skill; choose from {list(SKILLS)}")
        if not weight >= 0:  # NaN fails too
            raise CollectError(f"skill_weights.{skill}={weight}: expected a weight >= 0")
    if sum(weights.values()) <= 0:
        raise CollectError(f"skill_weights {weights}: at least one weight must be above 0")


def write_contact_sheet(
    path: str,
    rows: list[tuple[np.ndarray, ...]],
    labels: tuple[str, ...],
    scale: int = 2,
    row_labels: Sequence[Sequence[str]] = (),
) -> None:
    """A PNG grid: one row per episode (``row_labels``: its lines, e.g. episode and seed, on
    the left), one labelled column per image."""
    from goalrl.data.sheets import image_grid, write_png_atomic

    grid = image_grid([list(r) for r in rows], labels, scale=scale, row_labels=row_labels)
    write_png_atomic(path, grid)
