"""Goal sampling: pure index functions (statistical invariants) and the batch sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from goalrl.data import keys
from goalrl.data.sampler import (
    SOURCE_CURRENT,
    SOURCE_FUTURE,
    SOURCE_RANDOM,
    GoalBatchSampler,
    GoalMixture,
    GoalMixtureError,
    actor_goal_mixture,
    episode_ends,
    episode_of,
    relabel,
    sample_goals,
    sample_hindsight_goals,
    sample_index_batch,
    sample_mixture_goals,
    sample_mixture_index_batch,
    sample_other_episode_frames,
    sample_transitions,
    state_vectors,
    subgoal_indices,
)
from goalrl.data.storage import DatasetWriter, EpisodeData, EpisodeDataset
from goalrl.errors import UserError


def boundaries(lengths) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.asarray(lengths, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths


LENGTHS = [2, 7, 3, 30, 2, 12, 5]  # frames per episode, incl. 1-step episodes


def test_transitions_only_from_frames_with_a_next_frame() -> None:
    starts, lengths = boundaries(LENGTHS)
    rng = np.random.default_rng(0)
    t = sample_transitions(rng, starts, lengths, 60_000)
    ep = episode_of(t, starts)
    assert t.dtype == np.int64 and np.all(t < episode_ends(starts, lengths)[ep])
    # uniform over the 54 transitions: every one is hit, counts within 5 sigma of the mean
    counts = np.bincount(t, minlength=int(lengths.sum()))
    valid = np.ones(int(lengths.sum()), bool)
    valid[episode_ends(starts, lengths)] = False
    assert np.all(counts[~valid] == 0)
    n = (lengths - 1).sum()
    mean, sd = 60_000 / n, np.sqrt(60_000 * (1 / n) * (1 - 1 / n))
    assert np.all(np.abs(counts[valid] - mean) < 5 * sd)


def test_zero_step_episodes_are_never_sampled() -> None:
    starts, lengths = boundaries([3, 1, 4])
    t = sample_transitions(np.random.default_rng(1), starts, lengths, 5000)
    assert set(np.unique(t)) == {0, 1, 4, 5, 6}
    with pytest.raises(ValueError, match="no transitions"):
        sample_transitions(np.random.default_rng(1), *boundaries([1, 1]), 4)


@pytest.mark.parametrize("mode", ["uniform", "geometric"])
def test_hindsight_goals_stay_in_the_episode_after_t(mode: str) -> None:
    starts, lengths = boundaries(LENGTHS)
    rng = np.random.default_rng(2)
    t = sample_transitions(rng, starts, lengths, 50_000)
    ends = episode_ends(starts, lengths)[episode_of(t, starts)]
    g = sample_hindsight_goals(rng, t, ends, mode=mode, gamma=0.8)
    assert g.dtype == np.int64
    assert np.all(g >= t + 1) and np.all(g <= ends)
    assert np.all(episode_of(g, starts) == episode_of(t, starts))  # never crosses a boundary
    # every future frame is reachable: the last frame of the episode too
    assert np.any(g == ends) and np.any(g == t + 1)


def test_uniform_offsets_are_uniform() -> None:
    rng = np.random.default_rng(3)
    t = np.zeros(100_000, np.int64)
    k = sample_hindsight_goals(rng, t, np.full_like(t, 10), mode="uniform")
    counts = np.bincount(k, minlength=11)[1:]
    assert counts.min() > 0 and np.abs(counts - 10_000).max() < 5 * np.sqrt(10_000 * 0.9)


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.97])
def test_geometric_offsets_have_the_right_mean(gamma: float) -> None:
    rng = np.random.default_rng(4)
    n = 200_000
    # long episodes: the untruncated geometric law, mean 1 / (1 - gamma)
    t = np.zeros(n, np.int64)
    k = sample_hindsight_goals(rng, t, np.full(n, 10_000), mode="geometric", gamma=gamma)
    mean, var = 1 / (1 - gamma), gamma / (1 - gamma) ** 2
    assert abs(k.mean() - mean) < 5 * np.sqrt(var / n)
    # short horizon h: the law conditioned on k <= h, P(k) ~ gamma^(k-1)
    h = 6
    k = sample_hindsight_goals(rng, t, np.full(n, h), mode="geometric", gamma=gamma)
    p = gamma ** np.arange(h)
    p /= p.sum()
    support = np.arange(1, h + 1)
    mean, var = (p * support).sum(), (p * support**2).sum() - (p * support).sum() ** 2
    assert abs(k.mean() - mean) < 5 * np.sqrt(var / n)
    freq = np.bincount(k, minlength=h + 1)[1:] / n
    assert np.abs(freq - p).max() < 5 * np.sqrt(p.max() / n)


def test_hindsight_rejects_frames_without_future() -> None:
    with pytest.raises(ValueError, match="next frame"):
        sample_hindsight_goals(np.random.default_rng(0), np.array([4]), np.array([4]))
    with pytest.raises(ValueError, match="gamma"):
        sample_hindsight_goals(np.random.default_rng(0), np.array([0]), np.array([4]),
                               mode="geometric", gamma=1.0)
    with pytest.raises(ValueError, match="goal mode"):
        sample_hindsight_goals(np.random.default_rng(0), np.array([0]), np.array([4]),
                               mode="random")


def test_other_episode_frames_are_uniform_over_other_episodes() -> None:
    starts, lengths = boundaries([3, 5, 2])
    rng = np.random.default_rng(5)
    t = np.full(40_000, 4)  # a frame of episode 1 (frames 3..7)
    g = sample_other_episode_frames(rng, t, starts, lengths)
    assert set(np.unique(g)) == {0, 1, 2, 8, 9}
    counts = np.bincount(g, minlength=10)[[0, 1, 2, 8, 9]]
    assert np.abs(counts - 8000).max() < 5 * np.sqrt(40_000 * 0.2 * 0.8)
    with pytest.raises(ValueError, match="two episodes"):
        sample_other_episode_frames(rng, np.array([0]), *boundaries([4]))


@pytest.mark.parametrize("p_chain", [0.0, 0.2, 0.5, 1.0])
def test_chaining_fraction_and_sources(p_chain: float) -> None:
    starts, lengths = boundaries(LENGTHS)
    rng = np.random.default_rng(6)
    n = 40_000
    t = sample_transitions(rng, starts, lengths, n)
    g, chained = sample_goals(rng, t, starts, lengths, mode="geometric", p_chain=p_chain)
    frac = chained.mean()
    assert abs(frac - p_chain) <= 5 * np.sqrt(p_chain * (1 - p_chain) / n)
    same = episode_of(g, starts) == episode_of(t, starts)
    assert np.all(~same[chained])  # chained goals come from other episodes
    assert np.all(same[~chained]) and np.all(g[~chained] > t[~chained])


def test_relabel_flags() -> None:
    t = np.array([3, 3, 3, 9])
    g = np.array([4, 6, 4, 1])
    chained = np.array([False, False, True, True])
    reached, offset = relabel(t, g, chained)
    assert reached.tolist() == [True, False, False, False]
    assert offset.tolist() == [1, 3, -1, -1]


def test_index_batch_invariants() -> None:
    starts, lengths = boundaries(LENGTHS)
    b = sample_index_batch(np.random.default_rng(7), starts, lengths, 20_000,
                           mode="uniform", p_chain=0.3)
    t, g = b[keys.FRAME_INDEX], b[keys.GOAL_INDEX]
    chained, reached, offset = b[keys.CHAINED], b[keys.REACHED], b[keys.OFFSET]
    assert np.array_equal(reached, (g == t + 1) & ~chained)  # reached exactly when g is t+1
    assert np.array_equal(offset, np.where(chained, -1, g - t))
    assert np.all(offset[~chained] >= 1)
    ends = episode_ends(starts, lengths)[episode_of(t, starts)]
    assert np.array_equal(b[keys.DONE], t + 1 == ends)
    assert reached.any() and b[keys.DONE].any()


# ----------------------------------------------------------------------------- batch sampler

SHAPE = (4, 4, 3)


def encode(frame: int) -> np.ndarray:
    """A frame whose first 3 bytes spell its global index, to check what was gathered."""
    img = np.zeros(SHAPE, np.uint8)
    img.reshape(-1)[:3] = [frame & 255, (frame >> 8) & 255, frame >> 16]
    return img


def decode(images: np.ndarray) -> np.ndarray:
    flat = images.reshape(len(images), -1)[:, :3].astype(np.int64)
    return flat[:, 0] | flat[:, 1] << 8 | flat[:, 2] << 16


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> EpisodeDataset:
    root = tmp_path_factory.mktemp("sampler") / "ds"
    frame = 0
    with DatasetWriter(root, image_shape=SHAPE, action_dim=2, proprio_dim=1, durable=False,
                       chunk_frames=25) as w:
        for length in [2, 9, 5, 14, 2, 7, 11, 3]:
            idx = np.arange(frame, frame + length)
            w.append(EpisodeData(
                images=np.stack([encode(i) for i in idx]),
                actions=np.stack([idx[:-1] / 100, -idx[:-1] / 100], 1).astype(np.float32),
                proprio=idx[:, None].astype(np.float32),
                rewards=(idx[:-1] % 2).astype(np.float32),
            ))
            frame += length
    ds = EpisodeDataset(root)
    yield ds
    ds.close()


def same_batches(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_batch_contents(dataset: EpisodeDataset) -> None:
    s = GoalBatchSampler(dataset, 512, goal_mode="geometric", gamma=0.7, p_chain=0.25, seed=1)
    b = s.sample()
    t, g = b[keys.FRAME_INDEX], b[keys.GOAL_INDEX]
    assert b[keys.OBS_IMAGE].shape == (512, *SHAPE) and b[keys.OBS_IMAGE].dtype == np.uint8
    assert np.array_equal(decode(b[keys.OBS_IMAGE]), t)
    assert np.array_equal(decode(b[keys.NEXT_OBS_IMAGE]), t + 1)
    assert np.array_equal(decode(b[keys.GOAL_IMAGE]), g)
    assert b[keys.ACTION].dtype == np.float32
    np.testing.assert_allclose(b[keys.ACTION][:, 0], t / 100, rtol=1e-6)
    np.testing.assert_array_equal(b[keys.OBS_PROPRIO][:, 0], t)
    np.testing.assert_array_equal(b[keys.NEXT_OBS_PROPRIO][:, 0], t + 1)
    np.testing.assert_array_equal(b[keys.REWARD], t % 2)
    assert np.all(dataset.has_next[t])
    ep_t, ep_g = dataset.episode_of(t), dataset.episode_of(g)
    chained = b[keys.CHAINED]
    assert np.all(ep_t[~chained] == ep_g[~chained]) and np.all(ep_t[chained] != ep_g[chained])
    assert np.array_equal(b[keys.REACHED], (g == t + 1) & ~chained)
    assert np.array_equal(b[keys.DONE], t + 1 == dataset.episode_ends[ep_t])
    expected = {keys.OBS_IMAGE, keys.NEXT_OBS_IMAGE, keys.GOAL_IMAGE, keys.ACTION, keys.REACHED,
                keys.CHAINED, keys.OFFSET, keys.FRAME_INDEX, keys.GOAL_INDEX, keys.DONE,
                keys.OBS_PROPRIO, keys.NEXT_OBS_PROPRIO, keys.REWARD}
    assert set(b) == expected


def test_same_seed_same_batches_and_distinct_ranks(dataset: EpisodeDataset) -> None:
    def run(**kw) -> list[dict]:
        s = GoalBatchSampler(dataset, 16, p_chain=0.2, **kw)
        return [s.sample() for _ in range(4)]

    a, b = run(seed=3), run(seed=3)
    assert all(same_batches(x, y) for x, y in zip(a, b, strict=True))
    assert not same_batches(a[0], run(seed=4)[0])
    ranks = [run(seed=3, rank=r, world_size=4) for r in range(4)]
    idx = [np.concatenate([x[keys.FRAME_INDEX] for x in r]) for r in ranks]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(idx[i], idx[j])
    assert all(same_batches(x, y) for x, y in zip(ranks[1], run(seed=3, rank=1, world_size=4),
                                                  strict=True))
    with pytest.raises(ValueError, match="rank"):
        GoalBatchSampler(dataset, 16, rank=2, world_size=2)


@pytest.mark.parametrize("num_threads", [1, 3])
def test_prefetch_yields_the_same_batches(dataset: EpisodeDataset, num_threads: int) -> None:
    direct = GoalBatchSampler(dataset, 32, p_chain=0.3, seed=9)
    ahead = GoalBatchSampler(dataset, 32, p_chain=0.3, seed=9)
    with ahead.prefetch(depth=3, num_threads=num_threads) as it:
        for _ in range(12):
            assert same_batches(direct.sample(), next(it))
        state = it.state_dict()
    # the state after the last *consumed* batch resumes the stream exactly
    assert state["batches_drawn"] == 12
    resumed = GoalBatchSampler(dataset, 32, p_chain=0.3, seed=9)
    resumed.load_state_dict(state)
    assert same_batches(resumed.sample(), direct.sample())


@pytest.mark.parametrize("num_threads", [1, 2])
def test_prefetch_transform_runs_on_every_batch_in_order(
    dataset: EpisodeDataset, num_threads: int
) -> None:
    # tensor_batch(pin=False) is the CPU half of what a GPU run gets (pinning needs CUDA):
    # the same values as torch tensors, in stream order, non-array fields untouched
    from goalrl.data.prefetch import BatchPrefetcher, tensor_batch

    direct = GoalBatchSampler(dataset, 16, p_chain=0.3, seed=4)
    ahead = GoalBatchSampler(dataset, 16, p_chain=0.3, seed=4)
    with BatchPrefetcher(ahead, depth=2, num_threads=num_threads,
                         transform=lambda b: tensor_batch(b, pin=False)) as it:
        for _ in range(5):
            want, got = direct.sample(), next(it)
            assert set(want) == set(got)
            for key, value in want.items():
                assert type(got[key]).__name__ == "Tensor", key
                np.testing.assert_array_equal(got[key].numpy(), value)


def test_prefetch_reports_errors_and_closes(dataset: EpisodeDataset) -> None:
    s = GoalBatchSampler(dataset, 8, seed=0)

    def boom(idx):
        raise RuntimeError("disk on fire")

    s.gather = boom
    it = s.prefetch()
    with pytest.raises(RuntimeError, match="disk on fire"):
        next(it)
    it.close()
    with pytest.raises(StopIteration):
        next(it)


def test_state_dict_round_trip(dataset: EpisodeDataset) -> None:
    s = GoalBatchSampler(dataset, 8, seed=5, goal_mode="geometric")
    s.sample()
    state = s.state_dict()
    after = [s.sample() for _ in range(3)]
    s2 = GoalBatchSampler(dataset, 8, seed=5, goal_mode="geometric")
    s2.load_state_dict(state)
    assert all(same_batches(x, s2.sample()) for x in after)
    with pytest.raises(ValueError, match="seed"):
        GoalBatchSampler(dataset, 8, seed=6).load_state_dict(state)


def test_sampler_argument_checks(dataset: EpisodeDataset, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="goal_mode"):
        GoalBatchSampler(dataset, 8, goal_mode="future")
    with pytest.raises(ValueError, match="p_chain"):
        GoalBatchSampler(dataset, 8, p_chain=1.5)
    with DatasetWriter(tmp_path / "one", image_shape=SHAPE, action_dim=2, durable=False) as w:
        w.append(EpisodeData(images=np.zeros((3, *SHAPE), np.uint8),
                             actions=np.zeros((2, 2), np.float32)))
    one = EpisodeDataset(tmp_path / "one")
    with pytest.raises(ValueError, match="two episodes"):
        GoalBatchSampler(one, 8, p_chain=0.1)
    b = GoalBatchSampler(one, 8).sample()  # no proprio/reward fields: keys left out
    assert keys.OBS_PROPRIO not in b and keys.REWARD not in b


# ----------------------------------------------------------------------------- goal mixtures


@pytest.mark.parametrize("future", ["geometric", "uniform"])
def test_mixture_proportions_and_where_each_goal_lies(future: str) -> None:
    starts, lengths = boundaries(LENGTHS)
    rng = np.random.default_rng(5)
    n = 100_000
    t = sample_transitions(rng, starts, lengths, n)
    mix = GoalMixture(p_current=0.2, p_future=0.5, p_random=0.3, future=future)
    goal, source = sample_mixture_goals(rng, t, starts, lengths, mix, gamma=0.9)
    for src, p in ((SOURCE_CURRENT, 0.2), (SOURCE_FUTURE, 0.5), (SOURCE_RANDOM, 0.3)):
        frac = np.mean(source == src)
        assert abs(frac - p) < 5 * np.sqrt(p * (1 - p) / n), (src, frac)
    cur, fut, rnd = (source == s for s in (SOURCE_CURRENT, SOURCE_FUTURE, SOURCE_RANDOM))
    assert np.array_equal(goal[cur], t[cur])  # the current goal is o_t itself
    ends = episode_ends(starts, lengths)[episode_of(t, starts)]
    assert np.all(goal[fut] > t[fut]) and np.all(goal[fut] <= ends[fut])  # later, same episode
    # random goals cover the whole dataset, last frames and other episodes included
    assert set(np.unique(goal[rnd])) == set(range(int(lengths.sum())))


def test_geometric_future_goals_follow_the_discount() -> None:
    t = np.zeros(100_000, np.int64)
    starts, lengths = np.array([0]), np.array([400])
    mix = GoalMixture(p_current=0.0, p_future=1.0, p_random=0.0, future="geometric")
    goal, _ = sample_mixture_goals(np.random.default_rng(6), t, starts, lengths, mix, gamma=0.9)
    assert np.mean(goal) == pytest.approx(10.0, rel=0.03)  # mean offset 1 / (1 - gamma)


def test_default_mixtures_are_ogbenchs() -> None:
    value, actor = GoalMixture(), actor_goal_mixture()
    assert (value.p_current, value.p_future, value.p_random, value.future) == (
        0.2, 0.5, 0.3, "geometric")
    assert (actor.p_current, actor.p_future, actor.p_random, actor.future) == (
        0.0, 1.0, 0.0, "uniform")


@pytest.mark.parametrize("bad", [dict(p_current=0.5), dict(p_random=-0.1, p_future=0.9),
                                 dict(future="linear")])
def test_bad_mixtures_name_the_field(bad: dict) -> None:
    with pytest.raises(GoalMixtureError, match="p_current|future="):
        GoalMixture(**bad)


def test_subgoals_stop_at_the_goal_and_the_episode_end() -> None:
    starts, lengths = boundaries([10, 10])  # frames 0..9 and 10..19
    t = np.array([0, 0, 5, 5, 12])
    goal = np.array([2, 9, 7, 15, 11])  # near, far, near, other episode, behind t
    sub = subgoal_indices(t, goal, starts, lengths, steps=3)
    np.testing.assert_array_equal(sub, [2, 3, 7, 8, 15])


def test_mixture_index_batch_flags() -> None:
    starts, lengths = boundaries(LENGTHS)
    b = sample_mixture_index_batch(np.random.default_rng(7), starts, lengths, 5000,
                                   value_goals=GoalMixture(), actor_goals=actor_goal_mixture(),
                                   gamma=0.9, subgoal_steps=4)
    t, g, a = b[keys.FRAME_INDEX], b[keys.GOAL_INDEX], b[keys.ACTOR_GOAL_INDEX]
    assert np.array_equal(b[keys.AT_GOAL], g == t)
    assert np.array_equal(b[keys.OFFSET][b[keys.CHAINED]], np.full(b[keys.CHAINED].sum(), -1))
    assert np.array_equal(b[keys.REACHED], b[keys.OFFSET] == 1)
    assert np.all(a > t) and np.all(episode_of(a, starts) == episode_of(t, starts))
    sub = b[keys.SUBGOAL_INDEX]
    assert np.all(sub > t) and np.all(sub <= np.minimum(t + 4, a))


@pytest.fixture(scope="module")
def state_dataset(tmp_path_factory) -> EpisodeDataset:
    """Images spell the frame index; proprio = index, achieved_goal = (2 index, -index)."""
    root = tmp_path_factory.mktemp("sampler_state") / "ds"
    frame = 0
    with DatasetWriter(root, image_shape=SHAPE, action_dim=2, proprio_dim=1, goal_dim=2,
                       durable=False) as w:
        for length in [6, 9, 4, 12]:
            idx = np.arange(frame, frame + length)
            w.append(EpisodeData(
                images=np.stack([encode(i) for i in idx]),
                actions=np.zeros((length - 1, 2), np.float32),
                proprio=idx[:, None].astype(np.float32),
                achieved_goal=np.stack([2 * idx, -idx], 1).astype(np.float32),
            ))
            frame += length
    ds = EpisodeDataset(root)
    yield ds
    ds.close()


@pytest.mark.parametrize("observation", ["image", "state"])
def test_mixture_batches_carry_each_goal(state_dataset: EpisodeDataset, observation: str) -> None:
    s = GoalBatchSampler(state_dataset, 256, gamma=0.9, seed=2, observation=observation,
                         value_goals=GoalMixture(), actor_goals=actor_goal_mixture(),
                         subgoal_steps=3)
    b = s.sample()
    pairs = [(keys.FRAME_INDEX, "obs"), (keys.GOAL_INDEX, "goal"),
             (keys.ACTOR_GOAL_INDEX, "actor_goal"), (keys.SUBGOAL_INDEX, "subgoal")]
    for index_key, name in pairs:
        idx = b[index_key]
        if observation == "image":
            assert np.array_equal(decode(b[f"{name}_image"]), idx)
            assert f"{name}_state" not in b
        else:
            state = b[f"{name}_state"]
            assert state.shape == (256, 3) and state.dtype == np.float32
            np.testing.assert_array_equal(state, np.stack([idx, 2 * idx, -idx], 1))
            assert f"{name}_image" not in b
    t = b[keys.FRAME_INDEX]
    if observation == "state":
        np.testing.assert_array_equal(b[keys.NEXT_OBS_STATE][:, 0], t + 1)


def test_state_batches_prefetch_and_resume_the_same(state_dataset: EpisodeDataset) -> None:
    kw = dict(seed=4, observation="state", value_goals=GoalMixture(), gamma=0.9)
    direct = GoalBatchSampler(state_dataset, 32, **kw)
    ahead = GoalBatchSampler(state_dataset, 32, **kw)
    with ahead.prefetch(depth=2, pin=False) as it:
        for _ in range(5):
            assert same_batches(direct.sample(), next(it))
        state = it.state_dict()
    resumed = GoalBatchSampler(state_dataset, 32, **kw)
    resumed.load_state_dict(state)
    assert same_batches(resumed.sample(), direct.sample())


def test_state_vectors_need_a_low_dim_field(dataset: EpisodeDataset, tmp_path: Path) -> None:
    np.testing.assert_array_equal(state_vectors(dataset)[:, 0], np.arange(dataset.num_frames))
    with DatasetWriter(tmp_path / "img", image_shape=SHAPE, action_dim=2, durable=False) as w:
        w.append(EpisodeData(images=np.zeros((3, *SHAPE), np.uint8),
                             actions=np.zeros((2, 2), np.float32)))
    with EpisodeDataset(tmp_path / "img") as ds, pytest.raises(UserError, match="no state"):
        GoalBatchSampler(ds, 4, observation="state")


def test_mixture_options_need_value_goals(dataset: EpisodeDataset) -> None:
    with pytest.raises(ValueError, match="need value_goals"):
        GoalBatchSampler(dataset, 4, actor_goals=actor_goal_mixture())
    with pytest.raises(ValueError, match="observation"):
        GoalBatchSampler(dataset, 4, observation="pixels")


@pytest.mark.parametrize(("env_id", "recorded", "refused"), [
    ("goalrl/Push-v0", False, False),  # Push's achieved goal is the cube's xyz: it stands in
    ("goalrl/Grasp-v0", False, True),  # Grasp's holds only heights: refused, not read blind
    ("goalrl/RearrangeTray-v0", False, True),  # no goal holds the tray
    ("goalrl/Grasp-v0", True, False),  # recorded states are read as they are
])
def test_state_vectors_read_the_recorded_state_or_refuse_a_blind_stand_in(
        tmp_path: Path, env_id: str, recorded: bool, refused: bool) -> None:
    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "ds", image_shape=SHAPE, action_dim=2, proprio_dim=5,
                       goal_dim=2, state_dim=11 if recorded else None, env_id=env_id,
                       durable=False) as w:
        w.append(EpisodeData(
            images=np.zeros((4, *SHAPE), np.uint8), actions=np.zeros((3, 2), np.float32),
            proprio=rng.normal(size=(4, 5)).astype(np.float32),
            achieved_goal=rng.normal(size=(4, 2)).astype(np.float32),
            state=rng.normal(size=(4, 11)).astype(np.float32) if recorded else None))
    ds = EpisodeDataset(tmp_path / "ds")
    if refused:
        with pytest.raises(UserError, match=r"ds: no field 'state'.*leave out where"):
            state_vectors(ds)
        return
    expected = ds.state if recorded else np.concatenate([ds.proprio, ds.achieved_goal], 1)
    np.testing.assert_array_equal(state_vectors(ds), expected)
