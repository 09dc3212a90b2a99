"""The benchmark goals' yardstick: a scripted pusher that reads the true goal layout.

Not a learner. It shows that every named task can be solved within the benchmark's rollout
length (``goals.EVAL_STEPS``) and gives the success a policy with privileged state reaches,
per task, beside the learned policies (bench/oracle.py writes docs/benchmarks/oracle.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from goalrl.benchmark.goals import eval_goals, eval_steps

# Shorter pushes with a looser stop than GoalPushPolicy's defaults (0.15 m, 2 cm): the long
# pushes slid the cube off the fingers and the tight stop kept re-pushing an arrived cube;
# these settings solved the most test and val episodes of the combinations tried at 100 steps.
PUSH_SETTINGS = {"max_push": 0.10, "tolerance": 0.03}


@dataclass
class OracleEpisode:
    """One scripted rollout toward a benchmark goal; with ``record``, the path it took."""

    goal: Any  # goals.EvalGoal: split, task, seed
    success: bool  # at the last step
    first_success_step: int | None
    final_distance: float
    states: np.ndarray | None = None  # (T + 1, S) the env's ``state`` from reset to the end
    proprio: np.ndarray | None = None  # (T + 1, P)
    actions: np.ndarray | None = None  # (T, A) the pusher's
    goal_state: np.ndarray | None = None  # (S,) ``desired_goal_state``


def oracle_episodes(env_id: str, goals: str = "test", per_task: int = 10,
                    steps: int | None = None, record: bool = False) -> Iterator[OracleEpisode]:
    """The scripted pusher's rollout toward each benchmark goal of ``goals``, in order."""
    import gymnasium as gym

    from goalrl.envs.play import GoalPushPolicy
    from goalrl.envs.registration import register_envs

    register_envs()
    steps = steps or eval_steps(env_id)
    env = gym.make(env_id, image_size=8, max_episode_steps=steps)
    try:
        for goal in eval_goals(env_id, goals, per_task):
            obs, _ = env.reset(seed=goal.seed, options=goal.reset_options())
            # GoalPushPolicy refuses scenes it cannot solve (containers, Reach) by name
            policy = GoalPushPolicy(env.unwrapped, seed=goal.seed, **PUSH_SETTINGS)
            seen, actions, first, info = [obs], [], None, {}
            for t in range(steps):
                actions.append(policy(obs))
                obs, _, terminated, truncated, info = env.step(actions[-1])
                seen.append(obs)
                if first is None and info.get("is_success"):
                    first = t + 1
                if terminated or truncated:
                    break
            episode = OracleEpisode(goal, bool(info.get("is_success")), first,
                                    float(info.get("distance", float("nan"))))
            if record:
                episode.states = np.stack([o["state"] for o in seen]).astype(np.float32)
                episode.proprio = np.stack([o["observation"] for o in seen]).astype(np.float32)
                episode.actions = np.stack(actions).astype(np.float32)
                episode.goal_state = np.asarray(seen[0]["desired_goal_state"], np.float32)
            yield episode
    finally:
        env.close()


def oracle_rollouts(env_id: str, goals: str = "test", per_task: int = 10,
                    steps: int | None = None) -> list[dict[str, Any]]:
    """One scripted rollout per benchmark goal of ``goals``: dicts of split, task, seed,
    success at the last step, first successful step (None if never), final distance."""
    return [{"split": e.goal.split, "task": e.goal.task, "seed": e.goal.seed,
             "success": e.success, "first_success_step": e.first_success_step,
             "final_distance": e.final_distance}
            for e in oracle_episodes(env_id, goals, per_task, steps)]
