"""Goal-conditioned batch sampling: hindsight relabeling and goal chaining.

The index functions are pure and fully vectorised (numpy only, no Python loop per
transition): episodes are given by ``episode_starts`` / ``episode_lengths`` (frames per
episode, T+1), the episode of a frame is found with ``np.searchsorted``. They assume the
episodes tile the global frame range [0, N) in order, as ``EpisodeDataset`` numbers them.

``GoalBatchSampler`` turns the indices into batches (dicts keyed by goalrl.data.keys) read
from an ``EpisodeDataset``; ``GoalBatchSampler.prefetch`` runs it ahead in background threads
with the same sequence of batches.

Two ways to draw goals. AM's (the default): a hindsight goal of the same episode, replaced by
another episode's frame with probability p_chain. The value-based agents' (GCIVL, GCIQL, HIQL,
CRL, as in OGBench): separate ``GoalMixture``s for the value's goal and the actor's goal, each
a mixture of the current frame, a later frame of the episode and a random dataset frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from goalrl.data import keys
from goalrl.envs.state import state_vectors  # noqa: F401  (re-exported: the sampler reads states)
from goalrl.errors import UserError

GOAL_MODES = ("uniform", "geometric")
OBSERVATIONS = ("image", "state")  # what a batch carries for o_t, o_{t+1} and goals
# where a mixture goal came from (sample_mixture_goals)
SOURCE_CURRENT, SOURCE_FUTURE, SOURCE_RANDOM = 0, 1, 2


class GoalMixtureError(UserError, ValueError):
    """A goal mixture whose probabilities or offset law cannot be sampled."""


@dataclass
class GoalMixture:
    """Where each goal comes from: o_t itself, a later frame of its episode, any dataset frame.

    OGBench's defaults: value goals 0.2 / 0.5 / 0.3 with geometric offsets, actor goals all
    future with uniform offsets (``ACTOR_GOALS``).
    """

    p_current: float = 0.2  # goal = o_t (reached: value target 0 in GCIVL/GCIQL)
    p_future: float = 0.5  # goal = o_{t+k} of the same episode, k >= 1
    p_random: float = 0.3  # goal = a uniformly random frame of the dataset
    future: str = "geometric"  # law of k: geometric (P(k) ∝ gamma^(k-1)) or uniform

    def __post_init__(self) -> None:
        probs = (self.p_current, self.p_future, self.p_random)
        if min(probs) < 0 or abs(sum(probs) - 1.0) > 1e-6:
            raise GoalMixtureError(
                f"goal mixture (agent.value_goals / agent.actor_goals) p_current={self.p_current}, "
                f"p_future={self.p_future}, "
                f"p_random={self.p_random}: each must be >= 0 and they must sum to 1"
            )
        if self.future not in GOAL_MODES:
            raise GoalMixtureError(
                f"goal mixture (agent.value_goals / agent.actor_goals) future={self.future!r}: "
                f"must be one of {', '.join(GOAL_MODES)}"
            )


def actor_goal_mixture() -> GoalMixture:
    """OGBench's actor goals: a later frame of the episode, offset uniform."""
    return GoalMixture(p_current=0.0, p_future=1.0, p_random=0.0, future="uniform")


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


def sample_mixture_goals(
    rng: np.random.Generator,
    frame_idx: np.ndarray,
    episode_starts: np.ndarray,
    episode_lengths: np.ndarray,
    mixture: GoalMixture,
    gamma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Goals from ``mixture``: (goal_idx (B,) int64, source (B,) int8 SOURCE_*).

    Every candidate is drawn for every sample (fixed draws per batch), then one is picked.
    """
    t = _as_int64(frame_idx)
    total = int(_as_int64(episode_starts)[-1] + _as_int64(episode_lengths)[-1])
    ends = episode_ends(episode_starts, episode_lengths)[episode_of(t, episode_starts)]
    u = rng.random(t.shape)  # (B,) which source
    future = sample_hindsight_goals(rng, t, ends, mode=mixture.future, gamma=gamma)  # (B,)
    random = rng.integers(0, total, size=t.shape)  # (B,) any frame, the own episode's too
    source = np.where(
        u < mixture.p_current,
        SOURCE_CURRENT,
        np.where(u < mixture.p_current + mixture.p_future, SOURCE_FUTURE, SOURCE_RANDOM),
    ).astype(np.int8)
    goal = np.where(source == SOURCE_CURRENT, t, np.where(source == SOURCE_FUTURE, future, random))
    return goal.astype(np.int64), source


def subgoal_indices(
    frame_idx: np.ndarray,
    goal_idx: np.ndarray,
    episode_starts: np.ndarray,
    episode_lengths: np.ndarray,
    steps: int,
) -> np.ndarray:
    """o_{t+steps}, never past the goal (when the goal is o_t or later in the same episode) nor
    past the episode's last frame: (B,) int64 (HIQL's high-level target)."""
    t, g = _as_int64(frame_idx), _as_int64(goal_idx)
    ep = episode_of(t, episode_starts)
    ends = episode_ends(episode_starts, episode_lengths)[ep]
    ahead = (episode_of(g, episode_starts) == ep) & (g >= t)  # (B,) goal on the way
    return np.minimum(t + steps, np.where(ahead, g, ends))


def sample_mixture_index_batch(
    rng: np.random.Generator,
    episode_starts: np.ndarray,
    episode_lengths: np.ndarray,
    batch_size: int,
    *,
    value_goals: GoalMixture,
    actor_goals: GoalMixture | None = None,
    gamma: float = 0.99,
    subgoal_steps: int = 0,
) -> dict[str, np.ndarray]:
    """Index entries of a batch with goals from mixtures: GOAL_INDEX is the value goal, and
    ACTOR_GOAL_INDEX (with ``actor_goals``) and SUBGOAL_INDEX (``subgoal_steps`` > 0) follow.

    CHAINED marks random goals and OFFSET is goal - t for the episode's own frames (0 for the
    current one) and -1 for random ones, so REACHED (k == 1) keeps AM's meaning.
    """
    t = sample_transitions(rng, episode_starts, episode_lengths, batch_size)  # (B,)
    goal, source = sample_mixture_goals(rng, t, episode_starts, episode_lengths, value_goals,
                                        gamma)
    chained = source == SOURCE_RANDOM
    reached, offset = relabel(t, goal, chained)
    last = episode_ends(episode_starts, episode_lengths)[episode_of(t, episode_starts)]
    out = {
        keys.FRAME_INDEX: t,  # (B,) int64
        keys.GOAL_INDEX: goal,  # (B,) int64
        keys.AT_GOAL: goal == t,  # (B,) bool
        keys.REACHED: reached,  # (B,) bool
        keys.CHAINED: chained,  # (B,) bool
        keys.OFFSET: offset,  # (B,) int64
        keys.DONE: t + 1 == last,  # (B,) bool
    }
    if actor_goals is not None:
        actor, _ = sample_mixture_goals(rng, t, episode_starts, episode_lengths, actor_goals,
                                        gamma)
        out[keys.ACTOR_GOAL_INDEX] = actor  # (B,) int64
    if subgoal_steps > 0:
        toward = out.get(keys.ACTOR_GOAL_INDEX, goal)
        out[keys.SUBGOAL_INDEX] = subgoal_indices(t, toward, episode_starts, episode_lengths,
                                                  subgoal_steps)  # (B,) int64
    return out


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

    With ``observation="state"`` the frames come as OBS_STATE, NEXT_OBS_STATE, GOAL_STATE
    (B, S) float32 (``state_vectors``) and no image is read. With ``value_goals`` the goals come
    from mixtures (``sample_mixture_index_batch``): AT_GOAL, and ACTOR_GOAL_* / SUBGOAL_* when
    ``actor_goals`` / ``subgoal_steps`` ask for them; goal_mode and p_chain are then unused.

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
        observation: str = "image",
        value_goals: GoalMixture | None = None,
        actor_goals: GoalMixture | None = None,
        subgoal_steps: int = 0,
    ) -> None:
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
        if (actor_goals is not None or subgoal_steps) and value_goals is None:
            raise ValueError("actor_goals and subgoal_steps need value_goals (goal mixtures)")
        if subgoal_steps < 0:
            raise ValueError(f"subgoal_steps must be >= 0, got {subgoal_steps}")
        if value_goals is not None and not 0.0 < gamma < 1.0:
            raise ValueError(f"gamma must be in (0, 1), got {gamma}")
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
        self.observation = observation
        self.value_goals, self.actor_goals = value_goals, actor_goals
        self.subgoal_steps = int(subgoal_steps)
        # (N, S) float32 for state batches, read once (small next to the images)
        self.states = state_vectors(dataset) if observation == "state" else None
        self.rng = stream_rng(self.seed, self.rank)
        self.batches_drawn = 0

    def sample_indices(self) -> dict[str, np.ndarray]:
        """The index part of the next batch (advances the stream)."""
        starts, lengths = self.dataset.episode_starts, self.dataset.episode_lengths
        if self.value_goals is None:
            out = sample_index_batch(
                self.rng, starts, lengths,
                self.batch_size, mode=self.goal_mode, gamma=self.gamma, p_chain=self.p_chain,
            )
        else:
            out = sample_mixture_index_batch(
                self.rng, starts, lengths, self.batch_size, value_goals=self.value_goals,
                actor_goals=self.actor_goals, gamma=self.gamma, subgoal_steps=self.subgoal_steps,
            )
        self.batches_drawn += 1
        return out

    def gather(self, index_batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Read images and low-dim fields for an index batch (thread-safe, no RNG)."""
        if self.states is not None:
            return self._gather_states(index_batch)
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
        for index_key, image_key in ((keys.ACTOR_GOAL_INDEX, keys.ACTOR_GOAL_IMAGE),
                                     (keys.SUBGOAL_INDEX, keys.SUBGOAL_IMAGE)):
            if index_key in index_batch:
                batch[image_key] = ds.images(index_batch[index_key])  # (B, H, W, 3)
        return self._add_lowdim(batch, t)

    def _gather_states(self, index_batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """State batch: the image keys' counterparts as (B, S) float32, no image read."""
        t, states = index_batch[keys.FRAME_INDEX], self.states
        batch = dict(index_batch)
        batch[keys.OBS_STATE] = states[t]  # (B, S)
        batch[keys.NEXT_OBS_STATE] = states[t + 1]
        batch[keys.GOAL_STATE] = states[index_batch[keys.GOAL_INDEX]]
        for index_key, state_key in ((keys.ACTOR_GOAL_INDEX, keys.ACTOR_GOAL_STATE),
                                     (keys.SUBGOAL_INDEX, keys.SUBGOAL_STATE)):
            if index_key in index_batch:
                batch[state_key] = states[index_batch[index_key]]  # (B, S)
        return self._add_lowdim(batch, t)

    def _add_lowdim(self, batch: dict[str, np.ndarray], t: np.ndarray) -> dict[str, np.ndarray]:
        ds = self.dataset
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
