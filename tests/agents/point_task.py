"""A toy goal-reaching task on state vectors for the value-based agents' learning tests.

A point in the square [-1, 1]^2 moves by 0.1 * a for actions a in [-1, 1]^2. The dataset holds
random-walk episodes (smoothly correlated random actions), so no episode is aimed at any goal:
reaching a given goal needs a policy read from a value (or the hindsight goals of the walks).
A rollout succeeds when the point comes within 0.1 of the goal. States are the ``proprio``
field, so a sampler with observation="state" reads them (images are 4x4 blanks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from goalrl.data.storage import DatasetWriter, EpisodeData

STEP, RADIUS, IMAGE_SHAPE = 0.1, 0.1, (4, 4, 3)


def write_point_dataset(root: Path, episodes: int = 150, length: int = 40, seed: int = 0) -> Path:
    """``episodes`` random walks of ``length`` frames in a goalrl dataset at ``root``."""
    rng = np.random.default_rng(seed)
    with DatasetWriter(root, image_shape=IMAGE_SHAPE, action_dim=2, proprio_dim=2,
                       durable=False) as writer:
        for _ in range(episodes):
            states = np.empty((length, 2), np.float32)
            actions = np.empty((length - 1, 2), np.float32)
            states[0] = rng.uniform(-1, 1, 2)
            a = rng.uniform(-1, 1, 2)
            for t in range(length - 1):
                a = np.clip(0.6 * a + 0.8 * rng.normal(size=2), -1, 1)  # correlated noise
                actions[t] = a
                states[t + 1] = np.clip(states[t] + STEP * a, -1, 1)
            writer.append(EpisodeData(images=np.zeros((length, *IMAGE_SHAPE), np.uint8),
                                      actions=actions, proprio=states))
    return root


def success_rate(act: Any, episodes: int = 64, horizon: int = 25, seed: int = 1) -> float:
    """Fraction of (start, goal) pairs, goal 0.3 to 0.8 away, that ``act(states (E, 2), goals
    (E, 2)) -> actions (E, 2)`` reaches within ``horizon`` steps (all pairs run as one batch)."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(-0.6, 0.6, (episodes, 2)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi, episodes)
    dist = rng.uniform(0.3, 0.8, episodes)
    goal = np.clip(start + dist[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1), -1, 1)
    goal = goal.astype(np.float32)
    state, reached = start.copy(), np.zeros(episodes, bool)
    for _ in range(horizon):
        action = np.clip(np.asarray(act(state, goal), np.float32), -1, 1)
        state = np.clip(state + STEP * action, -1, 1).astype(np.float32)
        reached |= np.linalg.norm(state - goal, axis=1) < RADIUS
    return float(reached.mean())


def random_policy(seed: int = 2) -> Any:
    rng = np.random.default_rng(seed)
    return lambda state, goal: rng.uniform(-1, 1, state.shape)


# ----------------------------------------------------------------------------- unit-test inputs

SIZE, A, P, S = 16, 3, 4, 5  # image side, action, proprio and state widths of the unit tests


def tiny_encoder(kind: str) -> Any:
    """A small encoder of either kind (state: S-d vectors)."""
    from goalrl.agents.config import EncoderConfig

    if kind == "state":
        return EncoderConfig(kind="state", state_dim=S, state_hidden=[16], embed_dim=16,
                             fusion_dim=32)
    return EncoderConfig(conv_channels=[8, 8], embed_dim=16, fusion_dim=32)


def frames_batch(kind: str, b: int = 8, seed: int = 0, proprio: bool = False) -> dict[str, Any]:
    """A batch as a mixture sampler gives it: obs, next obs, value and actor goals of ``kind``,
    AT_GOAL on the first quarter of the rows (their goal index is their frame index)."""
    from goalrl.data import keys as K

    rng = np.random.default_rng(seed)
    if kind == "state":
        frame = lambda: rng.normal(size=(b, S)).astype(np.float32)  # noqa: E731
        names = (K.OBS_STATE, K.NEXT_OBS_STATE, K.GOAL_STATE, K.ACTOR_GOAL_STATE)
    else:
        frame = lambda: rng.integers(0, 256, (b, SIZE, SIZE, 3), dtype=np.uint8)  # noqa: E731
        names = (K.OBS_IMAGE, K.NEXT_OBS_IMAGE, K.GOAL_IMAGE, K.ACTOR_GOAL_IMAGE)
    t = np.arange(b, dtype=np.int64) * 10
    goal = np.where(np.arange(b) < b // 4, t, t + 3)
    batch = {name: frame() for name in names}
    batch.update({
        K.ACTION: rng.uniform(-1, 1, (b, A)).astype(np.float32),
        K.FRAME_INDEX: t, K.GOAL_INDEX: goal, K.AT_GOAL: goal == t,
        K.ACTOR_GOAL_INDEX: t + 5,
    })
    if proprio:
        batch[K.OBS_PROPRIO] = rng.normal(size=(b, P)).astype(np.float32)
        batch[K.NEXT_OBS_PROPRIO] = rng.normal(size=(b, P)).astype(np.float32)
    return batch


def point_sampler(cfg: Any, ds: Any, batch_size: int, seed: int = 0) -> Any:
    """The sampler pretraining builds for agent config ``cfg`` (goal mixtures, subgoals for HIQL)
    on the point dataset ``ds`` (an EpisodeDataset)."""
    from goalrl.data.sampler import GoalBatchSampler

    return GoalBatchSampler(ds, batch_size, gamma=cfg.gamma, observation="state",
                            value_goals=cfg.value_goals, actor_goals=cfg.actor_goals,
                            subgoal_steps=getattr(cfg, "subgoal_steps", 0), seed=seed)


def train_on_points(agent: Any, data: Path, steps: int, batch_size: int = 256) -> Any:
    """``steps`` updates of ``agent`` on the point dataset with its own goal mixtures."""
    from goalrl.data.storage import EpisodeDataset

    with EpisodeDataset(data) as ds:
        sampler = point_sampler(agent.cfg, ds, batch_size)
        for _ in range(steps):
            agent.update(sampler.sample())
    return agent
