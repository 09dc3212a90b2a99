"""Minari importer on datasets written by the real minari.DataCollector."""

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fixtures import write_minari_collector  # noqa: E402

from goalrl.data.importers import import_dataset  # noqa: E402
from goalrl.data.storage import DatasetError, EpisodeDataset  # noqa: E402


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def test_import_dict_obs_by_id(minari_root, tmp_path):
    import minari

    src = write_minari_collector("test/tiny-v0", episodes=3, size=16, steps=5, two_cameras=True,
                                 goal=True, record_infos=True)
    with pytest.raises(DatasetError, match="several image observations.*camera="):
        import_dataset("test/tiny-v0", "minari", tmp_path / "a", image_size=8)
    with pytest.raises(DatasetError, match="'nope' is not an observation key.*wrist"):
        import_dataset("test/tiny-v0", "minari", tmp_path / "a", camera="nope")

    out = tmp_path / "out"
    s = import_dataset("test/tiny-v0", "minari", out, camera="wrist", image_size=8,
                       proprio="state")
    assert s["episodes_imported"] == 3 and s["num_transitions"] == 15
    assert s["camera"] == "wrist" and s["image_size"] == 8
    assert s["env_id"] == "goalrl_test/TinyImage-v0"  # from the env spec Minari recorded
    ds = EpisodeDataset(out)
    assert ds.image_shape == (8, 8, 3) and ds.proprio_dim == 2 and ds.goal_dim == 3
    assert ds.meta["source"] == "import:minari"
    assert ds.meta["action_stats"]["count"] == 15  # the writer keeps action statistics
    for i, ep in enumerate(minari.load_dataset("test/tiny-v0").iterate_episodes()):
        got = ds.episode(i)
        want = [cv2.resize(f, (8, 8), interpolation=cv2.INTER_AREA)
                for f in ep.observations["wrist"]]
        assert np.array_equal(got.images, np.stack(want))  # N+1 observations kept
        assert np.array_equal(got.actions, ep.actions)
        assert np.array_equal(got.proprio, ep.observations["state"])
        assert np.array_equal(got.achieved_goal, ep.observations["achieved_goal"])
        assert np.array_equal(got.rewards, ep.rewards.astype(np.float32))
        assert got.success.tolist() == [False] * 5 + [True]  # from infos["is_success"]
        assert got.seed == i  # the DataCollector's reset seed
    assert src.total_episodes == 3


def test_import_by_path_and_single_image_obs(minari_root, tmp_path):
    write_minari_collector("tiny-v1", episodes=2, size=16, steps=4)
    for i, src in enumerate([minari_root / "tiny-v1", minari_root / "tiny-v1" / "data"]):
        s = import_dataset(src, "minari", tmp_path / f"out{i}", image_size=16)
        assert s["camera"] == "image" and s["num_episodes"] == 2 and s["proprio"] is None
        ds = EpisodeDataset(tmp_path / f"out{i}")
        assert ds.proprio is None and ds.success is None  # no infos recorded


def test_jpeg_encoded_observations_load_through_minari(minari_root, tmp_path):
    import minari

    write_minari_collector("big-v0", episodes=2, size=32, steps=3, jpeg=True)
    s = import_dataset("big-v0", "minari", tmp_path / "out", image_size=32)
    ds = EpisodeDataset(tmp_path / "out")
    ep = next(minari.load_dataset("big-v0").iterate_episodes())
    assert np.array_equal(ds.episode(0).images, ep.observations["image"])  # decoded JPEG
    assert s["num_transitions"] == 6


def test_missing_dataset_is_never_downloaded(minari_root, tmp_path):
    with pytest.raises(DatasetError, match="never downloads"):
        import_dataset("D4RL/door/human-v2", "minari", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="not a Minari dataset"):
        import_dataset(tmp_path / "empty", "minari", tmp_path / "out")


def test_rerun_resumes_and_other_import_is_refused(minari_root, tmp_path):
    write_minari_collector("tiny-v2", episodes=2, size=16, steps=3)
    out = tmp_path / "out"
    import_dataset("tiny-v2", "minari", out, image_size=8)
    again = import_dataset("tiny-v2", "minari", out, image_size=8)
    assert again["resumed_from"] == 2 and again["episodes_imported"] == 0
    assert again["num_episodes"] == 2
    with pytest.raises(DatasetError, match="already holds a dataset"):
        import_dataset("tiny-v2", "minari", out, image_size=16)


def test_damaged_minari_file_is_named(minari_root, tmp_path):
    write_minari_collector("tiny-v3", episodes=2, size=16, steps=3)
    h5 = minari_root / "tiny-v3" / "data" / "main_data.hdf5"
    h5.write_bytes(h5.read_bytes()[:200])
    with pytest.raises(DatasetError, match="tiny-v3/data: cannot read"):
        import_dataset("tiny-v3", "minari", tmp_path / "out")


@pytest.mark.filterwarnings("ignore:.*(eval_env|env_spec).*:UserWarning")  # no env: by design
def test_plain_box_observation_chw_and_unbounded_actions(minari_root, tmp_path):
    import gymnasium as gym
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 5, 3, 20, 20), dtype=np.uint8)  # (E, T+1, C, H, W)
    actions = (rng.normal(size=(2, 4, 2)) * 3).astype(np.float32)
    buffers = [EpisodeBuffer(observations=frames[i], actions=actions[i], rewards=[0.0] * 4,
                             terminations=[False] * 4, truncations=[False] * 3 + [True])
               for i in range(2)]
    minari.create_dataset_from_buffers(
        "box-v0", buffers, observation_space=gym.spaces.Box(0, 255, (3, 20, 20), np.uint8),
        action_space=gym.spaces.Box(-np.inf, np.inf, (2,), np.float32), algorithm_name="x",
        author="a", author_email="b", code_permalink="c", description="d", eval_env=None)
    s = import_dataset("box-v0", "minari", tmp_path / "out", image_size=8)
    assert s["camera"] == "observation"
    assert np.allclose(s["action_low"], actions.min((0, 1)))  # unbounded space: data range
    ep = EpisodeDataset(tmp_path / "out").episode(1)
    want = [cv2.resize(np.moveaxis(f, 0, -1), (8, 8), interpolation=cv2.INTER_AREA)
            for f in frames[1]]
    assert np.array_equal(ep.images, np.stack(want))
