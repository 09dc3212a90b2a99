"""Fine-tuning's online phase: the current policy plays episodes of the task scene, recorded
with the simulator's rewards into ``<out>/online`` (a goalrl dataset) and mixed into the task
batches from then on."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

ONLINE_SEED_OFFSET = 500_000  # online episodes use env seeds from here (eval seeds: 1,000,000+)


def record_episode(env: Any, agent: Any, seed: int, explore_std: float) -> Any:
    """One episode of the current policy with exploration noise, as EpisodeData. The agent
    reads the env's ``image``, or its ``state`` when the network reads states
    (``agent.observation``); the scene's goal image is handed to it only if it reads one
    (``uses_goal_image``): a task given by its reward alone is played without it."""
    from goalrl.data.recording import record_rollout
    from goalrl.evaluate import OBSERVATION_KEYS

    obs_key = OBSERVATION_KEYS[getattr(agent, "observation", "image")][0]

    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        goal = obs["desired_goal_image"] if agent.uses_goal_image else None
        return agent.act(obs[obs_key], goal, obs["observation"], explore_std=explore_std)

    episode, _ = record_rollout(env, act, seed)
    episode.info = {"policy": "finetune-online", "explore_std": explore_std, "step": agent.step}
    return episode


class OnlinePhase:
    """The hook the training loop calls before each update (``before_update``): from update
    ``cfg.steps`` on, every ``cfg.updates_per_episode`` updates, one new policy episode.

    The simulator and the online dataset are opened on the first episode.
    """

    def __init__(self, cfg: Any, dataset: Any, spec: dict[str, Any], sampler: Any,
                 goals: Any = None, writer: Any = None) -> None:
        self.cfg, self.dataset, self.spec = cfg, dataset, spec
        self.sampler = sampler  # TaskBatchSampler: takes the online dataset
        self.goals = goals  # GoalImageRenderer with goal-image task input, else None
        self.writer = writer
        self.root = Path(cfg.out) / "online"
        self.env: Any = None
        self.recorder: Any = None  # DatasetWriter of <out>/online
        self.online: Any = None  # the online episodes so far, as an EpisodeDataset
        self.episodes = 0
        self.successes = 0

    def before_update(self, agent: Any, step: int) -> None:
        """Play an episode if update ``step + 1`` is due one."""
        cfg = self.cfg
        if step < cfg.steps or (step - cfg.steps) % cfg.updates_per_episode:
            return
        self.collect(agent)
        self.sampler.set_online(self.online,
                                self.goals.goal_images(self.online) if self.goals else None)
        if self.writer is not None:
            self.writer.add_scalar("online/episodes", self.episodes, step)
            self.writer.add_scalar("online/success_rate", self.successes / self.episodes, step)

    def collect(self, agent: Any) -> None:
        """Play one episode, append it, and re-open the online dataset."""
        from goalrl.data.storage import EpisodeDataset

        if self.env is None:
            self.open()
        seed = ONLINE_SEED_OFFSET + self.cfg.seed * 10_000 + self.episodes
        episode = record_episode(self.env, agent, seed, self.cfg.explore_std)
        if self.dataset.state_dim is None:  # labeled data from before the field: mix alike
            episode.state = None
        self.recorder.append(episode)
        self.episodes += 1
        self.successes += int(episode.success[-1])
        if self.online is not None:
            self.online.close()
        self.online = EpisodeDataset(self.root)

    def open(self) -> None:
        import gymnasium as gym

        import goalrl  # noqa: F401  (registers the scene ids)
        from goalrl.data.storage import DatasetWriter

        spec = self.spec
        self.env = gym.make(self.cfg.task, image_size=self.dataset.image_shape[0])
        self.recorder = DatasetWriter(
            self.root,
            image_shape=tuple(self.dataset.image_shape),
            action_dim=spec["action_dim"],
            proprio_dim=spec["proprio_dim"],
            goal_dim=spec["goal_dim"],
            state_dim=self.dataset.state_dim,
            env_id=self.cfg.task,
            source="goalrl finetune (online policy episodes)",
            has_rewards=True,
            has_success=True,
            durable=False,
        )

    def restore(self, episodes: int) -> None:
        """Resuming: keep the first ``episodes`` online episodes (those the resumed checkpoint
        had trained on) and drop any recorded after it, so the run goes on as if never stopped."""
        from goalrl.data.storage import META_FILE, EpisodeDataset
        from goalrl.data.storage.repair import keep_first_episodes
        from goalrl.training.checks import TrainingError

        if episodes == 0:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        try:
            if not (self.root / META_FILE).is_file():
                raise ValueError(f"{self.root}: holds no online episodes")
            keep_first_episodes(self.root, episodes, "recorded after the checkpoint a resumed "
                                "run started from", durable=False)
        except ValueError as err:  # fewer episodes than the checkpoint had trained on
            raise TrainingError(f"{err}; the checkpoint being resumed had played {episodes} "
                                "online episodes: start a new run (another out=)") from None
        self.online = EpisodeDataset(self.root)
        self.episodes = episodes
        self.successes = int(self.online.success[self.online.episode_ends].sum())
        self.sampler.set_online(self.online,
                                self.goals.goal_images(self.online) if self.goals else None)

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.episodes if self.episodes else None

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
        if self.env is not None:
            self.env.close()
        if self.online is not None:
            self.online.close()
