"""The shared PNG/MP4/GIF writers: readable output, clear errors, no partial files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from goalrl.data.sheets import image_grid, write_png_atomic, write_video


def frames(n: int = 5) -> list[np.ndarray]:
    return [np.full((16, 16, 3), 40 * i, np.uint8) for i in range(n)]


def test_mp4_and_gif_decode_with_every_frame(tmp_path) -> None:
    mp4 = write_video(tmp_path / "v.mp4", frames())
    cap = cv2.VideoCapture(str(mp4))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 5
    gif = Image.open(write_video(tmp_path / "v.gif", frames()))
    assert gif.n_frames == 5


def test_bad_video_requests_are_refused_without_leftovers(tmp_path) -> None:
    with pytest.raises(ValueError, match="must end in .mp4 or .gif"):
        write_video(tmp_path / "v.avi", frames())
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "v.mp4", [])
    assert list(tmp_path.iterdir()) == []


def test_grid_png_round_trip(tmp_path) -> None:
    grid = image_grid([frames(3), frames(2)], ("a", "b", "c"), scale=2)
    write_png_atomic(tmp_path / "g.png", grid)
    back = cv2.cvtColor(cv2.imread(str(tmp_path / "g.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, grid)
    assert grid.shape[1] == 3 * (32 + 2)
