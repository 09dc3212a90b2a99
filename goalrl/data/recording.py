"""Record one simulator episode, frame by frame, as ``EpisodeData`` (T actions, T+1 frames)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from goalrl.data.storage import EpisodeData
from goalrl.envs.state import STATE_KEY


def record_rollout(
    env: Any, act: Callable[[dict[str, np.ndarray]], np.ndarray], seed: int
) -> tuple[EpisodeData, dict[str, np.ndarray]]:
    """Run ``act(obs) -> action`` from ``env.reset(seed=seed)`` until the episode ends.

    Returns the episode (``info`` left empty for the caller) and the last observation.
    """
    obs, info = env.reset(seed=seed)
    images, proprio, achieved = [obs["image"]], [obs["observation"]], [obs["achieved_goal"]]
    states = [obs[STATE_KEY]]
    success, actions, rewards = [info["is_success"]], [], []
    done = False
    while not done:
        action = act(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        actions.append(action)
        rewards.append(reward)
        images.append(obs["image"])
        proprio.append(obs["observation"])
        achieved.append(obs["achieved_goal"])
        states.append(obs[STATE_KEY])
        success.append(info["is_success"])
        done = terminated or truncated
    episode = EpisodeData(
        images=np.stack(images),  # (T+1, H, W, 3)
        actions=np.stack(actions).astype(np.float32),  # (T, A)
        proprio=np.stack(proprio).astype(np.float32),  # (T+1, P)
        rewards=np.asarray(rewards, dtype=np.float32),  # (T,)
        success=np.asarray(success, dtype=bool),  # (T+1,)
        achieved_goal=np.stack(achieved).astype(np.float32),  # (T+1, G)
        state=np.stack(states).astype(np.float32),  # (T+1, S)
        seed=seed,
    )
    return episode, obs
