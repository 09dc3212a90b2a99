"""Registers the gymnasium ids ``goalrl/<Task>-v0`` (done by ``import goalrl``)."""

from __future__ import annotations

import gymnasium as gym

from goalrl.envs.tasks import TASKS, Task

# reward-defined tasks (issue 42): id -> (entry point, episode steps, scene); success is a
# reward
REWARD_TASK_ENVS = {
    "goalrl/RearrangeTray-v0": ("goalrl.envs.tray_task:TrayTaskEnv", 80, "Rearrange"),
}
ENV_IDS = (*(f"goalrl/{name}-v0" for name in TASKS), *REWARD_TASK_ENVS)


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
    for env_id, (entry_point, steps, _) in REWARD_TASK_ENVS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=steps)


def scene_task(env_id: str | None) -> Task | None:
    """The scene (``goalrl.envs.tasks.Task``) behind a goalrl env id; None for other ids."""
    if env_id in REWARD_TASK_ENVS:
        return TASKS[REWARD_TASK_ENVS[env_id][2]]
    for name, task in TASKS.items():
        if env_id == f"goalrl/{name}-v0":
            return task
    return None
