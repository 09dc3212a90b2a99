"""robomimic importer on HDF5 files written with h5py in robomimic's layout."""

import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fixtures import make_episodes, write_robomimic  # noqa: E402

from goalrl.data.importers import import_dataset  # noqa: E402
from goalrl.data.storage import DatasetError, EpisodeDataset  # noqa: E402

CAM = "agentview_image"


def test_import_with_next_obs(tmp_path):
    eps = make_episodes(12, steps=4, two_cameras=True)  # demo_10, demo_11 test the sort order
    src = write_robomimic(tmp_path / "demo.hdf5", eps)
    with pytest.raises(DatasetError, match="several image observations.*camera="):
        import_dataset(src, "robomimic", tmp_path / "x")
    s = import_dataset(src, "robomimic", tmp_path / "out", camera=CAM, image_size=16,
                       proprio="robot0_eef_pos")
    assert s["env_id"] == "Lift" and s["fps"] == 20.0 and s["num_transitions"] == 48
    ds = EpisodeDataset(tmp_path / "out")
    assert ds.meta["extra"]["source_info"]["env_args"]["env_name"] == "Lift"
    for i in range(12):
        ep = ds.episode(i)
        assert ep.info["demo"] == f"demo_{i}"
        assert np.array_equal(ep.images, eps[i].frames)  # T obs + next_obs's last frame
        assert np.array_equal(ep.actions, eps[i].actions)  # every action kept
        assert np.allclose(ep.proprio, eps[i].state)
        assert np.allclose(ep.rewards, eps[i].rewards)


def test_import_without_next_obs_resized(tmp_path):
    eps = make_episodes(2, steps=5)
    src = write_robomimic(tmp_path / "demo.hdf5", eps, next_obs=False)
    import_dataset(src, "robomimic", tmp_path / "out", image_size=8)
    ep = EpisodeDataset(tmp_path / "out").episode(1)
    want = [cv2.resize(f, (8, 8), interpolation=cv2.INTER_AREA) for f in eps[1].frames[:5]]
    assert np.array_equal(ep.images, np.stack(want))  # T frames ...
    assert np.array_equal(ep.actions, eps[1].actions[:4])  # ... T-1 actions


def test_nan_actions_named_earlier_demos_kept_then_resume(tmp_path):
    eps = make_episodes(5, steps=4)
    src = write_robomimic(tmp_path / "demo.hdf5", eps)
    with h5py.File(src, "a") as f:
        f["data/demo_3/actions"][2, 1] = np.nan
    with pytest.raises(DatasetError, match=r"demo\.hdf5: data/demo_3: field 'actions'.*NaN"):
        import_dataset(src, "robomimic", tmp_path / "out", image_size=16)
    assert EpisodeDataset(tmp_path / "out").num_episodes == 3  # demos 0-2 were committed
    with h5py.File(src, "a") as f:
        f["data/demo_3/actions"][2, 1] = 0.0
    s = import_dataset(src, "robomimic", tmp_path / "out", image_size=16)
    assert s["resumed_from"] == 3 and s["num_episodes"] == 5


def test_inconsistent_and_missing_fields_are_named(tmp_path):
    eps = make_episodes(3, steps=4)
    src = write_robomimic(tmp_path / "demo.hdf5", eps)
    with h5py.File(src, "a") as f:
        del f["data/demo_2/actions"]
        f["data/demo_2/actions"] = np.zeros((4, 5))
    with pytest.raises(DatasetError, match=r"data/demo_2: field 'actions'.*inconsistent"):
        import_dataset(src, "robomimic", tmp_path / "out", image_size=16)
    with h5py.File(src, "a") as f:
        del f[f"data/demo_1/obs/{CAM}"]
    with pytest.raises(DatasetError, match=rf"data/demo_1: missing 'obs/{CAM}'"):
        import_dataset(src, "robomimic", tmp_path / "out2", image_size=16)


def test_corrupt_file(tmp_path):
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(b"not an hdf5 file" * 10)
    with pytest.raises(DatasetError, match="bad.hdf5: not a readable HDF5 file"):
        import_dataset(bad, "robomimic", tmp_path / "out")
    good = write_robomimic(tmp_path / "good.hdf5", make_episodes(2, steps=3))
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(DatasetError, match="good.hdf5"):
        import_dataset(good, "robomimic", tmp_path / "out")


@pytest.mark.parametrize("first", [False, True])
def test_a_demo_with_zero_actions_is_skipped_naming_it(tmp_path, first):
    src = write_robomimic(tmp_path / "demo.hdf5", make_episodes(3, steps=4))
    empty = "demo_0" if first else "demo_1"
    with h5py.File(src, "a") as f:  # robomimic's layout with T = 0: every array empty
        g = f[f"data/{empty}"]
        for key in ("actions", "rewards", "dones", f"obs/{CAM}", f"next_obs/{CAM}"):
            arr = g[key]
            shape, dtype = (0, *arr.shape[1:]), arr.dtype
            del g[key]
            g.create_dataset(key, shape=shape, dtype=dtype)
    s = import_dataset(src, "robomimic", tmp_path / "out", image_size=16)
    index = int(empty.split("_")[1])
    assert s["episodes_skipped"] == [
        {"episode": index, "reason": f"data/{empty} has 0 actions: no transition"}]
    assert s["num_episodes"] == 2 and s["action_dim"] == 3


def test_every_demo_empty_is_one_clear_error(tmp_path):
    src = write_robomimic(tmp_path / "demo.hdf5", make_episodes(1, steps=4))
    with h5py.File(src, "a") as f:
        del f["data/demo_0/actions"]
        f["data/demo_0"].create_dataset("actions", shape=(0,), dtype="f8")
    with pytest.raises(DatasetError, match="every demo has 0 actions"):
        import_dataset(src, "robomimic", tmp_path / "out", image_size=16)
