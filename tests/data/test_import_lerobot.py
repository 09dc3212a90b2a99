"""LeRobot v3 importer on parquet + mp4 datasets written in the v3 layout."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fixtures import make_episodes, write_lerobot_v3  # noqa: E402

from goalrl.data.importers import import_dataset  # noqa: E402
from goalrl.data.storage import DatasetError, EpisodeDataset  # noqa: E402

CAM = "observation.images.top"


def _check_frames(got: np.ndarray, want: np.ndarray) -> None:
    """Video coding is lossy: frames must be close, and each nearest its own source frame."""
    diff = np.abs(got[:, None].astype(np.int16) - want[None].astype(np.int16)).mean((2, 3, 4))
    assert np.array_equal(diff.argmin(1), np.arange(len(got)))  # aligned, no off-by-one
    assert diff.diagonal().max() < 20


def test_import_video_dataset(tmp_path):
    eps = make_episodes(5, steps=[6, 1, 7, 5, 8], two_cameras=True)
    src = write_lerobot_v3(tmp_path / "lr", eps, episodes_per_file=2)
    with pytest.raises(DatasetError, match="several cameras.*observation.images.wrist"):
        import_dataset(src, "lerobot", tmp_path / "x")

    s = import_dataset(src, "lerobot", tmp_path / "out", camera=CAM, image_size=16,
                       proprio="observation.state")
    assert s["episodes_skipped"] == [{"episode": 1, "reason": "1 frame(s): no transition"}]
    assert s["episodes_imported"] == 4 and s["fps"] == 10.0
    ds = EpisodeDataset(tmp_path / "out")
    assert [ds.episode_info(i)["source_episode"] for i in range(4)] == [0, 2, 3, 4]
    for i in range(ds.num_episodes):
        ep = ds.episode(i)
        src_ep = eps[ep.info["source_episode"]]
        t = len(src_ep.actions)  # LeRobot rows: T frames, T actions
        assert ep.images.shape == (t, 16, 16, 3)  # every recorded frame ...
        assert np.array_equal(ep.actions, src_ep.actions[: t - 1])  # ... the last action dropped
        assert np.array_equal(ep.proprio, src_ep.state[:t])
        assert np.allclose(ep.rewards, src_ep.rewards[: t - 1])
        _check_frames(ep.images, src_ep.frames[:t])


def test_av1_video_like_lerobot_default(tmp_path):
    import av

    if "libsvtav1" not in av.codecs_available:
        pytest.skip("PyAV without the SVT-AV1 encoder")
    eps = make_episodes(2, steps=4)
    src = write_lerobot_v3(tmp_path / "lr", eps, codec="libsvtav1")
    import_dataset(src, "lerobot", tmp_path / "out", image_size=16)
    ds = EpisodeDataset(tmp_path / "out")
    _check_frames(ds.episode(1).images, eps[1].frames[:4])


def test_image_features_in_parquet(tmp_path):
    eps = make_episodes(3, steps=4)
    src = write_lerobot_v3(tmp_path / "lr", eps, video=False, with_reward=False)
    s = import_dataset(src, "lerobot", tmp_path / "out", image_size=16)
    ds = EpisodeDataset(tmp_path / "out")
    assert s["num_episodes"] == 3 and ds.rewards is None
    assert np.array_equal(ds.episode(2).images, eps[2].frames[:4])  # PNG: lossless


def test_truncated_video_keeps_earlier_episodes_and_resumes(tmp_path):
    eps = make_episodes(4, steps=5)
    src = write_lerobot_v3(tmp_path / "lr", eps, episodes_per_file=2)
    video = src / f"videos/{CAM}/chunk-000/file-001.mp4"
    good = video.read_bytes()
    video.write_bytes(good[: len(good) // 3])
    with pytest.raises(DatasetError, match=r"file-001\.mp4.*episode 2") as e:
        import_dataset(src, "lerobot", tmp_path / "out", image_size=16)
    assert "file-001.mp4" in str(e.value)
    assert EpisodeDataset(tmp_path / "out").num_episodes == 2  # episodes 0 and 1 kept
    video.write_bytes(good)  # repaired: the same import picks up where it stopped
    s = import_dataset(src, "lerobot", tmp_path / "out", image_size=16)
    assert s["resumed_from"] == 2 and s["episodes_imported"] == 2 and s["num_episodes"] == 4


def test_bad_metadata_is_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = write_lerobot_v3(tmp_path / "lr", make_episodes(2, steps=3))
    info = json.loads((src / "meta/info.json").read_text())
    ep_file = src / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(ep_file)
    pq.write_table(table.drop_columns([f"videos/{CAM}/from_timestamp"]), ep_file)
    with pytest.raises(DatasetError, match=r"file-000\.parquet: missing columns.*from_timestamp"):
        import_dataset(src, "lerobot", tmp_path / "out", image_size=16)
    pq.write_table(table, ep_file)
    (src / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(DatasetError, match="v2.1.*v3"):
        import_dataset(src, "lerobot", tmp_path / "out", image_size=16)
    (src / "meta/info.json").write_text(json.dumps(info))
    data = src / "data/chunk-000/file-000.parquet"
    bad = pq.read_table(data)
    acts = bad.column("action").to_pylist()
    acts[4][1] = float("nan")  # episode 1, frame 1
    bad = bad.set_column(bad.schema.get_field_index("action"), "action",
                         pa.array(acts, bad.schema.field("action").type))
    pq.write_table(bad, data)
    with pytest.raises(DatasetError, match=r"episode 1: field 'actions' has 1 NaN/inf"):
        import_dataset(src, "lerobot", tmp_path / "out2", image_size=16)
    assert EpisodeDataset(tmp_path / "out2").num_episodes == 1
