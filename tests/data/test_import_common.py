"""Image helpers and the format-independent parts of the importers."""

import cv2
import numpy as np
import pytest

from goalrl.data.images import frames_to_rgb, prepare_frames, prepare_image, resize_frames
from goalrl.data.importers import FORMATS, bounds_from_data, import_dataset
from goalrl.data.storage import DatasetError


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (4, 16, 12, 3), dtype=np.uint8)  # (N, H, W, 3)


def test_layouts_become_hwc3_uint8(rgb):
    gray = rgb[..., 0]
    assert np.array_equal(frames_to_rgb(gray), np.repeat(gray[..., None], 3, -1))
    assert np.array_equal(frames_to_rgb(gray[..., None]), np.repeat(gray[..., None], 3, -1))
    rgba = np.concatenate([rgb, np.full(rgb.shape[:3] + (1,), 7, np.uint8)], -1)
    assert np.array_equal(frames_to_rgb(rgba), rgb)
    chw = np.moveaxis(rgb, -1, 1)  # (N, 3, H, W)
    assert np.array_equal(frames_to_rgb(chw), rgb)
    as_float = rgb.astype(np.float32) / 255.0  # [0, 1] floats
    assert np.abs(frames_to_rgb(as_float).astype(int) - rgb).max() <= 1
    with pytest.raises(ValueError, match="channel"):
        frames_to_rgb(np.zeros((2, 5, 6, 7), np.uint8))


def test_resize_uses_inter_area_and_makes_squares(rgb):
    out = prepare_frames(rgb, 8)
    assert out.shape == (4, 8, 8, 3) and out.dtype == np.uint8
    want = cv2.resize(rgb[1], (8, 8), interpolation=cv2.INTER_AREA)
    assert np.array_equal(out[1], want)
    square = rgb[:, :12]
    assert resize_frames(square, 12) is not None
    assert np.array_equal(resize_frames(square, 12), square)  # right size: unchanged
    assert prepare_image(np.moveaxis(rgb[0], -1, 0), 8).shape == (8, 8, 3)  # one CHW image


def test_unknown_format_lists_valid_ones(tmp_path):
    with pytest.raises(DatasetError) as e:
        import_dataset(tmp_path, "rlds", tmp_path / "out")
    for name in FORMATS:
        assert name in str(e.value)


def test_bounds_from_data():
    lo, hi = bounds_from_data(np.array([-0.5, 0.0]), np.array([0.9, 0.1]))
    assert lo.tolist() == [-1, -1] and hi.tolist() == [1, 1]  # normalised data: the unit box
    lo, hi = bounds_from_data(np.array([-3.0, 2.0]), np.array([5.0, 2.0]))
    assert lo[0] == -3 and hi[0] == 5  # observed range
    assert lo[1] < 2 < hi[1]  # a constant dimension is widened (the writer needs lo < hi)
