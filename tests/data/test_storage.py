"""Episode storage: round trips, resume, chunking, validation of appended episodes."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from goalrl.data.storage import (
    FORMAT_VERSION,
    DatasetError,
    DatasetWriter,
    EpisodeData,
    EpisodeDataset,
)

SHAPE = (8, 8, 3)


def make_episode(rng: np.random.Generator, steps: int, shape=SHAPE, action_dim: int = 3,
                 proprio_dim: int | None = None, goal_dim: int | None = None,
                 rewards: bool = False, success: bool = False, seed: int | None = None,
                 info: dict | None = None, state_dim: int | None = None) -> EpisodeData:
    return EpisodeData(
        images=rng.integers(0, 256, (steps + 1, *shape), dtype=np.uint8),
        actions=rng.uniform(-1, 1, (steps, action_dim)).astype(np.float32),
        proprio=None if proprio_dim is None else rng.normal(size=(steps + 1, proprio_dim)).astype(
            np.float32),
        rewards=rng.integers(0, 2, steps).astype(np.float32) if rewards else None,
        success=rng.integers(0, 2, steps + 1).astype(bool) if success else None,
        achieved_goal=None if goal_dim is None else rng.normal(size=(steps + 1, goal_dim)).astype(
            np.float32),
        state=None if state_dim is None else rng.normal(size=(steps + 1, state_dim)).astype(
            np.float32),
        seed=seed,
        info=info or {},
    )


def writer(root: Path, **kw) -> DatasetWriter:
    params = {"image_shape": SHAPE, "action_dim": 3, "durable": False, **kw}
    return DatasetWriter(root, **params)


def assert_same_episode(a: EpisodeData, b: EpisodeData) -> None:
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.actions, b.actions)
    for name in ("proprio", "rewards", "success", "achieved_goal", "state"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y)
    assert a.seed == b.seed and a.info == b.info


@pytest.mark.parametrize("shape", [(8, 8, 3), (16, 12, 3)])
@pytest.mark.parametrize("full", [False, True])
def test_round_trip(tmp_path: Path, shape, full: bool) -> None:
    rng = np.random.default_rng(0)
    opts = (dict(proprio_dim=4, goal_dim=2, rewards=True, success=True, state_dim=7) if full
            else {})
    eps = [make_episode(rng, int(rng.integers(1, 9)), shape=shape, seed=i, info={"i": i},
                        **opts) for i in range(7)]
    dims = dict(proprio_dim=4, goal_dim=2, state_dim=7) if full else {}
    with writer(tmp_path / "ds", image_shape=shape, env_id="goalrl/Push-v0", fps=5.0,
                extra_meta={"note": "x"}, **dims) as w:
        for i, ep in enumerate(eps):
            assert w.append(ep) == i
        assert w.num_episodes == 7

    ds = EpisodeDataset(tmp_path / "ds")
    assert ds.num_episodes == 7
    lengths = [len(e.images) for e in eps]
    assert ds.episode_lengths.tolist() == lengths
    assert ds.episode_starts.tolist() == np.concatenate([[0], np.cumsum(lengths)[:-1]]).tolist()
    assert ds.num_frames == sum(lengths) and ds.num_transitions == sum(lengths) - 7
    assert ds.image_shape == shape and ds.action_dim == 3
    assert ds.proprio_dim == (4 if full else None)
    for i, ep in enumerate(eps):
        assert_same_episode(ds.episode(i), ep)
        assert ds.episode_info(i) == {"i": i}
    assert ds.seeds.tolist() == list(range(7))
    # frame-aligned arrays: the last frame of each episode has a zero action row
    assert ds.actions.shape == (ds.num_frames, 3) and ds.actions.dtype == np.float32
    assert not ds.actions[ds.episode_ends].any()
    assert ds.has_next.sum() == ds.num_transitions and not ds.has_next[ds.episode_ends].any()
    np.testing.assert_array_equal(ds.actions[ds.has_next], np.concatenate([e.actions for e in eps]))
    if full:
        assert ds.success.dtype == bool and ds.rewards.shape == (ds.num_frames,)
        assert ds.achieved_goal.shape == (ds.num_frames, 2)
        assert ds.state.shape == (ds.num_frames, 7) and ds.state_dim == 7
    else:
        assert ds.proprio is None and ds.rewards is None and ds.success is None
        assert ds.state is None and ds.state_dim is None and "state_dim" not in ds.meta
    # metadata and card
    meta = ds.meta
    assert meta["format_version"] == FORMAT_VERSION and meta["env_id"] == "goalrl/Push-v0"
    assert meta["num_episodes"] == 7 and meta["num_frames"] == ds.num_frames
    assert meta["fps"] == 5.0 and meta["extra"] == {"note": "x"}
    acts = np.concatenate([e.actions for e in eps]).astype(np.float64)
    np.testing.assert_allclose(meta["action_stats"]["mean"], acts.mean(0), atol=1e-6)
    np.testing.assert_allclose(meta["action_stats"]["std"], acts.std(0), atol=1e-6)
    np.testing.assert_allclose(meta["action_stats"]["min"], acts.min(0))
    np.testing.assert_allclose(meta["action_stats"]["max"], acts.max(0))
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "goalrl/Push-v0" in card and "| episodes | 7 |" in card
    assert f"| state dim | {7 if full else '-'} |" in card


def test_gather_modes_and_pickle(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    eps = [make_episode(rng, int(rng.integers(1, 6))) for _ in range(9)]
    with writer(tmp_path / "ds", chunk_frames=10) as w:
        for ep in eps:
            w.append(ep)
    frames = np.concatenate([e.images for e in eps])  # (N, H, W, 3) reference
    idx = rng.integers(0, len(frames), size=(5, 7))
    for mode in ("pread", "mmap"):
        ds = EpisodeDataset(tmp_path / "ds", read_mode=mode, mmap_release_bytes=1000)
        np.testing.assert_array_equal(ds.images(idx), frames[idx])  # (5, 7, H, W, 3)
        t = np.flatnonzero(ds.has_next)
        obs, nxt = ds.image_pairs(t)
        np.testing.assert_array_equal(obs, frames[t])
        np.testing.assert_array_equal(nxt, frames[t + 1])
        with pytest.raises(IndexError):
            ds.image_pairs(ds.episode_ends[:1])
        with pytest.raises(IndexError):
            ds.images([ds.num_frames])
        ds2 = pickle.loads(pickle.dumps(ds))
        np.testing.assert_array_equal(ds2.images(idx), frames[idx])
        ds.close()
        ds2.close()


def test_episodes_never_span_chunks(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    steps = [3, 4, 2, 9, 20, 1, 5]  # 20 steps > chunk_frames: gets a chunk of its own
    with writer(tmp_path / "ds", chunk_frames=10) as w:
        for s in steps:
            w.append(make_episode(rng, s))
    ds = EpisodeDataset(tmp_path / "ds")
    for e in range(ds.num_episodes):
        chunk, row = ds._ep_chunk[e], ds._ep_offset[e]
        frames = ds.meta["chunks"][chunk]["frames"]
        assert row + ds.episode_lengths[e] <= frames
        assert frames <= 10 or frames == ds.episode_lengths[e]
    assert len(ds.meta["chunks"]) >= 4
    mm = ds.image_memmap(0)
    np.testing.assert_array_equal(mm[: ds.episode_lengths[0]], ds.episode(0).images)


def test_one_step_episode_accepted_zero_step_rejected(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    with writer(tmp_path / "ds") as w:
        w.append(make_episode(rng, 1))  # T=1: two frames, one transition
        for frames in (1, 0):
            ep = EpisodeData(images=np.zeros((frames, *SHAPE), np.uint8),
                             actions=np.zeros((0, 3), np.float32))
            with pytest.raises(DatasetError, match=r"episode 1: episode has 0 steps"):
                w.append(ep)
    ds = EpisodeDataset(tmp_path / "ds")
    assert ds.num_episodes == 1 and ds.num_frames == 2 and ds.num_transitions == 1


def test_resume_appending(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    eps = [make_episode(rng, 4, proprio_dim=2, rewards=True, seed=i) for i in range(6)]
    with writer(tmp_path / "ds", proprio_dim=2, chunk_frames=12) as w:
        for ep in eps[:3]:
            w.append(ep)
    fp3 = EpisodeDataset(tmp_path / "ds").fingerprint()
    with writer(tmp_path / "ds", proprio_dim=2, chunk_frames=12) as w:
        assert w.num_episodes == 3
        assert w.append(eps[3]) == 3
    with DatasetWriter.resume(tmp_path / "ds", durable=False) as w:
        assert w.append(eps[4]) == 4
        assert w.append(eps[5]) == 5
    ds = EpisodeDataset(tmp_path / "ds")
    assert ds.num_episodes == 6 and ds.fingerprint() != fp3
    for i, ep in enumerate(eps):
        assert_same_episode(ds.episode(i), ep)
    acts = np.concatenate([e.actions for e in eps]).astype(np.float64)
    np.testing.assert_allclose(ds.meta["action_stats"]["mean"], acts.mean(0), atol=1e-6)
    assert ds.meta["action_stats"]["count"] == 24


@pytest.mark.parametrize(
    "change, match",
    [
        ({"image_shape": (16, 16, 3)}, "image_shape"),
        ({"action_dim": 4}, "action_dim"),
        ({"proprio_dim": None}, "proprio_dim"),
        ({"goal_dim": 3}, "goal_dim"),
        ({"state_dim": 7}, "state_dim"),
        ({"action_low": -2.0}, "action_low"),
        ({"env_id": "other"}, "env_id"),
        ({"has_rewards": False}, "rewards"),
    ],
)
def test_resume_refuses_different_dataset(tmp_path: Path, change: dict, match: str) -> None:
    rng = np.random.default_rng(5)
    base = dict(proprio_dim=2, env_id="goalrl/Reach-v0")
    with writer(tmp_path / "ds", **base) as w:
        w.append(make_episode(rng, 2, proprio_dim=2, rewards=True))
    with pytest.raises(DatasetError, match=match) as err:
        writer(tmp_path / "ds", **{**base, **change})
    assert "meta.json" in str(err.value)
    # the refused writer left the lock free and the data intact
    with writer(tmp_path / "ds", **base) as w:
        assert w.num_episodes == 1


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    w = writer(tmp_path / "ds")
    with pytest.raises(DatasetError, match="another writer"):
        writer(tmp_path / "ds")
    w.close()
    writer(tmp_path / "ds").close()


def test_refuses_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "data.txt").write_text("hi")
    with pytest.raises(DatasetError, match="not a goalrl dataset"):
        writer(tmp_path / "x")


def test_fingerprint_is_content_based(tmp_path: Path) -> None:
    eps = [make_episode(np.random.default_rng(i), 3 + i, seed=i) for i in range(5)]
    for name, chunk_frames in (("a", 65536), ("b", 6)):
        with writer(tmp_path / name, chunk_frames=chunk_frames) as w:
            for ep in eps:
                w.append(ep)
    fa = EpisodeDataset(tmp_path / "a").fingerprint()
    assert fa == EpisodeDataset(tmp_path / "b").fingerprint()  # layout does not matter
    assert len(fa) == 16 and fa == EpisodeDataset(tmp_path / "a").fingerprint()
    assert json.loads((tmp_path / "a" / "meta.json").read_text())["fingerprint"][:16] == fa
    with writer(tmp_path / "c") as w:
        for ep in eps[:4]:
            w.append(ep)
    assert EpisodeDataset(tmp_path / "c").fingerprint() != fa


def _bad(rng: np.random.Generator, case: str) -> EpisodeData:
    ep = make_episode(rng, 4, proprio_dim=2, rewards=True)
    if case == "image dtype":
        ep.images = ep.images.astype(np.float32)
    elif case == "image shape":
        ep.images = np.zeros((5, 8, 9, 3), np.uint8)  # inconsistent with earlier episodes
    elif case == "image not array":
        ep.images = ep.images.tolist()
    elif case == "action length":
        ep.actions = ep.actions[:3]
    elif case == "action dim":
        ep.actions = np.zeros((4, 2), np.float32)
    elif case == "action dtype":
        ep.actions = np.zeros((4, 3), np.int64)
    elif case == "action nan":
        ep.actions[2, 1] = np.nan
    elif case == "action inf":
        ep.actions[0, 0] = np.inf
    elif case == "action overflow":
        ep.actions = ep.actions.astype(np.float64)
        ep.actions[1, 1] = 1e300  # finite in float64, inf in float32
    elif case == "action bounds":
        ep.actions[3, 2] = 1.5
    elif case == "missing proprio":
        ep.proprio = None
    elif case == "proprio shape":
        ep.proprio = np.zeros((4, 2), np.float32)  # T rows instead of T+1
    elif case == "proprio nan":
        ep.proprio[0, 0] = np.nan
    elif case == "missing rewards":
        ep.rewards = None
    elif case == "unexpected goal":
        ep.achieved_goal = np.zeros((5, 3), np.float32)
    elif case == "unexpected state":
        ep.state = np.zeros((5, 8), np.float32)
    elif case == "unexpected success":
        ep.success = np.zeros(5, bool)
    elif case == "success dtype":
        ep.rewards, ep.success = ep.rewards, np.full(5, 0.5)
    elif case == "seed":
        ep.seed = -3
    elif case == "info":
        ep.info = {"f": object()}
    return ep


_CASES = {
    "image dtype": "'images'.*dtype float32",
    "image shape": "'images'.*shape",
    "image not array": "'images'.*numpy array",
    "action length": "'actions'.*shape",
    "action dim": "'actions'.*shape",
    "action dtype": "'actions'.*dtype int64",
    "action nan": "'actions'.*non-finite.*nan",
    "action inf": "'actions'.*non-finite.*inf",
    "action overflow": "'actions'.*non-finite",
    "action bounds": "'actions'.*outside",
    "missing proprio": "'proprio' is missing",
    "proprio shape": "'proprio'.*shape",
    "proprio nan": "'proprio'.*non-finite",
    "missing rewards": "'rewards' is missing",
    "unexpected goal": "'achieved_goal' given.*goal_dim",
    "unexpected state": "'state' given.*state_dim",
    "unexpected success": "'success' given",
    "success dtype": "'success'",
    "seed": "'seed'",
    "info": "'info'.*JSON",
}


@pytest.mark.parametrize("case", list(_CASES))
def test_rejected_append_names_episode_and_field(tmp_path: Path, case: str) -> None:
    rng = np.random.default_rng(6)
    good = [make_episode(rng, 4, proprio_dim=2, rewards=True) for _ in range(3)]
    root = tmp_path / "ds"
    with writer(root, proprio_dim=2) as w:
        w.append(good[0])
        w.append(good[1])
        with pytest.raises(DatasetError, match=_CASES[case]) as err:
            w.append(_bad(rng, case))
        assert str(root) in str(err.value) and "episode 2" in str(err.value)
        assert w.append(good[2]) == 2  # the writer is still usable, indices continue
    ds = EpisodeDataset(root)
    assert ds.num_episodes == 3
    for i, ep in enumerate(good):
        assert_same_episode(ds.episode(i), ep)


def test_lenient_dtypes_are_converted(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    ep = make_episode(rng, 3, success=True)
    ep.actions = ep.actions.astype(np.float64)
    ep.success = ep.success.astype(np.int64)  # 0/1 ints are fine for a bool label
    with writer(tmp_path / "ds") as w:
        w.append(ep)
    back = EpisodeDataset(tmp_path / "ds").episode(0)
    assert back.actions.dtype == np.float32 and back.success.dtype == bool
    np.testing.assert_array_equal(back.success, ep.success.astype(bool))


def test_bounds_check_can_be_disabled(tmp_path: Path) -> None:
    ep = make_episode(np.random.default_rng(8), 3)
    ep.actions[0, 0] = 3.0
    with writer(tmp_path / "ds", check_action_bounds=False) as w:
        w.append(ep)
    assert EpisodeDataset(tmp_path / "ds").meta["action_stats"]["max"][0] == 3.0


def test_optional_fields_decided_by_first_episode(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    with writer(tmp_path / "ds") as w:
        w.append(make_episode(rng, 2, success=True))
        with pytest.raises(DatasetError, match="'success' is missing"):
            w.append(make_episode(rng, 2))
        with pytest.raises(DatasetError, match="'rewards' given"):
            w.append(make_episode(rng, 2, success=True, rewards=True))
    ds = EpisodeDataset(tmp_path / "ds")
    assert ds.fields == ("images", "actions", "success") and ds.rewards is None
