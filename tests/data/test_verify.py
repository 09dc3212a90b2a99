"""Damage and tampering found where data is read: image checksums on first read, meta.json
shapes against the writer's fingerprint, action bounds; `goalrl data verify|repair` functions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from goalrl.data.integrity import repair_summary, verify_dataset
from goalrl.data.storage import DatasetError, DatasetWriter, EpisodeData, EpisodeDataset

SHAPE = (8, 8, 3)
FRAME_BYTES = math.prod(SHAPE)
STEPS = 5  # 6 frames per episode
IMAGES = Path("chunks/000000/images.u8")


def episode(i: int, shape: tuple[int, int, int] = SHAPE) -> EpisodeData:
    rng = np.random.default_rng(i)
    return EpisodeData(images=rng.integers(0, 256, (STEPS + 1, *shape), dtype=np.uint8),
                       actions=rng.uniform(-1, 1, (STEPS, 2)).astype(np.float32), seed=i)


def make(root: Path, n: int = 3, shape: tuple[int, int, int] = SHAPE) -> Path:
    with DatasetWriter(root, image_shape=shape, action_dim=2, durable=False) as w:
        for i in range(n):
            w.append(episode(i, shape))
    return root


def flip_image_byte(root: Path, ep: int, frame: int = 2, at: int = 5) -> Path:
    path = root / IMAGES
    with open(path, "r+b") as f:
        offset = (ep * (STEPS + 1) + frame) * FRAME_BYTES + at
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0xFF]))
    return path


def edit_meta(root: Path, fn) -> None:
    meta = json.loads((root / "meta.json").read_text())
    fn(meta)
    (root / "meta.json").write_text(json.dumps(meta))  # NaN written as the JSON literal NaN


# ----------------------------------------------------------------------------- first reads


@pytest.mark.parametrize("read", ["images", "image_pairs", "episode"])
def test_a_flipped_image_byte_fails_the_first_read_of_its_episode(tmp_path, read) -> None:
    root = make(tmp_path / "ds")
    path = flip_image_byte(root, ep=1)
    ds = EpisodeDataset(root)  # open stays cheap: frames are checked as they are read
    np.testing.assert_array_equal(ds.images([0, 5, 12]), np.stack(
        [episode(0).images[0], episode(0).images[5], episode(2).images[0]]))
    with pytest.raises(DatasetError) as err:
        if read == "images":
            ds.images([0, 6 + 4])  # frame 4 of episode 1: not the flipped frame itself
        elif read == "image_pairs":
            ds.image_pairs([6])
        else:
            ds.episode(1)
    msg = str(err.value)
    assert str(path) in msg and "episode 1" in msg and "'images' fails its checksum" in msg
    assert f"goalrl data verify path={root}" in msg and f"goalrl data repair path={root}" in msg
    assert "\n" not in msg
    ds.close()
    # the check can be turned off (e.g. for a forensic look at the damaged frames)
    with EpisodeDataset(root, verify_images=False) as raw:
        assert raw.images([7]).shape == (1, *SHAPE)


def test_each_episode_is_checked_once(tmp_path, monkeypatch) -> None:
    root = make(tmp_path / "ds")
    ds = EpisodeDataset(root)
    checked = []
    original = ds._episode_image_problem
    monkeypatch.setattr(ds, "_episode_image_problem", lambda e: checked.append(e) or original(e))
    for _ in range(3):
        ds.images(np.arange(ds.num_frames))
        ds.image_pairs(np.flatnonzero(ds.has_next))
    assert sorted(checked) == [0, 1, 2]
    ds.close()


def test_sampler_batches_report_the_damaged_episode(tmp_path) -> None:
    from goalrl.data.sampler import GoalBatchSampler

    root = make(tmp_path / "ds", n=4)
    flip_image_byte(root, ep=3)
    sampler = GoalBatchSampler(EpisodeDataset(root), 32, seed=0)
    batches = sampler.prefetch(depth=2)
    with pytest.raises(DatasetError, match="episode 3: field 'images' fails its checksum"):
        for _ in range(20):
            next(batches)
    batches.close()


# ----------------------------------------------------------------------------- verify / repair


def test_verify_and_repair(tmp_path) -> None:
    root = make(tmp_path / "ds", n=4)
    ok = verify_dataset(root)
    assert ok["ok"] and ok["num_episodes"] == 4 and ok["image_bytes"] == 24 * FRAME_BYTES
    path = flip_image_byte(root, ep=2)
    actions = root / "chunks/000000/actions.f32"
    data = bytearray(actions.read_bytes())
    data[0] ^= 0xFF  # episode 0's first action
    actions.write_bytes(bytes(data))
    with pytest.raises(DatasetError) as err:
        verify_dataset(root)
    msg = str(err.value)
    assert "2 damaged episode(s) [0, 2]" in msg and str(path) in msg and str(actions) in msg
    assert "field 'actions' fails its checksum" in msg and "field 'images' fails" in msg
    done = repair_summary(root)
    assert done["dropped"] == 2 and done["num_episodes"] == 2 and len(done["problems"]) == 2
    assert verify_dataset(root)["num_episodes"] == 2
    with EpisodeDataset(root) as ds:
        np.testing.assert_array_equal(ds.episode(1).images, episode(3).images)
    assert repair_summary(root)["dropped"] == 0


# ----------------------------------------------------------------------------- meta.json shapes


@pytest.mark.parametrize("shape, match", [
    ([4, 4, 12], r"'image_shape' \[4, 4, 12\] has 12 channels"),  # same bytes per frame
    ([8, 24, 1], r"'image_shape' \[8, 24, 1\] .* do not match the 'fingerprint'"),  # same bytes
    ([8, 8, 1], r"'image_shape' \[8, 8, 1\] .* do not match the 'fingerprint'"),
])
def test_an_edited_image_shape_is_refused_at_open(tmp_path, shape, match) -> None:
    root = make(tmp_path / "ds")

    def reshape(meta: dict) -> None:
        meta["image_shape"] = shape
        meta["fields"]["images"]["shape"] = shape

    edit_meta(root, reshape)
    with pytest.raises(DatasetError, match=match):
        EpisodeDataset(root)


def test_grayscale_datasets_open_and_read(tmp_path) -> None:
    root = make(tmp_path / "gray", shape=(8, 8, 1))
    with EpisodeDataset(root) as ds:
        assert ds.image_shape == (8, 8, 1)
        np.testing.assert_array_equal(ds.episode(2).images, episode(2, (8, 8, 1)).images)
    assert verify_dataset(root)["ok"]


def test_writer_refuses_unsupported_channels(tmp_path) -> None:
    with pytest.raises(DatasetError, match=r"image_shape \(8, 8, 12\) has 12 channels"):
        DatasetWriter(tmp_path / "ds", image_shape=(8, 8, 12), action_dim=2)


# ----------------------------------------------------------------------------- action bounds


@pytest.mark.parametrize("edit, match", [
    (lambda m: m["action_low"].__setitem__(1, float("nan")), r"'action_low'\[1\] is nan"),
    (lambda m: m["action_high"].__setitem__(0, float("inf")), r"'action_high'\[0\] is inf"),
    (lambda m: m.update(action_low=[-1.0, 1.0], action_high=[1.0, -1.0]),
     r"'action_low'\[1\] = 1.0 is not below 'action_high'\[1\] = -1.0"),
    (lambda m: m["action_low"].__setitem__(0, "low"), r"'action_low'\[0\] is 'low'"),
])
def test_bad_action_bounds_are_refused_at_open(tmp_path, edit, match) -> None:
    root = make(tmp_path / "ds")
    edit_meta(root, edit)
    with pytest.raises(DatasetError, match=r"meta\.json: " + match):
        EpisodeDataset(root)


@pytest.mark.parametrize("low, high, match", [
    ([-1.0, float("nan")], 1.0, r"action_low must be a finite"),
    (-1.0, [1.0, float("inf")], r"action_high must be a finite"),
    ([-1.0, 2.0], [1.0, 1.0], r"'action_low'\[1\] = 2.0 is not below 'action_high'\[1\] = 1.0"),
])
def test_bad_action_bounds_are_refused_at_write(tmp_path, low, high, match) -> None:
    with pytest.raises(DatasetError, match=match):
        DatasetWriter(tmp_path / "ds", image_shape=SHAPE, action_dim=2, action_low=low,
                      action_high=high)
    assert not (tmp_path / "ds" / "meta.json").exists()
