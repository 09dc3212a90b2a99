"""Goal-conditioned batch sampling: hindsight relabeling and goal chaining.

The index functions are pure and fully vectorised (numpy only, no Python loop per
transition): episodes are given by ``episode_starts`` / ``episode_lengths`` (frames per
episode, T+1), the episode of a frame is found with ``np.searchsorted``. They assume the
episodes tile the global frame range [0, N) in order, as ``EpisodeDataset`` numbers them.

``GoalBatchSampler`` turns the indices into batches (dicts keyed by goalrl.data.keys) read
from an ``EpisodeDataset``; ``GoalBatchSampler.prefetch`` runs it ahead in background threads
with the same sequence of batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from goalrl.data import keys

GOAL_MODES = ("uniform", "geometric")


# ----------------------------------------------------------------------------- pure functions


def _as_int64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def episode_ends(episode_starts: np.ndarray, episode_lengths: np.ndarray) -> np.ndarray:
    """Global index of each episode's last frame: (E,) int64."""
    return _as_int64(episode_starts) + _as_int64(episode_lengths) - 1


def episode_of(frame_idx: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
    """Episode number of each global frame index (same shape), by binary search."""
    return np.searchsorted(_as_int64(episode_starts), frame_idx, side="right") - 1


def sample_transitions(
    rng: np.random.Generator,
    episode_starts: np.ndarray,
    episode_lengths: np.ndarray,
    batch_size: int,
) -> np.ndarray:
    """Uniform over all transitions (frames that have a next frame): (B,) int64 frame index."""
    lengths = _as_int64(episode_lengths)
    steps = np.cumsum(lengths - 1)  # (E,) transitions up to and including episode e
    if len(steps) == 0 or steps[-1] <= 0:
        raise ValueError("no transitions to sample (no episode has 2 or more frames)")
    u = rng.integers(0, steps[-1], size=batch_size)  # (B,) transition number
    ep = np.searchsorted(steps, u, side="right")  # (B,) episodes with 0 steps are skipped
    t_in_ep = u - (steps[ep] - (lengths[ep] - 1))  # (B,) step within its episode
    return _as_int64(episode_starts)[ep] + t_in_ep


def sample_hindsight_goals(
    rng: np.random.Generator,
    frame_idx: np.ndarray,
    episode_end_idx: np.ndarray,
    mode: str = "uniform",
    gamma: float = 0.9,
) -> np.ndarray:
    """Future goal g = t + k in the same episode, 1 <= k <= end - t: (B,) int64.

    ``episode_end_idx`` is the (inclusive) last frame of each frame's episode.
    "uniform": k uniform on {1, ..., end - t}.
    "geometric": P(k) proportional to gamma**(k - 1) on {1, ..., end - t}, i.e. the
    geometric law of the discount *conditioned* on staying in the episode (sampled by
    inverse CDF), rather than clipped, which would pile the excess mass on the last frame.
    """
    t = _as_int64(frame_idx)
    horizon = _as_int64(episode_end_idx) - t  # (B,) number of future frames, >= 1
    if np.any(horizon < 1):
        raise ValueError("every frame needs a next frame in its episode (end - t >= 1)")
    u = rng.random(t.shape)  # (B,) in [0, 1)
    if mode == "uniform":
        k = 1 + np.floor(u * horizon).astype(np.int64)
    elif mode == "geometric":
        if not 0.0 < gamma < 1.0:
            raise ValueError(f"gamma must be in (0, 1) for geometric goals, got {gamma}")
        # inverse CDF of the truncated geometric law: F(k) = (1 - g^k) / (1 - g^n)
        tail = -np.expm1(horizon * np.log(gamma))  # (B,) 1 - gamma^n, stable for small n
        k = 1 + np.floor(np.log1p(-u * tail) / np.log(gamma)).astype(np.int64)
    else:
        raise ValueError(f"goal mode must be one of {GOAL_MODES}, got {mode!r}")
    return t + np.clip(k, 1, horizon)  # clip: float rounding only


def sample_other_episode_frames(
    rng: np.random.Generator,
    frame_idx: np.ndarray,
    episode_starts: np.ndarray,
    episode_lengths: np.ndarray,
) -> np.ndarray:
    """A uniformly random frame from any episode other than each frame's own: (B,) int64.

    Exact without rejection: draw among the N - L_own other frames and skip over the own
    episode's range. Needs at least two episodes.
    """
    starts, lengths = _as_int64(episode_starts), _as_int64(episode_lengths)
    if len(starts) < 2:
        raise ValueError("goal chaining needs at least two episodes")
    total = int(starts[-1] + lengths[-1])
    ep = episode_of(frame_idx, starts)  # (B,)
    own_start, own_len = starts[ep], lengths[ep]
    u = np.floor(rng.random(ep.shape) * (total - own_len)).astype(np.int64)  # (B,)
    u = np.minimum(u, total - own_len - 1)
    return u + np.where(u >= own_start, own_len, 0)


def sample_goals(
    rng: np.random.Generator,
    frame_idx: np.ndarray,
    episode_starts: np.ndarray,
    episode_lengths: np.ndarray,
    *,
    mode: str = "uniform",
    gamma: float = 0.9,
    p_chain: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Hindsight goals, replaced by another episode's frame with probability p_chain.

    Returns (goal_idx (B,) int64, chained (B,) bool). The random draws per batch are fixed
    (independent of which items chain), so streams stay reproducible.
    """
    if not 0.0 <= p_chain <= 1.0:
        raise ValueError(f"p_chain must be in [0, 1], got {p_chain}")
    t = _as_int64(frame_idx)
    ends = episode_ends(episode_starts, episode_lengths)[episode_of(t, episode_starts)]
    goal = sample_hindsight_goals(rng, t, ends, mode=mode, gamma=gamma)  # (B,)
    if p_chain == 0.0:
        return goal, np.zeros(t.shape, dtype=bool)
    chained = rng.random(t.shape) < p_chain  # (B,)
    other = sample_other_episode_frames(rng, t, episode_starts, episode_lengths)  # (B,)
    return np.where(chained, other, goal), chained


def relabel(
    frame_idx: np.ndarray, goal_idx: np.ndarray, chained: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(reached (B,) bool: goal is frame t+1, offset (B,) int64: k, or -1 when chained)."""
    offset = np.where(chained, -1, _as_int64(goal_idx) - _as_int64(frame_idx))
    return (offset == 1), offset.astype(np.int64)


def sample_index_batch(
    rng: np.random.Generator,
    episode_starts: np.ndarray,
    episode_lengths: np.ndarray,
    batch_size: int,
    *,
    mode: str = "uniform",
    gamma: float = 0.9,
    p_chain: float = 0.0,
) -> dict[str, np.ndarray]:
    """All index-level entries of a batch (no data read): frame/goal index, flags, offset."""
    t = sample_transitions(rng, episode_starts, episode_lengths, batch_size)  # (B,)
    goal, chained = sample_goals(rng, t, episode_starts, episode_lengths,
                                 mode=mode, gamma=gamma, p_chain=p_chain)
    reached, offset = relabel(t, goal, chained)
    last = episode_ends(episode_starts, episode_lengths)[episode_of(t, episode_starts)]
    return {
        keys.FRAME_INDEX: t,  # (B,) int64
        keys.GOAL_INDEX: goal,  # (B,) int64
        keys.REACHED: reached,  # (B,) bool
        keys.CHAINED: chained,  # (B,) bool
        keys.OFFSET: offset,  # (B,) int64
        keys.DONE: t + 1 == last,  # (B,) bool: o_{t+1} is the episode's last frame
    }


def stream_rng(seed: int, rank: int = 0) -> np.random.Generator:
    """Generator for rank ``rank``: child ``rank`` of SeedSequence(seed), distinct per rank."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(rank),)))


# ----------------------------------------------------------------------------- batch sampler


class GoalBatchSampler:
    """Relabeled goal-conditioned batches from an EpisodeDataset.

    ``sample()`` returns a dict (goalrl.data.keys): OBS_IMAGE, NEXT_OBS_IMAGE, GOAL_IMAGE
    (B, H, W, 3) uint8; ACTION (B, A) float32; REACHED, CHAINED, DONE (B,) bool; OFFSET,
    FRAME_INDEX, GOAL_INDEX (B,) int64; and OBS_PROPRIO, NEXT_OBS_PROPRIO (B, P) / REWARD (B,)
    float32 when the dataset has them.

    Streams: rank r of world_size w draws from child r of SeedSequence(seed); the same
    (seed, rank) gives the same batches, different ranks independent ones.
    Not thread-safe: use one sampler per thread, or ``prefetch()``.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        *,
        goal_mode: str = "uniform",
        gamma: float = 0.9,
        p_chain: float = 0.0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        if goal_mode not in GOAL_MODES:
            raise ValueError(f"goal_mode must be one of {GOAL_MODES}, got {goal_mode!r}")
        if goal_mode == "geometric" and not 0.0 < gamma < 1.0:
            raise ValueError(f"gamma must be in (0, 1), got {gamma}")
        if not 0.0 <= p_chain <= 1.0:
            raise ValueError(f"p_chain must be in [0, 1], got {p_chain}")
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, "
                             f"world_size={world_size}")
        if dataset.num_transitions <= 0:
            raise ValueError(f"{dataset}: no transitions to sample")
        if p_chain > 0 and dataset.num_episodes < 2:
            raise ValueError("goal chaining (p_chain > 0) needs at least two episodes")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.goal_mode, self.gamma, self.p_chain = goal_mode, float(gamma), float(p_chain)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.rng = stream_rng(self.seed, self.rank)
        self.batches_drawn = 0

    def sample_indices(self) -> dict[str, np.ndarray]:
        """The index part of the next batch (advances the stream)."""
        out = sample_index_batch(
            self.rng, self.dataset.episode_starts, self.dataset.episode_lengths,
            self.batch_size, mode=self.goal_mode, gamma=self.gamma, p_chain=self.p_chain,
        )
        self.batches_drawn += 1
        return out

    def gather(self, index_batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Read images and low-dim fields for an index batch (thread-safe, no RNG)."""
        ds = self.dataset
        t, g = index_batch[keys.FRAME_INDEX], index_batch[keys.GOAL_INDEX]
        # one allocation for the three image arrays: separate multi-MB arrays per batch can
        # make malloc hand memory back to the OS and page-fault it in again every batch
        images = np.empty((3, len(t), *ds.image_shape), dtype=np.uint8)  # (3, B, H, W, 3)
        ds.image_pairs(t, out=(images[0], images[1]))  # one read per transition for both
        ds.images(g, out=images[2])
        batch = dict(index_batch)
        batch[keys.OBS_IMAGE] = images[0]  # (B, H, W, 3), contiguous views
        batch[keys.NEXT_OBS_IMAGE] = images[1]
        batch[keys.GOAL_IMAGE] = images[2]
        batch[keys.ACTION] = ds.actions[t]  # (B, A)
        if ds.proprio is not None:
            batch[keys.OBS_PROPRIO] = ds.proprio[t]  # (B, P)
            batch[keys.NEXT_OBS_PROPRIO] = ds.proprio[t + 1]  # (B, P)
        if ds.rewards is not None:
            batch[keys.REWARD] = ds.rewards[t]  # (B,)
        return batch

    def sample(self) -> dict[str, np.ndarray]:
        """The next batch."""
        return self.gather(self.sample_indices())

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        while True:
            yield self.sample()

    def prefetch(self, depth: int = 4, num_threads: int = 1, pin: bool = False) -> Any:
        """Iterator yielding the same batches as repeated ``sample()``, read ahead in threads.

        With ``pin`` the fields come as torch tensors in page-locked memory, ready for copies
        to a GPU that do not stall the host (``goalrl.data.prefetch.tensor_batch``).
        Returns a ``goalrl.data.prefetch.BatchPrefetcher`` (close it, or use ``with``).
        """
        from goalrl.data.prefetch import BatchPrefetcher, tensor_batch

        transform = (lambda batch: tensor_batch(batch, pin=True)) if pin else None
        return BatchPrefetcher(self, depth=depth, num_threads=num_threads, transform=transform)

    def state_dict(self) -> dict:
        """JSON-able position of the stream (resume training with the same next batches)."""
        return {"seed": self.seed, "rank": self.rank, "world_size": self.world_size,
                "batches_drawn": self.batches_drawn,
                "bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        if (state["seed"], state["rank"]) != (self.seed, self.rank):
            raise ValueError(f"state is for seed={state['seed']} rank={state['rank']}, this "
                             f"sampler has seed={self.seed} rank={self.rank}")
        self.rng.bit_generator.state = state["bit_generator"]
        self.batches_drawn = int(state["batches_drawn"])
