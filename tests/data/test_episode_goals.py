"""Episode goal images re-rendered from recorded seeds, and refusals of episodes they do not fit."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import goalrl  # noqa: F401  (registers the scene ids)
from goalrl.commands.collect import CollectConfig, collect
from goalrl.data.episode_goals import GoalImageRenderer
from goalrl.data.storage import DatasetError, DatasetWriter, EpisodeDataset

SIZE = 16


@pytest.fixture(scope="module")
def grasp(tmp_path_factory):
    root = tmp_path_factory.mktemp("goals") / "grasp"
    collect(CollectConfig(env="goalrl/Grasp-v0", policy="grasp", episodes=3, seed=40,
                          image_size=SIZE, sheet=False, out=str(root)))
    return EpisodeDataset(root)


@pytest.fixture
def renderer():
    with GoalImageRenderer("goalrl/Grasp-v0", SIZE) as r:
        yield r


def env_goal(seed: int) -> np.ndarray:
    env = gym.make("goalrl/Grasp-v0", image_size=SIZE)
    try:
        return env.reset(seed=seed)[0]["desired_goal_image"]
    finally:
        env.close()


def test_goal_images_are_the_envs_goals_for_the_recorded_seeds(grasp, renderer) -> None:
    goals = renderer.goal_images(grasp)
    assert goals.shape == (3, SIZE, SIZE, 3) and goals.dtype == np.uint8
    for i, seed in enumerate(grasp.seeds):
        np.testing.assert_array_equal(goals[i], env_goal(int(seed)))
    assert not np.array_equal(goals[0], goals[1])  # each episode has its own goal


def copy_with(src: EpisodeDataset, dst, seeds) -> EpisodeDataset:
    """The episodes of ``src`` rewritten with other seeds (None: no seed)."""
    with DatasetWriter(dst, image_shape=src.image_shape, action_dim=src.action_dim,
                       proprio_dim=src.proprio_dim, goal_dim=src.meta["goal_dim"],
                       state_dim=src.state_dim,
                       env_id=src.meta["env_id"]) as writer:
        for i, seed in enumerate(seeds):
            episode = src.episode(i)
            episode.seed = seed
            writer.append(episode)
    return EpisodeDataset(dst)


def test_an_episode_from_another_layout_is_refused_by_episode_and_seed(
    grasp, renderer, tmp_path
) -> None:
    shifted = copy_with(grasp, tmp_path / "shifted", [int(s) for s in grasp.seeds[:1]] + [7, 8])
    with pytest.raises(DatasetError, match=r"episode 1: .*seed 7 does not reproduce"):
        renderer.goal_images(shifted)
    unseeded = copy_with(grasp, tmp_path / "unseeded", [None])
    with pytest.raises(DatasetError, match="episode 0 has no env seed"):
        renderer.goal_images(unseeded)


def test_a_second_call_renders_only_episodes_it_has_not_seen(grasp, renderer) -> None:
    first = renderer.goal_images(grasp)
    resets = []
    original = renderer.env.reset
    renderer.env.reset = lambda **kw: resets.append(kw) or original(**kw)
    np.testing.assert_array_equal(renderer.goal_images(grasp), first)
    assert resets == []  # every seed was cached: no env reset, no frame re-read
