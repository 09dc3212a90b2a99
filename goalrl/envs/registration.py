"""Registers the gymnasium ids ``goalrl/<Task>-v0`` (done by ``import goalrl``)."""

from __future__ import annotations

import gymnasium as gym

from goalrl.envs.tasks import TASKS

ENV_IDS = tuple(f"goalrl/{name}-v0" for name in TASKS)


def register_envs() -> None:
    for name, task in TASKS.items():
        env_id = f"goalrl/{name}-v0"
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point="goalrl.envs.goal_env:TabletopGoalEnv",
            kwargs={"task": name},
            max_episode_steps=task.max_episode_steps,
        )
