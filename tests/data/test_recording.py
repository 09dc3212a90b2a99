"""record_rollout: T actions, T+1 frames, aligned with what the env returned."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import goalrl  # noqa: F401
from goalrl.data.recording import record_rollout


def test_record_rollout_aligns_frames_and_actions() -> None:
    env = gym.make("goalrl/Reach-v0", image_size=16, max_episode_steps=5)
    rng = np.random.default_rng(0)
    sent = []

    def act(obs):
        sent.append(rng.uniform(-1, 1, 4).astype(np.float32))
        return sent[-1]

    episode, last = record_rollout(env, act, seed=3)
    first, _ = env.reset(seed=3)
    env.close()
    assert episode.num_steps == 5 and len(episode.images) == 6 and episode.seed == 3
    np.testing.assert_array_equal(episode.actions, np.stack(sent))
    np.testing.assert_array_equal(episode.images[0], first["image"])
    np.testing.assert_array_equal(episode.images[-1], last["image"])
    np.testing.assert_array_equal(episode.achieved_goal[-1], last["achieved_goal"])
    assert episode.success.shape == (6,) and episode.rewards.shape == (5,)
    assert episode.info == {}
