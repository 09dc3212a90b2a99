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
from goalrl.envs.state import STATE_KEY
from goalrl.errors import UserError

# valid values of `policy`: play (scripted noisy sub-skills), stitch (one skill per episode,
# the episode ends with it), random (uniform actions), grasp (one scripted grasp attempt),
# tray (one scripted pick-and-place into the tray: goalrl/RearrangeTray-v0's labeled data)
POLICIES = ("play", "stitch", "random", "grasp", "tray")
MIX_POLICIES = ("play", "stitch")  # the policies that draw skills from a mix
STITCH_ATTEMPTS = 20  # draws of a stitch episode before collection gives up on its seed


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
    noise: str = "gaussian",
    noise_theta: float = 0.15,
    random_steps: tuple[int, int] = (5, 15),
) -> CollectedEpisode:
    """One episode, recorded frame by frame (T actions, T+1 frames), on this process's
    simulator for the scene (``scene``); the arguments are ``goalrl collect``'s fields.

    A stitch episode whose skill moved the objects farther than one skill may
    (``goalrl.envs.single_skill.ONE_SKILL``) is redrawn from the same start with another
    policy seed ([seed, attempt]); ``info["attempts"]`` counts the draws.
    """
    from goalrl.data.recording import record_rollout
    from goalrl.envs.play import GraspAttemptPolicy, PlayPolicy
    from goalrl.envs.single_skill import EndWithSkill, SingleSkillPolicy, within_one_skill

    env = scene(env_id, image_size)
    kwargs: dict[str, Any] = {"action_noise": action_noise}
    if waypoint_noise is not None:
        kwargs["waypoint_noise"] = waypoint_noise
    if policy in MIX_POLICIES:
        kwargs.update(skill_weights=skill_weights or None, noise=noise, noise_theta=noise_theta,
                      random_steps=tuple(random_steps))
    if policy == "grasp":
        actor = GraspAttemptPolicy(env.unwrapped, seed=seed, **kwargs)
    elif policy == "tray":  # goalrl/RearrangeTray-v0's labeled data (goalrl.envs.tray_task)
        from goalrl.envs.tray_task import TrayAttemptPolicy

        actor = TrayAttemptPolicy(env.unwrapped, seed=seed, **kwargs)
    elif policy != "stitch":
        actor = PlayPolicy(env.unwrapped, seed=seed, **kwargs)

    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        if policy == "random":
            return actor.rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        return actor(obs)

    attempts = 1
    if policy == "stitch":
        for attempts in range(1, STITCH_ATTEMPTS + 1):
            actor = SingleSkillPolicy(env.unwrapped, seed=seed if attempts == 1
                                      else [seed, attempts - 1], **kwargs)
            # the episode ends with its one skill
            episode, obs = record_rollout(EndWithSkill(env, actor), act, seed)
            if within_one_skill(env.unwrapped.task.name, episode.achieved_goal):
                break
        else:
            raise CollectError(f"{env_id} seed {seed}: no stitch episode kept its one skill's "
                               f"reach in {STITCH_ATTEMPTS} draws")
    else:
        episode, obs = record_rollout(env, act, seed)
    episode.info = {
        "policy": policy,
        "desired_goal": obs["desired_goal"].tolist(),
        "skills": actor.stats.summary(),
        **({"skill_weights": dict(skill_weights)} if skill_weights else {}),
        **({"noise": noise, "noise_theta": noise_theta} if noise != "gaussian" else {}),
        **({"attempts": attempts} if policy == "stitch" else {}),
    }
    return CollectedEpisode(episode, obs["desired_goal_image"], actor.stats)


def _run_episode_args(args: tuple[str, int, dict[str, Any]]) -> CollectedEpisode:
    env_id, seed, settings = args
    return run_episode(env_id, seed, **settings)


def iter_episodes(
    jobs: list[tuple[str, int, dict[str, Any]]], workers: int
) -> Iterator[CollectedEpisode]:
    """Episodes of ``jobs`` ((env id, seed, other ``run_episode`` arguments) tuples) in
    order, from ``workers`` processes."""
    if workers <= 1:
        try:
            yield from map(_run_episode_args, jobs)
        finally:
            close_scenes()
        return
    # spawn: pybullet clients and threads must not be inherited through fork
    with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:  # no idle processes
        yield from pool.imap(_run_episode_args, jobs, chunksize=1)


def env_spec(env_id: str, image_size: int) -> dict[str, Any]:
    """Action/proprio/goal sizes and the action bounds of a scene, read off one instance."""
    import gymnasium as gym

    import goalrl  # noqa: F401

    env = gym.make(env_id, image_size=image_size)
    try:
        space = env.observation_space
        return {
            "action_dim": int(env.action_space.shape[0]),
            "action_low": env.action_space.low.astype(float).tolist(),
            "action_high": env.action_space.high.astype(float).tolist(),
            "proprio_dim": int(space["observation"].shape[0]),
            "goal_dim": int(space["achieved_goal"].shape[0]),
            "state_dim": int(space[STATE_KEY].shape[0]),
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
    noise: str = "gaussian",
    noise_theta: float = 0.15,
    random_steps: Sequence[int] = (5, 15),
    benchmark: str | None = None,
    audit_goals: str | None = None,
    audit_per_task: int = 20,
    sheet: bool = True,
    sheet_episodes: int = 8,
) -> dict[str, Any]:
    """Collect until the dataset at ``out`` holds ``episodes`` episodes; return a summary.

    The arguments are those of ``goalrl collect`` (``goalrl.commands.collect.CollectConfig``
    describes each one).
    """
    from tqdm import tqdm

    from goalrl.envs.goal_env import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
    from goalrl.envs.registration import ENV_IDS

    if env not in ENV_IDS:
        raise CollectError(f"env={env!r} is not a goalrl scene; choose one of {list(ENV_IDS)}")
    if policy not in POLICIES:
        raise CollectError(f"policy={policy!r}: choose one of {list(POLICIES)}")
    if episodes < 1 or workers < 1:
        raise CollectError(f"episodes and workers must be >= 1, got {episodes}, {workers}")
    if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise CollectError(f"image_size={image_size}: expected {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE} "
                           "pixels")
    check_seeds(seed, episodes)
    skill_weights = dict(skill_weights or {})
    check_skill_weights(skill_weights, policy)
    check_noise(policy, noise, noise_theta, random_steps)
    settings = {"image_size": image_size, "policy": policy, "action_noise": action_noise,
                "waypoint_noise": waypoint_noise, "skill_weights": skill_weights,
                "noise": noise, "noise_theta": noise_theta,
                "random_steps": tuple(int(n) for n in random_steps)}
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
        state_dim=spec["state_dim"],
        env_id=env,
        source=f"goalrl collect policy={policy}",
        fps=10.0,
        extra_meta={"collect": {"benchmark": benchmark, "env": env, "seed": seed, **settings}},
    ) as writer:
        start = writer.num_episodes
        seeds = [seed + i for i in range(start, max(start, episodes))]
        jobs = [(env, s, settings) for s in seeds]
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
    audit = None
    if audit_goals:
        from goalrl.benchmark.audit import audit_dataset, record_in_card

        audit = audit_dataset(out, goals=audit_goals, per_task=audit_per_task)
        record_in_card(out, "audit", audit)
    return {
        "env": env,
        "benchmark": benchmark,
        "out": str(out),
        "episodes_added": len(seeds),
        "episodes_total": total,
        "frames_added": frames,
        "seeds": [seeds[0], seeds[-1]] if seeds else [],
        "skills": stats.summary(),
        "contact_sheet": sheet_path,
        "audit": None if audit is None else {
            k: audit[k] for k in ("goals", "pairs", "pairs_in_one_episode", "by_task")},
    }


def check_seeds(seed: int, episodes: int) -> None:
    """CollectError unless episodes use seeds in [0, COLLECT_SEED_LIMIT): evaluation goals
    are drawn from the seeds above (goalrl.benchmark.goals)."""
    from goalrl.benchmark.goals import COLLECT_SEED_LIMIT

    if seed < 0 or seed + episodes > COLLECT_SEED_LIMIT:
        raise CollectError(
            f"seed={seed}, episodes={episodes}: training episodes must use env seeds in "
            f"[0, {COLLECT_SEED_LIMIT}); the seeds above belong to evaluation goals"
        )


def check_noise(policy: str, noise: str, noise_theta: float, random_steps: Sequence[int]) -> None:
    """CollectError naming the field unless the noise settings can work."""
    from goalrl.envs.noise import NOISE_KINDS

    if noise not in NOISE_KINDS:
        raise CollectError(f"noise={noise!r}: choose one of {list(NOISE_KINDS)}")
    if noise != "gaussian" and policy not in MIX_POLICIES:
        raise CollectError(f"noise={noise!r} applies to policy=play or stitch, not {policy!r}")
    if not 0.0 < noise_theta <= 1.0:
        raise CollectError(f"noise_theta={noise_theta}: expected a value in (0, 1]")
    steps = list(random_steps)
    if len(steps) != 2 or not 1 <= steps[0] < steps[1]:
        raise CollectError(f"random_steps={steps}: expected [low, high] with 1 <= low < high")


def check_skill_weights(weights: dict[str, float], policy: str) -> None:
    """CollectError naming the key or value unless ``weights`` is a usable play mix."""
    from goalrl.envs.play import SKILLS

    if not weights:
        return
    if policy not in MIX_POLICIES:
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
