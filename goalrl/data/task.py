"""Reward-labeled transitions for task fine-tuning: labels, Monte-Carlo returns, mixed batches.

Fine-tuning reads the task reward from the data, never from the goal images: a dataset
carries per-step ``rewards`` (what the simulator returned for (o_t, a_t)) and/or per-frame
``success`` labels. Either is enough; ``task_rewards`` turns them into r_t in {0, 1}.

Q of the task is, as in pretraining, a discounted probability of success: the TD target is
y = 1 where r_t = 1, else gamma * max_a' Q(o_{t+1}, a'). The matching Monte-Carlo return of
the logged behaviour is G_t = gamma ** (k - t), k the first rewarded step >= t of the episode
(0 when there is none); Cal-QL floors the conservative term at it (goalrl.agents.task_q).

The pure functions take frame-aligned arrays (one row per frame; the last frame of each
episode has no action and no reward) and episode boundaries as ``EpisodeDataset`` numbers
them; they are vectorised with numpy, no Python loop per frame.

``TaskBatchSampler`` draws transitions from the offline labeled data and, once the online
phase has collected episodes, from those at a fixed ratio (symmetric sampling as in RLPD:
a small online set is not drowned by the offline one, nor the other way round). With
``successful_only`` (behaviour cloning on successes) both draw from successful episodes only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from goalrl.data import keys
from goalrl.data.sampler import (
    episode_ends,
    episode_of,
    sample_transitions,
    state_vectors,
    stream_rng,
)
from goalrl.data.storage import DatasetError

MC_RETURN = "mc_return"  # (B,) float32: discounted Monte-Carlo return of the logged behaviour
ONLINE = "online"  # (B,) bool: the transition comes from an online (policy) episode


# ----------------------------------------------------------------------------- pure functions


def rewards_from_success(success: np.ndarray, has_next: np.ndarray) -> np.ndarray:
    """r_t = success of frame t + 1 (the action led to a success state): (N,) float32.

    ``success`` (N,) bool per frame, ``has_next`` (N,) bool, False on each episode's last frame
    (whose reward row is 0, as in the storage format).
    """
    success = np.asarray(success, dtype=bool)
    r = np.zeros(len(success), dtype=np.float32)
    r[:-1] = success[1:]
    r[~np.asarray(has_next, dtype=bool)] = 0.0
    return r


def success_from_rewards(rewards: np.ndarray, has_next: np.ndarray) -> np.ndarray:
    """Frame t + 1 is a success frame where r_t > 0: (N,) bool (the inverse of the above)."""
    rewarded = (np.asarray(rewards) > 0) & np.asarray(has_next, dtype=bool)
    success = np.zeros(len(rewarded), dtype=bool)
    success[1:] = rewarded[:-1]
    return success


def mc_returns(
    rewards: np.ndarray, episode_starts: np.ndarray, episode_lengths: np.ndarray, gamma: float
) -> np.ndarray:
    """G_t = gamma ** (k - t), k the first step >= t of t's episode with r_k > 0, else 0: (N,).

    Computed for all frames at once: the index of the next rewarded frame at or after t is a
    reversed running minimum over the whole array; it belongs to t's episode iff it is not
    past the episode's last frame (episodes tile [0, N) in order).
    """
    r = np.asarray(rewards) > 0
    n = len(r)
    t = np.arange(n, dtype=np.int64)
    idx = np.where(r, t, n)  # (N,) own index where rewarded, else "never"
    next_reward = np.minimum.accumulate(idx[::-1])[::-1]  # (N,) first rewarded frame >= t
    ends = episode_ends(episode_starts, episode_lengths)[episode_of(t, episode_starts)]  # (N,)
    within = next_reward < ends  # the last frame has no reward, so a valid k is < end
    steps = np.where(within, next_reward - t, 0)
    return np.where(within, np.power(float(gamma), steps), 0.0).astype(np.float32)


def last_success_frames(
    success: np.ndarray, episode_starts: np.ndarray, episode_lengths: np.ndarray
) -> np.ndarray:
    """The last success frame of every episode that has one: (S,) int64 global indices.

    For Grasp this is the object held up at the end of a successful attempt: the frames whose
    goal embeddings initialise the task embedding.
    """
    success = np.asarray(success, dtype=bool)
    starts = np.asarray(episode_starts, dtype=np.int64)
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.where(success, np.arange(len(success), dtype=np.int64), -1)  # (N,)
    last = np.maximum.reduceat(idx, starts)  # (E,) last success index per episode, or -1
    return last[last >= 0]


# ----------------------------------------------------------------------------- dataset level


def task_rewards(dataset: Any) -> np.ndarray:
    """r_t in {0, 1} for every frame of an ``EpisodeDataset``: (N,) float32.

    Per-step ``rewards`` win where the dataset has them (they are what the simulator or the
    labeler gave for the action); otherwise success labels give r_t = success[t + 1].
    """
    if dataset.rewards is not None:
        r = (dataset.rewards > 0).astype(np.float32)
        r[~dataset.has_next] = 0.0
        return r
    if dataset.success is not None:
        return rewards_from_success(dataset.success, dataset.has_next)
    raise DatasetError(
        f"{dataset.root}: the dataset has neither per-step 'rewards' nor per-frame 'success' "
        "labels, so it cannot define a task reward; collect it with "
        "`goalrl collect policy=grasp` (rewards recorded) or import it with reward labels"
    )


def task_success(dataset: Any) -> np.ndarray:
    """Success label of every frame: the ``success`` field, else derived from rewards: (N,)."""
    if dataset.success is not None:
        return np.asarray(dataset.success, dtype=bool)
    return success_from_rewards(task_rewards(dataset), dataset.has_next)


def successful_episodes(dataset: Any) -> np.ndarray:
    """(S,) int64 numbers of the episodes whose last frame is a success (the task done at the
    end): the episodes behaviour cloning on successes learns from."""
    final = task_success(dataset)[np.asarray(dataset.episode_ends, dtype=np.int64)]  # (E,)
    return np.flatnonzero(final).astype(np.int64)


class LabeledSource:
    """One reward-labeled dataset, with its rewards and Monte-Carlo returns precomputed.

    ``goal_images`` (E, H, W, 3), one per episode, adds each transition's episode goal image
    to its batches (goal-image task fine-tuning); None leaves GOAL_IMAGE out.
    ``successful_only``: transitions are drawn from the successful episodes alone
    (``successful_episodes``); a source without one has no transitions.
    ``observation="state"``: o_t and o_{t+1} come as OBS_STATE, NEXT_OBS_STATE (B, S) float32
    (``sampler.state_vectors``) and no image is read.
    """

    def __init__(self, dataset: Any, gamma: float, goal_images: np.ndarray | None = None,
                 successful_only: bool = False, observation: str = "image") -> None:
        if goal_images is not None and len(goal_images) != dataset.num_episodes:
            raise ValueError(
                f"{dataset.root}: {len(goal_images)} goal images for "
                f"{dataset.num_episodes} episodes"
            )
        self.dataset = dataset
        self.goal_images = goal_images
        # (N, S) float32, read once, for state batches
        self.states = state_vectors(dataset) if observation == "state" else None
        self.rewards = task_rewards(dataset)  # (N,)
        self.returns = mc_returns(
            self.rewards, dataset.episode_starts, dataset.episode_lengths, gamma
        )  # (N,)
        episodes = (successful_episodes(dataset) if successful_only
                    else np.arange(dataset.num_episodes, dtype=np.int64))  # (E',)
        self.starts = np.asarray(dataset.episode_starts, dtype=np.int64)[episodes]  # (E',)
        self.lengths = np.asarray(dataset.episode_lengths, dtype=np.int64)[episodes]  # (E',)

    @property
    def num_transitions(self) -> int:
        """Transitions the source draws from (of its episodes, all or the successful ones)."""
        return int(np.maximum(self.lengths - 1, 0).sum())

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n,) frame indices, uniform over the source's transitions."""
        return sample_transitions(rng, self.starts, self.lengths, n)

    def gather(self, t: np.ndarray) -> dict[str, np.ndarray]:
        """Transition batch for frame indices t (B,): images, actions, rewards, returns."""
        ds = self.dataset
        episode = ds.episode_of(t)  # (B,)
        last = ds.episode_ends[episode]  # (B,)
        if self.states is not None:
            batch = {keys.OBS_STATE: self.states[t], keys.NEXT_OBS_STATE: self.states[t + 1]}
        else:
            obs = np.empty((len(t), *ds.image_shape), dtype=np.uint8)  # (B, H, W, 3)
            nxt = np.empty_like(obs)
            ds.image_pairs(t, out=(obs, nxt))
            batch = {keys.OBS_IMAGE: obs, keys.NEXT_OBS_IMAGE: nxt}
        batch.update({
            keys.ACTION: ds.actions[t],  # (B, A)
            keys.REWARD: self.rewards[t],  # (B,)
            keys.DONE: t + 1 == last,  # (B,) o_{t+1} is the last frame (time limit)
            MC_RETURN: self.returns[t],  # (B,)
            keys.FRAME_INDEX: t,  # (B,)
        })
        if ds.proprio is not None:
            batch[keys.OBS_PROPRIO] = ds.proprio[t]  # (B, P)
            batch[keys.NEXT_OBS_PROPRIO] = ds.proprio[t + 1]  # (B, P)
        if self.goal_images is not None:
            batch[keys.GOAL_IMAGE] = self.goal_images[episode]  # (B, H, W, 3)
        return batch


class TaskBatchSampler:
    """Reward-labeled transition batches: offline data, plus online data at ``online_ratio``.

    Before any online episode exists every transition is offline. Afterwards
    round(batch_size * online_ratio) come from the online set and the rest from the offline
    one. ``set_online(dataset)`` swaps in a re-opened online dataset after new episodes.
    ``goal_images`` (and ``set_online``'s): one per episode, for goal-image task input.
    ``observation``: "image" or "state" (``LabeledSource``), offline and online alike.
    """

    def __init__(
        self,
        offline: Any,
        batch_size: int,
        *,
        gamma: float,
        online_ratio: float = 0.5,
        seed: int = 0,
        goal_images: np.ndarray | None = None,
        successful_only: bool = False,
        observation: str = "image",
    ) -> None:
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        if not 0.0 <= online_ratio <= 1.0:
            raise ValueError(f"online_ratio must be in [0, 1], got {online_ratio}")
        self.gamma = float(gamma)
        self.successful_only = bool(successful_only)
        self.observation = observation
        self.offline = LabeledSource(offline, self.gamma, goal_images, self.successful_only,
                                     observation)
        if self.offline.num_transitions <= 0:
            which = "successful episodes' " if self.successful_only else ""
            raise DatasetError(f"{offline.root}: no {which}transitions to fine-tune on")
        self.online: LabeledSource | None = None
        self.batch_size = int(batch_size)
        self.online_ratio = float(online_ratio)
        # A stream of its own (child 1 of the seed), independent of the goal sampler's.
        self.rng = stream_rng(seed, rank=1)

    def set_online(self, dataset: Any | None, goal_images: np.ndarray | None = None) -> None:
        self.online = None if dataset is None else LabeledSource(
            dataset, self.gamma, goal_images, self.successful_only, self.observation
        )

    def split(self) -> tuple[int, int]:
        """(offline, online) transitions in the next batch."""
        if self.online is None or self.online.num_transitions == 0:
            return self.batch_size, 0
        n_on = int(round(self.batch_size * self.online_ratio))
        return self.batch_size - n_on, n_on

    def state_dict(self) -> dict:
        """Position of the batch stream (a resumed fine-tuning run draws the same batches)."""
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["bit_generator"]

    def sample(self) -> dict[str, np.ndarray]:
        n_off, n_on = self.split()
        parts = []
        for source, n, online in ((self.offline, n_off, False), (self.online, n_on, True)):
            if n == 0 or source is None:
                continue
            part = source.gather(source.sample(self.rng, n))  # t: (n,) frame indices
            part[ONLINE] = np.full(n, online)
            parts.append(part)
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
